#!/usr/bin/env bash
# Run the two-worker soak (tests/integration/test_soak_two_workers.py) N times (default 5);
# prints one line per run and a summary. With SEED, run k draws its faults from seed SEED+k-1
# (TTHC_SOAK_SEED: twelve faults, 20-40 s pauses, 100 messages/s, a 15 s session; about ten
# minutes a run); without, the fixed schedule (about three minutes). Each run starts its own three brokers (ports from
# TTHC_KAFKA_EXTRA_PORT_BASE + 40) and stops them after.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
first_seed=${2:-}
passed=0
mkdir -p var
for ((run = 1; run <= runs; run++)); do
  if [ -n "$first_seed" ]; then export TTHC_SOAK_SEED=$((first_seed + run - 1)); fi
  if .venv/bin/python -m pytest -q -s -p no:cacheprovider -x \
      tests/integration/test_soak_two_workers.py >"var/soak-loop-$run.log" 2>&1; then
    passed=$((passed + 1)); echo "run $run${TTHC_SOAK_SEED:+ (seed $TTHC_SOAK_SEED)}: passed ($(grep -o 'exact after [0-9]*s' "var/soak-loop-$run.log"))"
  else
    echo "run $run${TTHC_SOAK_SEED:+ (seed $TTHC_SOAK_SEED)}: FAILED (var/soak-loop-$run.log)"
  fi
done
echo "soak loop: $passed of $runs runs passed"
[ "$passed" -eq "$runs" ]
