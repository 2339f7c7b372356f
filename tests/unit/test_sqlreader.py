"""pipeline.store.sqlreader: POST /sql's own thread and client, on the real chDB engine
(in a subprocess: one engine per process). Issue 20, finding 5."""

from __future__ import annotations

import subprocess
import sys

from pipeline.config import PROJECT_ROOT

SCRIPT = r"""
import asyncio, sys
from pipeline.config import UserError
from pipeline.store.client import connect
from pipeline.store.sqlreader import SqlReader

dsn = "chdb://" + sys.argv[1]
writer = connect(dsn)
writer.command("CREATE TABLE t (a UInt64) ENGINE = MergeTree ORDER BY a")
LONG = "SELECT sum(cityHash64(number)) FROM numbers(1000000000000)"
BOUNDS = {"max_execution_time": 8, "timeout_overflow_mode": "throw", "readonly": 1}

async def main():
    reader = SqlReader(dsn)
    loop = asyncio.get_running_loop()
    # a read that lasts until its 8 s limit on the reader's thread; the writer's 5 inserts (tens of ms each,
    # under a second on a loaded machine) go on meanwhile
    read = asyncio.ensure_future(reader.query(LONG, None, BOUNDS, 30))
    await asyncio.sleep(0.5)
    for i in range(5):
        await loop.run_in_executor(None, lambda i=i: writer.insert("t", [[i]], column_names=["a"]))
    print("INSERTED_WHILE_READING", not read.done(), writer.query("SELECT count() FROM t").result_rows[0][0])
    try:
        await read
    except UserError as exc:
        print("LONG", "TIMEOUT_EXCEEDED" in str(exc), "\n" not in str(exc))
    # a wait shorter than the engine's limit: a one-line error, the engine stops the query itself
    try:
        await reader.query(LONG, None, BOUNDS, 1)
    except UserError as exc:
        print("WAIT", str(exc))
    columns, rows = await reader.query("SELECT count() AS n FROM t", None, BOUNDS, 30)
    print("AFTER", columns, rows)
    # the writer's handle is not in read-only mode after the reader's refusals
    writer.insert("t", [[99]], column_names=["a"])
    print("WRITER_OK", writer.query("SELECT count() FROM t").result_rows[0][0])

asyncio.run(main())
"""


def test_the_reader_runs_beside_the_writer_and_its_wait_is_bounded(tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "ch")], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "INSERTED_WHILE_READING True 5", result.stdout
    assert lines[1] == "LONG True True", result.stdout
    assert lines[2] == "WAIT the query did not finish within 1 s; the engine stops it", result.stdout
    assert lines[3] == "AFTER ['n'] [[5]]", result.stdout
    assert lines[4] == "WRITER_OK 6", result.stdout
