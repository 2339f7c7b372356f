"""Targets (chỉ tiêu) of ``deploy/targets.toml`` (docs/indicators.md, "Targets").

The pure core reads no file: :func:`parse_targets` takes the parsed TOML;
``pipeline.targets_file.load_targets`` reads the file and calls it.

File format::

    min_volume = 20              # optional, default 20, integer >= 1

    [on_time]                    # one table per indicator, every one of INDICATORS required
    op = ">"                     # ">", ">=" or "="
    value = 0.95                 # a number in [0, 1]

    [satisfaction.sectors]       # optional per-sector overrides
    dat_dai = 0.85               # keeps the indicator's op
    xay_dung = { op = ">=", value = 0.85 }   # or a table; op optional

    [alerting]                   # optional: windows, ``for:`` durations and thresholds
    page_windows = ["24h", "7d"] # of the generated alert rules (pipeline.alerting.rules);
    page_for = "30m"             # every key optional, defaults in AlertingConfig

Values are read as exact decimals (``0.95`` is 19/20, not the nearest binary
float), and comparisons are done on integers: for ``>= p/q``, ``n * q >= p * d``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Any, Callable, Mapping

from pipeline.core.indicators import INDICATORS

__all__ = [
    "AlertingConfig",
    "Targets",
    "TargetsError",
    "parse_targets",
    "OPS",
    "DEFAULT_MIN_VOLUME",
]

OPS = (">", ">=", "=")
DEFAULT_MIN_VOLUME = 20
_RESERVED_SECTORS = ("all", "")


class TargetsError(ValueError):
    """A problem with the targets file; ``str()`` is one line naming file and problem."""


# Windows an alert may use: the rolling and calendar windows the worker exports.
ALERT_WINDOWS = ("1h", "24h", "7d", "30d", "mtd", "qtd", "ytd")
_DURATION_RE = re.compile(r"[1-9][0-9]*(ms|s|m|h|d|w)")


@dataclass(frozen=True)
class AlertingConfig:
    """The ``[alerting]`` table: every window, ``for:`` and threshold of the alert rules.

    Durations are Prometheus durations (``90s``, ``30m``, ``2h``, ``1d``).
    """

    #: a scope pages when it is below target in *every* one of these windows
    page_windows: tuple[str, ...] = ("24h", "7d")
    page_for: str = "30m"
    #: a firing page stays firing this long after the condition clears (no flapping)
    page_keep_firing_for: str = "15m"
    #: a ticket (daily digest) when below target in every one of these windows
    ticket_windows: tuple[str, ...] = ("30d",)
    ticket_for: str = "3h"
    ticket_keep_firing_for: str = "3h"
    #: a unit with overdue open dossiers that have no apology letter, this long
    overdue_without_apology_for: str = "1h"
    #: overdue open dossiers of a unit up by at least this many over ``overdue_rise_over``
    overdue_rise: int = 5
    overdue_rise_over: str = "24h"
    overdue_rise_for: str = "1h"
    #: a unit with at least this many open dossiers falling due by the end of the next working day
    #: (sắp trễ), this long: a ticket, so staff act before they are late
    due_soon: int = 1
    due_soon_for: str = "15m"
    #: the worker's scrape failing (up == 0) or its target missing
    worker_down_for: str = "2m"
    #: input waiting (consumer lag > 0) while nothing is processed
    stalled_for: str = "10m"
    #: rejected messages of one reason within ``invalid_spike_over``
    invalid_spike: int = 50
    invalid_spike_over: str = "15m"
    invalid_spike_for: str = "5m"
    #: ClickHouse writes failing (the worker retries; nothing is acked meanwhile)
    write_errors_for: str = "5m"
    #: the clock T unchanged over ``clock_stalled_over`` while events are accepted
    clock_stalled_over: str = "15m"
    clock_stalled_for: str = "5m"
    #: base URL of Grafana; alert texts link to ``<grafana_url>/d/tthc-don-vi?var-unit=<unit>``
    grafana_url: str = "http://127.0.0.1:3000"
    #: where the repository's ``docs/runbooks/`` is browsable (the IT centre's git server; the
    #: reserved ``.invalid`` host until it is set); each alert's ``runbook_url`` is ``<this>/<alert>.md``
    runbook_base_url: str = "https://git.tthc.invalid/tthc-pipeline/-/blob/main/docs/runbooks"


def _parse_alerting(raw: Any, fail) -> AlertingConfig:
    if not isinstance(raw, dict):
        fail("[alerting] must be a table")
    known = {f.name: f for f in fields(AlertingConfig)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"[alerting] {key}"
        if key not in known:
            fail(f"[alerting]: unknown key {key!r} (expected {', '.join(known)})")
        default = known[key].default
        if isinstance(default, tuple):
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                fail(f"{where}: must be a non-empty list of windows like [\"24h\", \"7d\"]")
            bad = [v for v in value if v not in ALERT_WINDOWS]
            if bad:
                fail(f"{where}: unknown window {bad[0]!r} (one of {', '.join(ALERT_WINDOWS)})")
            if len(set(value)) != len(value):
                fail(f"{where}: a window is listed twice")
            values[key] = tuple(value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(f"{where}: must be a positive integer, got {value!r}")
            values[key] = value
        elif key in ("grafana_url", "runbook_base_url"):
            if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s\"'{}]+", value):
                fail(f"{where}: must be an http(s) URL, got {value!r}")
            values[key] = value.rstrip("/")
        else:
            if not isinstance(value, str) or not _DURATION_RE.fullmatch(value):
                fail(f"{where}: must be a duration like 90s, 30m, 2h or 1d, got {value!r}")
            values[key] = value
    return AlertingConfig(**values)


@dataclass(frozen=True)
class Targets:
    min_volume: int
    defaults: Mapping[str, tuple[str, Fraction]]
    overrides: Mapping[str, Mapping[str, tuple[str, Fraction]]] = field(default_factory=dict)
    source: str = "<targets>"
    alerting: AlertingConfig = field(default_factory=AlertingConfig)

    def _target(self, indicator: str, sector: str) -> tuple[str, Fraction]:
        per = self.overrides.get(indicator)
        if per:
            t = per.get(sector)
            if t is not None:
                return t
        try:
            return self.defaults[indicator]
        except KeyError:
            raise KeyError(f"no target for indicator {indicator!r}") from None

    def target_for(self, indicator: str, sector: str) -> tuple[str, float]:
        """(op, value) for the scope with this sector label.

        A sector override applies only when ``sector`` equals it (the sector scope
        of that sector); ``"all"`` (unit and province scopes) and every other
        sector get the indicator's default.
        """
        op, value = self._target(indicator, sector)
        return op, float(value)

    def meets(self, indicator: str, sector: str, numerator: int, denominator: int) -> bool | None:
        """Whether numerator/denominator passes the target; None when denominator is 0."""
        if denominator == 0:
            return None
        op, value = self._target(indicator, sector)
        p, q = value.numerator, value.denominator
        lhs = numerator * q
        rhs = p * denominator
        if op == ">":
            return lhs > rhs
        if op == ">=":
            return lhs >= rhs
        return lhs == rhs

    def below_target(self, indicator: str, sector: str, numerator: int, denominator: int) -> bool:
        """Fails the comparison and the denominator is at least ``min_volume``."""
        if denominator < self.min_volume:
            return False
        return self.meets(indicator, sector, numerator, denominator) is False

    def below_target_check(self, indicator: str, sector: str) -> Callable[[int, int], bool]:
        """``below_target`` for one (indicator, sector), as a function of (numerator,
        denominator): the same rule, with the lookups done once (for exporters)."""
        return partial(self.below_target, indicator, sector)


def _value(raw: Any, where: str, fail) -> Fraction:
    if isinstance(raw, bool) or not isinstance(raw, (int, Decimal)):
        fail(f"{where}: value must be a number, got {raw!r}")
    if isinstance(raw, Decimal) and not raw.is_finite():
        fail(f"{where}: value must be a finite number, got {raw}")
    v = Fraction(raw)
    if not 0 <= v <= 1:
        fail(f"{where}: value {raw} is outside [0, 1]")
    return v


def _op(raw: Any, where: str, fail) -> str:
    if raw not in OPS:
        fail(f"{where}: op must be one of '>', '>=', '=', got {raw!r}")
    return raw


def parse_targets(data: Mapping[str, Any], source: str = "<targets>") -> Targets:
    """Validate already-parsed TOML data (numbers as int or Decimal)."""

    def fail(problem: str):
        raise TargetsError(f"{source}: {problem}")

    min_volume = data.get("min_volume", DEFAULT_MIN_VOLUME)
    if isinstance(min_volume, bool) or not isinstance(min_volume, int):
        fail(f"min_volume must be an integer, got {min_volume!r}")
    if min_volume < 1:
        fail(f"min_volume must be at least 1, got {min_volume}")

    known = set(INDICATORS)
    for key in data:
        if key not in ("min_volume", "alerting") and key not in known:
            fail(f"unknown indicator [{key}] (known: {', '.join(INDICATORS)})")
    defaults: dict[str, tuple[str, Fraction]] = {}
    overrides: dict[str, dict[str, tuple[str, Fraction]]] = {}
    for ind in INDICATORS:
        table = data.get(ind)
        if table is None:
            fail(f"missing indicator [{ind}]")
        if not isinstance(table, dict):
            fail(f"[{ind}] must be a table with op and value")
        for key in table:
            if key not in ("op", "value", "sectors"):
                fail(f"[{ind}]: unknown key {key!r} (expected op, value, sectors)")
        if "op" not in table:
            fail(f"[{ind}]: missing op")
        if "value" not in table:
            fail(f"[{ind}]: missing value")
        op = _op(table["op"], f"[{ind}]", fail)
        defaults[ind] = (op, _value(table["value"], f"[{ind}]", fail))
        sectors = table.get("sectors")
        if sectors is None:
            continue
        if not isinstance(sectors, dict):
            fail(f"[{ind}].sectors must be a table of sector = value")
        per: dict[str, tuple[str, Fraction]] = {}
        for sector, raw in sectors.items():
            where = f"[{ind}.sectors] {sector}"
            if sector in _RESERVED_SECTORS:
                fail(f"{where}: sector code {sector!r} is reserved")
            if isinstance(raw, dict):
                for key in raw:
                    if key not in ("op", "value"):
                        fail(f"{where}: unknown key {key!r} (expected op, value)")
                if "value" not in raw:
                    fail(f"{where}: missing value")
                s_op = _op(raw["op"], where, fail) if "op" in raw else op
                per[sector] = (s_op, _value(raw["value"], where, fail))
            else:
                per[sector] = (op, _value(raw, where, fail))
        if per:
            overrides[ind] = per
    alerting = _parse_alerting(data["alerting"], fail) if "alerting" in data else AlertingConfig()
    return Targets(
        min_volume=min_volume, defaults=defaults, overrides=overrides, source=source, alerting=alerting
    )


OP_TEXT = {">": ">", ">=": "≥", "=": "="}


def target_text(op: str, value: Fraction | float) -> str:
    """``≥ 95%``, ``> 60%``, ``= 100%``, ``≥ 85,5%``: a target as the alert texts and the
    boards print it, decimal comma as Vietnamese writes it (exact: a float target is read
    as the decimal it was written as)."""
    exact = value if isinstance(value, Fraction) else Fraction(str(value))
    percent = format(Decimal(exact.numerator * 100) / Decimal(exact.denominator), "f")
    percent = percent.rstrip("0").rstrip(".") if "." in percent else percent
    return f"{OP_TEXT[op]} {percent.replace('.', ',')}%"
