#!/usr/bin/env bash
# `make pictures`: the README's pictures, taken by headless Chromium from the demo really
# running (scripts/demo.sh, started here and stopped at the end): Prometheus' alerts page
# once the incident's page fires, what Alertmanager holds (`amtool alert query`: Debian's
# Alertmanager has no web UI), the webhook log, and the first page of the month's report.
# Takes 5-10 minutes: the page needs 20 outcomes of the unit, then its `for:` (DEMO_FOR, 1m).
# Written to docs/pictures/ (PICTURES_DIR); nothing is drawn by hand. Before the pictures it checks
# that every address and command of the demo's "Look at" block answers.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${PICTURES_DIR:-docs/pictures}"
DATA="${TTHC_DATA_DIR:-./var}"
PROM="http://127.0.0.1:${TTHC_PROMETHEUS_PORT:-19090}"
AM="http://127.0.0.1:${TTHC_ALERTMANAGER_PORT:-19093}"
# the demo's planned incident (scripts/demo.sh: DEMO_INCIDENT, else pipeline/feed/simulate.py's)
INCIDENT="${DEMO_INCIDENT:-$(.venv/bin/python -c 'from pipeline.feed.simulate import DEMO_INCIDENT; print(DEMO_INCIDENT)')}"
UNIT="$(sed -n 's/.*unit=\([^,]*\).*/\1/p' <<<"$INCIDENT")"
INDICATOR="$(sed -n 's/.*indicator=\([^,]*\).*/\1/p' <<<"$INCIDENT")"
INDICATOR_VI="$(.venv/bin/python -c 'import sys; from pipeline.core.indicators import NAMES_VI; print(NAMES_VI[sys.argv[1]])' "$INDICATOR")"
PERIOD="$(TZ=Asia/Ho_Chi_Minh date +%Y-%m)"
WAIT_S="${PICTURES_WAIT:-1200}"
mkdir -p "$OUT" "$DATA/logs"
rm -f "$DATA/logs/webhook.log"

bash scripts/demo.sh >"$DATA/logs/pictures-demo.log" 2>&1 &
DEMO=$!
PROFILE="$(mktemp -d)"
stop_demo() {
  trap - EXIT INT TERM
  kill -TERM "$DEMO" 2>/dev/null && wait "$DEMO" 2>/dev/null || true
  rm -rf "$PROFILE"
}
trap stop_demo EXIT
trap 'stop_demo; exit 130' INT TERM

# wait_until WHAT COMMAND…: until COMMAND succeeds, or fail after WAIT_S seconds
wait_until() {
  local what="$1" start=$SECONDS
  shift
  until "$@" >/dev/null 2>&1; do
    kill -0 "$DEMO" 2>/dev/null || { echo "pictures: the demo stopped; see $DATA/logs/pictures-demo.log" >&2; exit 1; }
    if (( SECONDS - start > WAIT_S )); then echo "pictures: no $what after ${WAIT_S} s" >&2; exit 1; fi
    sleep 5
  done
  echo "pictures: $what after $(( SECONDS - start )) s"
}
page_firing() {  # the incident's page is firing in Prometheus
  curl -fs "$PROM/api/v1/alerts" | .venv/bin/python -c '
import json, sys
alerts = json.load(sys.stdin)["data"]["alerts"]
sys.exit(not any(a["state"] == "firing" and a["labels"].get("alertname") == "TthcIndicatorBelowTarget"
                 and a["labels"].get("severity") == "page" and a["labels"].get("unit") == sys.argv[1]
                 and a["labels"].get("indicator") == sys.argv[2] for a in alerts))
' "$UNIT" "$INDICATOR"
}
page_in_alertmanager() {
  curl -fs -G "$AM/api/v2/alerts" --data-urlencode "filter=unit=\"$UNIT\"" \
    --data-urlencode "filter=indicator=\"$INDICATOR\"" --data-urlencode 'filter=severity="page"' | grep -q '"fingerprint"'
}
page_in_webhook_log() { grep -q "TthcIndicatorBelowTarget (page): .*($UNIT): chỉ số «$INDICATOR_VI»" "$DATA/logs/webhook.log"; }
report_written() { test -s "$DATA/reports/bao-cao-$PERIOD.pdf"; }

