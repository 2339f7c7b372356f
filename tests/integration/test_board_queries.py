"""Every query of every board runs against real data.

A real worker processes a scenario (event clock) from the real broker; the real
Prometheus (``pipeline.infra``) scrapes it. The test then walks the committed
``dashboards/*.json`` (which ``tests/unit/test_boards.py`` proves equal to the
generator's output), so a panel added later is covered without touching this file:

* each template variable's query (``label_values(...)``) runs on Prometheus and must
  offer values; the boards' defaults must be among them;
* each PromQL target, with the variables substituted by real values and Grafana's
  ``$__rate_interval``/``$__range`` by concrete durations, runs as Grafana would run it
  (instant or range query) and must answer without error and with data (a query
  without data is asked again, one scrape interval apart, for up to a minute, and
  then fails with the samples Prometheus holds of the metrics it reads: one CI run
  once found no data for a counter the worker had exported);
* each ClickHouse target (the ``grafana-clickhouse-datasource`` query model), with the
  variables substituted and the plugin's macros expanded for a real time range, runs
  through the project's read-only path (the worker's ``POST /sql``, read-only
  check and ``readonly=1``) on the embedded engine and must return rows; the unit board's
  panels over process steps (``FROM steps``: late officials and departments in the month,
  steps open past due) run for the unit with the most late steps, as of the scenario's end,
  and their rows must equal an independent computation over the scenario's ``step``
  events (``tests/steps_oracle.py``).

Grafana itself does not run here; what is proven is that every query the boards send
is valid and finds the data the scenario produced.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pytest

from pipeline.access import open_runner
from pipeline.boards.build import DASHBOARDS_DIR
from pipeline.boards.queries import (
    CLICKHOUSE_TYPE,
    PROMETHEUS_TYPE,
    expand_clickhouse_macros,
    panel_queries,
    substitute_variables,
)
from pipeline.contract.localtime import LOCAL_TZ
from pipeline.core.indicators import INDICATORS
from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from tests.integration.workerproc import WorkerProcess, isolated_settings
from tests.steps_oracle import late_by_official, open_overdue_cases

pytestmark = pytest.mark.integration

#: Grafana's own interval variables, as concrete durations (5 s scrape interval).
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "5s", "__range": "5m"}
PROMETHEUS_RANGE_S = 300
STEP_S = 5


@dataclass(frozen=True)
class Answer:
    ok: bool
    error: str
    series: int


def _prometheus(settings, path: str, params: dict) -> dict:
    url = f"http://127.0.0.1:{settings.prometheus_port}{path}?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:  # 400/422: a bad expression; the body says why
        return json.load(exc)


def _promql(settings, expr: str, instant: bool, now: float) -> Answer:
    if instant:
        body = _prometheus(settings, "/api/v1/query", {"query": expr, "time": now})
    else:
        body = _prometheus(
            settings,
            "/api/v1/query_range",
            {"query": expr, "start": now - PROMETHEUS_RANGE_S, "end": now, "step": STEP_S},
        )
    if body.get("status") != "success":
        return Answer(False, f"{body.get('errorType')}: {body.get('error')}", 0)
    return Answer(True, "", len(body["data"]["result"]))


@dataclass(frozen=True)
class PromTarget:
    where: str  # board / panel / refId
    expr: str  # variables substituted
    instant: bool


#: how long a query that finds no data is asked again (a fresh "now" each round, one
#: scrape interval apart): Prometheus may not yet hold the samples a window needs
NO_DATA_PATIENCE_S = 60
ROUND_S = 5


def _failing_promql(settings, targets: list[PromTarget], now: float) -> list[str]:
    """Run every target as Grafana would; the failures. An error fails at once; a query
    without data is asked again until NO_DATA_PATIENCE_S has passed, and then fails with
    how many samples Prometheus holds of each metric it reads (and of ``up``)."""
    deadline = time.monotonic() + NO_DATA_PATIENCE_S
    failures: list[str] = []
    waiting = targets
    while True:
        empty = []
        for target in waiting:
            answer = _promql(settings, target.expr, target.instant, now)
            if not answer.ok:
                failures.append(f"{target.where}: error {answer.error}\n    {target.expr}")
            elif answer.series == 0:
                empty.append(target)
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(ROUND_S)
        waiting, now = empty, time.time()
    for target in empty:
        held = {
            name: _sample_count(settings, name)
            for name in sorted(set(re.findall(r"\b(tthc_[a-z0-9_]+)", target.expr)) | {"up"})
        }
        failures.append(f"{target.where}: no data after {NO_DATA_PATIENCE_S} s\n    {target.expr}\n"
                        f"    samples in the last 5 min: {held}")
    return failures


def _sample_count(settings, metric: str) -> dict[str, float]:
    """Samples Prometheus holds of ``metric`` over the last 5 minutes, per series."""
    body = _prometheus(settings, "/api/v1/query", {"query": f'count_over_time({{__name__="{metric}"}}[5m])'})
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in body["data"]["result"]}


def _label_values(settings, query: str) -> list[str]:
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
    assert match, f"unsupported variable query {query!r}"
    body = _prometheus(settings, f"/api/v1/label/{match.group(2)}/values", {"match[]": match.group(1)})
    assert body["status"] == "success", body
    return body["data"]


def _query_result_values(settings, query: str, regex: str) -> list[str]:
    """A ``query_result(expr)`` variable as Grafana resolves it: each series of the instant
    query as ``{label="value",...} value timestamp`` (labels sorted), the regex's named
    group ``value`` the option's value."""
    match = re.fullmatch(r"query_result\((.+)\)", query.strip())
    assert match, f"unsupported variable query {query!r}"
    body = _prometheus(settings, "/api/v1/query", {"query": match.group(1)})
    assert body["status"] == "success", body
    pattern = re.compile(regex.strip("/").replace("(?<", "(?P<"))
    values = []
    for series in body["data"]["result"]:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(series["metric"].items()))
        found = pattern.search("{" + labels + "} " + series["value"][1])
        if found:
            values.append(found["value"])
    return values


