"""pipeline.store against the real ClickHouse engine (chDB, in this process).

chDB allows ONE engine per process, so this module opens one client for the whole
session (``ch``) in a temporary directory, and each test that needs clean tables
truncates them. Needs no Kafka/Prometheus (no ``infra`` fixture).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.config import UserError
from pipeline.contract.events import CaseEvent, format_time, parse_event, parse_time
from pipeline.calendar_file import apology_rule
from pipeline.core.indicators import INDICATORS, NAMES_VI
from pipeline.targets_file import load_targets
from pipeline.reports.indicator_table import HEADERS, format_indicator_table
from pipeline.store.batch import batch_indicators
from pipeline.store.client import connect
from pipeline.store.readonly import ClientRunner, QueryError
from pipeline.store import schema as schema_module
from pipeline.store.schema import TABLES, VIEWS, ensure_schema
from pipeline.store.units import load_units, sync_units
from pipeline.store.writer import AcceptedEvent, FactWriter, InvalidRow, canonical_json

REPO = Path(__file__).resolve().parents[2]
US = 1_000_000
MIN = 60 * US
H = 3600 * US
D = 24 * H
RETENTION = 35 * D
ALL_WINDOWS = ["1h", "24h", "7d", "30d", "mtd", "qtd", "ytd"]
UA, UB = "P_KINH_BAC", "X_TAY_YEN_TU"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def ch(tmp_path_factory):
    """The one chDB engine of this test process (session-scoped: chDB cannot reopen
    another path in the same process)."""
    path = tmp_path_factory.mktemp("chdb-store").resolve()
    client = connect(f"chdb://{path}")
    ensure_schema(client)
    return client


@pytest.fixture
def clean(ch):
    for table in TABLES:
        ch.command(f"TRUNCATE TABLE {table}")
    return ch


@pytest.fixture(scope="session")
def targets():
    return load_targets(REPO / "deploy" / "targets.toml")


def final_count(client, table: str) -> int:
    return client.query(f"SELECT count() FROM {table} FINAL").result_rows[0][0]


def raw_count(client, table: str) -> int:
    return client.query(f"SELECT count() FROM {table}").result_rows[0][0]


class Events:
    """Builds CaseEvents with unique ids and the contract's field shapes."""

    def __init__(self) -> None:
        self.items: list[CaseEvent] = []
        self.n = 0

    def add(self, event_type, case_id, unit, t, event_id=None, **fields) -> CaseEvent:
        self.n += 1
        ev = CaseEvent(event_id or f"{case_id}-{self.n:03d}", event_type, case_id, unit, t, "test", fields)
        self.items.append(ev)
        return ev

    def received(self, case_id, unit, t, *, sector, due, channel="direct", mode=None, event_id=None,
                 digitized=False, reused=False, vneid=False, has_fee=False):
        fields = dict(procedure_code="1.001", sector=sector, channel=channel, due_at=due, has_fee=has_fee,
                      digitized=digitized, reused_data=reused, vneid_authenticated=vneid)
        if channel == "online":
            fields["online_mode"] = mode or "full"
        return self.add("received", case_id, unit, t, event_id=event_id, **fields)


def write(client, events) -> None:
    FactWriter(client).write_events([(ev, 0, i) for i, ev in enumerate(events)])


# --------------------------------------------------------------------------- connect and schema


@pytest.mark.parametrize(
    "dsn",
    ["", "ftp://host/db", "chdb://relative/path", "chdb:///", "http://", "http://host:notaport/db", "clickhouse"],
)
def test_bad_dsn_is_one_line_user_error(dsn):
    with pytest.raises(UserError) as info:
        connect(dsn)
    assert "\n" not in str(info.value)


def test_bad_dsn_never_shows_the_password():
    with pytest.raises(UserError) as info:
        connect("gopher://user:s3cret@host:1/db")
    assert "s3cret" not in str(info.value)


def test_chdb_dsn_may_name_a_database(ch):
    other = connect(f"chdb://{ch.path}?database=tthc_other")  # same engine, another database
    ensure_schema(other)
    tables = other.query("SELECT name FROM system.tables WHERE database = 'tthc_other'").result_rows
    assert {t for (t,) in tables} == set(TABLES) | set(VIEWS)
    assert other.query("SELECT currentDatabase()").result_rows == [("tthc_other",)]
    ch.command("DROP DATABASE tthc_other SYNC")


def test_units_table_of_an_earlier_version_gets_the_new_columns(ch):
    other = connect(f"chdb://{ch.path}?database=tthc_old")
    other.command("CREATE TABLE units (unit_id String, name_vi String, kind LowCardinality(String), "
                  "parent_id Nullable(String), valid_from Date, valid_to Nullable(Date)) "
                  "ENGINE = ReplacingMergeTree ORDER BY (unit_id, valid_from)")
    ensure_schema(other)
    columns = [name for (name,) in other.query(
        "SELECT name FROM system.columns WHERE database = 'tthc_old' AND table = 'units' ORDER BY position"
    ).result_rows]
    assert columns[-4:] == ["successor", "population", "admin_code", "dvcqg_code"]
    assert sync_units(other, load_units(REPO / "deploy" / "units.csv")) > 100
    ch.command("DROP DATABASE tthc_old SYNC")


def test_schema_is_idempotent(ch):
    before = ch.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() ORDER BY name"
    ).result_rows
    assert ensure_schema(ch) == list(TABLES)
    ensure_schema(ch)
    after = ch.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() ORDER BY name"
    ).result_rows
    assert before == after
    names = {name for name, _ in after}
    assert set(TABLES) <= names
    engines = dict(
        ch.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()").result_rows
    )
    assert all(engines[t] == "ReplacingMergeTree" for t in TABLES)


# --------------------------------------------------------------------------- writes


def test_events_are_typed_canonical_and_idempotent(clean):
    ch = clean
    ev = Events()
    t0 = parse_time("2025-08-01T09:00:00.123456+07:00")
    rec = ev.received("HS-1", UA, t0, sector="dat_dai", due=t0 + 5 * D, channel="online", mode="partial",
                      digitized=True)
    pay = ev.add("payment", "HS-1", UA, t0 + H, method="online")
    rated = ev.add("rated", "HS-1", UA, t0 + 2 * H, rating=4)
    from_record = CaseEvent.from_record({**rec.to_record(), "event_id": "HS-1-extra", "citizen_name": "x"})
    rows = [(rec, 1, 10), (pay, 1, 11), (rated, 1, 12), (from_record, 1, 13)]
    writer = FactWriter(ch)
    assert writer.write_events(rows) == 4
    assert writer.write_events(rows) == 4  # the re-write after a crash
    assert writer.write_events([]) == 0
    assert writer.rows_written["case_events"] == 8
    assert writer.inserts["case_events"] == 2
    assert writer.errors == 0
    assert final_count(ch, "case_events") == 4

    got = ch.query(
        "SELECT event_type, occurred_at, toUnixTimestamp64Micro(occurred_at), source, sector, channel, online_mode,"
        " toUnixTimestamp64Micro(due_at), has_fee, digitized, method, amount_vnd, rating, raw, kafka_partition,"
        " kafka_offset FROM case_events FINAL WHERE event_id = {id:String}",
        parameters={"id": rec.event_id},
    ).result_rows
    assert len(got) == 1
    (typ, occurred, occurred_us, source, sector, channel, mode, due_us, has_fee, digitized, method, amount,
     rating, raw, partition, offset) = got[0]
    assert (typ, occurred_us, source, sector, channel, mode) == ("received", t0, "test", "dat_dai", "online",
                                                                  "partial")
    assert occurred.replace(tzinfo=timezone.utc) == datetime(2025, 8, 1, 2, 0, 0, 123456, tzinfo=timezone.utc)
    assert (due_us, has_fee, digitized) == (t0 + 5 * D, False, True)
    assert (method, amount, rating) == (None, None, None)  # not fields of a received: NULL
    assert raw == canonical_json(rec.to_record())
    assert (partition, offset) == (1, 10)
    lag = ch.query("SELECT max(dateDiff('second', ingested_at, now64(3, 'UTC'))) FROM case_events").result_rows[0][0]
    assert 0 <= lag < 600  # stamped at write time, in milliseconds

    pay_row = ch.query(
        "SELECT method, amount_vnd, sector, due_at, digitized FROM case_events FINAL WHERE event_id = {id:String}",
        parameters={"id": pay.event_id},
    ).result_rows[0]
    assert pay_row == ("online", None, None, None, None)

    raw_extra = ch.query(
        "SELECT raw FROM case_events FINAL WHERE event_id = 'HS-1-extra'"
    ).result_rows[0][0]
    assert "citizen_name" not in json.loads(raw_extra)  # unknown fields are never stored


