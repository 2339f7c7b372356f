#!/usr/bin/env bash
# Run the two-worker soak (tests/integration/test_soak_two_workers.py) N times (default 5);
# prints one line per run and a summary. Each run starts its own three brokers (ports from
# TTHC_KAFKA_EXTRA_PORT_BASE + 40) and stops them after.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
passed=0
mkdir -p var
for ((run = 1; run <= runs; run++)); do
  if .venv/bin/python -m pytest -q -s -p no:cacheprovider -x \
      tests/integration/test_soak_two_workers.py >"var/soak-loop-$run.log" 2>&1; then
    passed=$((passed + 1)); echo "run $run: passed ($(grep -o 'exact after [0-9]*s' "var/soak-loop-$run.log"))"
  else
    echo "run $run: FAILED (var/soak-loop-$run.log)"
  fi
done
echo "soak loop: $passed of $runs runs passed"
[ "$passed" -eq "$runs" ]
