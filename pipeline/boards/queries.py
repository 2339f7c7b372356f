"""The boards' data sources and query builders (Prometheus and ClickHouse).

Everything a panel asks a data source for is built here, so the boards read as layout
and the rules (which series, which SQL) have one place:

* :func:`prom` — a Prometheus target (``grafana_foundation_sdk``'s own builder).
* :class:`ClickHouseQuery` — a target in the query model of Grafana's official
  ClickHouse plugin (``grafana-clickhouse-datasource``, v4): ``editorType`` ``sql``,
  ``rawSql``, ``format`` (0 time series, 1 table) and ``queryType`` (``timeSeries`` or
  ``table``). The SDK has no builder for that plugin, so this is a small cog builder of
  our own that the SDK's panels accept like any other target.
* :func:`expand_clickhouse_macros` — what the plugin's backend does to ``$__timeFilter``
  and friends before ClickHouse sees the SQL (``pkg/macros/macros.go`` of the plugin),
  so a test can run a panel's SQL exactly as Grafana would send it.
* :func:`below_target_expr` — "below target" in PromQL over the recording rules, derived
  from ``deploy/targets.toml`` (see its docstring for why not the worker's gauge).
"""

from __future__ import annotations

from datetime import datetime, timezone
import re
from dataclasses import dataclass
from typing import Any, Mapping

from grafana_foundation_sdk.builders.prometheus import Dataquery as PrometheusQuery
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dm

from pipeline.core.indicators import INDICATORS
from pipeline.core.targets import Targets

PROMETHEUS_TYPE = "prometheus"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
PROMETHEUS_UID = "tthc-prometheus"
CLICKHOUSE_UID = "tthc-clickhouse"
#: the boards' data source variables: provisioning selects the data sources above by uid, and
#: a board imported through Grafana's UI into another Grafana takes that Grafana's own
PROMETHEUS_VARIABLE = "ds_prometheus"
CLICKHOUSE_VARIABLE = "ds_clickhouse"
PROMETHEUS = dm.DataSourceRef(type_val=PROMETHEUS_TYPE, uid=f"${{{PROMETHEUS_VARIABLE}}}")
CLICKHOUSE = dm.DataSourceRef(type_val=CLICKHOUSE_TYPE, uid=f"${{{CLICKHOUSE_VARIABLE}}}")
#: the plugin version whose query model the SQL targets follow
CLICKHOUSE_PLUGIN_VERSION = "4.11.2"

#: the worker's scrape job in deploy/prometheus/prometheus.yml and deploy/compose
WORKER_JOB = "tthc-worker"

# Recording rules (deploy/prometheus/rules/tthc-recording.yml): sums over workers.
RATIO = "tthc:indicator_ratio:by_scope"
NUMERATOR = "tthc:indicator_numerator:by_scope"
DENOMINATOR = "tthc:indicator_denominator:by_scope"


def prom(expr: str, legend: str = "", *, instant: bool = False, ref: str = "A", table: bool = False) -> PrometheusQuery:
    """A Prometheus target; ``instant`` for "now" panels (stat, table, bar gauge)."""
    query = PrometheusQuery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    if legend:
        query = query.legend_format(legend)
    if table:
        query = query.format("table")
    return query.instant() if instant else query.range()


def with_unit_names(expr: str) -> str:
    """``expr`` (with a ``unit`` label) plus the unit's registry name as label ``name``.

    ``tthc_unit_info{unit,name,kind,parent} 1`` carries the registry; ``max by`` merges
    the copies several workers export, ``topk by (unit) (1, …)`` keeps one name per unit
    (a unit renamed between validity periods must not break the join). Units missing
    from it (and every unit while a worker does not export it yet) keep their bare
    code: the ``or on(unit)`` brings back the series the join dropped.
    """
    names = "topk by (unit) (1, max by (unit, name) (tthc_unit_info))"
    joined = f"({expr}) * on(unit) group_left(name) {names}"
    return f"({joined}) or on(unit) ({expr})"


def with_unit_label(expr: str, label: str = "don_vi") -> str:
    """``expr`` with one label ``label`` = ``"CODE · Tên đơn vị"`` (just ``CODE`` without a name).

    For panels that show a unit in a single column (the status map's rows).
    """
    joined = f'label_join({with_unit_names(expr)}, "{label}", " · ", "unit", "name")'
    return f'label_replace({joined}, "{label}", "$1", "{label}", "(.*) · ")'


# --- ClickHouse (grafana-clickhouse-datasource) ---------------------------------------

TABLE_FORMAT = 1
TIME_SERIES_FORMAT = 0


@dataclass
class ClickHouseTarget(cogvariants.Dataquery):
    """One SQL target of the ClickHouse plugin, serialised as the plugin stores it."""

    raw_sql: str
    ref_id: str = "A"
    time_series: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": CLICKHOUSE.to_json(),
            "editorType": "sql",
            "format": TIME_SERIES_FORMAT if self.time_series else TABLE_FORMAT,
            "pluginVersion": CLICKHOUSE_PLUGIN_VERSION,
            "queryType": "timeSeries" if self.time_series else "table",
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class ClickHouseQuery(cogbuilder.Builder[ClickHouseTarget]):
    """Builder for :class:`ClickHouseTarget` (the SDK's panels take any cog builder)."""

    def __init__(self, sql: str) -> None:
        self._internal = ClickHouseTarget(raw_sql=_tidy_sql(sql))

    def build(self) -> ClickHouseTarget:
        return self._internal

    def ref_id(self, ref_id: str) -> "ClickHouseQuery":
        self._internal.ref_id = ref_id
        return self

    def time_series(self) -> "ClickHouseQuery":
        self._internal.time_series = True
        return self