def _variable_values(settings, variable: dict) -> list[str]:
    """The values a board variable offers: its own query on the real Prometheus, or its
    fixed options (a custom variable)."""
    if variable["type"] == "custom":
        return [option["value"] for option in variable["options"]]
    if variable["query"].startswith("query_result("):
        return _query_result_values(settings, variable["query"], variable.get("regex", ""))
    return _label_values(settings, variable["query"])


def _boards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def test_every_board_query_runs_against_real_data(infra, tmp_path):
    boards = _boards()
    assert len(boards) == 4
    scenario = build_scenario(seed=8, cases=1000, steps=True)
    settings = isolated_settings(infra, "boards", clock="event", batch_size=500, flush_interval=0.5, snapshot_interval=1.0)
    path = scenario.write(tmp_path / "scenario.jsonl")
    accepted = len(scenario.valid_events)

    worker = WorkerProcess(settings).start()
    try:
        replay_file(settings, str(path), progress=False)
        worker.wait_processed(len(scenario.lines), timeout=600)

        province = {"indicator": "digitized", "unit": "all", "sector": "all", "window": "ytd"}

        def scraped() -> bool:
            """The final counts scraped, the recording rules evaluated on the worker's
            current gauges, and enough samples for rate()."""
            body = _prometheus(settings, "/api/v1/query", {"query": 'sum(tthc_events_total{outcome="accepted"})'})
            if [float(r["value"][1]) for r in body["data"]["result"]] != [accepted]:
                return False
            received = worker.counter("tthc_indicator_denominator", **province)
            selector = ",".join(f'{k}="{v}"' for k, v in province.items())
            rule = _prometheus(settings, "/api/v1/query", {"query": f"tthc:indicator_denominator:by_scope{{{selector}}}"})
            if received <= 0 or [float(r["value"][1]) for r in rule["data"]["result"]] != [received]:
                return False
            body = _prometheus(
                settings, "/api/v1/query", {"query": 'count_over_time(tthc_events_total{outcome="accepted"}[1m]) >= 4'}
            )
            if not body["data"]["result"]:
                return False
            # the lag of a partition is exported once this worker has committed on it
            lag = _prometheus(settings, "/api/v1/query", {"query": "count(tthc_consumer_lag)"})
            return bool(lag["data"]["result"])

        worker.wait_for(scraped, 180, "Prometheus to scrape the final figures and the consumer lag")
        runner = open_runner(settings)  # the worker's POST /sql while it runs
        assert type(runner).__name__ == "WorkerRunner"

        # Real variable values: the variables' own queries, on the real Prometheus.
        offered: dict[str, list[str]] = {}
        for name, board in boards.items():
            for variable in board.get("templating", {}).get("list", []):
                if variable["type"] == "datasource":  # resolved by Grafana, not a query of ours
                    continue
                values = _variable_values(settings, variable)
                assert values, f"{name}: variable {variable['name']} offers no value ({variable['query']})"
                offered.setdefault(variable["name"], values)
                default = (variable.get("current") or {}).get("value")
                if default:
                    assert default in values, f"{name}: default {variable['name']}={default} not offered"
        assert set(offered) == {"window", "unit"}
        # A unit for which the scenario produced every indicator in the window, and of those
        # the one with the most late dossiers, so every panel of its drill-down has data.
        window = "ytd"
        counts_query = f'count by (unit) (tthc:indicator_ratio:by_scope{{sector="all",unit!="all",window="{window}"}})'
        candidates: set[str] = set()

        def complete_units() -> bool:
            """Units with every indicator in the window, once the rules have evaluated them."""
            nonlocal candidates
            body = _prometheus(settings, "/api/v1/query", {"query": counts_query})
            counts = {r["metric"]["unit"]: int(float(r["value"][1])) for r in body["data"]["result"]}
            candidates = {u for u, n in counts.items() if n == len(INDICATORS)} & set(offered["unit"])
            return bool(candidates)

        worker.wait_for(complete_units, 60, f"a unit with all {len(INDICATORS)} indicators in the rules")
        _, rows = runner.query(
            "SELECT unit_id, count() AS n FROM cases FINAL WHERE (status = 'open' AND overdue) "
            "OR (status = 'finished' AND on_time = false) GROUP BY unit_id ORDER BY n DESC, unit_id"
        )
        unit = next(u for u, _ in rows if u in candidates)
        values = {"window": window, "unit": unit}
        assert values["window"] in offered["window"]

        # ClickHouse: the scenario's months (late dossiers) up to now (snapshots are taken in wall time).
        from_s, to_s = int(scenario.start.timestamp()), int(time.time()) + 60
        now = time.time()

        # Process steps: the unit with the most late steps in the scenario's last month, as of its end.
        steps_end_s = int(scenario.final_time.timestamp())
        steps_t = datetime.fromtimestamp(steps_end_s, tz=LOCAL_TZ)
        month_start = steps_t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        late_steps = late_by_official(scenario.valid_events, month_start, steps_t, steps_t)
        late_per_unit: Counter = Counter()
        open_per_unit: Counter = Counter()
        for (step_unit, _dept, _name), (_handled, done, open_late, _worst) in late_steps.items():
            late_per_unit[step_unit] += done + open_late
            open_per_unit[step_unit] += open_late
        # one with steps finished late and steps open past due, so both panels have rows
        steps_unit = max(late_per_unit, key=lambda u: (open_per_unit[u] > 0, late_per_unit[u] > open_per_unit[u],
                                                      late_per_unit[u], u))
        expected_handlers = {(d, n): (done, open_late) for (u, d, n), (_h, done, open_late, _w) in late_steps.items()
                             if u == steps_unit}
        expected_open = open_overdue_cases(scenario.valid_events, steps_t, steps_unit)
        assert expected_handlers and expected_open, "the scenario's unit has late and open-overdue steps"
        step_panels = 0

        failures: list[str] = []
        counts = {PROMETHEUS_TYPE: 0, CLICKHOUSE_TYPE: 0}
        promql: list[PromTarget] = []
        for name, board in boards.items():
            for target in panel_queries(board):
                source = target["datasource"]["type"]
                counts[source] += 1
                where = f"{name} / {target['panel']} / {target['refId']}"
                if source == PROMETHEUS_TYPE:
                    expr = substitute_variables(target["expr"], {**values, **GRAFANA_INTERVALS})
                    assert not re.search(r"\$\{?[A-Za-z_]", expr), f"{where}: unsubstituted variable in {expr}"
                    promql.append(PromTarget(where, expr, bool(target.get("instant"))))
                elif source == CLICKHOUSE_TYPE:
                    assert target["editorType"] == "sql" and target["format"] in (0, 1), where
                    variables, end_s = values, to_s
                    if "NOT c.overdue" in target["rawSql"]:  # "sắp trễ": as of a time when a unit has such a dossier
                        _, due_rows = runner.query(
                            "SELECT unit_id, toUnixTimestamp(min(effective_due)) FROM cases FINAL "
                            "WHERE status = 'open' AND NOT overdue AND effective_due IS NOT NULL "
                            "GROUP BY unit_id ORDER BY unit_id LIMIT 1"
                        )
                        assert due_rows, f"{where}: the scenario has no open dossier before its due"
                        variables, end_s = {**values, "unit": due_rows[0][0]}, int(due_rows[0][1]) - 3600
                    if "FROM steps" in target["rawSql"]:
                        variables, end_s = {**values, "unit": steps_unit}, steps_end_s
                    sql = expand_clickhouse_macros(
                        substitute_variables(target["rawSql"], variables), from_s=from_s, to_s=end_s, interval_s=60
                    )
                    assert "$" not in sql, f"{where}: unexpanded macro or variable in {sql}"
                    try:
                        columns, result = runner.query(sql)
                    except Exception as exc:  # QueryError/UserError: one line from the engine
                        failures.append(f"{where}: error {exc}\n    {sql}")
                        continue
                    if not result:
                        failures.append(f"{where}: no rows\n    {sql}")
                    elif "FROM steps" in target["rawSql"]:
                        step_panels += 1
                        rows = [dict(zip(columns, r)) for r in result]
                        if "cham_muon" in columns:  # late officials and departments in the month
                            got = {(r["phong_ban"], r["can_bo"]): (r["hoan_thanh_tre"], r["dang_qua_han"]) for r in rows}
                            if got != expected_handlers:
                                failures.append(f"{where}: {got} != {expected_handlers}")
                            if any(not r["can_bo"].startswith("Cán bộ Thử nghiệm ") for r in rows):
                                failures.append(f"{where}: an official without a synthetic name: {rows}")
                        elif sorted(r["ma_ho_so"] for r in rows) != expected_open:
                            failures.append(f"{where}: {sorted(r['ma_ho_so'] for r in rows)} != {expected_open}")
                else:
                    failures.append(f"{where}: unknown data source type {source}")
        failures += _failing_promql(settings, promql, now)
        assert not failures, f"{len(failures)} failing queries:\n" + "\n".join(failures)
        # The walk found the boards' queries (a broken walk must not pass silently).
        assert counts[PROMETHEUS_TYPE] >= 60 and counts[CLICKHOUSE_TYPE] >= 4, counts
        assert step_panels == 2
    finally:
        worker.stop()
