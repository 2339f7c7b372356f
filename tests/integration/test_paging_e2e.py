"""Paging end to end: the real worker, Prometheus, Alertmanager and a webhook receiver.

Kafka comes from the session's ``infra``; this module starts its *own* Prometheus and
Alertmanager (real binaries) on free loopback ports, because the test needs short
intervals that the committed configs must not have:

* the rules are the committed generator's output with every ``for``/``keep_firing_for``
  set to :data:`FOR` (:class:`~pipeline.alerting.rules.RuleOptions`), nothing else changed;
* Prometheus scrapes and evaluates every second (the rendered ``prometheus.yml``);
* Alertmanager is the committed ``alertmanager.yml`` (routes, grouping, inhibition) with
  its group timings shortened and its webhooks pointing at the receiver in this test.

The data are dossiers of four registry units on the event clock (deterministic windows):
first every unit meets every target; then one unit's satisfaction falls to 37/40
(92.5 % < 95 %, 40 ratings >= the minimum volume 20) while its sector and the province
stay above; then more good ratings bring it to exactly 95 % (the target, met).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

from pipeline.alerting.rules import RuleOptions, write_rules
from pipeline.alerting.webhook import Notification, WebhookLog, serve
from pipeline.config import Settings
from pipeline.targets_file import load_targets
from pipeline.infra.prometheus import (
    alertmanager_argv,
    prometheus_argv,
    render_alertmanager_config,
    render_prometheus_config,
)
from tests.integration.workerproc import WorkerProcess, isolated_settings, run_cli
from tests.tools import required_tool

pytestmark = pytest.mark.integration

FOR = "5s"  # every alert's for/keep_firing_for in the test copy of the rules
WAIT_S = 120.0  # generous bound on every wait for a notification (not a timing assertion)
TZ = timezone(timedelta(hours=7))
T0 = datetime(2025, 9, 15, 9, 0, tzinfo=TZ)  # a Monday; every unit below is in force then
INCIDENT_UNIT = "TTPVHCC"
INCIDENT_NAME = "Trung tâm Phục vụ hành chính công tỉnh Bắc Ninh"  # its name in deploy/units.csv
UNITS = ("TTPVHCC", "SO_XD", "SO_TC", "SO_NNMT")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict | list:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait(predicate: Callable[[], object], what: str, timeout: float = WAIT_S) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# ------------------------------------------------------------------ events


def _t(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _dossier(case_id: str, unit: str, at: datetime, rating: int) -> list[dict]:
    """A dossier received fully online (digitised, reused data, VNeID) and rated."""
    common = {"schema_version": 1, "case_id": case_id, "unit_id": unit}
    received = {
        **common,
        "event_id": f"{case_id}-received",
        "event_type": "received",
        "occurred_at": _t(at),
        "procedure_code": "1.000001",
        "sector": "ho_tich",
        "channel": "online",
        "online_mode": "full",
        "due_at": _t(at + timedelta(days=30)),
        "has_fee": False,
        "digitized": True,
        "reused_data": True,
        "vneid_authenticated": True,
    }
    rated = {
        **common,
        "event_id": f"{case_id}-rated",
        "event_type": "rated",
        "occurred_at": _t(at + timedelta(minutes=10)),
        "rating": rating,
    }
    return [received, rated]


def _send(settings: Settings, tmp: Path, name: str, events: list[dict]) -> None:
    path = tmp / f"{name}.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    run_cli(settings, "replay", str(path))


def _baseline() -> list[dict]:
    events = []
    for u, unit in enumerate(UNITS):
        for i in range(20):
            events += _dossier(f"HS-BASE-{unit}-{i:03d}", unit, T0 + timedelta(minutes=u * 30 + i), 5)
    return events


def _incident() -> list[dict]:  # 20 more for the unit, 3 unhappy: 37/40 = 92.5 %
    at = T0 + timedelta(hours=3)
    return [e for i in range(20) for e in _dossier(f"HS-INC-{i:03d}", INCIDENT_UNIT, at + timedelta(minutes=i), 2 if i < 3 else 5)]


def _recovery() -> list[dict]:  # 20 more, all happy: 57/60 = 95 %, exactly the target (>=)
    at = T0 + timedelta(hours=5)
    return [e for i in range(20) for e in _dossier(f"HS-REC-{i:03d}", INCIDENT_UNIT, at + timedelta(minutes=i), 5)]


# ------------------------------------------------------------------ the stack


class Stack:
    def __init__(self, settings: Settings, tmp: Path, receiver_port: int) -> None:
        self.settings = settings
        self.tmp = tmp
        self.receiver_port = receiver_port
        self.processes: list[subprocess.Popen] = []
        self.logs: list = []
        self.prometheus = f"http://127.0.0.1:{settings.prometheus_port}"
        self.alertmanager = f"http://127.0.0.1:{settings.alertmanager_port}"

    def _spawn(self, name: str, argv: list[str], url: str) -> None:
        log = open(self.tmp / f"{name}.log", "wb")
        self.logs.append(log)
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.processes.append(process)

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited: {(self.tmp / f'{name}.log').read_text()[-2000:]}")
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                return response.status == 200

        _wait(ready, f"{name} ready", timeout=60)

    def start(self) -> None:
        s = self.settings
        rules = self.tmp / "rules"
        write_rules(load_targets(s.targets_file), rules, RuleOptions(for_override=FOR))

        am = yaml.safe_load(render_alertmanager_config(s))
        routes = [am["route"], *am["route"].get("routes", [])]
        for route in routes:
            route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
        (self.tmp / "alertmanager.yml").write_text(yaml.safe_dump(am, allow_unicode=True))
        binary = required_tool("prometheus-alertmanager", "alertmanager")
        (self.tmp / "am-data").mkdir()
        self._spawn(
            "alertmanager",
            alertmanager_argv(binary, s, self.tmp / "alertmanager.yml", self.tmp / "am-data"),
            self.alertmanager,
        )

        prom = yaml.safe_load(render_prometheus_config(replace(s, rules_dir=rules)))
        prom["global"].update(scrape_interval="1s", evaluation_interval="1s")
        for job in prom["scrape_configs"]:
            job["scrape_interval"] = "1s"
        (self.tmp / "prometheus.yml").write_text(yaml.safe_dump(prom))
        binary = required_tool("prometheus")
        self._spawn(
            "prometheus",
            prometheus_argv(binary, s, self.tmp / "prometheus.yml", self.tmp / "prom-data"),
            self.prometheus,
        )

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()

    def query(self, expr: str) -> list[dict]:
        url = f"{self.prometheus}/api/v1/query?query={urllib.request.quote(expr)}"
        return _get_json(url)["data"]["result"]

    def firing(self) -> list[dict]:
        return self.query('ALERTS{alertstate="firing"}')

    def am_alerts(self) -> list[dict]:
        return _get_json(f"{self.alertmanager}/api/v2/alerts")


@pytest.fixture(scope="module")
def paging(infra: Settings, tmp_path_factory) -> Iterator[tuple[Settings, Stack, WebhookLog, Path]]:
    tmp = tmp_path_factory.mktemp("paging")
    receiver_port = _free_port()
    settings = isolated_settings(
        infra,
        "paging",
        clock="event",
        prometheus_port=_free_port(),
        alertmanager_port=_free_port(),
        webhook_port=receiver_port,
    )
    log = WebhookLog(file=tmp / "alerts.jsonl")
    server = serve(log, receiver_port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stack = Stack(settings, tmp, receiver_port)  # started by the test, once the worker runs
    try:
        yield settings, stack, log, tmp
    finally:
        stack.stop()
        server.shutdown()
        server.server_close()


def _alerts(log: WebhookLog, path: str, status: str | None = None, since: float = 0.0) -> list[tuple[Notification, dict]]:
    return [
        (n, a)
        for n in log.snapshot()
        if n.path == path and n.received_monotonic >= since
        for a in n.alerts
        if status is None or a["status"] == status
    ]


def test_incident_pages_once_then_resolves_and_worker_down_pages_with_indicators_inhibited(paging) -> None:
    settings, stack, log, tmp = paging
    worker = WorkerProcess(settings).start()
    try:
        # 1. every unit meets every target: nothing fires. Prometheus starts only once the
        # worker has caught up: with every `for:` at 5s here, a worker still starting, or
        # slowed down on a loaded machine while it has lag, would page as down or stalled.
        baseline = _baseline()
        _send(settings, tmp, "baseline", baseline)
        worker.wait_processed(len(baseline))
        stack.start()
        ratio = f'tthc:indicator_ratio:by_scope{{indicator="satisfaction",unit="{INCIDENT_UNIT}",sector="all",window="24h"}}'
        _wait(lambda: [r for r in stack.query(ratio) if float(r["value"][1]) == 1.0], "the baseline in Prometheus")
        info = _wait(lambda: stack.query(f'tthc_unit_info{{unit="{INCIDENT_UNIT}"}}'), "tthc_unit_info scraped")
        assert info[0]["metric"]["name"] == INCIDENT_NAME
        lag = _wait(lambda: stack.query("tthc_consumer_lag"), "tthc_consumer_lag scraped")
        assert {r["metric"]["partition"] for r in lag} == {str(p) for p in range(settings.partitions)}
        _wait(lambda: all(float(r["value"][1]) == 0 for r in stack.query("tthc_consumer_lag")), "no lag once caught up")
        time.sleep(8)  # > for (5s) + a few evaluations: anything wrong would fire now
        assert stack.firing() == []
        assert [(n.path, [a["labels"].get("alertname") for a in n.alerts]) for n in log.snapshot()] == []

        # 2. the incident: exactly one page, for that unit and indicator, in Vietnamese
        incident = _incident()
        t_incident = time.monotonic()
        _send(settings, tmp, "incident", incident)
        worker.wait_processed(len(baseline) + len(incident))
        _wait(lambda: _alerts(log, "/tthc-oncall", "firing"), "the page")
        t_page = time.monotonic()
        time.sleep(3)  # would a second, unexpected page follow?
        pages = _alerts(log, "/tthc-oncall", "firing")
        assert len(pages) == 1, [a["labels"] for _, a in pages]
        alert = pages[0][1]
        labels = {k: v for k, v in alert["labels"].items()}
        assert labels == {
            "alertname": "TthcIndicatorBelowTarget",
            "severity": "page",
            "indicator": "satisfaction",
            "unit": INCIDENT_UNIT,
            "sector": "all",
            "window": "24h,7d",
            "target": "≥ 95%",
        }
        annotations = alert["annotations"]
        assert annotations["unit_name"] == INCIDENT_NAME
        assert annotations["summary"] == f"{INCIDENT_NAME}: «Mức độ hài lòng» dưới chỉ tiêu (24 giờ và 7 ngày)"
        assert annotations["description"] == (
            f"{INCIDENT_NAME} ({INCIDENT_UNIT}): chỉ số «Mức độ hài lòng» đạt 92,5% trong 24 giờ, "
            "92,5% trong 7 ngày; chỉ tiêu ≥ 95% (tính khi có từ 20 lượt trở lên)."
        )
        assert annotations["dashboard"].endswith(f"/d/tthc-don-vi?var-unit={INCIDENT_UNIT}")
        # the 30-day ticket fires in Prometheus too, but the page inhibits it in Alertmanager
        ticket = _wait(
            lambda: [a for a in stack.am_alerts() if a["labels"].get("severity") == "ticket"], "the ticket in Alertmanager"
        )
        assert ticket[0]["labels"]["unit"] == INCIDENT_UNIT and ticket[0]["status"]["inhibitedBy"]
        assert _alerts(log, "/tthc-digest") == []

        # 3. the incident ends (exactly at target again): the resolution arrives
        recovery = _recovery()
        t_recovery = time.monotonic()
        _send(settings, tmp, "recovery", recovery)
        worker.wait_processed(len(baseline) + len(incident) + len(recovery))
        resolved = _wait(lambda: _alerts(log, "/tthc-oncall", "resolved"), "the resolution")
        t_resolved = time.monotonic()
        assert [a["labels"]["unit"] for _, a in resolved] == [INCIDENT_UNIT]
        assert [a["labels"]["alertname"] for _, a in resolved] == ["TthcIndicatorBelowTarget"]
        print(
            f"\npaging e2e: incident -> page {t_page - t_incident:.1f}s, "
            f"recovery -> resolution {t_resolved - t_recovery:.1f}s "
            f"(scrape/evaluation 1s, for {FOR}, keep_firing_for {FOR}, group_wait 1s)"
        )
        _wait(lambda: stack.firing() == [], "no alert firing after the recovery")
    finally:
        worker.stop()

    # 4. the worker is stopped: the worker-down page arrives, indicator alerts stay quiet
    t_stop = time.monotonic()
    down = _wait(lambda: _alerts(log, "/tthc-oncall", "firing", since=t_stop), "the worker-down page")
    t_down = time.monotonic()
    assert [a["labels"]["alertname"] for _, a in down] == ["TthcWorkerDown"]
    assert down[0][1]["labels"]["instance"] == f"127.0.0.1:{settings.web_port}"
    # An indicator alert that a missing worker would cause (another worker's partial sums
    # falling below target) reaches Alertmanager as Prometheus would send it: it is
    # inhibited, and nobody is paged for it.
    now = datetime.now(timezone.utc)
    fake = [{
        "labels": {"alertname": "TthcIndicatorBelowTarget", "severity": "page", "indicator": "on_time",
                   "unit": "SO_XD", "sector": "all", "window": "24h,7d"},
        "annotations": {"summary": "partial sums"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }]
    request = urllib.request.Request(
        f"{stack.alertmanager}/api/v2/alerts", data=json.dumps(fake).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    suppressed = _wait(
        lambda: [a for a in stack.am_alerts() if a["labels"].get("unit") == "SO_XD"
                 and a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]],
        "the indicator alert inhibited by the worker-down page",
    )
    assert suppressed
    time.sleep(4)  # several group intervals (1s): an uninhibited alert would have been sent
    after_stop = _alerts(log, "/tthc-oncall", since=t_stop)
    assert {a["labels"]["alertname"] for _, a in after_stop} == {"TthcWorkerDown"}
    assert [r["metric"]["alertname"] for r in stack.firing()] == ["TthcWorkerDown"]
    print(f"paging e2e: worker stopped -> worker-down page {t_down - t_stop:.1f}s (for {FOR})")
