#!/usr/bin/env bash
# `make demo`: local infra, the worker (event clock off: live wall clock) and the simulator.
# Ctrl-C stops the simulator and the worker, then the infrastructure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${TTHC_WEB_PORT:-6066}"
mkdir -p "${TTHC_DATA_DIR:-./var}/logs"
LOG="${TTHC_DATA_DIR:-./var}/logs/worker.log"

$PY -m pipeline infra up
$PY -m pipeline worker >"$LOG" 2>&1 &
WORKER=$!
SIMULATOR=""
cleanup() {
  trap - INT TERM EXIT
  echo; echo "demo: stopping simulator, worker and infrastructure…"
  for pid in $SIMULATOR $WORKER; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  $PY -m pipeline infra down || true
}
trap cleanup INT TERM EXIT

for _ in $(seq 1 60); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$WORKER" 2>/dev/null || { echo "demo: the worker stopped; see $LOG"; tail -20 "$LOG"; exit 1; }
  sleep 1
done
cat <<INFO
demo: running. Look at
  metrics      http://127.0.0.1:$PORT/metrics   (tthc_events_total, tthc_indicator_*)
  Prometheus   http://127.0.0.1:${TTHC_PROMETHEUS_PORT:-19090}   (recording rules tthc:*)
  Alertmanager http://127.0.0.1:${TTHC_ALERTMANAGER_PORT:-19093}
  SQL          .venv/bin/python -m pipeline sql "SELECT event_type, count() FROM case_events FINAL GROUP BY event_type"
  worker log   $LOG
  Grafana boards (JSON)  $(pwd)/dashboards/tthc-{tong-quan,don-vi,linh-vuc,van-hanh}.json
    load them into a Grafana on this machine (folder, data sources, boards):
    .venv/bin/python -m pipeline grafana provision --url http://127.0.0.1:3000 --token <service-account-token> \\
      --prometheus-url http://127.0.0.1:${TTHC_PROMETHEUS_PORT:-19090}
    or mount deploy/grafana/provisioning and dashboards/ into Grafana (deploy/compose/compose.yml)
Ctrl-C stops everything.
INFO
# In the background and waited for: `wait` returns at once on Ctrl-C, so the trap runs.
$PY -m pipeline simulate --rate "${DEMO_RATE:-20}" --duration "${DEMO_DURATION:-24h}" \
  --incident "unit=${DEMO_INCIDENT_UNIT:-TTPVHCC},indicator=satisfaction,level=0.6" &
SIMULATOR=$!
wait "$SIMULATOR"
