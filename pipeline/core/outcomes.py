"""Outcomes: the unit of counting behind every indicator (docs/indicators.md).

An indicator is a ratio of two counts of outcomes: the denominator counts every
outcome of the indicator, the numerator those with ``hit`` true. An outcome is
attributed to one (unit, sector) and has one time (epoch microseconds, UTC).
Feedback outcomes have sector ``""`` (feedback has no sector).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

__all__ = ["Outcome", "diff_outcomes", "make_outcome"]


class Outcome(NamedTuple):
    """One countable outcome. A named tuple: it hashes, compares and sorts by its
    fields in this order, in C."""

    indicator: str
    unit: str
    sector: str
    time_us: int
    hit: bool


_new_tuple = tuple.__new__


def make_outcome(indicator: str, unit: str, sector: str, time_us: int, hit: bool) -> Outcome:
    """Same as ``Outcome(...)``, without the keyword-handling ``__new__`` (hot path in cases.py)."""
    return _new_tuple(Outcome, (indicator, unit, sector, time_us, hit))


def diff_outcomes(old: Iterable[Outcome], new: Iterable[Outcome]) -> list[tuple[Outcome, int]]:
    """Multiset difference ``new - old`` as signed changes.

    Returns ``(outcome, -1)`` for each copy present in ``old`` but not in ``new``
    and ``(outcome, +1)`` for each copy present in ``new`` but not in ``old``.
    Order is deterministic: all retractions first (sorted), then all additions
    (sorted). Applying the retractions before the additions means a counter key
    that is only moved never goes through a doubled state.
    """
    k_old = old if isinstance(old, list) else list(old)
    k_new = new if isinstance(new, list) else list(new)
    if k_old == k_new:  # the common case: the event changed nothing countable
        return []
    # Drop the common prefix and suffix (case_outcomes_and_open lists outcomes in a stable
    # order, so usually only a few remain); the multiset difference is unchanged.
    lo, ln = len(k_old), len(k_new)
    m = min(lo, ln)
    i = 0
    while i < m and k_old[i] == k_new[i]:
        i += 1
    j = 0
    while j < m - i and k_old[lo - 1 - j] == k_new[ln - 1 - j]:
        j += 1
    count: dict[Outcome, int] = {}
    for x in range(i, lo - j):
        k = k_old[x]
        count[k] = count.get(k, 0) - 1
    for x in range(i, ln - j):
        k = k_new[x]
        count[k] = count.get(k, 0) + 1
    out: list[tuple[Outcome, int]] = []
    gone = [k for k, c in count.items() if c < 0]
    if gone:
        gone.sort()
        for k in gone:
            out.extend([(k, -1)] * -count[k])
    added = [k for k, c in count.items() if c > 0]
    if added:
        added.sort()
        for k in added:
            out.extend([(k, 1)] * count[k])
    return out
