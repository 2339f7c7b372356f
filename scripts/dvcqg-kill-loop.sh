#!/usr/bin/env bash
# Run the DVCQG SIGKILL test (tests/integration/test_dvcqg_kill.py: the intake killed while
# loading a sync log, the worker killed three times while it translates) N times (default
# 10) with different seeds, so the kills land at different points; one line per run and a
# summary. Uses the test Kafka (started once, reused by every run).
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
first=${2:-1}
passed=0
mkdir -p var
for ((seed = first; seed < first + runs; seed++)); do
  if TTHC_DVCQG_KILL_SEED=$seed .venv/bin/python -m pytest -q -p no:cacheprovider -s -x \
      tests/integration/test_dvcqg_kill.py >"var/dvcqg-kill-loop-$seed.log" 2>&1; then
    passed=$((passed + 1)); echo "seed $seed: passed ($(grep -o 'kills at .*' "var/dvcqg-kill-loop-$seed.log"))"
  else
    echo "seed $seed: FAILED (var/dvcqg-kill-loop-$seed.log)"
  fi
done
echo "dvcqg kill loop: $passed of $runs runs passed"
[ "$passed" -eq "$runs" ]
