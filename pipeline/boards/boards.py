"""The four boards (bảng điều khiển), built with grafana-foundation-sdk.

Each function takes the plan's targets (``deploy/targets.toml``) and returns the SDK's
dashboard builder; :mod:`pipeline.boards.build` turns them into ``dashboards/*.json``.
Titles, panel names and descriptions are Vietnamese; indicator names are
``pipeline.core.indicators.NAMES_VI`` (as in the README).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders.bargauge import Panel as BarGauge
from grafana_foundation_sdk.builders.dashboard import Dashboard, FieldColor, Row
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.table import Panel as Table
from grafana_foundation_sdk.builders.timeseries import Panel as TimeSeries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from pipeline.boards.panels import (
    UNIT_COLUMN,
    OPERATIONS_UID,
    OVERVIEW_UID,
    SECTORS_UID,
    TAGS,
    UNIT_UID,
    board_link,
    count_thresholds,
    indicator_description,
    last_value,
    neutral_thresholds,
    target_thresholds,
    threshold_override,
    unit_data_link,
    unit_variable,
    up_thresholds,
    window_variable,
)
from pipeline.boards.queries import (
    CLICKHOUSE,
    DENOMINATOR,
    PROMETHEUS,
    RATIO,
    WORKER_JOB,
    ClickHouseQuery,
    below_target_expr,
    prom,
    with_unit_label,
    with_unit_names,
)
from pipeline.core.indicators import INDICATORS, NAMES_VI
from pipeline.store.steps import late_step_rule
from pipeline.store.volume import volume_sql_for_range
from pipeline.contract.localtime import WorkCalendar
from pipeline.core.targets import Targets, target_text
from pipeline.calendar_file import load_calendar

PERCENT = "percentunit"
#: indicators without sector scopes: feedback has no sector (docs/indicators.md, "Scopes")
SECTORLESS = ("feedback_on_time",)


def _board(title: str, uid: str, description: str) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .timezone("Asia/Ho_Chi_Minh")
        .time("now-24h", "now")
        .refresh("1m")
        .editable()
    )


class _Ids:
    """Panel ids in the order panels are added (stable JSON)."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        self.last += 1
        return self.last


def _panel(kind, ids: _Ids, title: str, description: str, *targets, span: int, height: int,
           datasource=PROMETHEUS):
    """The shape every panel shares: the next id, Vietnamese title and description, its
    data source and queries, its place on the 24-column grid."""
    panel = kind().id(ids()).title(title).description(description).datasource(datasource)
    for target in targets:
        panel = panel.with_target(target)
    return panel.span(span).height(height)


def _ratio(panel, target: tuple[str, float]):
    """A 0–1 ratio in percent with one decimal, red below the target, green from it."""
    return panel.unit(PERCENT).decimals(1).min(0).max(1).thresholds(target_thresholds(*target))


def _bars(panel):
    """A horizontal bar per series, read at its last value."""
    return (
        panel.orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.BASIC)
        .reduce_options(last_value())
    )


def _count(panel, thresholds):
    """A count of dossiers now: the number coloured by ``thresholds``, a sparkline under it."""
    return (
        panel.unit("short")
        .thresholds(thresholds)
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .reduce_options(last_value())
    )


def _short(panel, thresholds):
    """A plain number read at its last value."""
    return panel.unit("short").thresholds(thresholds).reduce_options(last_value())


def _links_to_others(board: Dashboard, own_uid: str) -> Dashboard:
    for title, uid, tooltip in (
        ("Tổng quan tỉnh", OVERVIEW_UID, "Các chỉ số toàn tỉnh so với chỉ tiêu"),
        ("Chi tiết đơn vị", UNIT_UID, "Xu hướng và hồ sơ trễ hạn của một đơn vị"),
        ("Lĩnh vực", SECTORS_UID, "Các chỉ số theo lĩnh vực toàn tỉnh"),
        ("Vận hành hệ thống", OPERATIONS_UID, "Sức khỏe của đường ống dữ liệu"),
    ):
        if uid != own_uid:
            board = board.link(board_link(title, uid, tooltip))
    return board


def _matrix(title: str, description: str, expr: str, row_field: str, targets: Targets, ids: _Ids) -> Table:
    """A rows × indicators table of ratios, each column coloured by its own target."""
    panel = (
        _panel(Table, ids, title, description, prom(expr, instant=True, table=True), span=24, height=12)
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"columnField": "indicator", "rowField": row_field, "valueField": "Value", "emptyValue": "null"},
            )
        )
        .unit(PERCENT)
        .decimals(1)
        .cell_options(cm.TableColoredBackgroundCellOptions())
    )
    for indicator in INDICATORS:
        op, value = targets.target_for(indicator, "all")
        panel = panel.override_by_name(
            indicator,
            [dm.DynamicConfigValue("displayName", NAMES_VI[indicator]), *threshold_override(op, value)],
        )
    return panel


