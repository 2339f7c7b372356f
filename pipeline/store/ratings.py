"""Monthly rating summaries from DVCQG (``DongBoDanhGia``) in ClickHouse: ``dvcqg_ratings``.

One row per (unit, month): raters and the % very satisfied / satisfied / unsatisfied, as
the one-stop system reported them (the latest report of a month wins). Shown beside the
per-dossier ``rated`` events, never mixed into their counts (``docs/intake.md``). Filled by
:func:`write_ratings` from the translator's ``RatingSummary`` records (the worker's engine,
asked by its DVCQG translation agent before the batch's transaction). Read with ``FINAL``.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

__all__ = ["RATINGS_DDL", "RATING_COLUMNS", "write_ratings"]

RATING_COLUMNS = ("unit_id", "madonvi", "month", "raters", "very_satisfied_pct", "satisfied_pct",
                  "unsatisfied_pct", "reported_at")

RATINGS_DDL = """
CREATE TABLE IF NOT EXISTS dvcqg_ratings
(
    unit_id            String,
    madonvi            String,
    month              String,
    raters             Nullable(UInt64),
    very_satisfied_pct Nullable(Float64),
    satisfied_pct      Nullable(Float64),
    unsatisfied_pct    Nullable(Float64),
    reported_at        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(reported_at)
ORDER BY (madonvi, month)
"""


def write_ratings(client: Any, summaries: Iterable[Any], reported_at_ms: int | None = None) -> int:
    """Insert ``RatingSummary`` records (one insert); returns the rows written."""
    at = int(time.time() * 1000) if reported_at_ms is None else int(reported_at_ms)
    rows = [(s.unit_id, s.madonvi, s.month, s.raters, s.very_satisfied_pct, s.satisfied_pct, s.unsatisfied_pct, at)
            for s in summaries]
    if rows:
        client.insert("dvcqg_ratings", rows, column_names=list(RATING_COLUMNS))
    return len(rows)
