"""`python -m benchmarks --only ratio` on a small load against the real broker: every
consumer (the three peers and the real worker) reads the whole topic, the results file
holds their figures and the last line is the ratio line. Speed is not asserted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 12_000  # more than two of the floor's 5,000-message batches, so its rate can be timed


def test_ratio_part_runs_every_consumer_and_ends_with_the_ratio_line(infra, tmp_path):
    results = tmp_path / "results.json"
    runs = Path(os.environ["TTHC_DATA_DIR"]) / "runs"
    before = set(runs.glob("ratio-*"))
    env = dict(os.environ, BENCH_RESULTS=str(results))
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "ratio", "--events", str(EVENTS), "--timeout", "600"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ratio_vs_naive_faust=\d+\.\d\d ratio_vs_raw_consumer=\d+\.\d\d", last), last
    ratio = json.loads(results.read_text())["parts"]["ratio"]
    assert [row["consumer"] for row in ratio["rows"]] == ["ceiling", "floor", "naive", "product"]
    assert all(row["events"] == EVENTS and row["rate"] > 0 for row in ratio["rows"])
    rates = {row["consumer"]: row["rate"] for row in ratio["rows"]}
    assert last == (
        f"ratio_vs_naive_faust={ratio['ratio_vs_naive_faust']:.2f} "
        f"ratio_vs_raw_consumer={ratio['ratio_vs_raw_consumer']:.2f}"
    )
    assert abs(ratio["ratio_vs_naive_faust"] - rates["product"] / rates["naive"]) < 0.01
    assert abs(ratio["ratio_vs_raw_consumer"] - rates["product"] / rates["ceiling"]) < 0.01
    assert ratio["product_rss_mb"] > 0
    assert set(runs.glob("ratio-*")) == before, "run files left behind"
