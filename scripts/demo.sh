#!/usr/bin/env bash
# `make demo`: local infra, the worker (event clock off: live wall clock), the simulator with
# an incident, and a webhook logger that shows where the incident's page appears.
# Ctrl-C stops the simulator, the worker and the logger, then the infrastructure.
# The demo's Prometheus loads a copy of the generated rules with every `for:` set to
# DEMO_FOR (default 1m) so the page comes within minutes; production keeps deploy/prometheus/rules.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${TTHC_WEB_PORT:-6066}"
mkdir -p "${TTHC_DATA_DIR:-./var}/logs"
LOG="${TTHC_DATA_DIR:-./var}/logs/worker.log"
WEBHOOK_LOG="${TTHC_DATA_DIR:-./var}/logs/webhook.log"
AM_PORT="${TTHC_ALERTMANAGER_PORT:-19093}"
# the planned incident (pipeline/feed/simulate.py DEMO_INCIDENT unless DEMO_INCIDENT is set, e.g.
# DEMO_INCIDENT=unit=SO_TC,indicator=online_payment,level=0.5); the baseline is clean: nothing else pages
INCIDENT="${DEMO_INCIDENT:-$(.venv/bin/python -c 'from pipeline.feed.simulate import DEMO_INCIDENT; print(DEMO_INCIDENT)')}"
export TTHC_RULES_DIR="${TTHC_DATA_DIR:-./var}/demo/rules"

$PY -m pipeline rules --out "$TTHC_RULES_DIR" --for "${DEMO_FOR:-1m}" >/dev/null
$PY -m pipeline webhook-log >"$WEBHOOK_LOG" 2>&1 &
WEBHOOK=$!
sleep 1
kill -0 "$WEBHOOK" 2>/dev/null || { cat "$WEBHOOK_LOG"; exit 1; }
SIMULATOR=""
WORKER=""
REPORTER=""
INTAKE=""
DVCQG_SIM=""
REPORT_DIR="${TTHC_DATA_DIR:-./var}/reports"
REPORT_PERIOD="$(TZ=Asia/Ho_Chi_Minh date +%Y-%m)"
cleanup() {
  trap - INT TERM EXIT
  echo; echo "demo: stopping simulator, worker, webhook logger and infrastructure…"
  for pid in $REPORTER $DVCQG_SIM $SIMULATOR $INTAKE $WORKER $WEBHOOK; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  $PY -m pipeline infra down || true
}
trap cleanup INT TERM EXIT
$PY -m pipeline infra up
$PY -m pipeline worker >"$LOG" 2>&1 &
WORKER=$!

for _ in $(seq 1 60); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$WORKER" 2>/dev/null || { echo "demo: the worker stopped; see $LOG"; tail -20 "$LOG"; exit 1; }
  sleep 1
done
# the DVCQG intake (docs/intake.md) with a demo account (the worker translates its records
# into contract events), and a second simulator that sends its dossiers as DVCQG sync calls
# (DEMO_DVCQG=0 leaves them out)
if [ "${DEMO_DVCQG:-1}" = "1" ]; then
  export TTHC_INTAKE_ACCOUNTS_FILE="${TTHC_INTAKE_ACCOUNTS_FILE:-${TTHC_DATA_DIR:-./var}/demo/intake-accounts}"
  if [ ! -s "$TTHC_INTAKE_ACCOUNTS_FILE" ]; then
    mkdir -p "$(dirname "$TTHC_INTAKE_ACCOUNTS_FILE")"
    (umask 077; printf 'demo %s\n' "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" >"$TTHC_INTAKE_ACCOUNTS_FILE")
  fi
  $PY -m pipeline intake >"${TTHC_DATA_DIR:-./var}/logs/intake.log" 2>&1 &
  INTAKE=$!
  for _ in $(seq 1 30); do
    curl -fs "http://127.0.0.1:${TTHC_INTAKE_PORT:-6070}/healthz" >/dev/null 2>&1 && break
    kill -0 "$INTAKE" 2>/dev/null || { echo "demo: the intake stopped; see ${TTHC_DATA_DIR:-./var}/logs/intake.log"; exit 1; }
    sleep 1
  done
