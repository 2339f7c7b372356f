"""Progress of the long commands (replay, simulate, simulate --history, report): one look.

Every long command shows its progress through ``tqdm`` on stderr, so stdout stays the
command's answer (parsed by scripts and tests); ``enabled=False`` shows nothing. The
summary line a command prints at the end goes to stderr too (:func:`summary`).
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

__all__ = ["progress_bar", "summary"]


def progress_bar(desc: str, *, total: float | None = None, unit: str = "it", enabled: bool = True, **options: Any) -> tqdm:
    """A tqdm bar on stderr, redrawn at most twice a second."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, mininterval=0.5,
                dynamic_ncols=True, **options)


def summary(text: str, enabled: bool = True) -> None:
    """The one closing line of a command with progress (stderr)."""
    if enabled:
        print(text, file=sys.stderr, flush=True)
