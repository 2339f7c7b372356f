"""Sectors at the door: a ``received``'s sector code outside the registry is not kept as it came.

The contract accepts any sector code (``deploy/sectors.csv`` may lag the one-stop
systems). Kept as it came, every invented code would grow the live state: a slot of the
view per code and indicator, open-case scopes, the exposition's cached label text
(issue 20, finding 3: 10,000 invented sectors gave 910,182 cached series). So the worker
maps the code when the event arrives, before the case record and the view see it, as it
does for units (``UnitRegistry.label``):

* in the case record and the live view, a code outside the registry becomes
  :data:`UNREGISTERED_SECTOR` — one scope per indicator, counted at once like any sector
  (not ``unknown``: there the view holds outcomes back, see ``core.view``). The registry's
  codes are ``[a-z0-9_]`` (``store.sectors``), so this code can never be a registered one;
* what is exported and stored as the event's *label* is ``unknown``
  (:func:`public_sector`): ``/metrics`` and the snapshots sum the series of
  ``unknown`` and unregistered sectors (``stream.labels``), ``case_events.sector_label``
  and ``cases.sector`` say ``unknown``, and the batch indicators read ``sector_label``, so
  live, batch and oracle give the same figures for the sector scope ``unknown``.

``case_events.sector`` and ``raw`` keep the code the event carried.
"""

from __future__ import annotations

from typing import AbstractSet

__all__ = ["UNREGISTERED_SECTOR", "PUBLIC_UNKNOWN", "SectorLabels", "public_sector"]

UNREGISTERED_SECTOR = "~unregistered"  # never a registered code (those are [a-z0-9_]{1,64})
PUBLIC_UNKNOWN = "unknown"


def public_sector(sector: str | None) -> str | None:
    """The label a live sector code is shown and stored under: ``unknown`` for
    :data:`UNREGISTERED_SECTOR`, any other code as it is."""
    return PUBLIC_UNKNOWN if sector == UNREGISTERED_SECTOR else sector


class SectorLabels:
    """The registered sector codes, and what an event's code becomes."""

    def __init__(self, known: AbstractSet[str]) -> None:
        self.known = frozenset(known)

    def live(self, sector: str) -> str:
        """The code the case record and the view keep: ``sector`` when registered,
        else :data:`UNREGISTERED_SECTOR`."""
        return sector if sector in self.known else UNREGISTERED_SECTOR

    def public(self, sector: str | None) -> str | None:
        """The label stored with the event (``case_events.sector_label``): ``sector``
        when registered (None stays None), else ``unknown``."""
        if sector is None or sector in self.known:
            return sector
        return PUBLIC_UNKNOWN