# --- Tổng quan tỉnh -------------------------------------------------------------------


def overview(targets: Targets) -> Dashboard:
    ids = _Ids()
    province = 'unit="all",sector="all",window="$window"'
    units = 'unit!="all",sector="all",window="$window"'
    board = _board(
        "Tổng quan tỉnh",
        OVERVIEW_UID,
        f"{len(INDICATORS)} chỉ số giải quyết thủ tục hành chính toàn tỉnh so với chỉ tiêu, đơn vị dưới chỉ tiêu, "
        "xếp hạng đơn vị và hồ sơ quá hạn. Nhấn vào một đơn vị để xem chi tiết.",
    ).with_variable(window_variable())
    board = _links_to_others(board, OVERVIEW_UID)

    board = board.with_row(Row("Chỉ số toàn tỉnh so với chỉ tiêu"))
    for indicator in INDICATORS:
        op, value = targets.target_for(indicator, "all")
        stat = _panel(
            Stat, ids, NAMES_VI[indicator], indicator_description(indicator, targets),
            prom(f'{RATIO}{{indicator="{indicator}",{province}}}', "Tỷ lệ", instant=True), span=4, height=4,
        )
        board = board.with_panel(
            _ratio(stat, (op, value))
            .color_mode(cm.BigValueColorMode.BACKGROUND)
            .graph_mode(cm.BigValueGraphMode.NONE)
            .reduce_options(last_value())
            .no_value("Chưa có số liệu")
        )

    board = board.with_row(Row("Hồ sơ đang xử lý"))
    for title, metric, description, thresholds in (
        ("Hồ sơ đang xử lý", "tthc_open_cases", "Hồ sơ đã tiếp nhận, chưa có kết quả, chưa bị từ chối.", neutral_thresholds()),
        ("Hồ sơ quá hạn", "tthc_overdue_open_cases", "Hồ sơ đang xử lý đã quá hạn giải quyết (tính cả thời gian tạm dừng).", count_thresholds()),
        ("Quá hạn chưa có phiếu xin lỗi", "tthc_overdue_without_apology_cases", "Hồ sơ quá hạn mà đơn vị chưa gửi phiếu xin lỗi tổ chức, cá nhân.", count_thresholds()),
    ):
        board = board.with_panel(_count(_panel(
            Stat, ids, title, description + " Toàn tỉnh, tại thời điểm hiện tại.",
            prom(f"sum({metric})", "Toàn tỉnh", instant=True), span=8, height=4,
        ), thresholds))
    board = board.with_panel(
        _panel(
            Table, ids, "Hồ sơ quá hạn theo đơn vị",
            "Số hồ sơ đang xử lý, quá hạn và quá hạn chưa có phiếu xin lỗi của từng đơn vị. Nhấn vào mã đơn vị để xem chi tiết.",
            *(prom(with_unit_names(f"sum by (unit) ({metric})"), instant=True, table=True, ref=ref)
              for metric, ref in (("tthc_open_cases", "A"), ("tthc_overdue_open_cases", "B"),
                                  ("tthc_overdue_without_apology_cases", "C"))),
            span=24, height=9,
        )
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "renameByName": {
                        "unit": "Mã đơn vị",
                        "name": "Tên đơn vị",
                        "Value #A": "Đang xử lý",
                        "Value #B": "Quá hạn",
                        "Value #C": "Quá hạn chưa xin lỗi",
                    },
                },
            )
        )
        .sort_by([cb.TableSortByFieldState().display_name("Quá hạn").desc(True)])
        .data_links(unit_data_link(UNIT_COLUMN))
    )

    board = board.with_row(Row("Đơn vị so với chỉ tiêu"))
    board = board.with_panel(
        _panel(
            Table, ids, "Đơn vị dưới chỉ tiêu hiện nay",
            "Các cặp đơn vị × chỉ số không đạt chỉ tiêu trong kỳ đã chọn, với mẫu số ít nhất "
            f"{targets.min_volume} (đơn vị nhỏ với vài hồ sơ không bị cảnh báo).",
            prom(with_unit_names(below_target_expr(targets, units)), instant=True, table=True), span=12, height=10,
        )
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "sector": True, "window": True},
                    "renameByName": {"unit": "Mã đơn vị", "name": "Tên đơn vị", "indicator": "Chỉ số", "Value": "Tỷ lệ"},
                },
            )
        )
        .mappings([dm.ValueMap({i: dm.ValueMappingResult(text=NAMES_VI[i]) for i in INDICATORS})])
        .override_by_name("Tỷ lệ", [dm.DynamicConfigValue("unit", PERCENT), dm.DynamicConfigValue("decimals", 1)])
        .data_links(unit_data_link(UNIT_COLUMN))
    )
    on_time_by_unit = RATIO + '{indicator="on_time",' + units + "}"
    ranking = _panel(
        BarGauge, ids, "Xếp hạng đơn vị: hồ sơ giải quyết đúng hạn",
        "Các đơn vị xếp theo tỷ lệ hồ sơ giải quyết đúng hạn trong kỳ đã chọn (cao nhất ở trên). "
        f"Chỉ tiêu {target_text(*targets.target_for('on_time', 'all'))}.",
        prom(f"sort_desc({with_unit_names(on_time_by_unit)})", "{{unit}} {{name}}", instant=True), span=12, height=10,
    )
    board = board.with_panel(
        _bars(_ratio(ranking, targets.target_for("on_time", "all"))).data_links(unit_data_link())
    )
    below = _panel(
        BarGauge, ids, "Số chỉ số dưới chỉ tiêu theo đơn vị",
        "Mỗi đơn vị có bao nhiêu chỉ số (trong 12) đang dưới chỉ tiêu trong kỳ đã chọn; nhiều nhất ở trên.",
        prom(f"sort_desc(count by (unit) ({below_target_expr(targets, units)}))", "{{unit}}", instant=True),
        span=24, height=8,
    )
    board = board.with_panel(
        _bars(below.unit("short").min(0).max(len(INDICATORS)).thresholds(count_thresholds())).data_links(unit_data_link())
    )
    board = board.with_panel(
        _matrix(
            "Bản đồ trạng thái: đơn vị × chỉ số",
            "Tỷ lệ của từng đơn vị (mã · tên theo danh mục) theo từng chỉ số trong kỳ đã chọn; ô xanh đạt "
            "chỉ tiêu, ô đỏ chưa đạt (ô trống: chưa có hồ sơ). Mỗi cột tô màu theo chỉ tiêu của chỉ số đó.",
            with_unit_label(f"{RATIO}{{{units}}}"),
            "don_vi",
            targets,
            ids,
        )
    )
    board = board.with_row(Row("Số liệu tiếp nhận, giải quyết hồ sơ (ClickHouse)"))
    board = board.with_panel(
        Table()
        .id(ids())
        .title("Bảng số liệu hồ sơ theo đơn vị trong khoảng thời gian đã chọn")
        .description(
            "Kỳ trước chuyển sang, tiếp nhận (trực tuyến, trực tiếp, bưu chính), đã giải quyết (trước hạn, đúng hạn, "
            "quá hạn), đang giải quyết cuối kỳ (trong hạn, quá hạn), rút, dừng, từ chối tiếp nhận — tính từ các sự "
            "kiện đã lưu (bảng case_events), như bảng số liệu của báo cáo kỳ."
        )
        .datasource(CLICKHOUSE)
        .with_target(ClickHouseQuery(VOLUME_BY_UNIT_SQL))
        .span(24)
        .height(10)
    )
    return board