def test_written_rows_are_not_kept_by_a_reference_cycle(clean):
    """clickhouse-connect's insert context is a reference cycle; the worker's engine
    collects cycles rarely (it freezes its state after each flush), so the writer must
    not leave its rows for the collector to free."""
    import gc

    ev = Events()
    t0 = parse_time("2025-08-01T09:00:00+07:00")
    rows = [(ev.received(f"HS-{i}", UA, t0, sector="dat_dai", due=t0 + D), 0, i) for i in range(50)]
    writer = FactWriter(clean)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert writer.write_events(rows) == 50
        gc.collect()
        kept = [o for o in gc.garbage if isinstance(o, tuple) and len(o) > 20]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert kept == []
    assert final_count(clean, "case_events") == 50


def test_invalid_rows_keep_bytes_and_are_idempotent(clean):
    ch = clean
    rows = [
        InvalidRow("tthc.case-events", 0, 5, b"HS-9", "invalid_json", "not JSON", b"{not json"),
        InvalidRow("tthc.case-events", 0, 6, None, "not_utf8", "value is not UTF-8", b"\xff\xfe{}"),
        InvalidRow("tthc.case-events", 1, 5, b"\xff", "invalid_json", "empty value", None),
    ]
    writer = FactWriter(ch)
    assert writer.write_invalid(rows) == 3
    assert writer.write_invalid(rows[:2]) == 2
    assert final_count(ch, "invalid_events") == 3
    got = ch.query(
        "SELECT kafka_partition, kafka_offset, kafka_key, reason, raw, raw_encoding "
        "FROM invalid_events FINAL ORDER BY kafka_partition, kafka_offset"
    ).result_rows
    assert got[0] == (0, 5, "HS-9", "invalid_json", "{not json", "utf8")
    assert got[1][2] is None
    assert got[1][4:] == (base64.b64encode(b"\xff\xfe{}").decode(), "base64")
    assert got[2][2] == "\ufffd" and got[2][4:] == ("", "none")


def test_invalid_rows_are_bounded_with_the_original_size_and_hash(clean):
    """Issue 20: a rejected value is kept whole up to 1 MiB; a larger one is cut (at a
    UTF-8 boundary) with its size and SHA-256; a huge key is cut too."""
    import hashlib

    from pipeline.contract.rejected import STORED_RAW_MAX
    from pipeline.store.writer import STORED_KEY_MAX

    big = ("é" * (STORED_RAW_MAX // 2 + 7)).encode()  # 2-byte characters: a cut in the middle of one is moved
    near = b"x" * 1_000_108  # the message: under 1 MiB, kept whole
    rows = [
        InvalidRow("t", 0, 1, b"k" * (STORED_KEY_MAX * 3), "too_large", "big", big),
        InvalidRow("t", 0, 2, b"HS-1", "too_large", "near", near),
        InvalidRow("t", 0, 3, None, "not_utf8", "bad", b"\xff" * (STORED_RAW_MAX + 10)),
    ]
    FactWriter(clean).write_invalid(rows)
    got = clean.query(
        "SELECT kafka_offset, length(kafka_key), raw, raw_encoding, raw_size, raw_sha256 "
        "FROM invalid_events FINAL ORDER BY kafka_offset"
    ).result_rows
    offset, key_len, raw, encoding, size, sha = got[0]
    assert key_len == STORED_KEY_MAX and encoding == "utf8" and size == len(big)
    assert set(raw) == {"é"} and STORED_RAW_MAX - 3 <= len(raw.encode()) <= STORED_RAW_MAX
    assert sha == hashlib.sha256(big).hexdigest()
    assert got[1][2:] == (near.decode(), "utf8", len(near), "")
    _o, _k, raw, encoding, size, sha = got[2]
    assert encoding == "base64" and len(base64.b64decode(raw)) == STORED_RAW_MAX
    assert size == STORED_RAW_MAX + 10 and sha == hashlib.sha256(b"\xff" * (STORED_RAW_MAX + 10)).hexdigest()


def test_invalid_events_of_an_earlier_version_get_the_size_and_hash_columns(ch):
    other = connect(f"chdb://{ch.path}?database=tthc_old_invalid")
    other.command("CREATE TABLE invalid_events (topic LowCardinality(String), kafka_partition Int32, "
                  "kafka_offset Int64, kafka_key Nullable(String), reason LowCardinality(String), detail String, "
                  "raw String, raw_encoding LowCardinality(String), received_at DateTime64(3, 'UTC')) "
                  "ENGINE = ReplacingMergeTree ORDER BY (topic, kafka_partition, kafka_offset)")
    other.command("INSERT INTO invalid_events VALUES ('t', 0, 1, NULL, 'invalid_json', 'old', '{x', 'utf8', now64())")
    ensure_schema(other)
    FactWriter(other).write_invalid([InvalidRow("t", 0, 2, None, "invalid_json", "new", b"{y")])
    got = other.query("SELECT kafka_offset, raw, raw_size, raw_sha256 FROM invalid_events FINAL "
                      "ORDER BY kafka_offset").result_rows
    assert got == [(1, "{x", None, ""), (2, "{y", 2, "")]
    ch.command("DROP DATABASE tthc_old_invalid SYNC")


def test_cases_latest_version_wins_and_summaries_are_accepted(clean):
    ch = clean
    from pipeline.core.cases import CaseState, case_summary

    t0 = parse_time("2025-08-01T09:00:00+07:00")
    writer = FactWriter(ch)
    ev = Events()
    case = CaseState.new("HS-1")
    case.add(ev.received("HS-1", UA, t0, sector="dat_dai", due=t0 + D))
    base = case_summary(case, t0)
    assert writer.write_cases([base], version=1, updated_at_us=t0) == 1
    case.add(ev.add("resolved", "HS-1", UA, t0 + H))
    writer.write_cases([case_summary(case, t0 + H)], version=2)
    writer.write_cases([base], version=1)  # an older version written late changes nothing
    assert final_count(ch, "cases") == 1
    row = ch.query(
        "SELECT status, on_time, early, finish_type, toUnixTimestamp64Micro(finished_at), supplement_requests,"
        " paused_seconds, has_apology, overdue, event_count, version FROM cases FINAL"
    ).result_rows[0]
    assert row == ("finished", True, True, "resolved", t0 + H, 0, 0.0, False, False, 2, 2)

    ev = Events()
    state = CaseState.new("HS-2")
    state.add(ev.received("HS-2", UB, t0, sector="ho_tich", due=t0 + D))
    state.add(ev.add("supplement_requested", "HS-2", UB, t0 + H))
    summary = case_summary(state, t0 + 3 * H)
    assert writer.write_cases([summary], version=7) == 1
    assert writer.write_cases([summary], version=7) == 1
    assert final_count(ch, "cases") == 2
    row = ch.query(
        "SELECT unit_id, sector, status, on_time, paused_seconds, supplement_requests, version,"
        " toUnixTimestamp64Micro(effective_due) FROM cases FINAL WHERE case_id = 'HS-2'"
    ).result_rows[0]
    assert row == (UB, "ho_tich", "open", None, 7200.0, 1, 7, t0 + D + 2 * H)


def test_snapshots_accept_rows_and_objects_and_are_idempotent(clean, targets):
    ch = clean
    t0 = parse_time("2025-08-01T09:00:00+07:00")

    class Figure:  # the shape of the worker's IndicatorFigure (ratio is a property there)
        def __init__(self, n, d):
            self.indicator, self.unit, self.sector, self.window = "on_time", UA, "all", "24h"
            self.numerator, self.denominator, self.target, self.op, self.below_target = n, d, 0.95, ">", True

    writer = FactWriter(ch)
    rows = [{"indicator": "remote", "unit": "all", "sector": "all", "window": "mtd", "numerator": 0,
             "denominator": 0, "ratio": None, "target": 0.6, "below_target": False, "taken_at": t0}]
    assert writer.write_snapshots(rows, t0 - 5) == 1
    assert writer.write_snapshots([Figure(3, 4)], t0 - 5, taken_at_us=t0) == 1
    assert writer.write_snapshots([Figure(3, 4)], t0 - 5, taken_at_us=t0) == 1
    assert final_count(ch, "indicator_snapshots") == 2
    got = ch.query(
        "SELECT indicator, ratio, numerator, denominator, below_target, toUnixTimestamp64Micro(clock_at) "
        "FROM indicator_snapshots FINAL ORDER BY indicator"
    ).result_rows
    assert got == [("on_time", 0.75, 3, 4, True, t0 - 5), ("remote", None, 0, 0, False, t0 - 5)]


def test_failed_insert_counts_an_error(ch):
    writer = FactWriter(ch)
    from pipeline.core.cases import CaseState, case_summary

    bad = dataclasses.replace(case_summary(CaseState.new("x"), 0), event_count=-1)  # UInt32 cannot hold -1
    with pytest.raises(Exception):
        writer.write_cases([bad], version=1)
    assert writer.errors == 1
    assert writer.inserts["cases"] == 0


# --------------------------------------------------------------------------- read-only runner


def test_client_runner_reads_with_parameters(ch):
    columns, rows = ClientRunner(ch).query("SELECT {a:String} AS a, 1 + {b:Int64} AS b", {"a": "x'y", "b": 41})
    assert columns == ["a", "b"]
    assert rows == [("x'y", 42)]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO units (unit_id, name_vi, kind, valid_from) VALUES ('Z', 'z', 'commune', '2025-01-01')",
        "CREATE TABLE sneaky (a Int8) ENGINE = Memory",
        "TRUNCATE TABLE units",
        "ALTER TABLE units DELETE WHERE 1",
    ],
)
def test_engine_refuses_writes_through_client_runner(ch, sql):
    # check=False: prove the engine's own readonly mode, not only the text check
    before = final_count(ch, "units")
    with pytest.raises(QueryError, match=r"READONLY|readonly"):
        ClientRunner(ch, check=False).query(sql)
    assert final_count(ch, "units") == before
    assert "sneaky" not in {r[0] for r in ch.query("SHOW TABLES").result_rows}
    # chDB keeps readonly=1 on a handle after such a refusal: the writer's client must
    # not be that handle, it still writes
    FactWriter(ch).write_invalid([InvalidRow("probe", 0, 0, None, "invalid_json", "probe", b"x")])
    ch.command("ALTER TABLE invalid_events DELETE WHERE topic = 'probe' SETTINGS mutations_sync = 1")
    assert ClientRunner(ch).query("SELECT 1 AS one") == (["one"], [(1,)])
    with pytest.raises(UserError, match="only read-only queries"):
        ClientRunner(ch).query(sql)


