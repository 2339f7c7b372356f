"""The monthly publication of the 766 score (Kế hoạch 11/KH-UBND III.7): HTML, PDF, CSV.

``python -m pipeline report --period 2025-06 --kind 766 --out DIR`` writes
``ket-qua-766-<period>.html`` / ``.pdf`` / ``.csv``: the province's score by group and
item, and every unit's score by group, ranked by score (``pipeline.core.score766``).
Items that dossier data cannot carry are listed with their maximum as "không tính được".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.score766 import GROUPS, ITEMS, TOTAL_POINTS
from pipeline.reports.data import ReportData
from pipeline.reports.render import ReportFiles, _csv, _env, print_pdf, vn_number, vn_percent

__all__ = ["write_score_page", "title_vi"]


def title_vi(data: ReportData) -> str:
    """``Kết quả đánh giá chỉ số 766 tháng 06/2025`` (quý II/2025, năm 2025, kỳ báo cáo …)."""
    label = data.period.label_vi
    return f"Kết quả đánh giá chỉ số 766 {label[0].lower()}{label[1:]}"


def _points(value: float | None) -> str:
    return vn_number(value, 1) if value is not None else "—"


def _context(data: ReportData) -> dict[str, Any]:
    return {
        "data": data,
        "period": data.period,
        "title": title_vi(data),
        "groups": GROUPS,
        "items": ITEMS,
        "total_points": TOTAL_POINTS,
        "province": data.province_score,
        "ranking": data.ranking,
        "points": _points,
        "not_computable_points": sum(i.max_points for i in ITEMS if i.indicator is None),
    }


def write_score_page(data: ReportData, out_dir: Path, *, pdf: bool = True) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"ket-qua-766-{data.period.code}" + (f"-{data.unit_filter}" if data.unit_filter else "")
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(_env().get_template("score766.html.j2").render(**_context(data)), encoding="utf-8")
    rows = []
    scopes = [("all", "Toàn tỉnh", data.province_score, None)] + [(r.unit, r.name, r.score, r.rank) for r in data.ranking]
    for unit, name, score, rank in scopes:
        if score is None:
            continue
        for g in score.groups:
            for i in g.items:
                rows.append([
                    "" if rank is None else rank, unit, name, g.group.name_vi, i.item.code, i.item.name_vi,
                    i.item.max_points,
                    vn_percent(i.ratio) if i.computable else "",
                    _points(i.points) if i.assessed else ("Không phát sinh" if i.computable else "Không tính được"),
                ])
    csv_path = _csv(out_dir / f"{stem}.csv",
                    ["hang", "ma_don_vi", "ten_don_vi", "nhom", "ma_chi_tieu", "chi_tieu", "diem_toi_da", "ty_le", "diem"],
                    rows)
    pdf_path = print_pdf(html_path, out_dir / f"{stem}.pdf") if pdf else None
    return ReportFiles(html=html_path, pdf=pdf_path, csv={"ket-qua-766": csv_path})