#: the volume table (pipeline/store/volume.py) per unit over the board's time range
VOLUME_BY_UNIT_SQL = f"""
    SELECT v.unit AS ma_don_vi,
           any(u.name_vi) AS ten_don_vi,
           sum(v.carried) AS ky_truoc_chuyen_sang,
           sum(v.received_online) AS tiep_nhan_truc_tuyen,
           sum(v.received_direct) AS tiep_nhan_truc_tiep,
           sum(v.received_postal) AS tiep_nhan_buu_chinh,
           sum(v.resolved_early) AS giai_quyet_truoc_han,
           sum(v.resolved_on_time) AS giai_quyet_dung_han,
           sum(v.resolved_late) AS giai_quyet_qua_han,
           sum(v.open_within) AS dang_giai_quyet_trong_han,
           sum(v.open_overdue) AS dang_giai_quyet_qua_han,
           sum(v.withdrawn) AS rut_ho_so,
           sum(v.stopped) AS dung_xu_ly,
           sum(v.rejected) AS tu_choi_tiep_nhan
    FROM ({volume_sql_for_range("toInt64(toUnixTimestamp($__fromTime)) * 1000000",
                                "toInt64(toUnixTimestamp($__toTime)) * 1000000 + 999999")}) AS v
    LEFT JOIN (SELECT unit_id, argMax(name_vi, valid_from) AS name_vi FROM units FINAL GROUP BY unit_id) AS u
           ON u.unit_id = v.unit
    GROUP BY v.unit
    ORDER BY v.unit
"""


# --- Chi tiết đơn vị ------------------------------------------------------------------

