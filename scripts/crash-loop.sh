#!/usr/bin/env bash
# Run the SIGKILL crash test N times (default 20) with different seeds, so the kills land
# at different points; prints one line per run and a summary. Uses the test infrastructure
# of `make test` (started once, reused by every run).
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
first=${2:-1}
passed=0
for ((seed = first; seed < first + runs; seed++)); do
  if TTHC_CRASH_SEED=$seed .venv/bin/python -m pytest -q -p no:cacheprovider -x \
      tests/integration/test_crash_recovery.py >"var/crash-loop-$seed.log" 2>&1; then
    passed=$((passed + 1)); echo "seed $seed: passed"
  else
    echo "seed $seed: FAILED (var/crash-loop-$seed.log)"
  fi
done
echo "crash loop: $passed of $runs runs passed"
[ "$passed" -eq "$runs" ]