# --------------------------------------------------------------------------- units


def test_units_file_loads_and_syncs_idempotently(clean):
    ch = clean
    units = load_units(REPO / "deploy" / "units.csv")
    assert units[0].unit_id == "BAC_NINH" and units[0].kind == "province"
    assert all(u.unit_id.isascii() for u in units)
    kinds = defaultdict(int)
    for u in units:
        kinds[u.kind] += 1
    # 99 communes of the new province + 313 commune-level units of the two former provinces (Jan-Jun 2025)
    assert kinds["commune"] == 99 + 313 and kinds["district"] == 10 + 8 and kinds["department"] >= 12
    assert all(u.valid_to == date(2025, 6, 30) for u in units if u.kind == "district")
    assert {UA, UB} <= {u.unit_id for u in units}
    assert sync_units(ch, units) == len(units)
    assert sync_units(ch, units) == len(units)
    assert final_count(ch, "units") == len(units)
    name, valid_to = ch.query(
        "SELECT name_vi, valid_to FROM units FINAL WHERE unit_id = 'TTPVHCC'"
    ).result_rows[0]
    assert name.startswith("Trung tâm Phục vụ hành chính công") and valid_to is None
    successor, population = ch.query(
        "SELECT successor, population FROM units FINAL WHERE unit_id = 'BG_TP_BAC_GIANG'"
    ).result_rows[0]
    assert successor[:2] == ["X_DONG_VIET", "P_BAC_GIANG"] and population == 371151


def test_unknown_unit_events_lists_events_of_units_not_in_force(clean):
    """An event is 'unknown unit' when no registry row is valid on its local date."""
    ch = clean
    sync_units(ch, load_units(REPO / "deploy" / "units.csv"))
    e = Events()
    e.add("payment", "K1", "BG_TTPVHCC", parse_time("2025-06-30T23:59:59+07:00"), event_id="ok-old", method="online")
    e.add("payment", "K1", "BG_TTPVHCC", parse_time("2025-07-01T00:00:00+07:00"), event_id="old-after", method="online")
    e.add("payment", "K2", "TTPVHCC", parse_time("2025-06-30T17:00:00Z"), event_id="new-ok", method="online")
    e.add("payment", "K2", "TTPVHCC", parse_time("2025-06-30T23:00:00+07:00"), event_id="new-early", method="online")
    e.add("payment", "K3", "P_HALONG", parse_time("2025-08-01T09:00:00+07:00"), event_id="typo", method="online")
    write(ch, e.items)
    rows = ch.query("SELECT event_id, unit_id FROM unknown_unit_events ORDER BY event_id").result_rows
    assert rows == [("new-early", "TTPVHCC"), ("old-after", "BG_TTPVHCC"), ("typo", "P_HALONG")]


HEADER = "unit_id,name_vi,kind,parent_id,valid_from,valid_to\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("unit_id,name_vi,kind,valid_from,valid_to\nA,a,commune,2025-07-01,\n", "missing column(s) parent_id"),
        (HEADER + "A,a,commune,TINH,2025-13-01,\n", "valid_from must be a date"),
        (HEADER + "A,a,commune,TINH,01/07/2025,\n", "valid_from must be a date"),
        (HEADER + "A,a,village,TINH,2025-07-01,\n", "unknown kind 'village'"),
        (HEADER + "A,a,commune,TINH,2025-07-01,\nA,b,commune,TINH,2025-07-01,\n", "duplicate unit A"),
        (HEADER + "A,a,commune,TINH,2025-07-01,2025-06-01\n", "is before valid_from"),
        (HEADER + "all,a,commune,TINH,2025-07-01,\n", "reserved"),
        (HEADER + "Xã A,a,commune,TINH,2025-07-01,\n", "unit_id must be"),
        (HEADER + "A,a,commune,TINH,2025-07-01\n", "expected 6 fields"),
        (HEADER, "no units"),
        ("", "empty units file"),
    ],
)
def test_bad_units_file_is_one_line_user_error(tmp_path, text, message):
    path = tmp_path / "units.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_units(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_units_file_missing_or_not_utf8(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_units(tmp_path / "nope.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "A,Xã,commune,TINH,2025-07-01,\n").encode("latin-1", errors="replace")
                     .replace(b"?", b"\xe3"))
    with pytest.raises(UserError, match="UTF-8"):
        load_units(path)