LATE_CASES_SQL = """
    SELECT c.case_id AS ma_ho_so,
           c.sector AS linh_vuc,
           c.procedure_code AS thu_tuc,
           if(c.status = 'open', 'Đang xử lý, quá hạn', 'Đã giải quyết, trễ hạn') AS tinh_trang,
           c.received_at AS tiep_nhan,
           c.effective_due AS han_giai_quyet,
           c.finished_at AS ket_thuc,
           if(c.has_apology, 'Đã có phiếu xin lỗi', 'Chưa có phiếu xin lỗi') AS phieu_xin_loi
    FROM cases AS c FINAL
    WHERE c.unit_id = ${unit:sqlstring}
      AND ((c.status = 'open' AND c.overdue) OR (c.status = 'finished' AND c.on_time = false))
      AND $__timeFilter(c.effective_due)
    ORDER BY c.has_apology, c.effective_due DESC
    LIMIT 500
"""

def due_soon_sql(calendar: WorkCalendar) -> str:
    """The unit's open dossiers falling due by the end of the next working day ("sắp trễ"),
    not yet overdue, soonest first, as of the end of the board's time range (now by default). The working days are deploy/holidays.csv's, written into
    the query when the boards are generated (weekends off, listed holidays off, listed
    Saturdays worked); the effective due is the one of the dossier's last change."""
    holidays = ", ".join(f"toDate('{d.isoformat()}')" for d in sorted(calendar.holidays)) or ""
    worked = ", ".join(f"toDate('{d.isoformat()}')" for d in sorted(calendar.working_saturdays)) or ""
    next_working_day = (
        "arrayFirst(d -> has(CAST([" + worked + "] AS Array(Date)), d) OR (toDayOfWeek(d) <= 5 AND NOT has(CAST(["
        + holidays + "] AS Array(Date)), d)), arrayMap(i -> toDate($__toTime, 'Asia/Ho_Chi_Minh') + i, range(1, 31)))"
    )
    return f"""
    SELECT c.case_id AS ma_ho_so,
           c.sector AS linh_vuc,
           c.procedure_code AS thu_tuc,
           c.received_at AS tiep_nhan,
           c.effective_due AS han_giai_quyet,
           if(c.has_apology, 'Đã có phiếu xin lỗi', 'Chưa có phiếu xin lỗi') AS phieu_xin_loi
    FROM cases AS c FINAL
    WHERE c.unit_id = ${{unit:sqlstring}}
      AND c.status = 'open' AND NOT c.overdue
      AND c.effective_due >= $__toTime
      AND c.effective_due < toDateTime64({next_working_day} + 1, 6, 'Asia/Ho_Chi_Minh')
    ORDER BY c.effective_due
    LIMIT 500
"""


# The month of the board's time range end (local calendar), seen at that end: the steps'
# late rule of pipeline/store/steps.py with Grafana's macros for its instants.
_MONTH_START = "toDateTime64(toStartOfMonth(toDateTime($__toTime, 'Asia/Ho_Chi_Minh')), 6, 'Asia/Ho_Chi_Minh')"
_MONTH_RULE = late_step_rule(_MONTH_START, f"addMonths({_MONTH_START}, 1)", "$__toTime")

LATE_HANDLERS_SQL = f"""
    SELECT ifNull(department, '') AS phong_ban,
           ifNull(handler_name, '') AS can_bo,
           ifNull(any(handler_title), '') AS chuc_danh,
           countIf({_MONTH_RULE.done}) + countIf({_MONTH_RULE.open_overdue}) AS so_buoc_xu_ly,
           countIf({_MONTH_RULE.late_done}) AS hoan_thanh_tre,
           countIf({_MONTH_RULE.open_overdue}) AS dang_qua_han,
           hoan_thanh_tre + dang_qua_han AS cham_muon,
           round(cham_muon / so_buoc_xu_ly, 3) AS ty_le_cham_muon
    FROM steps FINAL
    WHERE unit_id = ${{unit:sqlstring}}
      AND started_at <= $__toTime
    GROUP BY phong_ban, can_bo
    HAVING cham_muon > 0
    ORDER BY phong_ban, cham_muon DESC, can_bo
    LIMIT 500
"""

OPEN_OVERDUE_STEPS_BOARD_SQL = f"""
    SELECT case_id AS ma_ho_so,
           ifNull(department, '') AS phong_ban,
           ifNull(handler_name, '') AS can_bo,
           started_at AS bat_dau,
           step_due_at AS han_buoc,
           dateDiff('day', step_due_at, $__toTime) AS so_ngay_qua_han
    FROM steps FINAL
    WHERE unit_id = ${{unit:sqlstring}}
      AND {_MONTH_RULE.open_overdue}
    ORDER BY step_due_at, case_id, step_id
    LIMIT 500
"""


