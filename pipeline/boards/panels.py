"""Panel pieces shared by the boards: thresholds from the targets, variables, links."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders.dashboard import (
    CustomVariable,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
    ThresholdsConfig,
)
from grafana_foundation_sdk.models import dashboard as dm

from pipeline.boards.queries import (
    CLICKHOUSE_TYPE,
    CLICKHOUSE_UID,
    CLICKHOUSE_VARIABLE,
    PROMETHEUS,
    PROMETHEUS_TYPE,
    PROMETHEUS_UID,
    PROMETHEUS_VARIABLE,
    threshold_value,
)
from pipeline.core.targets import target_text
from pipeline.core.indicators import NAMES_VI
from pipeline.core.targets import Targets
from pipeline.core.windows import WINDOW_NAMES_VI, WINDOWS

OVERVIEW_UID = "tthc-tong-quan"
UNIT_UID = "tthc-don-vi"
SECTORS_UID = "tthc-linh-vuc"
OPERATIONS_UID = "tthc-van-hanh"
TAGS = ["tthc", "mot-cua"]
DEFAULT_WINDOW = "ytd"

#: the one-line Vietnamese definition of each indicator (docs/analysts.md, "The indicators")
DEFINITIONS_VI: dict[str, str] = {
    "on_time": "Hồ sơ giải quyết đúng hạn / hồ sơ đã giải quyết",
    "on_time_766": (
        "(Hồ sơ giải quyết đúng hạn + hồ sơ đang giải quyết chưa quá hạn) / "
        "(hồ sơ đã giải quyết + hồ sơ đang giải quyết), theo Quyết định 766/QĐ-TTg"
    ),
    "early": "Hồ sơ giải quyết trước hạn / hồ sơ đã giải quyết",
    "online_payment": "Thanh toán trực tuyến / tổng số lần thanh toán",
    "full_online": "Hồ sơ trực tuyến toàn trình / hồ sơ tiếp nhận",
    "remote": "Hồ sơ nộp trực tuyến / hồ sơ tiếp nhận",
    "satisfaction": "Đánh giá hài lòng (4–5 sao) / tổng lượt đánh giá",
    "e_result": "Trả kết quả điện tử / hồ sơ đã trả kết quả",
    "digitized": "Số hóa thành phần hồ sơ khi tiếp nhận / hồ sơ tiếp nhận",
    "data_reuse": "Tái sử dụng dữ liệu số hóa / hồ sơ tiếp nhận",
    "vneid_auth": "Xác thực VNeID / hồ sơ nộp trực tuyến",
    "apology_coverage": "Hồ sơ trễ hạn có phiếu xin lỗi / hồ sơ trễ hạn",
    "feedback_on_time": "Phản ánh, kiến nghị xử lý đúng hạn / đã xử lý",
}


def unit_board_url(unit: str | None = None) -> str:
    """The drill-down's path; alert texts link here with their ``unit`` label."""
    return f"/d/{UNIT_UID}" + (f"?var-unit={unit}" if unit is not None else "")


def target_thresholds(op: str, value: float) -> ThresholdsConfig:
    """Red below the target, green from it (strict targets: see threshold_value)."""
    return ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(None, "red"), dm.Threshold(threshold_value(op, value), "green")]
    )


def count_thresholds() -> ThresholdsConfig:
    """Counts of trouble (overdue dossiers, errors): green at 0, red from 1."""
    return ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(None, "green"), dm.Threshold(1, "red")]
    )


def up_thresholds() -> ThresholdsConfig:
    """Prometheus' ``up``: red at 0, green at 1."""
    return ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(None, "red"), dm.Threshold(1, "green")]
    )


def neutral_thresholds() -> ThresholdsConfig:
    return ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([dm.Threshold(None, "blue")])