def test_units_duplicate_id_with_another_valid_from_is_fine(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text(HEADER + "TINH,Tỉnh,province,,2020-01-01,\n"
                    "A,Cũ,commune,TINH,2020-01-01,2025-06-30\nA,Mới,commune,TINH,2025-07-01,\n",
                    encoding="utf-8")
    units = load_units(path)
    assert [u.name_vi for u in units] == ["Tỉnh", "Cũ", "Mới"]
    assert units[2].valid_on(date(2025, 7, 1)) and not units[1].valid_on(date(2025, 7, 1))


# --------------------------------------------------------------------------- batch indicators

# The clock: 00:30 local on 1 August 2025 — still 31 July in UTC, so the local month
# edge (mtd) differs from the UTC one.
T = parse_time("2025-08-01T00:30:00+07:00")


def scenario() -> tuple[list[CaseEvent], list[tuple]]:
    """Hand-made cases and the outcomes docs/indicators.md gives them at T, derived by hand
    (indicator, unit, sector, time, hit)."""
    e = Events()
    out: list[tuple] = []

    def receipt(unit, sector, t, full, remote, digitized, reuse, vneid=None):
        out.extend([("full_online", unit, sector, t, full), ("remote", unit, sector, t, remote),
                    ("digitized", unit, sector, t, digitized), ("data_reuse", unit, sector, t, reuse)])
        if vneid is not None:
            out.append(("vneid_auth", unit, sector, t, vneid))

    # A1: paused 1 day, finished exactly at the effective due (on time, same local day: not early)
    e.received("A1", UA, T - 10 * D, sector="dat_dai", due=T - 5 * D, channel="online", mode="full",
               digitized=True, reused=False, vneid=True)
    e.add("supplement_requested", "A1", UA, T - 9 * D)
    e.add("supplement_received", "A1", UA, T - 8 * D)
    e.add("resolved", "A1", UA, T - 4 * D)
    e.add("payment", "A1", UA, T - 6 * D, method="online", amount_vnd=50_000)
    e.add("result_returned", "A1", UA, T - 3 * D, electronic_result=True)
    e.add("rated", "A1", UA, T, rating=5)  # exactly at T: in every window
    receipt(UA, "dat_dai", T - 10 * D, 1, 1, 1, 0, 1)
    out += [("on_time", UA, "dat_dai", T - 4 * D, 1), ("early", UA, "dat_dai", T - 4 * D, 0),
            ("online_payment", UA, "dat_dai", T - 6 * D, 1), ("e_result", UA, "dat_dai", T - 3 * D, 1),
            ("satisfaction", UA, "dat_dai", T, 1)]

    # A2: received exactly at T-30d (outside 30d); two requests make it late; apology before finish;
    # finish = the earliest of resolved/withdrawn
    e.received("A2", UA, T - 30 * D, sector="dat_dai", due=T - 20 * D, reused=True)
    e.add("supplement_requested", "A2", UA, T - 29 * D)
    e.add("supplement_requested", "A2", UA, T - 28 * D)
    e.add("supplement_received", "A2", UA, T - 27 * D)
    e.add("apology_issued", "A2", UA, T - 26 * D, new_due_at=T - 10 * D)
    e.add("resolved", "A2", UA, T - 25 * D)
    e.add("withdrawn", "A2", UA, T - 24 * D)
    receipt(UA, "dat_dai", T - 30 * D, 0, 0, 0, 1)
    out += [("on_time", UA, "dat_dai", T - 25 * D, 0), ("early", UA, "dat_dai", T - 25 * D, 0),
            ("apology_coverage", UA, "dat_dai", T - 25 * D, 1)]

    # A3: received 1 µs after T-30d (inside); a pause still open at the finish is closed there;
    # finish = first result_returned (the resolved after T is not considered); early by local date
    e.received("A3", UA, T - 30 * D + 1, sector="ho_tich", due=T - 2 * D, channel="online", mode="partial",
               digitized=True, reused=True, vneid=False)
    e.add("supplement_requested", "A3", UA, T - 3 * D)
    e.add("result_returned", "A3", UA, T - D, electronic_result=False)
    e.add("apology_issued", "A3", UA, T - 12 * H, new_due_at=T + D)
    e.add("resolved", "A3", UA, T + 1)
    receipt(UA, "ho_tich", T - 30 * D + 1, 0, 1, 1, 1, 0)
    out += [("on_time", UA, "ho_tich", T - D, 1), ("early", UA, "ho_tich", T - D, 1),
            ("e_result", UA, "ho_tich", T - D, 0)]

    # A4: late, apology only after the finish; an offline payment
    e.received("A4", UA, T - 20 * D, sector="dat_dai", due=T - 15 * D, digitized=True)
    e.add("stopped", "A4", UA, T - 2 * H)
    e.add("apology_issued", "A4", UA, T - H, new_due_at=T + D)
    e.add("payment", "A4", UA, T - 2 * H, method="offline", amount_vnd=10_000)
    receipt(UA, "dat_dai", T - 20 * D, 0, 0, 1, 0)
    out += [("on_time", UA, "dat_dai", T - 2 * H, 0), ("early", UA, "dat_dai", T - 2 * H, 0),
            ("apology_coverage", UA, "dat_dai", T - 2 * H, 0), ("online_payment", UA, "dat_dai", T - 2 * H, 0)]

    # A5: the received is written last; the other events name another unit; all go to the owner
    e.add("rated", "A5", UA, T - 5 * H, rating=3)
    e.add("payment", "A5", UA, T - 6 * H, method="online")
    e.add("result_returned", "A5", UA, T - 7 * H, electronic_result=True)
    e.received("A5", UB, T - 8 * H, sector="ho_tich", due=T + 5 * D)
    receipt(UB, "ho_tich", T - 8 * H, 0, 0, 0, 0)
    out += [("on_time", UB, "ho_tich", T - 7 * H, 1), ("early", UB, "ho_tich", T - 7 * H, 1),
            ("e_result", UB, "ho_tich", T - 7 * H, 1), ("online_payment", UB, "ho_tich", T - 6 * H, 1),
            ("satisfaction", UB, "ho_tich", T - 5 * H, 0)]

    # A6: resolved takes precedence over an earlier result_returned
    e.received("A6", UB, T - 6 * D, sector="dat_dai", due=T - 3 * D)
    e.add("result_returned", "A6", UB, T - 5 * D, electronic_result=True)
    e.add("resolved", "A6", UB, T - 2 * D)
    receipt(UB, "dat_dai", T - 6 * D, 0, 0, 0, 0)
    out += [("on_time", UB, "dat_dai", T - 2 * D, 0), ("early", UB, "dat_dai", T - 2 * D, 0),
            ("apology_coverage", UB, "dat_dai", T - 2 * D, 0), ("e_result", UB, "dat_dai", T - 5 * D, 1)]

    # A7: two received at the same instant: the smaller event_id wins; open case with a payment
    e.received("A7", UA, T - 3 * D, event_id="A7-x", sector="dat_dai", due=T + D, channel="online",
               digitized=True, reused=True, vneid=True)
    e.received("A7", UB, T - 3 * D, event_id="A7-b", sector="ho_tich", due=T + D)
    e.add("payment", "A7", UB, T - D, method="offline")
    receipt(UB, "ho_tich", T - 3 * D, 0, 0, 0, 0)
    out += [("online_payment", UB, "ho_tich", T - D, 0)]

    # R: rejected: nothing at all
    e.received("R", UA, T - 2 * D, sector="dat_dai", due=T + D, digitized=True)
    e.add("rejected", "R", UA, T - 2 * D + 1)
    e.add("resolved", "R", UA, T - D)
    e.add("payment", "R", UA, T - D, method="online")

    # held events (no received); retention 35 days, released when t + retention < T
    e.add("payment", "H1", UB, T - 40 * D, method="online")
    out += [("online_payment", UB, "unknown", T - 40 * D, 1)]
    e.add("rated", "H2", UB, T - 35 * D, rating=5)  # t + retention == T: still held
    e.add("rated", "H3", UB, T - 35 * D - 1, rating=2)  # released
    out += [("satisfaction", UB, "unknown", T - 35 * D - 1, 0)]
    e.add("result_returned", "H4", UA, T - 50 * D, electronic_result=True)
    e.add("result_returned", "H4", UB, T - 60 * D, electronic_result=False)  # the first one counts
    out += [("e_result", UB, "unknown", T - 60 * D, 0)]
    e.add("payment", "H5", UA, T - 40 * D, method="online")
    e.add("rejected", "H5", UA, T - 41 * D)  # rejected: held events yield nothing either

    # feedback: unit of the earliest feedback_received, no sector; every answer counts
    e.add("feedback_received", "F1", UA, T - 3 * D, due_at=T - D)
    e.add("feedback_answered", "F1", UA, T - D)  # exactly at due: on time
    e.add("feedback_answered", "F1", UA, T - 12 * H)
    out += [("feedback_on_time", UA, "", T - D, 1), ("feedback_on_time", UA, "", T - 12 * H, 0)]
    e.add("feedback_answered", "F2", UA, T - H)  # never received: nothing
    e.add("feedback_received", "F3", UB, T - 2 * D, event_id="F3-a", due_at=T - D)
    e.add("feedback_received", "F3", UA, T - 2 * D + 1, event_id="F3-b", due_at=T + 10 * D)
    e.add("feedback_answered", "F3", UA, T - D + 1)
    out += [("feedback_on_time", UB, "", T - D + 1, 0)]

    # the local month edge: 1 µs before local midnight of 1 August, and exactly at it
    e.received("M1", UB, T - 30 * MIN - 1, sector="ho_tich", due=T + 3 * D, digitized=True)
    receipt(UB, "ho_tich", T - 30 * MIN - 1, 0, 0, 1, 0)
    e.received("M2", UB, T - 30 * MIN, sector="ho_tich", due=T + 3 * D, channel="online", mode="full",
               digitized=True, reused=True, vneid=True)
    receipt(UB, "ho_tich", T - 30 * MIN, 1, 1, 1, 1, 1)

    # after T: not considered
    e.received("E1", UA, T + 1, sector="dat_dai", due=T + D, digitized=True)

    # on_time_766: every finished case as on_time; the cases open at T (A7, M1, M2, none past
    # its due) at T itself
    out += [("on_time_766", *o[1:]) for o in out if o[0] == "on_time"]
    out += [("on_time_766", UB, "ho_tich", T, 1)] * 3
    return e.items, out


LOCAL = timezone(timedelta(hours=7))


def _local(t: int) -> datetime:
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=t)).astimezone(LOCAL)