fi
cat <<INFO
demo: running. Look at
  metrics      http://127.0.0.1:$PORT/metrics   (tthc_events_total, tthc_indicator_*)
  Prometheus   http://127.0.0.1:${TTHC_PROMETHEUS_PORT:-19090}/classic/alerts   (rules from $TTHC_RULES_DIR, for: ${DEMO_FOR:-1m})
  Alertmanager amtool --alertmanager.url=http://127.0.0.1:$AM_PORT alert   (Debian's package has no web UI;
               the API: http://127.0.0.1:$AM_PORT/api/v2/alerts)
  pages        tail -f $WEBHOOK_LOG   (webhook receivers on 127.0.0.1:${TTHC_WEBHOOK_PORT:-5001}; JSON in ${TTHC_DATA_DIR:-./var}/logs/alerts.jsonl)
  incident     $INCIDENT (the clean baseline meets every target):
               its page (TthcIndicatorBelowTarget, severity page) is the only one; it appears in both
               within about six minutes, once 20 of its dossiers have finished
  SQL          .venv/bin/python -m pipeline sql "SELECT event_type, count() FROM case_events FINAL GROUP BY event_type"
  worker log   $LOG
  DVCQG intake http://127.0.0.1:${TTHC_INTAKE_PORT:-6070}/dvcqg/  (account in \$TTHC_INTAKE_ACCOUNTS_FILE; a second simulator
               sends DVCQG calls at ${DEMO_DVCQG_RATE:-2}/s; log intake.log; the worker translates; DEMO_DVCQG=0: off)
               .venv/bin/python -m pipeline sql "SELECT department, handler_name, count() FROM steps FINAL GROUP BY ALL"
  report       after ${DEMO_REPORT_AFTER:-60} s of simulation, the report of $REPORT_PERIOD (this month) goes to
               $REPORT_DIR/bao-cao-$REPORT_PERIOD.html (.pdf, *.csv); again at any time:
               .venv/bin/python -m pipeline report --period $REPORT_PERIOD --out $REPORT_DIR
  Grafana boards (JSON)  $(pwd)/dashboards/tthc-{tong-quan,don-vi,linh-vuc,van-hanh}.json
    load them into a Grafana on this machine (folder, data sources, boards):
    .venv/bin/python -m pipeline grafana provision --url http://127.0.0.1:3000 --token <service-account-token> \\
      --prometheus-url http://127.0.0.1:${TTHC_PROMETHEUS_PORT:-19090}
    or mount deploy/grafana/provisioning and dashboards/ into Grafana (deploy/compose/compose.yml)
Ctrl-C stops everything.
INFO
# In the background and waited for: `wait` returns at once on Ctrl-C, so the trap runs.
$PY -m pipeline simulate --demo --rate "${DEMO_RATE:-20}" --duration "${DEMO_DURATION:-24h}" \
  --incident "$INCIDENT" &
SIMULATOR=$!
if [ -n "$INTAKE" ]; then
  $PY -m pipeline simulate --format dvcqg --rate "${DEMO_DVCQG_RATE:-2}" --duration "${DEMO_DURATION:-24h}" \
    >"${TTHC_DATA_DIR:-./var}/logs/simulate-dvcqg.log" 2>&1 &
  DVCQG_SIM=$!
fi
# the sample report of this month, once the simulator has produced a minute of dossiers
(
  sleep "${DEMO_REPORT_AFTER:-60}"
  if $PY -m pipeline report --period "$REPORT_PERIOD" --out "$REPORT_DIR" \
      >"${TTHC_DATA_DIR:-./var}/logs/report.log" 2>&1; then
    echo "demo: report written: $REPORT_DIR/bao-cao-$REPORT_PERIOD.html (and .pdf, CSV tables in $REPORT_DIR)"
  else
    echo "demo: the report failed; see ${TTHC_DATA_DIR:-./var}/logs/report.log"
  fi
) &
REPORTER=$!
wait "$SIMULATOR"
