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

from pipeline.config import read_config_file
from pipeline.core.targets import Targets, TargetsError, parse_targets

__all__ = ["load_targets"]


def load_targets(path: str | PathLike[str]) -> Targets:
    """Read and validate a targets TOML file; raises ``TargetsError`` (one line)."""
    p = Path(path)
    raw = read_config_file(p, "targets", TargetsError)
    try:
        data = tomllib.loads(raw.decode("utf-8"), parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"{p}: invalid TOML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError:
        raise TargetsError(f"{p}: invalid TOML: not UTF-8") from None
    return parse_targets(data, source=str(p))
