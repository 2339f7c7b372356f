"""The command-line tools the tests need (promtool, amtool, chromium, ...): `make setup`
installs them (scripts/install-system-packages.sh), so a missing one fails the test that
needs it, never skips it."""

from __future__ import annotations

import shutil


def required_tool(*names: str) -> str:
    """The path of the first of ``names`` on PATH; fails the test when none is installed."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    raise AssertionError(f"{' or '.join(names)} is not installed: run `make setup` (scripts/install-system-packages.sh)")
