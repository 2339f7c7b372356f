"""Reading ``deploy/targets.toml``: the file adapter of :mod:`pipeline.core.targets`.

The core validates parsed data (:func:`~pipeline.core.targets.parse_targets`); this
module opens the file, parses the TOML with exact decimals and turns every file problem
into one :class:`~pipeline.core.targets.TargetsError` line.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from os import PathLike
from pathlib import Path

from pipeline.core.targets import Targets, TargetsError, parse_targets

__all__ = ["load_targets"]


def load_targets(path: str | PathLike[str]) -> Targets:
    """Read and validate a targets TOML file; raises ``TargetsError`` (one line)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh, parse_float=Decimal)
    except FileNotFoundError:
        raise TargetsError(f"{p}: targets file not found") from None
    except IsADirectoryError:
        raise TargetsError(f"{p}: is a directory, not a targets file") from None
    except PermissionError:
        raise TargetsError(f"{p}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"{p}: invalid TOML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError:
        raise TargetsError(f"{p}: invalid TOML: not UTF-8") from None
    return parse_targets(data, source=str(p))
