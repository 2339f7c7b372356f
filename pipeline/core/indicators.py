"""The indicators: ids (stable metric label values) and their names.

``on_time`` is the plan's rule (finished cases only); ``on_time_766`` the national
index's rule of Decision 766/QĐ-TTg (cases still open count, as late once past their
effective due). docs/indicators.md has both.
"""

from __future__ import annotations

INDICATORS: tuple[str, ...] = (
    "on_time",
    "on_time_766",
    "early",
    "online_payment",
    "full_online",
    "remote",
    "satisfaction",
    "e_result",
    "digitized",
    "data_reuse",
    "vneid_auth",
    "apology_coverage",
    "feedback_on_time",
)

NAMES_VI: dict[str, str] = {
    "on_time": "Hồ sơ giải quyết đúng hạn",
    "on_time_766": "Hồ sơ đúng hạn (theo Quyết định 766, tính cả hồ sơ đang giải quyết)",
    "early": "Hồ sơ giải quyết trước hạn",
    "online_payment": "Thanh toán trực tuyến",
    "full_online": "Hồ sơ trực tuyến toàn trình",
    "remote": "Hồ sơ nộp trực tuyến (từ xa)",
    "satisfaction": "Mức độ hài lòng",
    "e_result": "Trả kết quả điện tử",
    "digitized": "Số hóa hồ sơ khi tiếp nhận",
    "data_reuse": "Tái sử dụng dữ liệu đã số hóa",
    "vneid_auth": "Xác thực VNeID khi nộp trực tuyến",
    "apology_coverage": "Hồ sơ trễ hạn có phiếu xin lỗi",
    "feedback_on_time": "Phản ánh, kiến nghị xử lý đúng hạn",
}

NAMES_EN: dict[str, str] = {
    "on_time": "Cases finished on time",
    "on_time_766": "Cases on time, open ones included (Decision 766)",
    "early": "Cases finished early",
    "online_payment": "Online payments",
    "full_online": "Fully-online dossiers",
    "remote": "Dossiers submitted online",
    "satisfaction": "Citizen satisfaction",
    "e_result": "Electronic results",
    "digitized": "Dossiers digitised at receipt",
    "data_reuse": "Digitised data reused",
    "vneid_auth": "VNeID authentication (online)",
    "apology_coverage": "Late cases with an apology",
    "feedback_on_time": "Feedback answered on time",
}