shot() {  # shot FILE URL: a 1280×800 screenshot once the page's scripts have run
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$PROFILE" \
    --window-size=1280,800 --virtual-time-budget=10000 --screenshot="$(realpath "$1")" "$2" 2>/dev/null
  test -s "$1"
  echo "pictures: wrote $1"
}

wait_until "page firing in Prometheus" page_firing
wait_until "page in Alertmanager" page_in_alertmanager
wait_until "page in the webhook log" page_in_webhook_log
wait_until "report" report_written

# every address and command of the demo's "Look at" block answers (scripts/demo.sh prints it)
look_at() {
  local what="$1"; shift
  if "$@" >/dev/null 2>&1; then echo "pictures: look-at $what answers"; else echo "pictures: look-at $what does not answer: $*" >&2; exit 1; fi
}
has_rows() { test -n "$(.venv/bin/python -m pipeline sql --format csv "$1" 2>/dev/null | sed -n 2p)"; }
look_at metrics curl -fs "http://127.0.0.1:${TTHC_WEB_PORT:-6066}/metrics"
look_at "Prometheus alerts" curl -fs "$PROM/classic/alerts"
look_at "Alertmanager API" curl -fs "$AM/api/v2/alerts"
look_at amtool amtool --alertmanager.url="$AM" alert
look_at "webhook log" test -s "$DATA/logs/webhook.log"
look_at SQL has_rows "SELECT event_type, count() FROM case_events FINAL GROUP BY event_type"
if [ "${DEMO_DVCQG:-1}" = "1" ]; then
  look_at "DVCQG intake" curl -fs "http://127.0.0.1:${TTHC_INTAKE_PORT:-6070}/healthz"
  look_at "steps SQL" has_rows "SELECT department, handler_name, count() FROM steps FINAL GROUP BY ALL"
fi
look_at report test -s "$DATA/reports/bao-cao-$PERIOD.html"
for board in tong-quan don-vi linh-vuc van-hanh; do look_at "board $board" test -s "dashboards/tthc-$board.json"; done

# terminal output as a page to photograph: as_page TITLE < text
as_page() {
  echo '<!doctype html><meta charset="utf-8"><title>terminal</title>'
  echo '<body style="margin:12px;font:14px DejaVu Sans,sans-serif;background:#fff">'
  echo "<p><b>\$ $1</b></p><pre style=\"white-space:pre-wrap;font:inherit\">"
  sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'
  echo '</pre></body>'
}

# Debian's Prometheus serves the classic UI (its /alerts is the React UI, not packaged): the
# alerts page, then the firing alerts of the incident's unit with their labels
shot "$OUT/prometheus-alerts.png" "$PROM/classic/alerts"
EXPR="ALERTS{alertstate=\"firing\",unit=\"$UNIT\"}"
shot "$OUT/prometheus-firing.png" \
  "$PROM/classic/graph?g0.expr=$(.venv/bin/python -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$EXPR")&g0.tab=1"
AMTOOL_ARGS=(alert query alertname=TthcIndicatorBelowTarget "unit=$UNIT")
amtool --alertmanager.url="$AM" "${AMTOOL_ARGS[@]}" \
  | as_page "amtool --alertmanager.url=$AM ${AMTOOL_ARGS[*]}" >"$PROFILE/alertmanager.html"
shot "$OUT/alertmanager-alerts.png" "file://$PROFILE/alertmanager.html"
# the webhook log: the lines of the incident's unit first, then the latest others
# (either part may be empty: with the clean baseline the incident's page is the only one)
{ grep "^\[.*($UNIT)" "$DATA/logs/webhook.log" | tail -n 6 || true
  grep "^\[" "$DATA/logs/webhook.log" | grep -v "($UNIT)" | tail -n 8 || true; } \
  | as_page "tail -f $DATA/logs/webhook.log   # đơn vị $UNIT trước" >"$PROFILE/webhook.html"
shot "$OUT/webhook-log.png" "file://$PROFILE/webhook.html"
pdftoppm -png -r 60 -f 1 -l 1 -singlefile "$DATA/reports/bao-cao-$PERIOD.pdf" "$OUT/report-page-1"
echo "pictures: wrote $OUT/report-page-1.png"