def _in_window(t: int, window: str) -> bool:
    """Plain restatement of the window rule for the expectations (datetime-based)."""
    if t > T:
        return False
    lengths = {"1h": H, "24h": 24 * H, "7d": 7 * D, "30d": 30 * D}
    if window in lengths:
        return T - lengths[window] < t
    lt, lT = _local(t), _local(T)
    if window == "ytd":
        return lt.year == lT.year
    if window == "qtd":
        return lt.year == lT.year and (lt.month - 1) // 3 == (lT.month - 1) // 3
    return (lt.year, lt.month) == (lT.year, lT.month)


def expected_counts(outcomes, windows):
    counts: dict[tuple, list[int]] = {}
    for indicator, unit, sector, t, hit in outcomes:
        scopes = [(unit, "all"), ("all", "all")] + ([("all", sector)] if sector else [])
        for su, ss in scopes:
            for w in windows:
                pair = counts.setdefault((indicator, su, ss, w), [0, 0])
                if _in_window(t, w):
                    pair[0] += hit
                    pair[1] += 1
    return {k: tuple(v) for k, v in counts.items()}


@pytest.fixture
def loaded(clean):
    events, outcomes = scenario()
    write(clean, events)
    write(clean, events[:10])  # a partial re-write: changes nothing
    return clean, outcomes


def run(ch, targets, windows=ALL_WINDOWS, at=T, lead=1, **kw):
    return batch_indicators(ClientRunner(ch), windows, at, targets=targets, hold_retention_us=RETENTION,
                            apology=apology_rule(lead), **kw)


def by_key(rows):
    return {(r["indicator"], r["unit"], r["sector"], r["window"]): (r["numerator"], r["denominator"]) for r in rows}


def test_batch_matches_the_hand_derived_outcomes(loaded, targets):
    ch, outcomes = loaded
    rows = run(ch, targets)
    got = by_key(rows)
    assert len(got) == len(rows)
    assert got == expected_counts(outcomes, ALL_WINDOWS)
    assert {r["indicator"] for r in rows} == set(INDICATORS)


def test_batch_exact_numbers(loaded, targets):
    ch, _ = loaded
    got = by_key(run(ch, targets))
    P = ("all", "all")
    expect = {
        # receipts: A2 at exactly T-30d is out of 30d, A3 at T-30d+1µs is in; E1 after T never counts
        ("digitized", *P, "30d"): (5, 8),
        ("digitized", *P, "ytd"): (5, 9),
        ("digitized", *P, "qtd"): (5, 9),
        ("digitized", *P, "mtd"): (1, 1),  # only M2, at local midnight of 1 August
        ("digitized", *P, "1h"): (2, 2),  # M1 and M2
        ("digitized", UB, "all", "24h"): (2, 3),  # A5, M1, M2
        ("digitized", UA, "all", "30d"): (3, 3),  # A1, A3, A4 (not A7: its owner is UB)
        ("digitized", UA, "all", "ytd"): (3, 4),
        ("data_reuse", UA, "all", "30d"): (1, 3),
        ("full_online", *P, "30d"): (2, 8),
        ("remote", *P, "30d"): (3, 8),
        ("vneid_auth", *P, "30d"): (2, 3),
        ("on_time", UA, "all", "30d"): (2, 4),
        ("on_time", "all", "dat_dai", "30d"): (1, 4),
        ("on_time", "all", "ho_tich", "30d"): (2, 2),
        ("early", *P, "30d"): (2, 6),
        ("apology_coverage", *P, "30d"): (1, 3),
        ("e_result", *P, "30d"): (3, 4),
        ("e_result", UB, "all", "ytd"): (2, 3),
        ("e_result", "all", "unknown", "ytd"): (0, 1),
        ("online_payment", *P, "30d"): (2, 4),
        ("online_payment", *P, "ytd"): (3, 5),
        ("online_payment", "all", "unknown", "ytd"): (1, 1),
        ("online_payment", "all", "unknown", "30d"): (0, 0),
        ("satisfaction", UA, "all", "1h"): (1, 1),  # rated exactly at T
        ("satisfaction", UB, "all", "ytd"): (0, 2),  # A5 and H3 (H2 still held)
        ("satisfaction", *P, "ytd"): (1, 3),
        ("feedback_on_time", UA, "all", "7d"): (1, 2),
        ("feedback_on_time", UB, "all", "7d"): (0, 1),
        ("feedback_on_time", *P, "7d"): (1, 3),
        ("feedback_on_time", *P, "1h"): (0, 0),
    }
    for key, value in expect.items():
        assert got.get(key) == value, key
    assert not any(k[0] == "feedback_on_time" and k[1] == "all" and k[2] != "all" for k in got)
    assert not any(k[1] == "all" and k[2] == "" for k in got)


