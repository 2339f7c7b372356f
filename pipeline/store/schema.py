"""ClickHouse tables of the pipeline (idempotent DDL, so an old data directory keeps working).

Every table the worker fills is a ``ReplacingMergeTree`` keyed by the row's identity and
read with ``FINAL``: a write repeated after a crash is stored once. The identities and the
Nullable rule are in docs/internals.md ("The tables").
"""

from __future__ import annotations

from pipeline.store.units import UNKNOWN_UNIT_EVENTS_SQL
from pipeline.store.ratings import RATINGS_DDL
from pipeline.store.steps import STEPS_DDL, STEPS_VIEW_DDL

__all__ = [
    "TABLES",
    "CASE_EVENT_COLUMNS",
    "INVALID_EVENT_COLUMNS",
    "CASE_COLUMNS",
    "UNIT_COLUMNS",
    "SNAPSHOT_COLUMNS",
    "VIEWS",
    "ensure_schema",
]

CASE_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "case_id",
    "unit_id",
    "occurred_at",
    "source",
    "procedure_code",
    "sector",
    "channel",
    "online_mode",
    "due_at",
    "has_fee",
    "digitized",
    "reused_data",
    "vneid_authenticated",
    "to_unit_id",
    "method",
    "amount_vnd",
    "electronic_result",
    "new_due_at",
    "rating",
    "raw",
    "kafka_partition",
    "kafka_offset",
    "ingested_at",
    "unit_label",
    "sector_label",
)

INVALID_EVENT_COLUMNS: tuple[str, ...] = (
    "topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_key",
    "reason",
    "detail",
    "raw",
    "raw_encoding",
    "raw_size",
    "raw_sha256",
    "received_at",
)

CASE_COLUMNS: tuple[str, ...] = (
    "case_id",
    "unit_id",
    "sector",
    "procedure_code",
    "channel",
    "status",
    "received_at",
    "due_at",
    "effective_due",
    "finished_at",
    "finish_type",
    "on_time",
    "early",
    "supplement_requests",
    "paused_seconds",
    "has_apology",
    "overdue",
    "event_count",
    "version",
    "updated_at",
)

UNIT_COLUMNS: tuple[str, ...] = (
    "unit_id", "name_vi", "kind", "parent_id", "valid_from", "valid_to", "successor", "population", "admin_code", "dvcqg_code",
)

SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "taken_at",
    "clock_at",
    "indicator",
    "unit",
    "sector",
    "window",
    "numerator",
    "denominator",
    "ratio",
    "target",
    "below_target",
)

