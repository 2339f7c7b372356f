"""The Decision 766/QĐ-TTg service index (Bộ chỉ số 766) as far as dossier data carries it.

The national portal scores every unit out of 100 points in six groups (docs/indicators.md,
"The 766 score", with the sources). Each scored item here has its maximum and, where the
dossier events carry it, the pipeline indicator it is computed from; the rest are shown as
not computable with their maximum, never as zero.

Scoring rule of VPCP's formula description: reaching the threshold T gives full points,
below it ``ratio × max / T``; without a threshold ``ratio × max``. An item whose
denominator is zero in the period (nothing to assess) is "không phát sinh": neither
earned nor assessable. A unit's result is its earned points over its assessable points;
units are ranked by that share, then by earned points.

Pure: figures in, points out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = [
    "Group",
    "Item",
    "GROUPS",
    "ITEMS",
    "ItemScore",
    "GroupScore",
    "Score",
    "score",
    "points",
    "rank_scores",
    "TOTAL_POINTS",
    "SOURCE_INDICATORS",
]


@dataclass(frozen=True)
class Group:
    code: str
    name_vi: str
    max_points: int


@dataclass(frozen=True)
class Item:
    code: str
    group: str
    name_vi: str
    max_points: int
    indicator: str | None  # the pipeline indicator it is computed from; None: not computable
    threshold: float | None = None  # full points from this ratio on; None: ratio × max
    note_vi: str = ""  # how our figure relates to the published formula


GROUPS: tuple[Group, ...] = (
    Group("CKMB", "Công khai, minh bạch", 18),
    Group("TDGQ", "Tiến độ, kết quả giải quyết", 20),
    Group("DVCTT", "Cung cấp dịch vụ công trực tuyến", 12),
    Group("TTTT", "Thanh toán trực tuyến", 10),
    Group("SOHOA", "Số hóa hồ sơ", 22),
    Group("HAILONG", "Mức độ hài lòng", 18),
)

#: the pseudo-indicator of item 5.4: 100 % − (late-dossier rate + dissatisfied rate)
SATISFACTION_766 = "satisfaction_766"

ITEMS: tuple[Item, ...] = (
    Item("1.1–1.3", "CKMB", "Công khai TTHC, quy trình nội bộ trên Cổng DVCQG", 12, None),
    Item("1.4", "CKMB", "Hồ sơ đồng bộ lên Cổng DVCQG", 6, None),
    Item("2.1", "TDGQ", "Hồ sơ xử lý trước hạn, đúng hạn (tính cả hồ sơ đang giải quyết)", 20, "on_time_766"),
    Item("3.x", "DVCTT", "Hồ sơ trực tuyến toàn trình", 12, "full_online",
         note_vi="mẫu số là mọi hồ sơ tiếp nhận (chưa có danh mục TTHC đủ điều kiện toàn trình): cận dưới"),
    Item("3.6", "TTTT", "Thanh toán trực tuyến", 10, "online_payment",
         note_vi="tính theo lượt thanh toán"),
    Item("4.1", "SOHOA", "Trả kết quả điện tử", 6, "e_result"),
    Item("4.2", "SOHOA", "Số hóa hồ sơ khi tiếp nhận", 4, "digitized", threshold=0.8),
    Item("4.3", "SOHOA", "Khai thác, sử dụng lại dữ liệu số hóa", 2, "data_reuse", threshold=0.8),
    Item("4.4", "SOHOA", "Kết nối, chia sẻ dữ liệu (kho dữ liệu công dân trên Cổng DVCQG)", 4, None),
    Item("4.5b", "SOHOA", "Xác thực VNeID, dữ liệu dân cư", 2, "vneid_auth",
         note_vi="hồ sơ trực tuyến có tài khoản định danh VNeID"),
    Item("4.x", "SOHOA", "Các chỉ tiêu số hóa khác (chứng thực bản sao điện tử, dữ liệu chuyên ngành)", 4, None),
    Item("5.1, 5.3", "HAILONG", "Phân loại, hài lòng phản ánh kiến nghị", 6, None),
    Item("5.2", "HAILONG", "Phản ánh kiến nghị xử lý đúng hạn", 6, "feedback_on_time"),
    Item("5.4", "HAILONG", "Hài lòng trong tiếp nhận, giải quyết TTHC", 6, SATISFACTION_766, threshold=0.9,
         note_vi="100% − (tỷ lệ hồ sơ trễ hạn + tỷ lệ đánh giá không hài lòng)"),
)

TOTAL_POINTS = sum(g.max_points for g in GROUPS)
#: the pipeline indicators the score reads
SOURCE_INDICATORS: tuple[str, ...] = tuple(
    sorted({i.indicator for i in ITEMS if i.indicator and i.indicator != SATISFACTION_766} | {"on_time", "satisfaction"})
)


def points(ratio: float, max_points: int, threshold: float | None) -> float:
    """The published rule: full points from the threshold on, else proportional."""
    ratio = min(max(ratio, 0.0), 1.0)
    if threshold is None:
        return ratio * max_points
    if ratio >= threshold:
        return float(max_points)
    return ratio * max_points / threshold


@dataclass(frozen=True)
class ItemScore:
    item: Item
    ratio: float | None  # None: not computable, or nothing to assess
    points: float | None  # None: as ratio

    @property
    def computable(self) -> bool:
        return self.item.indicator is not None

    @property
    def assessed(self) -> bool:
        return self.ratio is not None


@dataclass(frozen=True)
class GroupScore:
    group: Group
    items: tuple[ItemScore, ...]

    @property
    def earned(self) -> float:
        return sum(i.points for i in self.items if i.points is not None)

    @property
    def assessable(self) -> int:
        """The maximum of the items assessed."""
        return sum(i.item.max_points for i in self.items if i.assessed)

    @property
    def not_computable(self) -> int:
        """The maximum of the items dossier data cannot carry."""
        return sum(i.item.max_points for i in self.items if not i.computable)

    @property
    def computable(self) -> bool:
        return any(i.computable for i in self.items)


@dataclass(frozen=True)
class Score:
    unit: str
    groups: tuple[GroupScore, ...]

    @property
    def earned(self) -> float:
        return sum(g.earned for g in self.groups)

    @property
    def assessable(self) -> int:
        return sum(g.assessable for g in self.groups)

    @property
    def not_computable(self) -> int:
        return sum(g.not_computable for g in self.groups)

    @property
    def share(self) -> float | None:
        """Earned over assessable points (None: nothing assessed)."""
        return self.earned / self.assessable if self.assessable else None

    def group(self, code: str) -> GroupScore:
        return next(g for g in self.groups if g.group.code == code)


def _ratio(figures: Mapping[str, tuple[int, int]], item: Item) -> float | None:
    if item.indicator is None:
        return None
    if item.indicator == SATISFACTION_766:
        on_n, on_d = figures.get("on_time", (0, 0))
        sat_n, sat_d = figures.get("satisfaction", (0, 0))
        if not on_d and not sat_d:
            return None
        late_rate = (on_d - on_n) / on_d if on_d else 0.0
        unhappy_rate = (sat_d - sat_n) / sat_d if sat_d else 0.0
        return max(0.0, 1.0 - late_rate - unhappy_rate)
    n, d = figures.get(item.indicator, (0, 0))
    return n / d if d else None


def score(unit: str, figures: Mapping[str, tuple[int, int]]) -> Score:
    """The score of one scope from its figures ``{indicator: (numerator, denominator)}``
    over the period."""
    groups = []
    for group in GROUPS:
        items = []
        for item in ITEMS:
            if item.group != group.code:
                continue
            ratio = _ratio(figures, item)
            items.append(ItemScore(item, ratio, None if ratio is None else points(ratio, item.max_points, item.threshold)))
        groups.append(GroupScore(group, tuple(items)))
    return Score(unit, tuple(groups))


def rank_scores(scores: list[Score]) -> list[Score]:
    """By share of assessable points (desc), earned points (desc), then unit code."""
    return sorted(scores, key=lambda s: (-(s.share if s.share is not None else -1.0), -s.earned, s.unit))