def test_batch_row_fields_targets_and_order(loaded, targets):
    ch, _ = loaded
    rows = run(ch, targets, ["30d", "24h"])
    for r in rows:
        assert set(r) == {"indicator", "unit", "sector", "window", "numerator", "denominator", "ratio", "target",
                          "op", "meets_target", "below_target"}
        if r["denominator"] == 0:
            assert r["ratio"] is None and r["meets_target"] is None and r["below_target"] is False
        else:
            assert r["ratio"] == r["numerator"] / r["denominator"]
            assert r["meets_target"] == targets.meets(r["indicator"], r["sector"], r["numerator"], r["denominator"])
    sat = {(r["unit"], r["sector"]): (r["op"], r["target"]) for r in rows if r["indicator"] == "satisfaction"}
    assert sat[("all", "dat_dai")] == (">=", 0.85)
    assert sat[("all", "all")] == (">=", 0.95) and sat[(UA, "all")] == (">=", 0.95)
    # order: indicators in INDICATORS order; unit scopes, sector scopes, province; windows as asked
    assert [r["window"] for r in rows[:2]] == ["30d", "24h"]
    order = [INDICATORS.index(r["indicator"]) for r in rows]
    assert order == sorted(order)
    on_time = [(r["unit"], r["sector"]) for r in rows if r["indicator"] == "on_time" and r["window"] == "30d"]
    assert on_time == [(UA, "all"), (UB, "all"), ("all", "dat_dai"), ("all", "ho_tich"), ("all", "all")]
    assert rows == run(ch, targets, ["30d", "24h"])


def test_batch_below_target_uses_min_volume(loaded, tmp_path):
    ch, _ = loaded
    text = (REPO / "deploy" / "targets.toml").read_text(encoding="utf-8")
    path = tmp_path / "targets.toml"
    path.write_text(text.replace("min_volume = 20", "min_volume = 4"), encoding="utf-8")
    small = load_targets(path)
    got = {(r["indicator"], r["unit"], r["sector"]): r for r in run(ch, small, ["30d"])}
    assert got[("on_time", UA, "all")]["below_target"] is True  # 2/4 fails > 95%, volume 4
    assert got[("on_time", "all", "ho_tich")]["below_target"] is False  # 2/2 meets
    assert got[("apology_coverage", "all", "all")]["below_target"] is False  # 1/3: fails, volume < 4
    assert got[("apology_coverage", "all", "all")]["meets_target"] is False


def test_batch_filters(loaded, targets):
    ch, _ = loaded
    rows = run(ch, targets, ["ytd"], unit=UB)
    assert rows and {r["unit"] for r in rows} == {UB} and {r["sector"] for r in rows} == {"all"}
    rows = run(ch, targets, ["ytd"], sector="unknown")
    assert {(r["indicator"], r["unit"]) for r in rows} == {("online_payment", "all"), ("satisfaction", "all"),
                                                            ("e_result", "all")}
    rows = run(ch, targets, ["ytd"], unit="all", sector="all")
    assert [r["indicator"] for r in rows] == list(INDICATORS)
    assert run(ch, targets, ["ytd"], unit="NO_SUCH_UNIT") == []
    assert run(ch, targets, ["ytd"], unit="x' OR 1=1 --") == []  # parameters, not formatting


def test_batch_rejects_unknown_windows(loaded, targets):
    ch, _ = loaded
    with pytest.raises(UserError, match="unknown window"):
        run(ch, targets, ["2d"])


def test_batch_at_an_earlier_clock_ignores_later_events(loaded, targets):
    ch, _ = loaded
    at = T - 4 * D - 1  # 1 µs before A1's resolved
    got = by_key(run(ch, targets, ["7d"], at=at))
    assert got[("on_time", UA, "all", "7d")] == (0, 0)  # A1 is still open; A2 finished long before
    # A6: its resolved (T-2d) is after the clock, so its result_returned (T-5d) is the finish
    assert got[("on_time", UB, "all", "7d")] == (1, 1)
    assert got[("early", UB, "all", "7d")] == (1, 1)
    assert got[("full_online", UA, "all", "7d")] == (1, 1)  # A1, received 6 days before the clock
    assert got[("digitized", "all", "all", "7d")] == (1, 2)  # A1 and A6; A7 (T-3d) is after the clock
    assert ("digitized", "all", "unknown", "7d") not in got


def test_batch_held_events_move_to_the_owner_when_the_received_arrives(clean, targets):
    ch = clean
    e = Events()
    e.add("payment", "HR", UA, T - 40 * D, method="online")
    e.add("rated", "HR", UA, T - 2 * D, rating=5)  # not released yet
    write(ch, e.items)
    got = by_key(run(ch, targets, ["ytd"]))
    assert got[("online_payment", UA, "all", "ytd")] == (1, 1)
    assert got[("online_payment", "all", "unknown", "ytd")] == (1, 1)
    assert not any(k[0] == "satisfaction" for k in got)
    # the received arrives (a month late, dated before the payment)
    write(ch, [e.received("HR", UB, T - 45 * D, sector="xay_dung", due=T - 30 * D)])
    got = by_key(run(ch, targets, ["ytd"]))
    assert got[("online_payment", UB, "all", "ytd")] == (1, 1)
    assert got[("online_payment", "all", "xay_dung", "ytd")] == (1, 1)
    assert got[("satisfaction", UB, "all", "ytd")] == (1, 1)
    assert ("online_payment", UA, "all", "ytd") not in got
    assert ("online_payment", "all", "unknown", "ytd") not in got


def test_batch_agrees_with_the_oracle_on_random_cases(clean, targets):
    """Random cases (ties, boundaries, held, rejected, feedback, out-of-order) against
    tests/oracle.py, the plain third implementation of docs/indicators.md."""
    sys.path.insert(0, str(REPO))
    from tests.oracle import expected_indicators

    ch = clean
    rnd = random.Random(20250801)
    units, sectors = [UA, UB, "SO_XD"], ["dat_dai", "ho_tich", "xay_dung"]
    types = ["received", "received", "rejected", "transferred", "supplement_requested", "supplement_received",
             "supplement_requested", "supplement_received", "payment", "resolved", "result_returned", "stopped",
             "withdrawn", "apology_issued", "rated", "feedback_received", "feedback_answered"]

    def when():
        base = rnd.choice([T, T - H, T - D, T - 7 * D, T - 30 * D, T - 36 * D, T - 60 * D, T - 200 * D, T + H])
        return base + rnd.choice([0, 0, 1, -1, rnd.randint(-3 * D, 3 * D), rnd.randint(-20 * H, 20 * H)])

    e = Events()
    for i in range(300):
        case = f"C{i}"
        for _ in range(rnd.randint(1, 9)):
            typ = rnd.choice(types)
            unit = rnd.choice(units)
            eid = f"e{rnd.randint(0, 99):02d}-{e.n}"
            if typ == "received":
                ch_ = rnd.choice(["direct", "online", "postal"])
                e.received(case, unit, when(), event_id=eid, sector=rnd.choice(sectors), due=when(), channel=ch_,
                           mode=rnd.choice(["full", "partial"]), digitized=rnd.random() < 0.5,
                           reused=rnd.random() < 0.5, vneid=rnd.random() < 0.5)
                continue
            fields = {
                "payment": {"method": rnd.choice(["online", "offline"])},
                "result_returned": {"electronic_result": rnd.random() < 0.5},
                "rated": {"rating": rnd.randint(1, 5)},
                "apology_issued": {"new_due_at": when()},
                "feedback_received": {"due_at": when()},
                "transferred": {"to_unit_id": rnd.choice(units)},
            }.get(typ, {})
            e.add(typ, case, unit, when(), event_id=eid, **fields)
    rnd.shuffle(e.items)
    write(ch, e.items)
    got = {k: v for k, v in by_key(run(ch, targets)).items() if v[1] > 0}
    oracle = expected_indicators([ev.to_record() for ev in e.items], at=format_time(T), hold_retention_days=35)
    assert got == oracle


