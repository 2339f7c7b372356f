"""The end check of the fault tests: after faults, the worker's numbers are exact.

Once the worker has caught up, its gauges equal the oracle on every series (open cases
too), ``case_events`` holds each valid event exactly once, and the batch indicators
(SQL over ``case_events`` alone) equal the oracle as well.
"""

from __future__ import annotations

import json

from pipeline.contract.events import format_time, parse_time
from pipeline.feed.scenario import Scenario
from tests.integration.test_indicators_e2e import WINDOWS, _nonzero, _open_cases, _streaming
from tests.integration.workerproc import WorkerProcess, run_cli, sql_json
from tests.oracle import expected_indicators, expected_open_cases


def assert_exact_once_caught_up(worker: WorkerProcess, scenario: Scenario, timeout: float = 300.0) -> None:
    settings = worker.settings
    at = format_time(max(parse_time(e["occurred_at"]) for e in scenario.valid_events))
    oracle = _nonzero(expected_indicators(scenario.valid_events, at=at, windows=WINDOWS))

    def caught_up() -> bool:
        return _nonzero(_streaming(worker)) == oracle

    worker.wait_for(caught_up, timeout, "the worker's gauges to equal the oracle")
    expected_open = {u: c for u, c in expected_open_cases(scenario.valid_events, at=at).items() if any(c)}
    assert _open_cases(worker) == expected_open
    stored = sql_json(settings, "SELECT count() AS n, uniqExact(event_id) AS ids FROM case_events FINAL")[0]
    assert int(stored["n"]) == int(stored["ids"]) == len(scenario.valid_events)
    batch_rows = json.loads(
        run_cli(settings, "indicators", "--window", ",".join(WINDOWS), "--at", at, "--format", "json").stdout
    )
    batch = {(r["indicator"], r["unit"], r["sector"], r["window"]): (r["numerator"], r["denominator"]) for r in batch_rows}
    assert _nonzero(batch) == oracle
