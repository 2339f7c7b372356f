"""Writing a report: HTML (Jinja2), PDF (headless Chromium), CSV (UTF-8 with BOM).

Files written into the output directory, ``<stem>`` = ``bao-cao-<period>[-<unit>]``:

- ``<stem>.html`` — self-contained (inline CSS and SVG charts, no script, no link out);
- ``<stem>.pdf`` — the HTML printed by ``chromium --headless --print-to-pdf`` (A4);
- ``<stem>-chi-so.csv``, ``-xep-hang.csv``, ``-so-lieu-ho-so.csv``, ``-ho-so-tre-han.csv``,
  ``-ho-so-sap-tre.csv``, ``-phong-ban-cham-muon.csv``, ``-can-bo-cham-muon.csv``,
  ``-tre-lap-lai.csv``, ``-xu-huong.csv`` — the tables, UTF-8 with BOM.

Every number a reader sees is in Vietnamese format (``1.234``, ``98,8%``), in the CSV too.
"""

from __future__ import annotations

import csv
import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipeline.config import UserError
from pipeline.core.indicators import INDICATORS, NAMES_VI
from pipeline.reports.charts import distribution_svg, trend_svg
from pipeline.core.score766 import ITEMS
from pipeline.reports.data import IndicatorFigure, LateHandler, ReportData, missed_target
from pipeline.store.volume import ALL as VOLUME_ALL, COLUMNS as VOLUME_COLUMNS, VolumeRow
from pipeline.reports.period import LOCAL_TZ
from pipeline.store.sectors import load_sectors
from pipeline.safetext import csv_row

__all__ = ["ReportFiles", "write_report", "vn_number", "vn_percent", "vn_date", "print_pdf", "CHROMIUM"]

CHROMIUM = "chromium"
_OPS = {">": ">", ">=": "≥", "=": "="}
_DASH = "—"


def vn_number(value: float | int | None, decimals: int = 0) -> str:
    """Vietnamese separators: ``1234.5`` → ``1.234,5``."""
    if value is None:
        return _DASH
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def vn_percent(ratio: float | None) -> str:
    """A ratio as a percentage with one decimal: ``0.9567`` → ``95,7%``; ``1.0`` → ``100%``."""
    if ratio is None:
        return _DASH
    text = vn_number(ratio * 100, 1)
    if text.endswith(",0"):
        text = text[:-2]
    return text + "%"


def vn_date(us: int | None) -> str:
    if us is None:
        return _DASH
    return datetime.fromtimestamp(us / 1_000_000, tz=LOCAL_TZ).strftime("%d/%m/%Y")


def vn_datetime(us: int | None) -> str:
    if us is None:
        return _DASH
    return datetime.fromtimestamp(us / 1_000_000, tz=LOCAL_TZ).strftime("%d/%m/%Y %H:%M")


def report_target_text(f: IndicatorFigure | None, op: str | None = None, value: float | None = None) -> str:
    if f is not None:
        op, value = f.op, f.target
    return f"{_OPS.get(op, op)} {vn_percent(value)}"


def verdict(f: IndicatorFigure | None, min_volume: int) -> str:
    """``Đạt``; ``Không đạt`` (fails with ≥ min_volume outcomes, or any miss of a ``= 100%``
    target whatever the volume); ``Chưa đủ N lượt`` (fails another target with fewer)."""
    if f is None or f.meets_target is None:
        return _DASH
    if f.meets_target:
        return "Đạt"
    if missed_target(f):
        return "Không đạt"
    return f"Chưa đủ {min_volume} lượt"


class VolumeTable(NamedTuple):
    header: str  # the first column's title
    items: list[tuple[str, VolumeRow]]  # (row name, counts)


def volume_tables(data: ReportData) -> list[tuple[str, VolumeTable]]:
    """The volume table by unit (with the province last) and by sector."""
    units = sorted({u for u, s in data.volume if s == VOLUME_ALL and u != VOLUME_ALL}, key=lambda u: (data.name(u), u))
    by_unit = [(f"{data.name(u)} ({u})", data.volume[(u, VOLUME_ALL)]) for u in units]
    if (VOLUME_ALL, VOLUME_ALL) in data.volume and not data.unit_filter:
        by_unit.append(("Toàn tỉnh", data.volume[(VOLUME_ALL, VOLUME_ALL)]))
    sectors = sorted({s for u, s in data.volume if u == VOLUME_ALL and s != VOLUME_ALL})
    by_sector = [(sector_names().get(s, s), data.volume[(VOLUME_ALL, s)]) for s in sectors]
    return [
        ("1. Theo đơn vị", VolumeTable("Đơn vị", by_unit)),
        ("2. Theo lĩnh vực", VolumeTable("Lĩnh vực", by_sector)),
    ]


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pdf: Path | None
    csv: dict[str, Path]


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("pipeline.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=vn_number, percent=vn_percent, vdate=vn_date, vdatetime=vn_datetime,
    )
    return env


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(csv_row(header))
        writer.writerows(csv_row(row) for row in rows)  # formula-looking text neutralised (pipeline/safetext.py)
    return path