def test_on_time_766_counts_open_cases_at_t_and_late_ones_as_late(clean, targets):
    """A unit that finishes its few dossiers on time but leaves late ones open: on_time looks
    perfect, on_time_766 does not. Open cases count in every window at T; a pause open at T
    moves the due date with T; two requests make an open case late; batch = oracle."""
    sys.path.insert(0, str(REPO))
    from tests.oracle import expected_indicators

    ch = clean
    e = Events()
    for i in range(25):  # UA: 25 dossiers finished on time within the last day
        e.received(f"F{i}", UA, T - 3 * D, sector="ho_tich", due=T + D)
        e.add("resolved", f"F{i}", UA, T - 20 * H)
    for i in range(5):  # UA: 5 dossiers open and past their due date (late in the national index)
        e.received(f"L{i}", UA, T - 40 * D, sector="dat_dai", due=T - 10 * D)
    # UA: open and not late: due in the future; paused before its due (the due moves with T)
    e.received("N1", UA, T - 2 * D, sector="dat_dai", due=T + 3 * D)
    e.received("P1", UA, T - 9 * D, sector="dat_dai", due=T - D)
    e.add("supplement_requested", "P1", UA, T - 2 * D)  # paused 2 days before the due, still open
    # UA: open, late although not past its due: two supplement requests
    e.received("Q2", UA, T - 5 * D, sector="dat_dai", due=T + 10 * D)
    e.add("supplement_requested", "Q2", UA, T - 4 * D)
    e.add("supplement_received", "Q2", UA, T - 3 * D)
    e.add("supplement_requested", "Q2", UA, T - 2 * D)
    e.add("supplement_received", "Q2", UA, T - D)
    # UA: paused only after its due had passed: late (pause closed: effective due T - 3D + 1D)
    e.received("P2", UA, T - 9 * D, sector="dat_dai", due=T - 3 * D)
    e.add("supplement_requested", "P2", UA, T - 2 * D)
    e.add("supplement_received", "P2", UA, T - D)
    # boundary: effective due exactly T is not past (on time); finished after T does not count
    e.received("B1", UB, T - D, sector="ho_tich", due=T)
    e.received("B2", UB, T - D, sector="ho_tich", due=T - 1)
    e.received("B3", UB, T - D, sector="ho_tich", due=T + D)
    e.add("resolved", "B3", UB, T + 1)
    write(ch, e.items)
    got = by_key(run(ch, targets))
    assert got[("on_time", UA, "all", "24h")] == (25, 25)
    # on_time_766 at T: 25 finished on time + N1, P1 open and not late; L0-4, Q2, P2 late
    for window in ("24h", "7d", "30d", "ytd"):
        assert got[("on_time_766", UA, "all", window)] == (27, 34)
    for window in ("1h", "mtd"):  # T is 00:30 on 1 August: only the open cases are in these windows
        assert got[("on_time_766", UA, "all", window)] == (2, 9)
    assert got[("on_time_766", UB, "all", "1h")] == (2, 3)  # B1, B3 on time; B2 1 µs past due
    rows = {(r["indicator"], r["unit"], r["sector"], r["window"]): r for r in run(ch, targets, ["30d"])}
    assert rows[("on_time", UA, "all", "30d")]["below_target"] is False
    assert rows[("on_time_766", UA, "all", "30d")]["below_target"] is True
    oracle = expected_indicators([ev.to_record() for ev in e.items], at=format_time(T), hold_retention_days=35)
    assert {k: v for k, v in got.items() if v[1] > 0} == oracle


@pytest.mark.parametrize("lead", [1, 2, 0])
def test_batch_apology_coverage_equals_the_oracle_around_holidays(clean, targets, lead):
    """apology_coverage v1.2: random dossiers around the 2025 Quốc khánh holidays, finished
    and open, paused and not, with apologies before and after their deadlines; the batch SQL
    equals the oracle at several clocks (events after T ignored), for leads 0, 1 and 2."""
    sys.path.insert(0, str(REPO))
    from tests.oracle import expected_indicators
    from tests.unit.test_apology_coverage import _random_case

    ch = clean
    rng = random.Random(2409 + lead)
    start = datetime(2025, 8, 22, 8, 0, tzinfo=timezone(timedelta(hours=7)))
    records = [e for n in range(150) for e in _random_case(rng, n, start)]
    write(ch, [parse_event(json.dumps(r).encode(), key=r["case_id"].encode(), now_us=parse_time("2030-01-01T00:00:00Z"))
               for r in records])
    for k in range(4):
        at = parse_time((start + timedelta(hours=rng.uniform(24 * 3, 24 * 24))).isoformat())
        got = {key: v for key, v in by_key(run(ch, targets, at=at, lead=lead)).items()
               if key[0] == "apology_coverage" and v[1] > 0}
        held = [r for r in records if parse_time(r["occurred_at"]) <= at]
        oracle = {key: v for key, v in expected_indicators(held, at=format_time(at), apology_lead=lead).items()
                  if key[0] == "apology_coverage"}
        assert got == oracle, format_time(at)
        assert oracle  # late dossiers exist at every clock tried


def test_volume_table_equals_an_independent_count_from_the_facts(clean):
    """The volume table (pipeline/store/volume.py) of a month and of a reporting-regime
    period equals tests/oracle.expected_volume over the same records: random dossiers of
    every channel and ending, carried over, rejected, paused, open at the end."""
    sys.path.insert(0, str(REPO))
    from tests.oracle import VOLUME_COLUMNS, expected_volume
    from pipeline.store.volume import ALL as V_ALL, COLUMNS, volume_rows, volume_scopes

    assert tuple(COLUMNS) == VOLUME_COLUMNS
    ch = clean
    rng = random.Random(766)
    vn = timezone(timedelta(hours=7))
    start = datetime(2025, 5, 1, 8, 0, tzinfo=vn)
    records = []
    for n in range(400):
        cid = f"V{n}"
        unit = rng.choice([UA, UB, "SO_XD"])
        t0 = start + timedelta(hours=rng.uniform(0, 24 * 75))
        due = t0 + timedelta(hours=rng.uniform(8, 24 * 12))

        def event(kind, at, **fields):
            records.append({"schema_version": 1, "event_id": f"{cid}-{len(records)}", "event_type": kind,
                            "case_id": cid, "unit_id": unit, "occurred_at": at.isoformat(), **fields})

        if rng.random() < 0.95:
            channel = rng.choice(["online", "direct", "postal"])
            extra = {"online_mode": rng.choice(["full", "partial"])} if channel == "online" else {}
            event("received", t0, procedure_code="p", sector=rng.choice(["dat_dai", "ho_tich"]), channel=channel,
                  due_at=due.isoformat(), **extra)
        if rng.random() < 0.06:
            event("rejected", t0 + timedelta(hours=rng.uniform(0, 30)))
            continue
        for i in range(rng.choice([0, 0, 1, 2])):
            event(rng.choice(["supplement_requested", "supplement_received"]),
                  t0 + timedelta(hours=rng.uniform(0, 24 * 10)))
        if rng.random() < 0.8:
            kind = rng.choice(["resolved", "resolved", "resolved", "withdrawn", "stopped", "result_returned"])
            fields = {"electronic_result": True} if kind == "result_returned" else {}
            event(kind, t0 + timedelta(hours=rng.uniform(1, 24 * 16)), **fields)
    far = parse_time("2030-01-01T00:00:00Z")
    write(ch, [parse_event(json.dumps(r).encode(), key=r["case_id"].encode(), now_us=far) for r in records])
    runner = ClientRunner(ch)
    june = (parse_time("2025-06-01T00:00:00+07:00"), parse_time("2025-07-01T00:00:00+07:00") - 1)
    regime = (parse_time("2025-05-15T00:00:00+07:00"), parse_time("2025-06-15T00:00:00+07:00") - 1)
    for lo, hi in (june, regime):
        rows = volume_rows(runner, lo, hi)
        got = {(r.unit, r.sector): {c: getattr(r, c) for c in COLUMNS} for r in rows}
        expected = expected_volume(records, format_time(lo), format_time(hi))
        assert got == expected
        scopes = volume_scopes(rows)
        province = scopes[(V_ALL, V_ALL)]
        for c in COLUMNS:
            assert getattr(province, c) == sum(v[c] for v in expected.values())
        # every column is exercised, and the identity holds: carried + received = out + still open
        assert all(getattr(province, c) > 0 for c in COLUMNS), province
        for row in scopes.values():
            assert row.carried + row.received == row.resolved + row.withdrawn + row.stopped + row.open


