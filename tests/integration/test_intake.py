"""The DVCQG intake against the real broker: sessions, every bad call's error_code, records
in Kafka only after error_code 0, and no citizen's personal data in Kafka or in the log.

Ports: the intake listens on TTHC_WEB_PORT + 4 (the test's ports derive from the
environment the integration conftest sets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import signal
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.infra.manager import up
from pipeline.feed.dvcqg import registries_for
from pipeline.kafka_clients import kafka_python_options
from pipeline.sources.dvcqg.records import RawRecord, scrub, split_call
from pipeline.sources.dvcqg.translator import Translator
from tests.integration.workerproc import WorkerProcess, isolated_settings, settings_env, sql_json

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "mat-khau-thu-nghiem-42"
PII = {
    "ChuHoSo": "Trần Thị Bảo Mật", "SoGiayToChuHoSo": "038190000777", "DinhDanhCHS": "CCCD-038190000777",
    "MaDoiTuong": "DT-BAO-MAT-1", "Email": "bao.mat@example.invalid", "Fax": "0204777777",
    "SoDienThoai": "0987000777", "DiaChiThuongTru": "Thôn Bảo Mật, xã Kín", "ThongTinKhac": "điều riêng tư",
    "TrichYeuHoSo": "Hồ sơ của bà Trần Thị Bảo Mật",
}
FILE_VALUES = ["giay-to-bao-mat.pdf", "files.example.invalid"]


@pytest.fixture(scope="module")
def kafka():
    settings = load_settings()
    up(settings, kafka_only=True)
    return settings


@pytest.fixture(scope="module")
def intake(kafka, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("intake")
    accounts = tmp / "accounts"
    accounts.write_text(f"# test\nigate {PASSWORD}\n", encoding="utf-8")
    topic = f"tthc.dvcqg-records.test-{uuid.uuid4().hex[:8]}"
    port = int(os.environ["TTHC_WEB_PORT"]) + 4
    env = {**os.environ, "TTHC_INTAKE_ACCOUNTS_FILE": str(accounts), "TTHC_INTAKE_PORT": str(port),
           "TTHC_DVCQG_TOPIC": topic, "TTHC_INTAKE_MAX_BYTES": "20000", "TTHC_INTAKE_SESSION_SECONDS": "600"}
    log = tmp / "intake.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "intake"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the intake did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
    yield {"url": url, "topic": topic, "log": log, "env": env, "proc": proc, "tmp": tmp}
    proc.terminate()
    proc.wait(timeout=20)


def post(url: str, body) -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def read_topic(settings, topic: str) -> list:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, **kafka_python_options(settings), auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000, group_id=None)
    try:
        return list(consumer)
    finally:
        consumer.close()


def dossier(code: str, **extra) -> dict:
    return {"MaHoSo": code, "MaTTHC": "1.001193", "TrangThaiHoSo": 2, "NgayTiepNhan": "20250602080000",
            "NgayHenTra": "20250602170000", **PII,
            "TaiLieuNop": [{"TenTepDinhKem": FILE_VALUES[0], "DuongDanTaiTep": f"https://{FILE_VALUES[1]}/a.pdf",
                            "DuocSoHoa": 1}], **extra}


def test_login_sessions_and_every_bad_call(intake):
    url = intake["url"]
    started = time.monotonic()
    assert post(url + "/dvcqg/login", {"username": "igate", "password": "wrong"})["error_code"] == -1
    second = post(url + "/dvcqg/login", {"username": "igate", "password": "wrong-again"})
    assert second["error_code"] == -1 and second["message"]
    assert time.monotonic() - started >= 0.75  # 0.25 s then 0.5 s: failed logins are slowed
    assert post(url + "/dvcqg/login", b"{")["error_code"] == -1
    session = post(url + "/dvcqg/login", {"username": "igate", "password": PASSWORD})
    assert session["error_code"] == 0 and len(session["session"]) >= 32
    token = session["session"]
    call = {"session": token, "madonvi": "000.00.09.H24", "service": "DongBoHoSoMC", "isUpdating": False}

    replies = {
        "malformed": post(url + "/dvcqg/", b'{"session": "' + token.encode() + b'", "data": ['),
        "no_session": post(url + "/dvcqg/", {**call, "session": "forged", "data": [dossier("HS-X")]}),
        "unknown_service": post(url + "/dvcqg/", {**call, "service": "XoaHoSoMC", "data": [dossier("HS-X")]}),
        "oversize": post(url + "/dvcqg/", {**call, "data": [dossier("HS-X", Pad="x" * 30000)]}),
        "not_a_list": post(url + "/dvcqg/", {**call, "data": "HS-X"}),
    }
    codes = {name: reply["error_code"] for name, reply in replies.items()}
    assert codes == {"malformed": 1, "no_session": 2, "unknown_service": 3, "oversize": 4, "not_a_list": 1}
    assert all(reply["message"] for reply in replies.values())
    assert "XoaHoSoMC" in replies["unknown_service"]["message"]

    partly = post(url + "/dvcqg/", {**call, "data": [dossier("HS-1"), {"TrangThaiHoSo": 2, **PII}, dossier("HS-2")]})
    assert partly["error_code"] == 5 and partly["received"] == 2
    assert partly["refused"] == [{"index": 1, "reason": "MaHoSo is missing"}]
    good = post(url + "/dvcqg/", {**call, "data": [dossier("HS-3", TrangThaiHoSo=4)]})
    assert good == {"error_code": 0, "message": "Đã nhận 1 bản ghi.", "received": 1}
    steps = post(url + "/dvcqg/", {**call, "service": "CapNhatTienDoHoSoMC", "data": [
        {"MaHoSo": "HS-3", "NguoiXuLy": "Cán bộ Thử nghiệm 07", "PhongBanXuLy": "Phòng Tư pháp",
         "NoiDungXuLy": f"Trả lời bà {PII['ChuHoSo']}", "NgayBatDau": "20250602080000"}]})
    assert steps["error_code"] == 0

    messages = read_topic(load_settings(), intake["topic"])
    assert sorted(m.key for m in messages) == [b"HS-1", b"HS-2", b"HS-3", b"HS-3"]  # only stored records
    everything = b"\n".join(m.value for m in messages).decode("utf-8")
    for value in list(PII.values()) + FILE_VALUES + [PASSWORD]:
        assert value not in everything, value
    assert "Cán bộ Thử nghiệm 07" in everything  # officials are kept
    log = intake["log"].read_text(encoding="utf-8", errors="replace")
    for value in list(PII.values()) + FILE_VALUES + [PASSWORD, token]:
        assert value not in log, value
    assert "records stored" in log


def test_file_mode(intake, tmp_path):
    env = {**intake["env"], "TTHC_DVCQG_TOPIC": intake["topic"] + "-file"}
    good = tmp_path / "good.jsonl"
    lines = [{"service": "DongBoHoSoMC", "madonvi": "000.00.09.H24", "data": [dossier(f"F-{i}")]} for i in range(3)]
    good.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pipeline", "intake", "--file", str(good)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 records of 3 lines" in done.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(lines[0], ensure_ascii=False) + "\n{oops\n"
                   + json.dumps({"service": "Nope", "data": []}) + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pipeline", "intake", "--file", str(bad)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "line 2: error_code 1" in done.stderr and "line 3: error_code 3" in done.stderr
    messages = read_topic(load_settings(), env["TTHC_DVCQG_TOPIC"])
    assert sorted(m.key for m in messages) == [b"F-0", b"F-0", b"F-1", b"F-2"]
    text = b"\n".join(m.value for m in messages).decode()
    assert not any(value in text or value in done.stderr for value in PII.values())


def _worker_env(name: str, tmp_path) -> tuple:
    """Settings of a worker of the test's own (topics, group, data dir) and their environment."""
    settings = replace(isolated_settings(load_settings(), name), intake_accounts_file=str(tmp_path / "none"))
    return settings, settings_env(settings)