APOLOGY_STATUS_SQL = """
    SELECT if(c.has_apology, 'Đã có phiếu xin lỗi', 'Chưa có phiếu xin lỗi') AS phieu_xin_loi,
           countIf(c.status = 'open') AS dang_qua_han,
           countIf(c.status = 'finished') AS da_giai_quyet_tre_han,
           count() AS tong
    FROM cases AS c FINAL
    WHERE c.unit_id = ${unit:sqlstring}
      AND ((c.status = 'open' AND c.overdue) OR (c.status = 'finished' AND c.on_time = false))
      AND $__timeFilter(c.effective_due)
    GROUP BY phieu_xin_loi
    ORDER BY phieu_xin_loi
"""

UNIT_INFO_SQL = """
    SELECT u.unit_id AS ma_don_vi,
           u.name_vi AS ten_don_vi,
           u.kind AS loai,
           u.parent_id AS don_vi_cap_tren,
           p.name_vi AS ten_don_vi_cap_tren,
           u.valid_from AS hieu_luc_tu,
           u.valid_to AS hieu_luc_den
    FROM units AS u FINAL
    LEFT JOIN (SELECT unit_id, any(name_vi) AS name_vi FROM units FINAL GROUP BY unit_id) AS p
        ON p.unit_id = u.parent_id
    WHERE u.unit_id = ${unit:sqlstring}
    ORDER BY u.valid_from
"""

def _indicator_names_sql(column: str) -> str:
    """The column's indicator ids as their Vietnamese names (NAMES_VI), in SQL."""
    ids = ", ".join(f"'{i}'" for i in INDICATORS)
    names = ", ".join("'" + NAMES_VI[i].replace("'", "''") + "'" for i in INDICATORS)
    return f"transform({column}, [{ids}], [{names}], {column})"


HISTORY_SQL = """
    SELECT $__timeInterval(taken_at) AS time,
           INDICATOR_NAME AS chi_so,
           argMax(numerator, taken_at) / nullIf(argMax(denominator, taken_at), 0) AS ty_le
    FROM indicator_snapshots FINAL
    WHERE $__timeFilter(taken_at)
      AND unit = ${unit:sqlstring}
      AND sector = 'all'
      AND window = ${window:sqlstring}
    GROUP BY time, chi_so
    ORDER BY time, chi_so
""".replace("INDICATOR_NAME", _indicator_names_sql("indicator"))


