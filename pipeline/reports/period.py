"""Calendar periods of the reports: a month ``2025-06``, a quarter ``2025-Q2``, a year ``2025``.

Periods are local calendar periods of Asia/Ho_Chi_Minh (UTC+7, no DST). The batch
indicators' calendar window of a period (``mtd`` / ``qtd`` / ``ytd``) at the period's last
microsecond covers exactly the period (``pipeline.core.windows``: outcomes at
``start < t <= T``), so a period's figures are ``batch_indicators(window, end_us)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from pipeline.config import UserError
from pipeline.contract.localtime import LOCAL_TZ, local_midnight_us as _local_midnight_us

__all__ = ["Period", "parse_period", "LOCAL_TZ"]

_ROMAN = ("I", "II", "III", "IV")
_WINDOW = {"month": "mtd", "quarter": "qtd", "year": "ytd"}


@dataclass(frozen=True)
class Period:
    kind: str  # month | quarter | year
    year: int
    index: int  # month 1-12, quarter 1-4, 1 for a year

    @property
    def first_day(self) -> date:
        if self.kind == "month":
            return date(self.year, self.index, 1)
        if self.kind == "quarter":
            return date(self.year, 3 * self.index - 2, 1)
        return date(self.year, 1, 1)

    @property
    def next_first_day(self) -> date:
        months = {"month": 1, "quarter": 3, "year": 12}[self.kind]
        m = self.first_day.month - 1 + months
        return date(self.first_day.year + m // 12, m % 12 + 1, 1)

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
        return _WINDOW[self.kind]

    @property
    def code(self) -> str:
        if self.kind == "month":
            return f"{self.year}-{self.index:02d}"
        if self.kind == "quarter":
            return f"{self.year}-Q{self.index}"
        return f"{self.year}"

    @property
    def label_vi(self) -> str:
        if self.kind == "month":
            return f"Tháng {self.index:02d}/{self.year}"
        if self.kind == "quarter":
            return f"Quý {_ROMAN[self.index - 1]}/{self.year}"
        return f"Năm {self.year}"

    def months(self) -> list["Period"]:
        """The months of the period, in order (a month: itself)."""
        first = self.first_day.month
        count = {"month": 1, "quarter": 3, "year": 12}[self.kind]
        return [Period("month", self.year, m) for m in range(first, first + count)]

    def previous(self) -> "Period":
        if self.kind == "year":
            return Period("year", self.year - 1, 1)
        last = {"month": 12, "quarter": 4}[self.kind]
        if self.index == 1:
            return Period(self.kind, self.year - 1, last)
        return Period(self.kind, self.year, self.index - 1)


def parse_period(text: str) -> Period:
    """``2025-06`` (month), ``2025-Q2`` (quarter) or ``2025`` (year); else ``UserError``."""
    raw = (text or "").strip()
    m = re.fullmatch(r"(\d{4})(?:-(?:(\d{2})|[Qq]([1-4])))?", raw)
    if m and 2000 <= int(m.group(1)) <= 2100:
        year = int(m.group(1))
        if m.group(2):
            month = int(m.group(2))
            if 1 <= month <= 12:
                return Period("month", year, month)
        elif m.group(3):
            return Period("quarter", year, int(m.group(3)))
        else:
            return Period("year", year, 1)
    raise UserError(f"--period takes a month 2025-06, a quarter 2025-Q2 or a year 2025; got {text!r}")