# --------------------------------------------------------------------------- the table


def test_indicator_table_is_aligned_and_vietnamese(loaded, targets):
    ch, _ = loaded
    rows = run(ch, targets, ["30d", "1h"], unit="all", sector="all")
    text = format_indicator_table(rows)
    lines = text.splitlines()
    assert all(h in lines[0] for h in HEADERS)
    assert len(lines) == 2 + len(rows)
    assert NAMES_VI["on_time"] in text and "Không đạt" in text and "Đạt" in text and "—" in text
    # columns line up: every numeric cell ends where its header ends
    end = lines[0].index("Đạt/Tổng") + len("Đạt/Tổng")
    assert all(line[end - 1] != " " for line in lines[2:])
    on_time = next(line for line in lines if line.startswith(NAMES_VI["on_time"]) and " 30d " in line)
    assert " 3/6 " in on_time and " 50% " in on_time and "> 95%" in on_time  # A1..A6: 3 on time of 6
    assert on_time.endswith("Không đạt")
    assert format_indicator_table([]) == "(không có số liệu)"


def test_batch_attributes_events_to_the_unit_label_stored_with_them(clean, targets):
    """The worker stores, beside the unit as sent, the unit it attributes the event to
    (``unknown`` outside the registry at the event's time); the batch counts by that."""
    events = Events()
    t = T - 2 * D
    sent = events.received("K1", "TYPO-UNIT", t, sector="ho_tich", due=t + 3 * D, digitized=True)
    kept = events.received("K2", UA, t, sector="ho_tich", due=t + 3 * D)
    FactWriter(clean).write_events([AcceptedEvent(sent, 0, 1, "unknown"), AcceptedEvent(kept, 0, 2, UA)])
    got = by_key(run(clean, targets, windows=("7d",)))
    assert got[("digitized", "unknown", "all", "7d")] == (1, 1)
    assert got[("digitized", UA, "all", "7d")] == (0, 1)
    assert not any(unit == "TYPO-UNIT" for _, unit, _, _ in got)
    stored = clean.query("SELECT unit_id, unit_label FROM case_events FINAL ORDER BY case_id").result_rows
    assert stored == [("TYPO-UNIT", "unknown"), (UA, UA)]  # the fact keeps what was sent


def test_batch_counts_a_sector_outside_the_registry_under_unknown_with_the_held_outcomes(clean, targets):
    """Issue 20: the worker stores, beside the sector as sent, the sector label (``unknown``
    outside the registry); the batch counts the sector scope by that label, so it gives
    the live export's ``unknown`` figures (unregistered and held together)."""
    events = Events()
    t = T - 2 * D
    sent = events.received("S1", UA, t, sector="xx_invented", due=t + 3 * D, digitized=True)
    kept = events.received("S2", UA, t, sector="ho_tich", due=t + 3 * D)
    FactWriter(clean).write_events([AcceptedEvent(sent, 0, 1, UA, "unknown"), AcceptedEvent(kept, 0, 2, UA)])
    got = by_key(run(clean, targets, windows=("7d",)))
    assert got[("digitized", "all", "unknown", "7d")] == (1, 1)
    assert got[("digitized", "all", "ho_tich", "7d")] == (0, 1)
    assert got[("digitized", UA, "all", "7d")] == (1, 2)
    assert not any(sector == "xx_invented" for _, _, sector, _ in got)
    stored = clean.query("SELECT sector, sector_label FROM case_events FINAL ORDER BY case_id").result_rows
    assert stored == [("xx_invented", "unknown"), ("ho_tich", "ho_tich")]  # the fact keeps what was sent


def test_case_events_of_an_earlier_version_get_a_sector_label_equal_to_the_sector(ch):
    other = connect(f"chdb://{ch.path}?database=tthc_old_events")
    other.command("CREATE TABLE case_events (event_id String, sector LowCardinality(Nullable(String))) "
                  "ENGINE = ReplacingMergeTree ORDER BY event_id")
    other.command("INSERT INTO case_events VALUES ('e1', 'xx_old'), ('e2', NULL)")
    other.command(next(ddl for ddl in schema_module._ADDED_COLUMNS if "sector_label" in ddl))
    got = other.query("SELECT event_id, sector_label FROM case_events ORDER BY event_id").result_rows
    assert got == [("e1", "xx_old"), ("e2", None)]  # old rows: the code as stored, as the batch showed before
    ch.command("DROP DATABASE tthc_old_events SYNC")
def test_the_due_soon_board_query_lists_open_dossiers_due_by_the_end_of_the_next_working_day(clean):
    """The unit board's "sắp trễ" table on the real engine: Friday 24 April 2026 10:00, Monday 27
    a holiday (deploy/holidays.csv), so the dossiers due before Wednesday 29 00:00 and not yet overdue."""
    from pipeline.boards.boards import due_soon_sql
    from pipeline.boards.queries import expand_clickhouse_macros, substitute_variables
    from pipeline.calendar_file import load_calendar
    from pipeline.store.schema import CASE_COLUMNS

    vn = timezone(timedelta(hours=7))
    now = datetime(2026, 4, 24, 10, 0, tzinfo=vn)

    def row(case_id, due, unit="U1", status="open", overdue=False):
        values = dict(case_id=case_id, unit_id=unit, sector="dat_dai", procedure_code="1.1", channel="online",
                      status=status, received_at=now - timedelta(days=5), due_at=due, effective_due=due,
                      finished_at=None, finish_type=None, on_time=None, early=None, supplement_requests=0,
                      paused_seconds=0.0, has_apology=False, overdue=overdue, event_count=1, version=1, updated_at=now)
        return [values[c] for c in CASE_COLUMNS]

    clean.insert("cases", [
        row("late", datetime(2026, 4, 24, 9, 0, tzinfo=vn), overdue=True),
        row("today", datetime(2026, 4, 24, 16, 0, tzinfo=vn)),
        row("tuesday", datetime(2026, 4, 28, 16, 0, tzinfo=vn)),
        row("wednesday", datetime(2026, 4, 29, 9, 0, tzinfo=vn)),
        row("finished", datetime(2026, 4, 24, 16, 0, tzinfo=vn), status="finished"),
        row("other unit", datetime(2026, 4, 24, 16, 0, tzinfo=vn), unit="U2"),
    ], column_names=list(CASE_COLUMNS))
    sql = expand_clickhouse_macros(substitute_variables(due_soon_sql(load_calendar()), {"unit": "U1"}),
                                   from_s=int(now.timestamp()) - 86400, to_s=int(now.timestamp()), interval_s=60)
    assert [r[0] for r in clean.query(sql).result_rows] == ["today", "tuesday"]