_DDL: dict[str, str] = {
    "case_events": """
CREATE TABLE IF NOT EXISTS case_events
(
    event_id            String,
    event_type          LowCardinality(String),
    case_id             String,
    unit_id             String,
    occurred_at         DateTime64(6, 'UTC'),
    source              Nullable(String),
    unit_label          LowCardinality(String) DEFAULT unit_id,
    procedure_code      Nullable(String),
    sector              LowCardinality(Nullable(String)),
    sector_label        LowCardinality(Nullable(String)) DEFAULT sector,
    channel             LowCardinality(Nullable(String)),
    online_mode         LowCardinality(Nullable(String)),
    due_at              Nullable(DateTime64(6, 'UTC')),
    has_fee             Nullable(Bool),
    digitized           Nullable(Bool),
    reused_data         Nullable(Bool),
    vneid_authenticated Nullable(Bool),
    to_unit_id          Nullable(String),
    method              LowCardinality(Nullable(String)),
    amount_vnd          Nullable(Int64),
    electronic_result   Nullable(Bool),
    new_due_at          Nullable(DateTime64(6, 'UTC')),
    rating              Nullable(UInt8),
    raw                 String,
    kafka_partition     Int32,
    kafka_offset        Int64,
    ingested_at         DateTime64(3, 'UTC'),
    INDEX occurred_at_minmax occurred_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree
ORDER BY (case_id, event_id)
""",
    "invalid_events": """
CREATE TABLE IF NOT EXISTS invalid_events
(
    topic           LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64,
    kafka_key       Nullable(String),
    reason          LowCardinality(String),
    detail          String,
    raw             String,
    raw_encoding    LowCardinality(String),
    raw_size        Nullable(UInt64),
    raw_sha256      String DEFAULT '',
    received_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, kafka_partition, kafka_offset)
""",
    "cases": """
CREATE TABLE IF NOT EXISTS cases
(
    case_id             String,
    unit_id             String,
    sector              LowCardinality(Nullable(String)),
    procedure_code      Nullable(String),
    channel             LowCardinality(Nullable(String)),
    status              LowCardinality(String),
    received_at         Nullable(DateTime64(6, 'UTC')),
    due_at              Nullable(DateTime64(6, 'UTC')),
    effective_due       Nullable(DateTime64(6, 'UTC')),
    finished_at         Nullable(DateTime64(6, 'UTC')),
    finish_type         LowCardinality(Nullable(String)),
    on_time             Nullable(Bool),
    early               Nullable(Bool),
    supplement_requests UInt32,
    paused_seconds      Float64,
    has_apology         Bool,
    overdue             Bool,
    event_count         UInt32,
    version             UInt64,
    updated_at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY case_id
""",
    "units": """
CREATE TABLE IF NOT EXISTS units
(
    unit_id    String,
    name_vi    String,
    kind       LowCardinality(String),
    parent_id  Nullable(String),
    valid_from Date,
    valid_to   Nullable(Date),
    successor  Array(String),
    population Nullable(UInt64),
    admin_code Nullable(String),
    dvcqg_code Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (unit_id, valid_from)
""",
    "indicator_snapshots": """
CREATE TABLE IF NOT EXISTS indicator_snapshots
(
    taken_at     DateTime64(3, 'UTC'),
    clock_at     DateTime64(6, 'UTC'),
    indicator    LowCardinality(String),
    unit         LowCardinality(String),
    sector       LowCardinality(String),
    `window`     LowCardinality(String),
    numerator    UInt64,
    denominator  UInt64,
    ratio        Nullable(Float64),
    target       Float64,
    below_target Bool
)
ENGINE = ReplacingMergeTree
ORDER BY (taken_at, indicator, unit, sector, `window`)
""",
}

_DDL["steps"] = STEPS_DDL
_DDL["dvcqg_ratings"] = RATINGS_DDL

TABLES: tuple[str, ...] = tuple(_DDL)


def _views() -> dict[str, str]:
    return {
        "unknown_unit_events": f"CREATE VIEW IF NOT EXISTS unknown_unit_events AS {UNKNOWN_UNIT_EVENTS_SQL.strip()}",
        "steps_from_events": STEPS_VIEW_DDL.strip(),
    }


VIEWS: tuple[str, ...] = ("unknown_unit_events", "steps_from_events")

#: columns added after a table's first release (no-ops on a table that has them)
_ADDED_COLUMNS: tuple[str, ...] = (
    "ALTER TABLE case_events ADD COLUMN IF NOT EXISTS unit_label LowCardinality(String) DEFAULT unit_id AFTER source",
    "ALTER TABLE case_events ADD COLUMN IF NOT EXISTS sector_label LowCardinality(Nullable(String)) DEFAULT sector "
    "AFTER sector",
    "ALTER TABLE units ADD COLUMN IF NOT EXISTS successor Array(String) AFTER valid_to",
    "ALTER TABLE units ADD COLUMN IF NOT EXISTS population Nullable(UInt64) AFTER successor",
    "ALTER TABLE units ADD COLUMN IF NOT EXISTS admin_code Nullable(String) AFTER population",
    "ALTER TABLE invalid_events ADD COLUMN IF NOT EXISTS raw_size Nullable(UInt64) AFTER raw_encoding",
    "ALTER TABLE invalid_events ADD COLUMN IF NOT EXISTS raw_sha256 String DEFAULT '' AFTER raw_size",
    "ALTER TABLE units ADD COLUMN IF NOT EXISTS dvcqg_code Nullable(String) AFTER admin_code",
)


def ensure_schema(client) -> list[str]:
    """Create every table that does not exist yet; safe to run at every start.

    Returns the table names. Existing tables are left as they are, except for the columns
    added since (``_ADDED_COLUMNS``).
    """
    for ddl in _DDL.values():
        client.command(ddl.strip())
    for ddl in _ADDED_COLUMNS:  # tables created by an earlier version
        client.command(ddl)
    for ddl in _views().values():  # after the tables they read
        client.command(ddl)
    return list(TABLES)
