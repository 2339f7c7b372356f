"""Two workers in one group on three brokers, while data flows: pauses past the session,
SIGKILLs and restarts, a broker kill. Afterwards nothing is lost or doubled.

The faults (issue 26): a worker stopped with SIGSTOP for longer than the group session
loses its partitions to the other worker and wakes up still believing it owns them;
without fencing it writes its stale case records over the new owner's (measured before:
13 % of the year-to-date receipts lost), and it could export gauges the recording rules
sum with the new owner's. Here the pauses stop the whole worker (both processes) or only
its Faust process (the engine goes on with what it holds), and each lasts more than three
sessions.

At the end:
- the indicator gauges summed over both workers (as the recording rules sum them) equal
  the oracle on every series of the calendar windows (``mtd``, ``qtd``, ``ytd``: each
  worker's event clock is the latest event of the partitions it held, so the sliding
  windows of the two may end a few minutes apart);
- the second worker leaves; the first recovers every partition from the changelog and
  its gauges equal the oracle on every series of every window, open cases too: the
  durable truth holds no stale record;
- every valid event is stored, once per store (each worker has its own embedded
  ClickHouse here; together they hold each valid event id, nothing else).

About three minutes; ``scripts/soak-loop.sh N`` runs it N times.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.access import WorkerRunner
from pipeline.webguard import sql_token
from pipeline.config import Settings
from pipeline.contract.events import format_time, parse_time
from pipeline.feed.replay import replay_file
from pipeline.feed.scenario import build_scenario
from pipeline.infra.manager import running_pids, up
from pipeline.kafka_clients import kafka_python_options, local_brokers, managed_address
from tests.integration.ownkafka import own_kafka_settings, running_kafka
from tests.integration.test_indicators_e2e import WINDOWS, _nonzero, _open_cases, _streaming
from tests.integration.workerproc import WorkerProcess, isolated_settings
from tests.oracle import expected_indicators, expected_open_cases

# not in `make test` (the Makefile's `-m "not soak"`): on the merged tree of stop 19 it failed 2 of 2
# runs (docs/internals.md); `make soak` / scripts/soak-loop.sh N run it
pytestmark = [pytest.mark.integration, pytest.mark.soak]

CASES = 1000
RATE = 50.0  # messages/s: the replay runs through every fault
SESSION_S = 6.0  # the group session (the broker's minimum): a pause of PAUSE_S is far past it
PAUSE_S = 20.0
CALENDAR = ("mtd", "qtd", "ytd")
EVENTS_PER_CASE = 4.6  # of the scenario (messages per dossier, with duplicates and malformed ones)


@dataclass(frozen=True)
class Soak:
    """The soak's size and faults. Default: the fixed seven faults below (about three
    minutes). ``TTHC_SOAK_SEED=N``: a schedule drawn from N instead, as the issue's
    operator's bad day went: ``TTHC_SOAK_FAULTS`` faults (12) among whole-worker pauses,
    Faust-process pauses (``TTHC_SOAK_PAUSE`` seconds, "20-40"), SIGKILLs and broker kills,
    ``TTHC_SOAK_RATE`` messages/s (100), a ``TTHC_SOAK_SESSION`` s session (15)."""

    seed: int | None
    faults: int
    rate: float
    session_s: float
    pause_s: tuple[float, float]

    @classmethod
    def from_env(cls) -> "Soak":
        seed = os.environ.get("TTHC_SOAK_SEED")
        if not seed:
            return cls(None, 7, RATE, SESSION_S, (PAUSE_S, PAUSE_S))
        low, _, high = os.environ.get("TTHC_SOAK_PAUSE", "20-40").partition("-")
        return cls(int(seed), int(os.environ.get("TTHC_SOAK_FAULTS", "12")),
                   float(os.environ.get("TTHC_SOAK_RATE", "100")),
                   float(os.environ.get("TTHC_SOAK_SESSION", "15")), (float(low), float(high or low)))

    def cases(self) -> int:
        if self.seed is None:
            return CASES
        # enough messages to flow through every fault (a pause, its gap and a restart each)
        seconds = 10 + self.faults * (sum(self.pause_s) / 2 + 10)
        return max(CASES, int(seconds * self.rate / EVENTS_PER_CASE))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Settings]:
    yield from running_kafka(own_kafka_settings("soak3", 40, kafka_brokers=3))


def _pids(worker: WorkerProcess, whole: bool) -> list[int]:
    """The worker's Faust process, and with ``whole`` its engine process too."""
    pid = worker.process.pid
    if not whole:
        return [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def _pause(worker: WorkerProcess, whole: bool, seconds: float) -> None:
    pids = _pids(worker, whole)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def _summed(workers: list[WorkerProcess]) -> dict:
    total: Counter = Counter()
    for worker in workers:
        for key, (numerator, denominator) in _streaming(worker).items():
            total[key, 0] += numerator
            total[key, 1] += denominator
    keys = {key for key, _ in total}
    return {key: (total[key, 0], total[key, 1]) for key in keys}


def _calendar(figures: dict) -> dict:
    return {key: value for key, value in _nonzero(figures).items() if key[3] in CALENDAR}


def _diagnosis(worker: WorkerProcess) -> tuple:
    ytd = [v for k, v in _streaming(worker).items() if k[0] == "on_time" and k[3] == "ytd"]
    health = worker.health()
    keys = ("status", "partitions", "fenced", "processed", "pending", "rebuilds", "membership_confirmed",
            "last_heartbeat_seconds", "problems")
    return (sum(n for n, _ in ytd), sum(d for _, d in ytd)), {k: health.get(k) for k in keys}


def _stored(worker: WorkerProcess) -> tuple[int, set[str]]:
    _, rows = WorkerRunner(worker.settings.web_url, sql_token(worker.settings)).query("SELECT event_id FROM case_events FINAL")
    ids = [row[0] for row in rows]
    return len(ids), set(ids)


def _kill_busiest_broker(cluster: Settings, settings: Settings) -> str:
    from kafka import KafkaAdminClient

    with KafkaAdminClient(**kafka_python_options(settings)) as admin:
        topics = admin.describe_topics([settings.topic, f"{settings.app_id}-cases-changelog"])
    leaders = Counter(p["leader_id"] for topic in topics for p in topic["partitions"])
    victim = leaders.most_common(1)[0][0]
    name = "kafka" if victim == 1 else f"kafka-{victim}"
    os.kill(running_pids(cluster)[name], signal.SIGKILL)
    return name


def _fixed_faults(cluster: Settings, base: Settings, a: WorkerProcess, b: WorkerProcess, faults: list[str]) -> None:
    time.sleep(5)
    _pause(a, whole=True, seconds=PAUSE_S)  # both processes: B takes every partition
    faults.append("A paused (both processes)")
    time.sleep(3)
    assert b.stop(signal.SIGKILL) == -signal.SIGKILL
    b.start(wait_healthy=False)
    faults.append("B killed and restarted")
    time.sleep(5)
    _pause(b, whole=False, seconds=PAUSE_S)  # the Faust process only: its engine goes on
    faults.append("B paused (Faust process)")
    time.sleep(3)
    broker = _kill_busiest_broker(cluster, base)
    faults.append(f"broker {broker} killed")
    time.sleep(5)
    restart = threading.Thread(target=up, args=(cluster,), kwargs={"kafka_only": True}, daemon=True)
    restart.start()  # the broker comes back while A is paused
    _pause(a, whole=False, seconds=PAUSE_S)
    faults.append(f"broker {broker} restarted; A paused (Faust process)")
    restart.join(timeout=120)
    assert all(pid for name, pid in running_pids(cluster).items() if name.startswith("kafka"))
    assert a.stop(signal.SIGKILL) == -signal.SIGKILL
    a.start(wait_healthy=False)
    faults.append("A killed and restarted")


def _drawn_faults(cluster: Settings, base: Settings, workers: dict[str, WorkerProcess], faults: list[str],
                  soak: Soak) -> None:
    """``soak.faults`` faults drawn from ``soak.seed``: a pause of a whole worker or of its
    Faust process (``soak.pause_s``), a SIGKILL and restart, a broker killed and restarted
    (during the next fault) — one at a time, a few seconds apart, at most one broker down."""
    rng = random.Random(soak.seed)
    restart: threading.Thread | None = None
    for _ in range(soak.faults):
        time.sleep(rng.uniform(3, 10))
        name = rng.choice(sorted(workers))
        worker = workers[name]
        kind = rng.choices(["pause", "pause-faust", "kill", "broker"], weights=[3, 3, 2, 1])[0]
        if kind == "broker" and restart is not None:
            kind = "kill"
        if kind.startswith("pause"):
            seconds = round(rng.uniform(*soak.pause_s), 1)
            _pause(worker, whole=kind == "pause", seconds=seconds)
            faults.append(f"{name} paused {seconds:g}s ({'both processes' if kind == 'pause' else 'Faust process'})")
        elif kind == "kill":
            assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
            worker.start(wait_healthy=False)
            faults.append(f"{name} killed and restarted")
        else:
            broker = _kill_busiest_broker(cluster, base)
            time.sleep(rng.uniform(5, 15))
            restart = threading.Thread(target=up, args=(cluster,), kwargs={"kafka_only": True}, daemon=True)
            restart.start()  # comes back during the next fault
            faults.append(f"broker {broker} killed and restarted")
        if restart is not None and not restart.is_alive():
            restart.join()
            assert all(pid for n, pid in running_pids(cluster).items() if n.startswith("kafka"))
            restart = None
    if restart is not None:
        restart.join(timeout=120)
        assert all(pid for n, pid in running_pids(cluster).items() if n.startswith("kafka"))


def test_two_workers_paused_killed_and_a_broker_killed_lose_and_double_nothing(cluster, tmp_path):
    soak = Soak.from_env()
    scenario = build_scenario(seed=37 if soak.seed is None else soak.seed, cases=soak.cases())
    total = len(scenario.lines)
    base = isolated_settings(cluster, "soak", clock="event", batch_size=200, flush_interval=0.3,
                             session_timeout=soak.session_s)
    # every broker, as production lists them: a worker restarted while broker 1 is down still starts
    brokers = local_brokers(cluster, managed_address(cluster.kafka_bootstrap))
    base = replace(base, kafka_bootstrap=",".join(broker.address for broker in brokers))
    settings_a = replace(base, data_dir=base.data_dir / "a")
    settings_b = replace(base, data_dir=base.data_dir / "b", web_port=base.web_port + 1)
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(scenario.lines) + b"\n")
    at = format_time(max(parse_time(e["occurred_at"]) for e in scenario.valid_events))
    oracle = _nonzero(expected_indicators(scenario.valid_events, at=at, windows=WINDOWS))
    expected_ids = {event["event_id"] for event in scenario.valid_events}

    failures: list[BaseException] = []

    def send() -> None:
        try:
            replay_file(base, path, rate=soak.rate, progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    a = WorkerProcess(settings_a).start()
    b = WorkerProcess(settings_b).start()
    sender = threading.Thread(target=send, daemon=True)
    faults: list[str] = []
    started = time.monotonic()
    try:
        sender.start()
        if soak.seed is None:
            _fixed_faults(cluster, base, a, b, faults)
        else:
            _drawn_faults(cluster, base, {"A": a, "B": b}, faults, soak)
        sender.join(timeout=600)
        assert not sender.is_alive(), "replay did not finish"
        assert not failures, f"replay failed: {failures[0]!r}"
        replayed = time.monotonic()
        print(f"\n{total} messages replayed at {soak.rate:.0f}/s in {replayed - started:.0f}s through: {'; '.join(faults)}")

        for worker in (a, b):
            worker.wait_for(lambda w=worker: w.health().get("status") == "ok", 120, "worker healthy")
        try:
            a.wait_for(lambda: _calendar(_summed([a, b])) == _calendar(oracle), 150,
                       "the gauges summed over both workers to equal the oracle")
        except AssertionError:
            summed, wanted = _calendar(_summed([a, b])), _calendar(oracle)
            wrong = sorted(k for k in wanted.keys() | summed.keys() if summed.get(k) != wanted.get(k))
            ytd = [k for k in wanted if k[3] == "ytd"]
            on_time = [tuple(sum(f.get(k, (0, 0))[i] for k in ytd if k[0] == "on_time") for i in (0, 1))
                       for f in (summed, wanted)]
            raise AssertionError(f"summed gauges differ from the oracle on {len(wrong)} of {len(wanted)} calendar "
                                 f"series (ytd series: {sum(1 for k in ytd if summed.get(k) != wanted[k])} of "
                                 f"{len(ytd)}); ytd on_time {on_time[0]} instead of {on_time[1]}; "
                                 f"first: {[(k, summed.get(k), wanted.get(k)) for k in wrong[:3]]}; "
                                 f"per worker (ytd on_time, /healthz): {[_diagnosis(w) for w in (a, b)]}") from None
        assert not a.health().get("fenced") and not b.health().get("fenced")
        for worker in (a, b):
            worker.wait_for(lambda w=worker: w.health().get("pending") == 0, 60, "nothing pending")
        counts = [_stored(worker) for worker in (a, b)]
        for count, ids in counts:
            assert count == len(ids)  # no event twice in one store
        assert counts[0][1] | counts[1][1] == expected_ids  # every valid event, nothing else

        assert b.stop() == 0  # leaves the group: A recovers every partition from the changelog
        a.wait_for(lambda: a.health().get("partitions") == list(range(base.partitions)), 120, "all partitions on A")
        a.wait_for(lambda: _nonzero(_streaming(a)) == oracle, 120, "A's gauges to equal the oracle on every series")
        expected_open = {u: c for u, c in expected_open_cases(scenario.valid_events, at=at).items() if any(c)}
        assert _open_cases(a) == expected_open
        print(f"soak: exact after {time.monotonic() - started:.0f}s; stored {counts[0][0]} + {counts[1][0]} rows")
    finally:
        for worker in (a, b):
            if worker.process is not None:
                for pid in _pids(worker, whole=True):
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except OSError:
                        pass
            worker.stop(signal.SIGKILL)