@functools.lru_cache(maxsize=1)
def sector_names() -> dict[str, str]:
    return {s.sector: s.name_vi for s in load_sectors()}


def _late_rows(data: ReportData, cases) -> list[list[Any]]:
    sectors = sector_names()
    return [
        [
            c.unit, data.name(c.unit), c.case_id, c.procedure_code, sectors.get(c.sector, c.sector), vn_date(c.due_us),
            vn_date(c.effective_due_us),
            vn_date(c.finished_us) if c.finished_us is not None else "Đang giải quyết",
            c.working_days_late, apology_text(c),
        ]
        for c in cases
    ]


def apology_text(c) -> str:
    """``Có`` (in time by apology_coverage v1.2), ``Gửi muộn`` (sent, after the deadline), ``Chưa``."""
    if c.apology_in_time:
        return "Có"
    return "Gửi muộn" if c.has_apology else "Chưa"


def _late_handler_rows(data: ReportData, handlers: list[LateHandler], *, officials: bool) -> list[list[Any]]:
    """The late list's CSV rows (the HTML table's, with the unit's code)."""
    rows = []
    for h in handlers:
        x = h.steps
        who = [x.handler_name, x.handler_title] if officials else []
        rows.append([x.unit, data.name(x.unit), x.department or _NO_DEPARTMENT, *who, x.handled, x.late_done,
                     x.open_overdue, x.late, vn_percent(h.share), "" if h.worst_days is None else h.worst_days])
    return rows


_NO_DEPARTMENT = "(không ghi phòng ban)"
LATE_HANDLER_COLUMNS = ["so_buoc_xu_ly", "tre_da_xong", "qua_han_dang_xu_ly", "cham_muon", "ty_le_cham_muon",
                        "tre_nhieu_nhat_ngay_lam_viec"]


def _counts(data: ReportData) -> list[dict[str, Any]]:
    per: dict[str, dict[str, int]] = {}
    for c in data.late:
        row = per.setdefault(c.unit, {"finished": 0, "open": 0, "apology": 0, "late_apology": 0, "no_apology": 0})
        row["finished" if c.finished_us is not None else "open"] += 1
        row["apology" if c.apology_in_time else "late_apology" if c.has_apology else "no_apology"] += 1
    return [
        {"unit": u, "name": data.name(u), **v, "total": v["finished"] + v["open"]}
        for u, v in sorted(per.items(), key=lambda kv: (-(kv[1]["finished"] + kv[1]["open"]), kv[0]))
    ]


def _context(data: ReportData, targets: Any) -> dict[str, Any]:
    scope = data.scope()
    province = [data.figures.get((scope, i)) for i in INDICATORS]
    target_of = {i: targets.target_for(i, "all") for i in INDICATORS}
    months = data.period.months()
    # a year: T1..T12 (tháng), short enough for twelve ticks; otherwise mm/yyyy
    labels = [f"T{m.index}" if len(months) > 3 else m.first_day.strftime("%m/%Y") for m in months]
    series = {i: [p.figure.ratio if p.figure else None for p in data.trend[i]] for i in INDICATORS}
    ratios: dict[str, list[float]] = {}
    meets: dict[str, list[bool | None]] = {}
    for i in INDICATORS:
        fs = [data.figures[(u, i)] for u in data.units if (u, i) in data.figures]
        ratios[i] = [f.ratio for f in fs if f.ratio is not None]
        meets[i] = [f.meets_target for f in fs if f.ratio is not None]
    target_values = {i: v for i, (_op, v) in target_of.items()}
    return {
        "data": data,
        "period": data.period,
        "indicators": INDICATORS,
        "names": NAMES_VI,
        "province": list(zip(INDICATORS, province)),
        "target_of": target_of,
        "report_target_text": report_target_text,
        "verdict": lambda f: verdict(f, data.min_volume),
        "counts": _counts(data),
        "trend_svg": trend_svg(labels, series, target_values),
        "distribution_svg": distribution_svg(ratios, target_values, meets),
        "scope_name": data.name(scope),
        "ops": _OPS,
        "sector_name": lambda code: sector_names().get(code, code),
        "apology_text": apology_text,
        "volume_tables": volume_tables(data),
        "not_computable_points": sum(i.max_points for i in ITEMS if i.indicator is None),
        "no_department": _NO_DEPARTMENT,
    }


