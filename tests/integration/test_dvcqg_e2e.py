"""A simulated history as DVCQG calls -> ``intake --file`` -> the real worker (which
translates the raw topic, ``pipeline/stream/translation.py``) stores exactly the contract
events the mapping implies and gives, in the batch indicators and the live gauges, the figures the oracle computes
from the simulator's own contract events, for every indicator DVCQG records carry; the
steps land in ClickHouse and the late lists read them. No applicant's name in storage."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pipeline.config import load_settings
from pipeline.contract.events import format_time, parse_time
from pipeline.feed.dvcqg import registries_for
from pipeline.feed.simulate import write_history
from pipeline.infra.manager import up
from pipeline.sources.dvcqg.records import split_call
from pipeline.sources.dvcqg.translator import Translator
from tests.integration.workerproc import WorkerProcess, isolated_settings, run_cli, sql_json
from tests.oracle import expected_indicators

pytestmark = pytest.mark.integration

WINDOWS = ("7d", "30d", "mtd", "ytd")
CARRIED = {"on_time", "on_time_766", "early", "full_online", "remote", "e_result", "digitized", "data_reuse",
           "vneid_auth", "apology_coverage"}


def _carried(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if k[0] in CARRIED and v[1] > 0}


def _streaming(worker: WorkerProcess) -> dict:
    numerators, denominators = {}, {}
    for (name, labels), value in worker.metrics().items():
        if name in ("tthc_indicator_numerator", "tthc_indicator_denominator"):
            label = dict(labels)
            key = (label["indicator"], label["unit"], label["sector"], label["window"])
            (numerators if name.endswith("numerator") else denominators)[key] = int(value)
    return {key: (numerators[key], denominators[key]) for key in denominators}


def expected_events(settings, calls_file) -> dict[str, dict]:
    """The contract events the mapping implies for the calls of ``calls_file`` (in process,
    dossier by dossier in the file's order; the intake's arrival time is not used by
    simulated calls, which date every record)."""
    translator, states, expected = Translator(registries_for(settings)), {}, {}
    for line in calls_file.read_text(encoding="utf-8").splitlines():
        records, _ = split_call(json.loads(line), arrived_us=0, account="x")
        for record in records:
            key = str(record.data.get("MaHoSo") or "") if record.service != "DongBoDanhGia" else ""
            result = translator.apply(record, states.get(key) if key else None)
            if key and result.state is not None:
                states[key] = result.state
            expected.update((e["event_id"], e) for e in result.events)
    return expected


def test_dvcqg_history_through_intake_and_worker(tmp_path):
    base = load_settings()
    up(base, kafka_only=True)
    settings = isolated_settings(base, "dvcqg", clock="event", batch_size=500, flush_interval=0.5)
    settings = replace(settings, dvcqg_topic=f"{settings.topic}.raw", intake_accounts_file=str(tmp_path / "none"))
    contract, calls = tmp_path / "events.jsonl", tmp_path / "calls.jsonl"
    write_history(settings, 2025, str(contract), scale=0.03, days=45, seed=9, progress=False)
    write_history(settings, 2025, str(calls), scale=0.03, days=45, seed=9, progress=False, output_format="dvcqg")
    events = [json.loads(line) for line in contract.read_text(encoding="utf-8").splitlines()]

    expected = expected_events(settings, calls)
    produced = len(expected)
    assert produced > 1000

    run_cli(settings, "intake", "--file", str(calls), timeout=600)

    t_us = max(parse_time(e["occurred_at"]) for e in events)
    at = format_time(t_us)
    worker = WorkerProcess(settings).start()
    try:
        worker.wait_processed(produced, timeout=600)
        batch_rows = json.loads(
            run_cli(settings, "indicators", "--window", ",".join(WINDOWS), "--at", at, "--format", "json").stdout
        )
        steps = sql_json(settings, "SELECT count() AS n, countIf(finished_at > step_due_at) AS late FROM steps FINAL")
        officials = sql_json(settings, "SELECT DISTINCT handler_name FROM steps FINAL")
        stored = sql_json(settings, "SELECT event_id, count() AS n FROM case_events GROUP BY event_id")
        ratings = sql_json(settings, "SELECT count() AS n FROM dvcqg_ratings FINAL")
        leaked = sql_json(settings, "SELECT count() AS n FROM case_events WHERE positionUTF8(raw, 'Công dân') > 0")
        clock = sql_json(settings, "SELECT toUnixTimestamp64Micro(max(occurred_at)) AS t FROM case_events")[0]["t"]
        worker.wait_for(lambda: worker.counter("tthc_clock_seconds") == pytest.approx(int(clock) / 1e6, abs=1e-6),
                        60, "event clock at the last translated event")
        streaming = _carried(_streaming(worker))
    finally:
        worker.stop()

    oracle = _carried(expected_indicators(events, at=at, windows=WINDOWS))
    batch = _carried({(r["indicator"], r["unit"], r["sector"], r["window"]): (r["numerator"], r["denominator"])
                      for r in batch_rows})
    assert len(oracle) > 300 and {k[0] for k in oracle} == CARRIED
    assert batch == oracle
    # the live gauges, at the worker's event clock (the last translated event)
    live_oracle = _carried(expected_indicators(events, at=format_time(int(clock)), windows=WINDOWS))
    assert {k for k in streaming if k[3] in WINDOWS} and {
        k: v for k, v in streaming.items() if k[3] in WINDOWS} == live_oracle
    assert steps[0]["n"] > 1000 and steps[0]["late"] > 0
    assert all(row["handler_name"].startswith("Cán bộ Thử nghiệm ") for row in officials)
    assert leaked[0]["n"] == 0
    # exactly the events the mapping implies: none missing, none extra, none twice
    assert {row["event_id"] for row in stored} == set(expected)
    assert all(int(row["n"]) == 1 for row in stored)
    assert int(ratings[0]["n"]) > 0  # the monthly rating summaries reached dvcqg_ratings