def _tidy_sql(sql: str) -> str:
    lines = [line.rstrip() for line in sql.strip().splitlines()]
    indent = min((len(l) - len(l.lstrip()) for l in lines[1:] if l.strip()), default=0)
    return "\n".join([lines[0].strip()] + [l[indent:] for l in lines[1:]])


_MACRO_RE = re.compile(r"\$__(\w+)(?:\(([^)]*)\))?")


def expand_clickhouse_macros(sql: str, *, from_s: int, to_s: int, interval_s: int) -> str:
    """The SQL as the plugin's backend sends it for the time range [from_s, to_s] (Unix s).

    Mirrors the plugin's ``pkg/macros``: ``$__timeFilter(c)`` → ``c >= toDateTime(from)
    AND c <= toDateTime(to)``, ``$__fromTime``/``$__toTime``, ``$__dateFilter(c)``,
    ``$__timeInterval(c)`` → ``toStartOfInterval(toDateTime(c), INTERVAL n second)``,
    ``$__interval_s``. An unknown macro raises ``ValueError`` (the plugin refuses it too).
    """
    def date(seconds: int) -> str:
        return "toDate('" + datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d") + "')"

    def expand(match: re.Match) -> str:
        name, args = match.group(1), match.group(2)
        arg = (args or "").strip()
        if name == "timeFilter":
            return f"{arg} >= toDateTime({from_s}) AND {arg} <= toDateTime({to_s})"
        if name == "dateFilter":
            return f"{arg} >= {date(from_s)} AND {arg} <= {date(to_s)}"
        if name == "fromTime":
            return f"toDateTime({from_s})"
        if name == "toTime":
            return f"toDateTime({to_s})"
        if name == "timeInterval":
            return f"toStartOfInterval(toDateTime({arg}), INTERVAL {max(interval_s, 1)} second)"
        if name == "interval_s":
            return str(max(interval_s, 1))
        raise ValueError(f"unknown ClickHouse macro $__{name}")

    return _MACRO_RE.sub(expand, sql)


# --- Variables ------------------------------------------------------------------------

_VARIABLE_RE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def substitute_variables(text: str, values: Mapping[str, str]) -> str:
    """Grafana's template substitution for the forms the boards use.

    ``$name``, ``${name}`` (raw) and ``${name:sqlstring}`` (quoted, ``'`` doubled, as
    Grafana's ``sqlstring`` format does). Names not in ``values`` (Grafana's own
    ``$__…`` variables, macros) are left alone.
    """

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2)
        if name not in values:
            return match.group(0)
        value = values[name]
        if fmt is None or fmt == "raw":
            return value
        if fmt == "sqlstring":
            return "'" + value.replace("'", "''") + "'"
        raise ValueError(f"unsupported variable format ${{{name}:{fmt}}}")

    return _VARIABLE_RE.sub(replace, text)


# --- Targets as PromQL ----------------------------------------------------------------

_FAILS = {">": "<=", ">=": "<", "=": "!="}


#: how far above a strict (``>``) target green starts: a ratio k/n above a target p/q is above
#: it by at least 1/(q·n), more than this for any percent target (q ≤ 100) below 10 million
#: outcomes, and the threshold still reads as the target (0.950000001, not 0.9500000000000001)
STRICT_STEP = 1e-9


def threshold_value(op: str, value: float) -> float:
    """Where a panel's colour turns green: Grafana's steps mean "≥ step".

    For ``>`` the target is strict, so green starts just above it (a ratio of exactly 95%
    fails "> 95%" and stays red), printed clean: see :data:`STRICT_STEP`.
    """
    return round(value + STRICT_STEP, 9) if op == ">" else value


def _number(value: float) -> str:
    return repr(float(value))


def below_target_expr(targets: Targets, selector: str, sectors: tuple[str, ...] = ()) -> str:
    """PromQL giving the ratio of every scope matching ``selector`` that is below target.

    Below target = the ratio fails its comparison and the denominator is at least
    ``min_volume`` (docs/indicators.md). Built from the recording rules, which sum
    numerators and denominators over all workers, rather than from the worker's
    ``tthc_indicator_below_target``, which a worker computes on its own partitions
    only. ``sectors``: sector codes whose overrides apply (the sector board passes the
    overridden sectors; unit scopes have sector ``all`` and use the defaults).
    """
    parts: list[str] = []
    for indicator in INDICATORS:
        overridden = [s for s in sectors if targets.target_for(indicator, s) != targets.target_for(indicator, "all")]
        op, value = targets.target_for(indicator, "all")
        exclude = f',sector!~"{"|".join(overridden)}"' if overridden else ""
        parts.append(f'{RATIO}{{indicator="{indicator}",{selector}{exclude}}} {_FAILS[op]} {_number(value)}')
        for sector in overridden:
            s_op, s_value = targets.target_for(indicator, sector)
            parts.append(
                f'{RATIO}{{indicator="{indicator}",{selector},sector="{sector}"}} {_FAILS[s_op]} {_number(s_value)}'
            )
    failing = " or ".join(f"({part})" for part in parts)
    return (
        f"({failing}) and on(indicator, unit, sector, window) "
        f"({DENOMINATOR}{{{selector}}} >= {targets.min_volume})"
    )


def panel_queries(board: Mapping[str, Any]) -> list[dict]:
    """Every target of every panel of a board's JSON (rows' nested panels included)."""
    found: list[dict] = []

    def walk(panels: list) -> None:
        for panel in panels or []:
            for target in panel.get("targets") or []:
                found.append({"panel": panel.get("title", ""), "panel_type": panel.get("type"), **target})
            walk(panel.get("panels") or [])

    walk(board.get("panels") or [])
    return found