def write_report(data: ReportData, targets: Any, out_dir: Path, *, pdf: bool = True) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bao-cao-{data.period.code}" + (f"-{data.unit_filter}" if data.unit_filter else "")
    html_path = out_dir / f"{stem}.html"
    html = _env().get_template("report.html.j2").render(**_context(data, targets))
    html_path.write_text(html, encoding="utf-8")

    csvs: dict[str, Path] = {}
    csvs["chi-so"] = _csv(
        out_dir / f"{stem}-chi-so.csv",
        ["ma_don_vi", "ten_don_vi", "ma_chi_so", "chi_so", "dat", "tong", "ty_le", "chi_tieu", "danh_gia"],
        [
            [u, data.name(u), i, NAMES_VI[i], f.numerator, f.denominator, vn_percent(f.ratio), report_target_text(f),
             verdict(f, data.min_volume)]
            for u in ["all", *data.units]
            for i in INDICATORS
            if (f := data.figures.get((u, i))) is not None
        ],
    )
    csvs["xep-hang"] = _csv(
        out_dir / f"{stem}-xep-hang.csv",
        ["hang", "ma_don_vi", "ten_don_vi", "diem_766_dat", "diem_766_tinh_duoc", "ty_le_diem_766",
         "ty_le_dung_han_766", "so_chi_tieu_dat", "so_chi_tieu_khong_dat"],
        [[r.rank, r.unit, r.name, vn_number(r.score.earned, 1), r.score.assessable, vn_percent(r.score.share),
          vn_percent(r.on_time_766), r.met, r.missed] for r in data.ranking],
    )
    csvs["so-lieu-ho-so"] = _csv(
        out_dir / f"{stem}-so-lieu-ho-so.csv",
        ["ma_don_vi", "ten_don_vi", "linh_vuc", *VOLUME_COLUMNS, "ty_le_truoc_va_dung_han"],
        [[v.unit, data.name(v.unit), "" if v.sector == VOLUME_ALL else v.sector,
          *(getattr(v, c) for c in VOLUME_COLUMNS), vn_percent(v.resolved_in_time_ratio)]
         for (_u, _s), v in sorted(data.volume.items(), key=lambda kv: (kv[0][0] == VOLUME_ALL, kv[0]))],
    )
    late_header = ["ma_don_vi", "ten_don_vi", "ma_ho_so", "thu_tuc", "linh_vuc", "han_giai_quyet",
                   "han_thuc_te", "ngay_giai_quyet", "so_ngay_lam_viec_tre", "phieu_xin_loi"]
    csvs["ho-so-tre-han"] = _csv(out_dir / f"{stem}-ho-so-tre-han.csv", late_header, _late_rows(data, data.late))
    csvs["ho-so-sap-tre"] = _csv(
        out_dir / f"{stem}-ho-so-sap-tre.csv",
        ["ma_don_vi", "ten_don_vi", "ma_ho_so", "thu_tuc", "linh_vuc", "han_giai_quyet", "han_thuc_te"],
        [[c.unit, data.name(c.unit), c.case_id, c.procedure_code, sector_names().get(c.sector, c.sector),
          vn_date(c.due_us),
          vn_datetime(c.effective_due_us)] for c in data.due_soon],
    )
    csvs["phong-ban-cham-muon"] = _csv(
        out_dir / f"{stem}-phong-ban-cham-muon.csv",
        ["ma_don_vi", "ten_don_vi", "phong_ban", *LATE_HANDLER_COLUMNS],
        _late_handler_rows(data, data.late_list.late_departments, officials=False),
    )
    csvs["can-bo-cham-muon"] = _csv(
        out_dir / f"{stem}-can-bo-cham-muon.csv",
        ["ma_don_vi", "ten_don_vi", "phong_ban", "can_bo", "chuc_danh", *LATE_HANDLER_COLUMNS],
        _late_handler_rows(data, data.late_list.late_officials, officials=True),
    )
    csvs["tre-lap-lai"] = _csv(
        out_dir / f"{stem}-tre-lap-lai.csv",
        ["ma_don_vi", "ten_don_vi", "chi_so", "ty_le_ky_nay", "ty_le_ky_truoc", "chi_tieu"],
        [[m.unit, data.name(m.unit), NAMES_VI[m.indicator], vn_percent(m.current.ratio),
          vn_percent(m.previous.ratio), report_target_text(m.current)] for m in data.repeat_misses],
    )
    csvs["xu-huong"] = _csv(
        out_dir / f"{stem}-xu-huong.csv",
        ["thang", "ma_chi_so", "chi_so", "dat", "tong", "ty_le"],
        [[p.month.first_day.strftime("%m/%Y"), i, NAMES_VI[i],
          p.figure.numerator if p.figure else 0, p.figure.denominator if p.figure else 0,
          vn_percent(p.figure.ratio if p.figure else None)]
         for i in INDICATORS for p in data.trend[i]],
    )
    pdf_path = None
    if pdf:
        pdf_path = print_pdf(html_path, out_dir / f"{stem}.pdf")
    return ReportFiles(html=html_path, pdf=pdf_path, csv=csvs)


def print_pdf(html_path: Path, pdf_path: Path, *, timeout: float = 180) -> Path:
    """Print the HTML to PDF with headless Chromium (Debian package ``chromium``)."""
    exe = shutil.which(CHROMIUM)
    if exe is None:
        raise UserError("chromium is not installed (make setup installs the Debian package chromium)")
    with tempfile.TemporaryDirectory(prefix="tthc-chromium-") as profile:
        cmd = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
            f"--user-data-dir={profile}", f"--print-to-pdf={pdf_path.resolve()}",
            html_path.resolve().as_uri(),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not pdf_path.exists() or pdf_path.stat().st_size == 0:
        tail = (result.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"chromium could not print {html_path} to PDF: {tail[0]}")
    return pdf_path