def unit_drilldown(targets: Targets) -> Dashboard:
    ids = _Ids()
    scope = 'unit="$unit",sector="all",window="$window"'
    board = _board(
        "Chi tiết đơn vị",
        UNIT_UID,
        "Một đơn vị: xu hướng từng chỉ số so với chỉ tiêu, hồ sơ đang xử lý và quá hạn, danh sách hồ sơ trễ hạn "
        "và tình trạng phiếu xin lỗi. Đường dẫn từ cảnh báo: /d/tthc-don-vi?var-unit=<mã đơn vị>.",
    ).with_variable(unit_variable()).with_variable(window_variable()).time("now-30d", "now")
    board = _links_to_others(board, UNIT_UID)

    board = board.with_row(Row("Đơn vị"))
    board = board.with_panel(_panel(
        Table, ids, "Thông tin đơn vị",
        "Tên, loại và đơn vị cấp trên theo danh mục đơn vị (bảng units trong ClickHouse).",
        ClickHouseQuery(UNIT_INFO_SQL), span=12, height=5, datasource=CLICKHOUSE,
    ))
    for title, metric, description, thresholds in (
        ("Đang xử lý", "tthc_open_cases", "Hồ sơ của đơn vị đang xử lý.", neutral_thresholds()),
        ("Quá hạn", "tthc_overdue_open_cases", "Hồ sơ đang xử lý đã quá hạn.", count_thresholds()),
        ("Quá hạn chưa xin lỗi", "tthc_overdue_without_apology_cases", "Hồ sơ quá hạn chưa có phiếu xin lỗi.", count_thresholds()),
    ):
        board = board.with_panel(_count(_panel(
            Stat, ids, title, description, prom(f'sum({metric}{{unit="$unit"}})', "Số hồ sơ"), span=4, height=5,
        ), thresholds))

    board = board.with_row(Row("Xu hướng các chỉ số so với chỉ tiêu"))
    for indicator in INDICATORS:
        op, value = targets.target_for(indicator, "all")
        trend = _panel(
            TimeSeries, ids, NAMES_VI[indicator], indicator_description(indicator, targets),
            prom(f'{RATIO}{{indicator="{indicator}",{scope}}}', "Tỷ lệ"), span=8, height=6,
        )
        board = board.with_panel(
            _ratio(trend, (op, value))
            .thresholds_style(cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED))
            .color_scheme(FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("blue"))
        )

    board = board.with_row(Row("Hồ sơ trễ hạn và phiếu xin lỗi (ClickHouse)"))
    board = board.with_panel(_panel(
        Table, ids, "Tình trạng phiếu xin lỗi của hồ sơ trễ hạn",
        "Hồ sơ trễ hạn (đã giải quyết trễ hoặc đang quá hạn) có hạn giải quyết trong khoảng thời gian đã chọn, theo tình trạng phiếu xin lỗi.",
        ClickHouseQuery(APOLOGY_STATUS_SQL), span=8, height=10, datasource=CLICKHOUSE,
    ))
    board = board.with_panel(_panel(
        Table, ids, "Danh sách hồ sơ trễ hạn",
        "Hồ sơ của đơn vị đã giải quyết trễ hạn hoặc đang quá hạn, có hạn giải quyết trong khoảng thời gian đã chọn; "
        "hồ sơ chưa có phiếu xin lỗi ở trên. Tình trạng quá hạn là tại lần thay đổi cuối của hồ sơ.",
        ClickHouseQuery(LATE_CASES_SQL), span=16, height=10, datasource=CLICKHOUSE,
    ))
    board = board.with_panel(_panel(
        Table, ids, "Hồ sơ sắp trễ hạn (đến hết ngày làm việc tiếp theo)",
        "Hồ sơ đang xử lý của đơn vị chưa quá hạn nhưng đến hạn giải quyết trước khi hết ngày làm việc tiếp theo "
        "(theo lịch nghỉ lễ của tỉnh), hạn sớm nhất ở trên: cần xử lý ngay để không bị trễ hạn. Hạn giải quyết "
        "là tại lần thay đổi cuối của hồ sơ; số lượng theo thời gian thực ở chỉ số tthc_due_soon_open_cases.",
        ClickHouseQuery(due_soon_sql(load_calendar())), span=24, height=10, datasource=CLICKHOUSE,
    ))
    board = board.with_panel(_panel(
        TimeSeries, ids, "Lịch sử tỷ lệ các chỉ số (ảnh chụp định kỳ)",
        "Tỷ lệ từng chỉ số của đơn vị theo các ảnh chụp định kỳ lưu trong ClickHouse (bảng indicator_snapshots).",
        ClickHouseQuery(HISTORY_SQL).time_series(), span=24, height=8, datasource=CLICKHOUSE,
    ).unit(PERCENT).min(0).max(1))

    board = board.with_row(Row("Cơ quan, cá nhân chậm muộn (ClickHouse)"))
    board = board.with_panel(_panel(
        Table, ids, "Cán bộ / phòng ban chậm muộn trong tháng",
        "Theo Kế hoạch 11/KH-UBND (mục II.8): cán bộ và phòng ban của đơn vị có bước xử lý chậm muộn trong tháng "
        "(tháng dương lịch chứa thời điểm cuối của khoảng thời gian đã chọn): bước hoàn thành trong tháng sau "
        "thời hạn của bước, và bước đang xử lý quá thời hạn tại thời điểm đó. Số bước xử lý: bước hoàn thành "
        "trong tháng cộng bước đang quá hạn. Danh sách đầy đủ, có số ngày làm việc trễ: báo cáo tháng (mục VI).",
        ClickHouseQuery(LATE_HANDLERS_SQL), span=14, height=10, datasource=CLICKHOUSE,
    ))
    board = board.with_panel(_panel(
        Table, ids, "Bước xử lý đang quá hạn",
        "Các bước xử lý hồ sơ của đơn vị chưa hoàn thành đã quá thời hạn của bước, tại thời điểm cuối của "
        "khoảng thời gian đã chọn (mặc định: bây giờ), hạn sớm nhất ở trên; số ngày quá hạn là ngày lịch.",
        ClickHouseQuery(OPEN_OVERDUE_STEPS_BOARD_SQL), span=10, height=10, datasource=CLICKHOUSE,
    ))
    return board


# --- Lĩnh vực -------------------------------------------------------------------------


def _sector_overrides(targets: Targets) -> list[str]:
    sectors: set[str] = set()
    for overrides in targets.overrides.values():
        sectors.update(overrides)
    return sorted(sectors)


def _special_targets(targets: Targets) -> list[tuple[str, tuple[str, float], list[str]]]:
    """(indicator, (op, value), sectors) for every sector target differing from the default."""
    found = []
    for indicator in INDICATORS:
        by_target: dict[tuple[str, float], list[str]] = {}
        for sector in _sector_overrides(targets):
            target = targets.target_for(indicator, sector)
            if target != targets.target_for(indicator, "all"):
                by_target.setdefault(target, []).append(sector)
        found.extend((indicator, target, sectors_) for target, sectors_ in sorted(by_target.items()))
    return found


