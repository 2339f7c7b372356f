"""The benchmark harness's own logic: seeded cached load, /metrics parsing, the latency
arithmetic, the published tables (no drift from benchmarks/results.json), CLI errors.
Speed itself is never asserted (that is `make bench`)."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from benchmarks import harness, load, report
from benchmarks.harness import metric_sum, percentile, state_gauges, steady_rate
from benchmarks.parts import Scrape, reflected_latencies
from pipeline.contract.events import parse_event
from pipeline.contract.events import message_key

ROOT = Path(__file__).resolve().parents[2]
NOW_US = int(datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(load, "CHUNK_CASES", 150)


def test_history_is_seeded_cached_and_smaller_loads_are_prefixes(small_chunks, tmp_path):
    big = load.history_file(5, 1500, directory=tmp_path, progress=False)
    small = load.history_file(5, 700, directory=tmp_path, progress=False)
    big_lines = big.path.read_bytes().splitlines()
    assert len(big_lines) == 1500 and big.events == 1500
    assert small.path.read_bytes().splitlines() == big_lines[:700]
    assert len(list(big.path.parent.glob("chunk-*"))) >= 2  # the load spans several monthly chunks
    stamp = big.path.stat().st_mtime_ns
    again = load.history_file(5, 1500, directory=tmp_path, progress=False)
    assert again.path == big.path and again.path.stat().st_mtime_ns == stamp  # served from the cache
    other = load.history_file(6, 1500, directory=tmp_path / "other", progress=False)
    assert other.path.read_bytes() != big.path.read_bytes()
    assert big.path.parent.name == load.generator_version()  # a changed generator gets new files


def test_history_is_the_scenarios_messy_mix(small_chunks, tmp_path):
    lines = load.history_file(3, 1200, directory=tmp_path, progress=False).path.read_bytes().splitlines()
    accepted, rejected = [], 0
    for line in lines:
        try:
            accepted.append(parse_event(line, key=message_key(line), now_us=NOW_US))
        except Exception:
            rejected += 1
    assert len(accepted) > 1000 and rejected > 0  # malformed lines on purpose, as in the scenario
    months = {datetime.fromtimestamp(e.occurred_at_us / 1e6, timezone.utc).strftime("%Y-%m") for e in accepted}
    assert len(months) >= 2


def test_province_load_is_the_registrys_year_with_the_scenarios_mess(tmp_path):
    got = load.province_file(2, 4000, directory=tmp_path, progress=False)
    lines = got.path.read_bytes().splitlines()
    assert len(lines) == 4000 == got.events
    again = load.province_file(2, 4000, directory=tmp_path, progress=False)
    assert again.path.read_bytes() == got.path.read_bytes() and again.stats == got.stats  # cached, seeded
    accepted, rejected = [], 0
    for line in lines:
        try:
            accepted.append(parse_event(line, key=message_key(line), now_us=NOW_US))
        except Exception:
            rejected += 1
    assert rejected == got.stats["malformed"] > 0
    ids = [e.event_id for e in accepted]
    assert len(ids) - len(set(ids)) == got.stats["duplicates"] > 0
    # both periods of the registry: units of the former provinces before 1 July 2025, the new ones after
    july = int(datetime(2025, 7, 1, tzinfo=timezone(timedelta(hours=7))).timestamp() * 1_000_000)
    before = {e.unit_id for e in accepted if e.event_type == "received" and e.occurred_at_us < july}
    after = {e.unit_id for e in accepted if e.event_type == "received" and e.occurred_at_us >= july}
    assert before and after and before.isdisjoint(after)
    times = [e.occurred_at_us for e in accepted]
    assert times != sorted(times)  # out of order
    assert got.stats["units"] > 100 and 3 < got.stats["events_per_dossier"] < 6


def test_open_dossiers_are_distinct_valid_receipts(tmp_path):
    lines = load.open_dossiers_file(4, 300, directory=tmp_path, progress=False).path.read_bytes().splitlines()
    events = [parse_event(line, key=message_key(line), now_us=NOW_US) for line in lines]
    assert len(events) == 300
    assert {e.event_type for e in events} == {"received"}
    assert len({e.case_id for e in events}) == 300


def test_latency_probe_events_are_valid_new_dossiers_at_the_given_time():
    at = datetime(2029, 5, 6, 3, 4, 5, 678000, tzinfo=timezone.utc)
    messages = load.received_events(1, 120, at, "HS-LAT0")
    assert len({key for key, _ in messages}) == 120
    for key, value in messages:
        event = parse_event(value, key=key, now_us=NOW_US)
        assert event.event_type == "received" and event.case_id == key.decode()
        assert event.occurred_at_us == int(at.timestamp() * 1_000_000)


def test_metric_sums_and_state_gauges_read_a_real_exposition():
    registry = CollectorRegistry()
    events = Counter("tthc_events", "e", ["outcome"], registry=registry)
    events.labels("accepted").inc(7)
    events.labels("invalid").inc(2)
    open_cases = Gauge("tthc_open_cases", "o", ["unit"], registry=registry)
    open_cases.labels("A").set(3)
    open_cases.labels("B").set(4)
    ratio = Gauge("tthc_indicator_ratio", "r", ["indicator"], registry=registry)
    ratio.labels("on_time").set(float("nan"))
    text = generate_latest(registry)
    assert metric_sum(text, "tthc_events_total") == 9  # not the _created samples
    assert metric_sum(text, "tthc_open_cases") == 7
    assert metric_sum(text, "tthc_missing") == 0
    gauges = state_gauges(text)
    assert gauges[("tthc_open_cases", '{unit="B"}')] == 4.0
    assert gauges[("tthc_indicator_ratio", '{indicator="on_time"}')] == "nan"  # NaN == NaN for comparisons
    assert not any(name == "tthc_events_total" for name, _ in gauges)  # counters are process-local


def test_reflected_latency_is_first_scrape_at_or_above_each_count():
    sent = [0.0, 0.1, 0.2, 0.3]
    scrapes = [Scrape(0.0, 0.15, 1, 0), Scrape(0.2, 0.35, 3, 2), Scrape(0.4, 0.55, 3, 3)]
    latencies, missing = reflected_latencies(sent, scrapes, "events")
    assert latencies == pytest.approx([0.15, 0.25, 0.15]) and missing == 1
    latencies, missing = reflected_latencies(sent, scrapes, "gauge")
    assert latencies == pytest.approx([0.35, 0.25, 0.35]) and missing == 1


def test_percentile_and_steady_rate():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)
    assert steady_rate(first_at=10.0, first_count=1000, end_at=20.0, total=11000) == 1000.0
    with pytest.raises(ValueError):
        steady_rate(first_at=10.0, first_count=500, end_at=10.0, total=500)


def test_benchmarks_md_tables_match_the_published_results():
    results = report.load_results(report.PUBLISHED_RESULTS)
    assert results.get("parts"), "benchmarks/results.json holds no results"
    text = report.BENCHMARKS_MD.read_text()
    assert report.splice(text, report.render(results)) == text, "run `python -m benchmarks --publish`"
    ratio = results["parts"]["ratio"]
    assert f"`{report.ratio_line(ratio)}`" in text
    assert re.fullmatch(r"ratio_vs_naive_faust=\d+\.\d\d ratio_vs_raw_consumer=\d+\.\d\d", report.ratio_line(ratio))


def test_ratio_line_has_the_exact_format():
    line = report.ratio_line({"ratio_vs_naive_faust": 3.14159, "ratio_vs_raw_consumer": 0.0042})
    assert line == "ratio_vs_naive_faust=3.14 ratio_vs_raw_consumer=0.00"


@pytest.mark.parametrize(
    "args",
    [["--only", "ratio,speed"], ["--only", ""], ["--events", "0"], ["--latency-rates", "200,fast"], ["--events", "x"],
     ["--load", "city"]],
)
def test_bad_arguments_are_one_line_and_exit_2(args, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "BENCH_RESULTS": str(tmp_path / "r.json")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_dir_bytes_counts_a_file_that_vanishes_during_the_walk_as_gone(tmp_path, monkeypatch):
    """A chDB merge removes its tmp_merge_* directory while the memory part measures the
    store (issue 21: `make bench` failed there); the walk must go on without it."""
    (tmp_path / "kept").write_bytes(b"x" * 10)
    merging = tmp_path / "tmp_merge_all_30_35_2"
    merging.mkdir()
    (merging / "data.bin").write_bytes(b"y" * 5)
    real_stat = harness.os.stat

    def stat(path, *args, **kwargs):
        if "tmp_merge_" in str(path):
            raise FileNotFoundError(path)  # removed between the listing and the stat
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(harness.os, "stat", stat)
    assert harness.dir_bytes(tmp_path) == 10
    assert harness.dir_bytes(tmp_path / "missing") == 0