def _wait_stored(worker: WorkerProcess, settings, count: int) -> None:
    worker.wait_for(
        lambda: int(sql_json(settings, "SELECT uniqExact(event_id) AS n FROM case_events")[0]["n"]) >= count,
        300, f"{count} contract events stored")


def test_simulated_history_through_file_mode_and_the_worker_exactly_once(intake, tmp_path):
    """A simulated history as DVCQG calls -> intake --file -> the worker's translation: the
    contract events the mapping implies, none missing; the file sent twice and a SIGKILL of
    the worker mid-way add only duplicates of the same event ids, each equal to its record."""
    from pipeline.config import Settings
    from pipeline.feed.simulate import write_history
    from pipeline.sources.dvcqg.batch import translate_batch

    calls = tmp_path / "calls.jsonl"
    write_history(Settings(), 2025, str(calls), scale=0.02, days=15, seed=11, progress=False, output_format="dvcqg")
    settings, env = _worker_env("intake-e2e", tmp_path)
    loaded = subprocess.run([sys.executable, "-m", "pipeline", "intake", "--file", str(calls)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    raw = read_topic(settings, settings.dvcqg_topic)
    by_partition: dict[int, list] = {}
    for m in raw:
        by_partition.setdefault(m.partition, []).append(m)
    expected: dict[str, dict] = {}
    translator, states = Translator(registries_for(settings)), {}
    for p in sorted(by_partition):
        for e in translate_batch(translator, [(m.key, m.value) for m in sorted(by_partition[p], key=lambda m: m.offset)],
                                 states).events:
            expected[e["event_id"]] = e
    assert len(expected) > 500 and {e["event_type"] for e in expected.values()} >= {"received", "step", "resolved"}

    # a worker killed mid-way, then restarted; the same calls sent again
    worker = WorkerProcess(settings).start()
    worker.wait_for(lambda: worker.counter("tthc_dvcqg_records_total") >= 50, 120, "50 raw records translated")
    worker.stop(signal.SIGKILL)
    worker = WorkerProcess(settings).start()
    try:
        again = subprocess.run([sys.executable, "-m", "pipeline", "intake", "--file", str(calls)], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0
        _wait_stored(worker, settings, len(expected))
        stored = sql_json(settings, "SELECT DISTINCT event_id FROM case_events")
    finally:
        worker.stop()

    assert {row["event_id"] for row in stored} == set(expected)  # none missing, none extra
    produced = read_topic(settings, settings.topic)
    ids = [json.loads(m.value)["event_id"] for m in produced]
    assert set(ids) == set(expected)
    assert all(json.loads(m.value) == expected[json.loads(m.value)["event_id"]] for m in produced)
    assert all(m.key == json.loads(m.value)["case_id"].encode() for m in produced)
    text = b"\n".join(m.value for m in produced).decode()
    assert "Công dân Thử nghiệm" not in text and "ketqua.example.invalid" not in text


def test_sigkill_loop_of_the_intake_loses_and_doubles_nothing(kafka, tmp_path):
    """A sender that retries until error_code 0, while the intake is SIGKILLed and restarted
    again and again: every call answered 0 is in Kafka, and after translation every
    dossier's events are there once (the resends are duplicates of the same ids)."""
    from pipeline.config import Settings
    from pipeline.feed.simulate import write_history

    calls = tmp_path / "calls.jsonl"
    write_history(Settings(), 2025, str(calls), scale=0.01, days=6, seed=3, progress=False, output_format="dvcqg")
    bodies = [json.loads(x) for x in calls.read_text(encoding="utf-8").splitlines()]
    accounts = tmp_path / "accounts"
    accounts.write_text(f"igate {PASSWORD}\n", encoding="utf-8")
    port = int(os.environ["TTHC_WEB_PORT"]) + 5
    settings, env = _worker_env("intake-kill", tmp_path)
    env = {**env, "TTHC_INTAKE_ACCOUNTS_FILE": str(accounts), "TTHC_INTAKE_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"

    def start():
        return subprocess.Popen([sys.executable, "-m", "pipeline", "intake"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    proc, kills, resends, session = start(), 0, 0, None
    acknowledged = []
    kill_every = max(1, len(bodies) // 8)
    try:
        for n, body in enumerate(bodies):
            if n and n % kill_every == 0:  # SIGKILL, at once, between or during calls, then restart
                proc.kill()
                proc.wait()
                kills += 1
                proc = start()
            while True:
                try:
                    if session is None:
                        reply = post(url + "/dvcqg/login", {"username": "igate", "password": PASSWORD})
                        session = reply.get("session")
                        continue
                    reply = post(url + "/dvcqg/", {**body, "session": session})
                except OSError:  # not listening yet, or killed mid-call: send again
                    resends += 1
                    time.sleep(0.2)
                    continue
                if reply["error_code"] == 2:  # a restart forgets the sessions: log in again
                    session = None
                    continue
                assert reply["error_code"] == 0, reply
                acknowledged.append(body)
                break
    finally:
        proc.kill()
        proc.wait()
    assert kills >= 7 and len(acknowledged) == len(bodies)
    raw = read_topic(settings, settings.dvcqg_topic)
    stored = {json.dumps(RawRecord.from_bytes(m.value).data, sort_keys=True, ensure_ascii=False) for m in raw}
    sent = {json.dumps(scrub(b["service"], b["data"][0]), sort_keys=True, ensure_ascii=False) for b in bodies}
    assert sent <= stored  # nothing acknowledged is lost
    translator, states, expected = Translator(registries_for(settings)), {}, set()
    for body in bodies:
        records, _ = split_call(body, arrived_us=0, account="x")
        expected |= {e["event_id"] for e in translate_batch_records(translator, records, states)}
    worker = WorkerProcess(settings).start()  # the translation, in the worker
    try:
        _wait_stored(worker, settings, len(expected))
        stored_ids = sql_json(settings, "SELECT DISTINCT event_id FROM case_events")
    finally:
        worker.stop()
    assert {row["event_id"] for row in stored_ids} == expected  # nothing lost, nothing extra
    print(f"intake SIGKILL loop: {kills} kills, {resends} resends, {len(bodies)} calls")


def translate_batch_records(translator, records, states):
    out = []
    for r in records:
        key = str(r.data.get("MaHoSo") or "")
        result = translator.apply(r, states.get(key) if key else None)
        if key and result.state is not None:
            states[key] = result.state
        out += result.events
    return out


def test_live_simulation_sends_dvcqg_calls_to_the_intake(intake):
    env = intake["env"]
    done = subprocess.run([sys.executable, "-m", "pipeline", "simulate", "--format", "dvcqg", "--rate", "20",
                           "--duration", "3"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    sent = int(done.stderr.split("simulate: sent ")[1].split(" ")[0])
    messages = [m for m in read_topic(load_settings(), intake["topic"]) if m.key.startswith(b"HS-SIM-")]
    assert sent > 10 and len(messages) == sent  # one record per call, every call acknowledged
    assert not any(b"C\xc3\xb4ng d\xc3\xa2n Th\xe1\xbb\xad nghi\xe1\xbb\x87m" in m.value for m in messages)