def sectors(targets: Targets) -> Dashboard:
    ids = _Ids()
    scope = 'unit="all",sector!="all",window="$window"'
    overridden = tuple(_sector_overrides(targets))
    special = "; ".join(
        f"{NAMES_VI[indicator]} {target_text(*target)} cho {', '.join(sorted(sectors_))}"
        for indicator, target, sectors_ in _special_targets(targets)
    )
    board = _board(
        "Lĩnh vực",
        SECTORS_UID,
        "Các chỉ số theo lĩnh vực trên toàn tỉnh so với chỉ tiêu"
        + (f"; chỉ tiêu riêng theo lĩnh vực: {special}." if special else "."),
    ).with_variable(window_variable())
    board = _links_to_others(board, SECTORS_UID)

    board = board.with_row(Row("Lĩnh vực dưới chỉ tiêu"))
    board = board.with_panel(
        _panel(
            Table, ids, "Lĩnh vực dưới chỉ tiêu hiện nay",
            "Các cặp lĩnh vực × chỉ số không đạt chỉ tiêu của lĩnh vực trong kỳ đã chọn, mẫu số ít nhất "
            f"{targets.min_volume}.",
            prom(below_target_expr(targets, scope, overridden), instant=True, table=True), span=12, height=9,
        )
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "unit": True, "window": True},
                    "renameByName": {"sector": "Lĩnh vực", "indicator": "Chỉ số", "Value": "Tỷ lệ"},
                },
            )
        )
        .mappings([dm.ValueMap({i: dm.ValueMappingResult(text=NAMES_VI[i]) for i in INDICATORS})])
        .override_by_name("Tỷ lệ", [dm.DynamicConfigValue("unit", PERCENT), dm.DynamicConfigValue("decimals", 1)])
    )
    board = board.with_panel(_bars(_panel(
        BarGauge, ids, "Số hồ sơ tiếp nhận theo lĩnh vực",
        "Hồ sơ tiếp nhận trong kỳ đã chọn (mẫu số của chỉ số số hóa khi tiếp nhận), theo lĩnh vực.",
        prom(f'sort_desc({DENOMINATOR}{{indicator="digitized",{scope}}})', "{{sector}}", instant=True),
        span=12, height=9,
    ).unit("short").thresholds(neutral_thresholds())))

    board = board.with_row(Row("Các chỉ số theo lĩnh vực so với chỉ tiêu"))
    for indicator in (i for i in INDICATORS if i not in SECTORLESS):
        op, value = targets.target_for(indicator, "all")
        special = [s for s in overridden if targets.target_for(indicator, s) != (op, value)]
        description = indicator_description(indicator, targets)
        if special:
            description += " Chỉ tiêu riêng: " + ", ".join(
                f"{s} {target_text(*targets.target_for(indicator, s))}" for s in special
            ) + "."
        panel = _bars(_ratio(_panel(
            BarGauge, ids, NAMES_VI[indicator], description,
            prom(f'sort_desc({RATIO}{{indicator="{indicator}",{scope}}})', "{{sector}}", instant=True), span=8, height=8,
        ), (op, value)))
        for sector in special:
            panel = panel.override_by_name(sector, threshold_override(*targets.target_for(indicator, sector)))
        board = board.with_panel(panel)
    return board


# --- Vận hành hệ thống ----------------------------------------------------------------


def _quantiles(metric: str) -> list:
    return [
        prom(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[$__rate_interval])))",
            f"p{round(q * 100)}",
            ref=ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