def threshold_override(op: str, value: float) -> list[dm.DynamicConfigValue]:
    """Override properties drawing one target as thresholds (per column or series)."""
    return [
        dm.DynamicConfigValue(
            "thresholds",
            {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": threshold_value(op, value)}]},
        )
    ]


def indicator_description(indicator: str, targets: Targets, sector: str = "all") -> str:
    op, value = targets.target_for(indicator, sector)
    return (
        f"{NAMES_VI[indicator]}: {DEFINITIONS_VI[indicator]}. Chỉ tiêu: {target_text(op, value)}"
        f" (dưới chỉ tiêu khi không đạt và mẫu số ≥ {targets.min_volume}). Mã chỉ số: {indicator}."
    )


def window_label(window: str) -> str:
    name = WINDOW_NAMES_VI[window]
    return name[0].upper() + name[1:]


def window_variable() -> CustomVariable:
    """The window picker: Vietnamese names in the windows' own order (short to long, then
    the calendar ones), the code as the value the queries use."""
    options = [
        dm.VariableOption(selected=w == DEFAULT_WINDOW, text=window_label(w), value=w) for w in WINDOWS
    ]
    return (
        CustomVariable("window")
        .label("Kỳ tính (cửa sổ)")
        .description("1 giờ … 30 ngày: cửa sổ trượt; từ đầu tháng/quý/năm: theo lịch (giờ Việt Nam)")
        .values(", ".join(f"{window_label(w)} : {w}" for w in WINDOWS))
        .options(options)
        .current(dm.VariableOption(selected=True, text=window_label(DEFAULT_WINDOW), value=DEFAULT_WINDOW))
    )


#: the registry's units in force, one option per unit: its name shown, its code the value
UNIT_QUERY = "query_result(max by (unit, name) (tthc_unit_info))"
UNIT_REGEX = '/name="(?<text>[^"]*)".*unit="(?<value>[^"]*)"/'


def unit_variable() -> QueryVariable:
    return (
        QueryVariable("unit")
        .label("Đơn vị")
        .description("Đơn vị trong danh mục đang có hiệu lực (deploy/units.csv): chọn theo tên, truy vấn theo mã")
        .datasource(PROMETHEUS)
        .query(UNIT_QUERY)
        .regex(UNIT_REGEX)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )


def datasource_variables(clickhouse: bool) -> list[DatasourceVariable]:
    """The data sources as variables (first in the board's variables): the provisioned ones
    by default, any of the same type when the board is imported into another Grafana."""
    pairs = [(PROMETHEUS_VARIABLE, PROMETHEUS_TYPE, PROMETHEUS_UID, "Nguồn dữ liệu Prometheus")]
    if clickhouse:
        pairs.append((CLICKHOUSE_VARIABLE, CLICKHOUSE_TYPE, CLICKHOUSE_UID, "Nguồn dữ liệu ClickHouse"))
    return [
        DatasourceVariable(name)
        .label(label)
        .type(kind)
        .current(dm.VariableOption(selected=True, text=uid, value=uid))
        for name, kind, uid, label in pairs
    ]


def board_link(title: str, uid: str, tooltip: str) -> DashboardLink:
    return (
        DashboardLink(title)
        .type(dm.DashboardLinkType.LINK)
        .url(f"/d/{uid}")
        .tooltip(tooltip)
        .icon("dashboard")
        .include_vars(True)
        .keep_time(True)
        .as_dropdown(False)
        .target_blank(False)
        .tags([])
    )


def unit_data_link(unit: str = "${__field.labels.unit}") -> list[DashboardLink]:
    """A click on a unit opens its drill-down with the same window.

    ``unit``: where the panel has the unit code: a series label (default) or a table
    column (``UNIT_COLUMN``).
    """
    return [
        DashboardLink(f"Xem chi tiết đơn vị {unit}")
        .type(dm.DashboardLinkType.LINK)
        .url(f"/d/{UNIT_UID}?var-unit={unit}&var-window=${{window}}")
        .tags([])
        .as_dropdown(False)
        .target_blank(False)
        .include_vars(False)
        .keep_time(True)
    ]


UNIT_COLUMN = "${__data.fields.unit}"


def last_value() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
