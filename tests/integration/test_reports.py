"""The period report (``python -m pipeline report``) on a replayed year of the province.

A year of 2025 is simulated (``simulate --history``, 1 % of the province's volume) and its
facts are stored as the worker stores them (``case_events`` and each case's ``cases``
row, ``pipeline.feed.sample_report.load_into``) in an embedded ClickHouse of the test's own.
Then the real commands run as subprocesses, as a person runs them:

- the report's indicator table (CSV) equals ``python -m pipeline indicators`` with the
  period's calendar window at the period's last microsecond, for a month, a quarter and
  the year: every unit and the province, every indicator;
- the late dossiers equal an independent computation over the raw JSONL events, and per
  unit the finished-late ones equal ``on_time``'s denominator − numerator;
- the list of late departments and officials (section VI, II.8) equals an independent
  computation over the raw ``step`` events: counts, share and worst working days late;
  a month without steps says so;
- the HTML opens in headless Chromium without console errors (the detector is shown to
  catch a page with an error), and the PDF has pages that are not blank, the first with
  the Vietnamese title;
- the committed sample (``docs/sample-report``) is what its command produces, and it names
  late officials and departments.

Chromium, pdftoppm and pdftotext are required: the tests fail (not skip) without them.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config import load_settings
from pipeline.feed.simulate import write_history
from pipeline.reports.period import LOCAL_TZ, parse_period
from pipeline.reports.render import vn_percent
from pipeline.feed.sample_report import SAMPLE_DIR, build_sample
from pipeline.store.units import load_units
from tests.integration.workerproc import ROOT
from tests.steps_oracle import late_by_official
from tests.oracle import earliest, finish_of, of_type, paused_time, to_time, when
from tests.tools import required_tool

PERIODS = ("2025-06", "2025-Q2", "2025")
SCALE = 0.01
SEED = 11


_tool = required_tool


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    settings = load_settings(overrides={"data_dir": str(base / "data")})
    history = base / "history.jsonl"
    write_history(settings, 2025, str(history), scale=SCALE, seed=SEED, progress=False)
    code = (
        "import sys; from pathlib import Path; from pipeline.feed.sample_report import load_into; "
        "f = load_into(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])); print(f.events, f.cases, f.last_us)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(settings.data_dir), str(history), str(settings.units_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    ).stdout.split()
    events = [json.loads(line) for line in history.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert int(out[0]) == len(events) > 5000
    return {"settings": settings, "events": events, "last_us": int(out[2]), "base": base}


def _env(settings) -> dict:
    import os

    env = dict(os.environ)
    env["TTHC_DATA_DIR"] = str(settings.data_dir)
    return env


def _cli(settings, *args: str, **env) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=ROOT, env={**_env(settings), **env},
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"pipeline {' '.join(args)}: {result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def reports(scenario):
    settings = scenario["settings"]
    out = {}
    for code in PERIODS:
        directory = scenario["base"] / f"out-{code}"
        _cli(settings, "report", "--period", code, "--out", str(directory))
        out[code] = directory
    return out


def _read_csv(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), f"{path.name}: no UTF-8 BOM"
    return list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))


def _iso_end(code: str) -> str:
    period = parse_period(code)
    return datetime.fromtimestamp(period.end_us / 1e6, tz=LOCAL_TZ).isoformat(timespec="microseconds")


@pytest.mark.parametrize("code", PERIODS)
def test_figures_equal_the_indicators_command(scenario, reports, code):
    period = parse_period(code)
    batch = json.loads(
        _cli(scenario["settings"], "indicators", "--window", period.window, "--at", _iso_end(code),
             "--format", "json").stdout
    )
    expected = {
        (r["unit"], r["indicator"]): (r["numerator"], r["denominator"])
        for r in batch if r["sector"] == "all" and r["denominator"] > 0
    }
    rows = _read_csv(reports[code] / f"bao-cao-{code}-chi-so.csv")
    got = {(r["ma_don_vi"], r["ma_chi_so"]): (int(r["dat"]), int(r["tong"])) for r in rows}
    assert got == expected
    assert ("all", "on_time_766") in got and len({u for u, _ in got}) > 20


def _independent_late(events: list[dict], code: str, last_us: int, at_us: int | None = None) -> dict[str, tuple[str, bool]]:
    """case_id -> (unit, finished in the period?) from the raw events (see the report's rule)."""
    period = parse_period(code)
    start = datetime.fromtimestamp(period.start_us / 1e6).astimezone()
    end = datetime.fromtimestamp((period.end_us if at_us is None else at_us) / 1e6).astimezone()
    last = datetime.fromtimestamp(last_us / 1e6).astimezone()
    by_case: dict[str, list[dict]] = {}
    for e in events:
        by_case.setdefault(e["case_id"], []).append(e)
    late = {}
    for case_id, evs in by_case.items():
        received = earliest(of_type(evs, "received"))
        if received is None or of_type(evs, "rejected") or when(received) > end:
            continue
        fin = finish_of(evs)
        finish = when(fin) if fin is not None else None
        effective_due = to_time(received["due_at"]) + paused_time(evs, finish, last)
        if finish is not None and start <= finish <= end:
            requests = len([e for e in of_type(evs, "supplement_requested") if when(e) <= finish])
            if not (finish <= effective_due and requests <= 1):
                late[case_id] = (received["unit_id"], True)
        elif (finish is None or finish > end) and effective_due < end:
            late[case_id] = (received["unit_id"], False)
    return late


@pytest.mark.parametrize("code", PERIODS)
def test_late_list_equals_an_independent_computation(scenario, reports, code):
    rows = _read_csv(reports[code] / f"bao-cao-{code}-ho-so-tre-han.csv")
    got = {r["ma_ho_so"]: (r["ma_don_vi"], r["ngay_giai_quyet"] != "Đang giải quyết") for r in rows}
    expected = _independent_late(scenario["events"], code, scenario["last_us"])
    assert got == expected
    assert any(f for _u, f in got.values()) and any(not f for _u, f in got.values())
    for r in rows:
        assert int(r["so_ngay_lam_viec_tre"]) >= 0 and r["phieu_xin_loi"] in ("Có", "Gửi muộn", "Chưa")
        assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", r["han_thuc_te"])
    # per unit, the finished-late dossiers are on_time's denominator minus numerator
    chi_so = _read_csv(reports[code] / f"bao-cao-{code}-chi-so.csv")
    missed = {r["ma_don_vi"]: int(r["tong"]) - int(r["dat"]) for r in chi_so if r["ma_chi_so"] == "on_time"}
    finished_late = Counter(u for u, finished in got.values() if finished)
    assert {u: n for u, n in missed.items() if n and u != "all"} == dict(finished_late)
    assert missed["all"] == sum(finished_late.values())


@pytest.mark.parametrize("code", PERIODS)
def test_late_officials_and_departments_equal_an_independent_computation(scenario, reports, code):
    period = parse_period(code)
    end = datetime.fromtimestamp(period.end_us / 1e6, tz=LOCAL_TZ)
    expected = late_by_official(scenario["events"], datetime.fromtimestamp(period.start_us / 1e6, tz=LOCAL_TZ),
                                end, end)
    assert expected, "the scenario has late steps"
    rows = _read_csv(reports[code] / f"bao-cao-{code}-can-bo-cham-muon.csv")
    got = {(r["ma_don_vi"], r["phong_ban"], r["can_bo"]):
           (int(r["so_buoc_xu_ly"]), int(r["tre_da_xong"]), int(r["qua_han_dang_xu_ly"]),
            int(r["tre_nhieu_nhat_ngay_lam_viec"])) for r in rows}
    assert got == expected
    for r in rows:
        assert r["can_bo"].startswith("Cán bộ Thử nghiệm ") and int(r["cham_muon"]) == (
            int(r["tre_da_xong"]) + int(r["qua_han_dang_xu_ly"]))
        assert r["ty_le_cham_muon"] == vn_percent(int(r["cham_muon"]) / int(r["so_buoc_xu_ly"]))
    departments: dict[tuple[str, str], list[int]] = {}
    for (unit, dept, _name), (handled, done, late_open, worst) in expected.items():
        row = departments.setdefault((unit, dept), [0, 0, 0, -1])
        row[1] += done
        row[2] += late_open
        row[3] = max(row[3], worst)
    rows = _read_csv(reports[code] / f"bao-cao-{code}-phong-ban-cham-muon.csv")
    got = {(r["ma_don_vi"], r["phong_ban"]): [int(r["tre_da_xong"]), int(r["qua_han_dang_xu_ly"]),
                                              int(r["tre_nhieu_nhat_ngay_lam_viec"])] for r in rows}
    assert got == {k: v[1:] for k, v in departments.items()}
    html = (reports[code] / f"bao-cao-{code}.html").read_text(encoding="utf-8")
    assert "VI. Danh sách cơ quan, cá nhân chậm muộn" in html and "Cán bộ chậm muộn" in html


def test_a_month_without_steps_says_so(scenario, tmp_path):
    _cli(scenario["settings"], "report", "--period", "2024-12", "--out", str(tmp_path), "--no-pdf")
    html = (tmp_path / "bao-cao-2024-12.html").read_text(encoding="utf-8")
    assert "Không có dữ liệu bước xử lý hồ sơ trong kỳ" in html
    assert len(_read_csv(tmp_path / "bao-cao-2024-12-can-bo-cham-muon.csv")) == 0


def _console_problems(html: Path, profile: Path) -> tuple[str, list[str]]:
    result = subprocess.run(
        [_tool("chromium"), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    problems = [ln for ln in result.stderr.splitlines() if "Uncaught" in ln or ":CONSOLE" in ln]
    return result.stdout, problems


def test_console_check_catches_a_page_error(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    _dom, problems = _console_problems(bad, tmp_path / "profile")
    assert problems, "the console check must see an uncaught error"


@pytest.mark.parametrize("code", PERIODS)
def test_html_opens_in_chromium_without_console_errors(reports, code, tmp_path):
    html = reports[code] / f"bao-cao-{code}.html"
    text = html.read_text(encoding="utf-8")
    # self-contained: no script, no stylesheet or image fetched from elsewhere
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:|//)""", text)
    dom, problems = _console_problems(html, tmp_path / "profile")
    assert problems == []
    assert f"Báo cáo kết quả giải quyết thủ tục hành chính — {parse_period(code).label_vi}" in dom
    assert dom.count("<svg") >= 2  # the two charts, inline
    for heading in ("Tổng hợp chỉ số", "Xếp hạng các đơn vị", "Hồ sơ trễ hạn", "Hồ sơ sắp trễ hạn",
                    "Danh sách cơ quan, cá nhân chậm muộn", "không đạt chỉ tiêu hai kỳ liên tiếp", "Biểu đồ"):
        assert heading in dom


@pytest.mark.parametrize("code", PERIODS)
def test_pdf_pages_are_rendered_and_not_blank(reports, code, tmp_path):
    pdf = reports[code] / f"bao-cao-{code}.pdf"
    info = subprocess.run([_tool("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 3  # summary and ranking, the tables, the charts
    assert "A4" in info or "595" in info
    first = subprocess.run([_tool("pdftotext"), "-f", "1", "-l", "1", str(pdf), "-"],
                           capture_output=True, text=True, check=True).stdout
    assert "Báo cáo kết quả giải quyết thủ tục hành chính" in first
    assert parse_period(code).label_vi in first
    subprocess.run([_tool("pdftoppm"), "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == pages
    for image in images:
        gray = Image.open(image).convert("L")
        width, height = gray.size
        data = gray.tobytes()
        # a row has ink when a pixel is darker than light grey: small text at 30 dpi is anti-aliased
        # grey (a page holding one short table read as "blank" at < 128); a blank page has no such row
        inked = sum(1 for y in range(height) if min(data[y * width:(y + 1) * width]) < 200)
        if inked <= height // 10:
            # a short section alone before a chart too tall for the rest of its page (the year's
            # "VII" before the charts): little ink, but its text is there, drawn
            number = int(re.search(r"-(\d+)\.png$", image.name).group(1))
            text = subprocess.run([_tool("pdftotext"), "-f", str(number), "-l", str(number), str(pdf), "-"],
                                  capture_output=True, text=True, check=True).stdout
            assert inked >= 5 and len("".join(text.split())) >= 40, (
                f"{image.name}: almost blank ({inked} of {height} rows with ink, text {text[:80]!r})")


@pytest.mark.parametrize("code", PERIODS)
def test_pdf_embeds_noto_sans_and_the_heading_reads_right(reports, code):
    """The heading "ỦY BAN NHÂN DÂN TỈNH …" is set in Noto Sans (fonts-noto-core), embedded:
    DejaVu Sans Bold capitals drew Ủ, Ỉ, Ắ as Ú, Í, Ă."""
    pdf = reports[code] / f"bao-cao-{code}.pdf"
    fonts = subprocess.run([_tool("pdffonts"), str(pdf)], capture_output=True, text=True, check=True).stdout
    embedded = [line.split()[0] for line in fonts.splitlines()[2:] if line.split() and " yes " in line]
    assert any(name.endswith("+NotoSans-Bold") for name in embedded), fonts
    assert any(name.endswith("+NotoSans-Regular") for name in embedded), fonts
    first = subprocess.run([_tool("pdftotext"), "-f", "1", "-l", "1", str(pdf), "-"],
                           capture_output=True, text=True, check=True).stdout
    assert "ỦY BAN NHÂN DÂN TỈNH" in first


@pytest.fixture(scope="module")
def score_pages(scenario):
    settings = scenario["settings"]
    out = {}
    for code in ("2025-06", "2025-06/bc"):
        directory = scenario["base"] / f"out-766-{code.replace('/', '-')}"
        _cli(settings, "report", "--period", code, "--kind", "766", "--out", str(directory))
        out[code] = directory
    return out


@pytest.mark.parametrize("code", ["2025-06", "2025-06/bc"])
def test_the_766_page_ranks_by_score_renders_and_embeds_noto_sans(scenario, score_pages, code, tmp_path):
    period = parse_period(code)
    stem = f"ket-qua-766-{period.code}"
    html = score_pages[code] / f"{stem}.html"
    dom, problems = _console_problems(html, tmp_path / "profile")
    assert problems == []
    title = "Kết quả đánh giá chỉ số 766 " + ("kỳ báo cáo tháng 06/2025" if period.regime else "tháng 06/2025")
    assert title in dom and period.kind_vi in dom
    assert "Không tính được" in dom and "Xếp hạng các đơn vị theo chỉ số 766" in dom
    rows = _read_csv(score_pages[code] / f"{stem}.csv")
    # never a zero for what dossier data cannot carry: those rows say so, with their maximum
    blind = [r for r in rows if r["diem"] == "Không tính được"]
    assert blind and all(int(r["diem_toi_da"]) > 0 and r["ty_le"] == "" for r in blind)
    assert {r["ma_chi_tieu"] for r in blind} >= {"1.1–1.3", "1.4", "4.4"}
    # the ranking is by the share of assessable points, descending
    shares = []
    for unit in dict.fromkeys(r["ma_don_vi"] for r in rows if r["hang"]):
        own = [r for r in rows if r["ma_don_vi"] == unit and r["diem"] not in ("Không tính được", "Không phát sinh")]
        earned = sum(float(r["diem"].replace(",", ".")) for r in own)
        shares.append(earned / sum(int(r["diem_toi_da"]) for r in own))
    assert len(shares) > 5
    # points are printed with one decimal: recomputed shares may differ by a rounding
    assert all(later <= earlier + 0.005 for earlier, later in zip(shares, shares[1:])), shares
    pdf = score_pages[code] / f"{stem}.pdf"
    fonts = subprocess.run([_tool("pdffonts"), str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "+NotoSans-Bold" in fonts


def test_a_reporting_regime_report_says_so_and_cuts_on_the_15th(scenario, tmp_path):
    settings = scenario["settings"]
    _cli(settings, "report", "--period", "2025-06/bc", "--out", str(tmp_path), "--no-pdf")
    html = (tmp_path / "bao-cao-2025-06-bc.html").read_text(encoding="utf-8")
    assert "Kỳ báo cáo: từ 15/05/2025 đến 14/06/2025" in html
    assert "Nghị định 09/2019/NĐ-CP" in html
    volume = _read_csv(tmp_path / "bao-cao-2025-06-bc-so-lieu-ho-so.csv")
    province = next(r for r in volume if r["ma_don_vi"] == "all" and r["linh_vuc"] == "")
    counts = {k: int(v) for k, v in province.items() if k not in ("ma_don_vi", "ten_don_vi", "linh_vuc",
                                                                     "ty_le_truoc_va_dung_han")}
    sys.path.insert(0, str(ROOT))
    from tests.oracle import expected_volume

    start = datetime(2025, 5, 15, tzinfo=LOCAL_TZ)
    end = datetime.fromtimestamp(parse_period("2025-06/bc").end_us / 1e6, tz=LOCAL_TZ)
    expected = expected_volume(scenario["events"], start.isoformat(), end.isoformat(timespec="microseconds"))
    assert counts == {c: sum(row[c] for row in expected.values()) for c in counts}


def test_committed_sample_is_what_its_command_produces(tmp_path):
    built = build_sample(tmp_path / "out", tmp_path / "work", pdf=False)
    produced = [f for files in built for f in (files.html, *files.csv.values())]
    for path in produced:
        committed = SAMPLE_DIR / path.name
        assert committed.exists(), f"{committed} missing: run python -m pipeline.feed.sample_report"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} differs from its command's output: run python -m pipeline.feed.sample_report"
        )
    for files in built:
        assert (SAMPLE_DIR / files.html.name.replace(".html", ".pdf")).exists()
    # the sample month names late officials and departments (Kế hoạch 11/KH-UBND, II.8)
    officials = _read_csv(SAMPLE_DIR / "bao-cao-2025-06-can-bo-cham-muon.csv")
    departments = _read_csv(SAMPLE_DIR / "bao-cao-2025-06-phong-ban-cham-muon.csv")
    assert len(officials) >= 10 and len(departments) >= 10
    assert all(r["can_bo"].startswith("Cán bộ Thử nghiệm ") and int(r["cham_muon"]) > 0 for r in officials)
    assert {r["phong_ban"] for r in departments} >= {"Phòng Tư pháp - Hộ tịch"}
    html = (SAMPLE_DIR / "bao-cao-2025-06.html").read_text(encoding="utf-8")
    section = html[html.index("VI. Danh sách cơ quan, cá nhân chậm muộn"):html.index("VII. Đơn vị không đạt")]
    assert officials[0]["can_bo"] in section and departments[0]["phong_ban"] in section
    assert "Phòng ban chậm muộn" in section and "Cán bộ chậm muộn" in section


def test_one_units_report(scenario, reports, tmp_path):
    code = "2025-Q2"
    late = _read_csv(reports[code] / f"bao-cao-{code}-ho-so-tre-han.csv")
    unit = Counter(r["ma_don_vi"] for r in late).most_common(1)[0][0]
    _cli(scenario["settings"], "report", "--period", code, "--unit", unit, "--out", str(tmp_path), "--no-pdf")
    assert not list(tmp_path.glob("*.pdf"))
    own = _read_csv(tmp_path / f"bao-cao-{code}-{unit}-ho-so-tre-han.csv")
    assert own == [r for r in late if r["ma_don_vi"] == unit]
    figures = _read_csv(tmp_path / f"bao-cao-{code}-{unit}-chi-so.csv")
    everyone = _read_csv(reports[code] / f"bao-cao-{code}-chi-so.csv")
    assert figures == [r for r in everyone if r["ma_don_vi"] in (unit, "all")]
    ranking = _read_csv(tmp_path / f"bao-cao-{code}-{unit}-xep-hang.csv")
    assert [r["ma_don_vi"] for r in ranking] == [unit]
    officials = _read_csv(reports[code] / f"bao-cao-{code}-can-bo-cham-muon.csv")
    own = _read_csv(tmp_path / f"bao-cao-{code}-{unit}-can-bo-cham-muon.csv")
    assert own == [r for r in officials if r["ma_don_vi"] == unit]


def test_a_running_period_is_reported_as_of_the_clock(scenario, tmp_path):
    """With the event clock at the scenario's last event (31/12/2025, inside December), the
    December report is the month so far: figures = ``indicators --window mtd --at T``."""
    settings, last_us = scenario["settings"], scenario["last_us"]
    assert parse_period("2025-12").start_us < last_us < parse_period("2025-12").end_us
    _cli(settings, "report", "--period", "2025-12", "--out", str(tmp_path), "--no-pdf", TTHC_CLOCK="event")
    at = datetime.fromtimestamp(last_us / 1e6, tz=LOCAL_TZ).isoformat(timespec="microseconds")
    batch = json.loads(_cli(settings, "indicators", "--window", "mtd", "--at", at, "--format", "json").stdout)
    expected = {(r["unit"], r["indicator"]): (r["numerator"], r["denominator"])
                for r in batch if r["sector"] == "all" and r["denominator"] > 0}
    rows = _read_csv(tmp_path / "bao-cao-2025-12-chi-so.csv")
    assert {(r["ma_don_vi"], r["ma_chi_so"]): (int(r["dat"]), int(r["tong"])) for r in rows} == expected
    late = _read_csv(tmp_path / "bao-cao-2025-12-ho-so-tre-han.csv")
    got = {r["ma_ho_so"]: (r["ma_don_vi"], r["ngay_giai_quyet"] != "Đang giải quyết") for r in late}
    assert got == _independent_late(scenario["events"], "2025-12", last_us, at_us=last_us)
    html = (tmp_path / "bao-cao-2025-12.html").read_text(encoding="utf-8")
    assert "Kỳ báo cáo chưa kết thúc" in html


def test_a_year_on_todays_structure_adds_ceased_units_to_their_single_successor(scenario, reports, tmp_path):
    """``--structure today``: the year's figures of a department that ended on 30 June are
    added to the one department that took over its work; the province is unchanged."""
    code = "2025"
    _cli(scenario["settings"], "report", "--period", code, "--structure", "today", "--out", str(tmp_path), "--no-pdf")
    period_rows = _read_csv(reports[code] / f"bao-cao-{code}-chi-so.csv")
    today_rows = _read_csv(tmp_path / f"bao-cao-{code}-chi-so.csv")
    before = {(r["ma_don_vi"], r["ma_chi_so"]): (int(r["dat"]), int(r["tong"])) for r in period_rows}
    after = {(r["ma_don_vi"], r["ma_chi_so"]): (int(r["dat"]), int(r["tong"])) for r in today_rows}
    registry = load_units(scenario["settings"].units_file)
    ceased = {u.unit_id for u in registry if u.valid_to is not None} & {u for u, _ in before}
    assert ceased, "the scenario has no unit that ceased during the year"
    assert not ceased & {u for u, _ in after if u.startswith("BG_SO_")}  # departments moved
    for indicator in {i for _, i in before}:
        total = lambda rows: tuple(map(sum, zip(*[v for (u, i), v in rows.items() if i == indicator and u != "all"])))
        assert total(after) == total(before)  # nothing lost or doubled by the mapping
        assert after.get(("all", indicator)) == before.get(("all", indicator))
    html = (tmp_path / f"bao-cao-{code}.html").read_text(encoding="utf-8")
    assert "cơ cấu đơn vị ngày" in html and "BG_SO_" in html