def operations(targets: Targets) -> Dashboard:
    ids = _Ids()
    worker = f'job="{WORKER_JOB}"'
    board = _board(
        "Vận hành hệ thống",
        OPERATIONS_UID,
        "Sức khỏe của đường ống dữ liệu: sự kiện mỗi giây theo kết quả, sự kiện không hợp lệ theo lý do, "
        "sự kiện chờ xử lý trong Kafka, thời gian xử lý và độ trễ đầu cuối, lỗi ghi ClickHouse, tình trạng tiến trình xử lý "
        "và thời gian thu thập số liệu.",
    ).time("now-1h", "now").refresh("30s")
    board = _links_to_others(board, OPERATIONS_UID)

    board = board.with_row(Row("Tình trạng"))
    board = board.with_panel(
        _panel(
            Stat, ids, "Tiến trình xử lý đang chạy",
            "Prometheus thu thập được /metrics của từng tiến trình xử lý (worker; 1 = đang chạy, 0 = không trả lời).",
            prom(f"up{{{worker}}}", "{{instance}}", instant=True), span=6, height=4,
        )
        .mappings([dm.ValueMap({"0": dm.ValueMappingResult(text="Ngừng", color="red"), "1": dm.ValueMappingResult(text="Đang chạy", color="green")})])
        .thresholds(up_thresholds())
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(last_value())
    )
    for title, description, query, thresholds in (
        ("Sự kiện chờ xử lý (Kafka)", "Tổng số thông điệp đầu vào đang chờ tiến trình xử lý (consumer lag), mọi phân vùng.",
         prom("sum(tthc_consumer_lag)", "Đang chờ", instant=True), neutral_thresholds()),
        ("Lỗi ghi ClickHouse (1 giờ)", "Số lần ghi vào ClickHouse thất bại (được thử lại) trong một giờ qua.",
         prom("sum(increase(tthc_clickhouse_write_errors_total[1h]))", "Lỗi ghi", instant=True), count_thresholds()),
    ):
        board = board.with_panel(_short(_panel(Stat, ids, title, description, query, span=6, height=4), thresholds))
    board = board.with_panel(
        _short(_panel(
            Stat, ids, "Đồng hồ xử lý T",
            "Thời điểm T mà các chỉ số được tính tới (đồng hồ thực, hoặc thời điểm sự kiện mới nhất khi phát lại).",
            prom("max(tthc_clock_seconds) * 1000", "T", instant=True), span=6, height=4,
        ), neutral_thresholds()).unit("dateTimeAsIso")
    )

    board = board.with_row(Row("Luồng sự kiện"))
    board = board.with_panel(_panel(
        TimeSeries, ids, "Sự kiện mỗi giây theo kết quả",
        "accepted: hợp lệ; invalid: không hợp lệ (vào hàng đợi lỗi DLQ); duplicate: trùng lặp.",
        prom("sum by (outcome) (rate(tthc_events_total[$__rate_interval]))", "{{outcome}}"), span=12, height=8,
    ).unit("ops"))
    board = board.with_panel(_panel(
        TimeSeries, ids, "Sự kiện không hợp lệ theo lý do (mỗi giây)", "Mã lý do từ chối: xem docs/events.md.",
        prom("sum by (reason) (rate(tthc_invalid_events_total[$__rate_interval]))", "{{reason}}"), span=12, height=8,
    ).unit("ops"))
    board = board.with_panel(_bars(_panel(
        BarGauge, ids, "Sự kiện không hợp lệ theo lý do (trong khoảng thời gian)",
        "Tổng số thông điệp bị từ chối theo lý do trong khoảng thời gian đã chọn.",
        prom("sort_desc(sum by (reason) (increase(tthc_invalid_events_total[$__range])))", "{{reason}}", instant=True),
        span=12, height=8,
    ).unit("short").thresholds(neutral_thresholds())))
    board = board.with_panel(_panel(
        TimeSeries, ids, "Sự kiện chờ xử lý theo phân vùng (Kafka)", "Số thông điệp đang chờ ở từng phân vùng của chủ đề đầu vào.",
        prom("sum by (partition) (tthc_consumer_lag)", "phân vùng {{partition}}"), span=12, height=8,
    ).unit("short"))

    board = board.with_row(Row("Thời gian xử lý và độ trễ"))
    for title, description, metric in (
        ("Thời gian xử lý một thông điệp (phân vị)",
         "Kiểm tra hợp lệ và cập nhật trạng thái hồ sơ trong tiến trình xử lý: trung vị, p95, p99.", "tthc_processing_seconds"),
        ("Độ trễ đầu cuối (phân vị)",
         "Từ thời điểm thông điệp vào Kafka đến khi dữ liệu được ghi vào ClickHouse: trung vị, p95, p99.",
         "tthc_event_latency_seconds"),
    ):
        board = board.with_panel(_panel(TimeSeries, ids, title, description, *_quantiles(metric), span=12, height=8).unit("s"))

    board = board.with_row(Row("ClickHouse và thu thập số liệu"))
    board = board.with_panel(_panel(
        TimeSeries, ids, "Dòng ghi vào ClickHouse mỗi giây theo bảng", "Số dòng ghi vào từng bảng ClickHouse mỗi giây.",
        prom("sum by (table) (rate(tthc_clickhouse_rows_written_total[$__rate_interval]))", "{{table}}"), span=8, height=8,
    ).unit("ops"))
    board = board.with_panel(_panel(
        TimeSeries, ids, "Lỗi ghi ClickHouse", "Số lần ghi thất bại (được thử lại) trong mỗi khoảng.",
        prom("sum(increase(tthc_clickhouse_write_errors_total[$__rate_interval]))", "Lỗi ghi"), span=8, height=8,
    ).unit("short").thresholds(count_thresholds()))
    board = board.with_panel(_panel(
        TimeSeries, ids, "Thời gian thu thập /metrics",
        "Thời gian Prometheus cần để đọc /metrics của từng tiến trình xử lý (các chỉ số được tính khi đọc).",
        prom(f"scrape_duration_seconds{{{worker}}}", "{{instance}}"), span=8, height=8,
    ).unit("s"))
    return board

