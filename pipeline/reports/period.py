"""Periods of the reports: calendar periods and the reporting-regime periods.

Calendar periods (``--period 2025-06``, ``2025-Q2``, ``2025``) are local calendar periods of
Asia/Ho_Chi_Minh (UTC+7, no DST).

The reporting-regime period (kỳ báo cáo, Decree 09/2019/NĐ-CP on the reporting regime of
state administrative agencies, art. 12: figures are cut from the 15th of the month before
the period to the 14th of its last month) is asked for with the suffix ``/bc``:
``2025-06/bc`` is 15/05/2025–14/06/2025, ``2025-Q2/bc`` is 15/03/2025–14/06/2025,
``2025/bc`` is 15/12/2024–14/12/2025. The report says which kind it uses.

A period's figures are ``batch_indicators(since_us=start_us, at_us=end_us)``: the outcomes
with ``start_us <= t <= end_us`` (for a calendar period that is exactly its ``mtd`` /
``qtd`` / ``ytd`` window at its last microsecond).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from pipeline.config import UserError
from pipeline.contract.localtime import LOCAL_TZ, local_midnight_us as _local_midnight_us

__all__ = ["Period", "parse_period", "LOCAL_TZ", "REGIME_CUT_DAY", "REGIME_SUFFIX"]

_ROMAN = ("I", "II", "III", "IV")
_WINDOW = {"month": "mtd", "quarter": "qtd", "year": "ytd"}
_MONTHS = {"month": 1, "quarter": 3, "year": 12}
#: the reporting regime's periods start on this day of the month before (Decree 09/2019/NĐ-CP)
REGIME_CUT_DAY = 15
REGIME_SUFFIX = "/bc"


def _shift(day: date, months: int) -> date:
    m = day.month - 1 + months
    return date(day.year + m // 12, m % 12 + 1, day.day)


@dataclass(frozen=True)
class Period:
    kind: str  # month | quarter | year
    year: int
    index: int  # month 1-12, quarter 1-4, 1 for a year
    regime: bool = False  # the reporting-regime period (15th to 14th) instead of the calendar one

    @property
    def _calendar_first_day(self) -> date:
        if self.kind == "month":
            return date(self.year, self.index, 1)
        if self.kind == "quarter":
            return date(self.year, 3 * self.index - 2, 1)
        return date(self.year, 1, 1)

    @property
    def first_day(self) -> date:
        first = self._calendar_first_day
        if self.regime:
            return _shift(first, -1).replace(day=REGIME_CUT_DAY)
        return first

    @property
    def next_first_day(self) -> date:
        return _shift(self.first_day, _MONTHS[self.kind])

    @property
    def last_day(self) -> date:
        return self.next_first_day - timedelta(days=1)

    @property
    def start_us(self) -> int:
        """The period's first microsecond (local midnight of its first day), epoch µs."""
        return _local_midnight_us(self.first_day)

    @property
    def end_us(self) -> int:
        """The period's last microsecond (epoch µs): T of its figures."""
        return _local_midnight_us(self.next_first_day) - 1

    @property
    def window(self) -> str:
        """The calendar window that equals the period at its end (calendar periods only)."""
        if self.regime:
            raise ValueError("a reporting-regime period is no calendar window; use start_us")
        return _WINDOW[self.kind]

    @property
    def code(self) -> str:
        if self.kind == "month":
            text = f"{self.year}-{self.index:02d}"
        elif self.kind == "quarter":
            text = f"{self.year}-Q{self.index}"
        else:
            text = f"{self.year}"
        return text + ("-bc" if self.regime else "")

    @property
    def label_vi(self) -> str:
        if self.kind == "month":
            text = f"Tháng {self.index:02d}/{self.year}"
        elif self.kind == "quarter":
            text = f"Quý {_ROMAN[self.index - 1]}/{self.year}"
        else:
            text = f"Năm {self.year}"
        if self.regime:
            return f"Kỳ báo cáo {text[0].lower()}{text[1:]}"
        return text

    @property
    def range_vi(self) -> str:
        """``01/06/2025 – 30/06/2025``."""
        return f"{self.first_day:%d/%m/%Y} – {self.last_day:%d/%m/%Y}"

    @property
    def kind_vi(self) -> str:
        """Which kind of period, as the report states it."""
        if self.regime:
            return (f"kỳ báo cáo theo chế độ báo cáo (Nghị định 09/2019/NĐ-CP): từ ngày {REGIME_CUT_DAY} "
                    f"tháng trước đến ngày {REGIME_CUT_DAY - 1} tháng cuối kỳ")
        return "kỳ theo tháng/quý/năm dương lịch"

    def months(self) -> list["Period"]:
        """The months of the period, in order (a month: itself); of the same kind."""
        first = self._calendar_first_day.month
        count = _MONTHS[self.kind]
        return [Period("month", self.year, m, self.regime) for m in range(first, first + count)]

    def previous(self) -> "Period":
        if self.kind == "year":
            return Period("year", self.year - 1, 1, self.regime)
        last = {"month": 12, "quarter": 4}[self.kind]
        if self.index == 1:
            return Period(self.kind, self.year - 1, last, self.regime)
        return Period(self.kind, self.year, self.index - 1, self.regime)


def parse_period(text: str) -> Period:
    """``2025-06`` (month), ``2025-Q2`` (quarter) or ``2025`` (year), each optionally with
    ``/bc`` (the reporting-regime period, 15th to 14th); else ``UserError``."""
    raw = (text or "").strip()
    regime = raw.lower().endswith(REGIME_SUFFIX)
    if regime:
        raw = raw[: -len(REGIME_SUFFIX)]
    m = re.fullmatch(r"(\d{4})(?:-(?:(\d{2})|[Qq]([1-4])))?", raw)
    if m and 2000 <= int(m.group(1)) <= 2100:
        year = int(m.group(1))
        if m.group(2):
            month = int(m.group(2))
            if 1 <= month <= 12:
                return Period("month", year, month, regime)
        elif m.group(3):
            return Period("quarter", year, int(m.group(3)), regime)
        else:
            return Period("year", year, 1, regime)
    raise UserError(
        "--period takes a month 2025-06, a quarter 2025-Q2 or a year 2025, with /bc for the "
        f"reporting-regime period (15th of the month before to the 14th); got {text!r}"
    )
