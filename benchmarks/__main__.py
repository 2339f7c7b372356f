"""``make bench`` / ``python -m benchmarks [--only PART,...]``: how fast the product is, against
its peers, on this machine. See BENCHMARKS.md for the method and the committed figures.

Parts (all by default): ``contract``, ``ratio``, ``latency``, ``memory``, ``restart``,
``scaleout`` (one worker, then two in one group), ``backfill`` (a long history through
``python -m pipeline backfill``, then the worker's rebuild), ``state`` (the live state at province scale, no broker: ``benchmarks/state.py``).
Sizes come from flags or ``BENCH_*`` variables, so development runs can be small::

    BENCH_EVENTS=20000 python -m benchmarks --only ratio

Figures go to stdout and ``var/bench/results.json`` (each part replaces its own entry,
so parts can be rerun one by one); ``--publish`` copies that file to
``benchmarks/results.json`` and regenerates the tables of ``BENCHMARKS.md`` from it.
When ``ratio`` ran, the last line printed is exactly
``ratio_vs_naive_faust=X.XX ratio_vs_raw_consumer=Y.YY``. Benchmarks, not tests: nothing
here asserts anything about speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from pipeline.config import UserError

LOADS = ("province", "bench")  # of the ratio part (benchmarks.load: province_file, history_file)
PARTS = ("contract", "ratio", "latency", "memory", "restart", "scaleout", "backfill", "state")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _parts(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in PARTS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}; got {text!r}")
    return chosen


def _rates(text: str) -> list[int]:
    try:
        rates = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates must be integers, got {text!r}") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"rates must be positive, got {text!r}")
    return rates


def _load_kind(text: str) -> str:
    if text not in LOADS:
        raise argparse.ArgumentTypeError(f"loads are {', '.join(LOADS)}; got {text!r}")
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (the project's rule)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = _Parser(prog="python -m benchmarks", description="benchmark the worker against its peers")
    p.add_argument("--only", type=_parts, default=list(PARTS), help=f"comma-separated parts: {','.join(PARTS)}")
    p.add_argument("--seed", type=int, default=_env_int("BENCH_SEED", 7))
    p.add_argument("--events", type=_positive, default=env.get("BENCH_EVENTS", "300000"),
                   help="messages of the ratio run (BENCH_EVENTS, 300000)")
    p.add_argument("--load", type=_load_kind, default=env.get("BENCH_LOAD", "province"),
                   help="load of the ratio run: province (simulate --history's year with the scenario's mess) "
                        "or bench (one-month scenarios) (BENCH_LOAD, province)")
    p.add_argument("--latency-rates", type=_rates, default=env.get("BENCH_LATENCY_RATES", "200,1000"),
                   help="events/s of the latency phases (BENCH_LATENCY_RATES, 200,1000)")
    p.add_argument("--latency-seconds", type=_positive, default=env.get("BENCH_LATENCY_SECONDS", "60"),
                   help="length of each latency phase (BENCH_LATENCY_SECONDS, 60)")
    p.add_argument("--scrape-interval", type=float, default=float(env.get("BENCH_SCRAPE_INTERVAL", "0.1")),
                   help="least pause between /metrics scrapes of the latency probe, s (BENCH_SCRAPE_INTERVAL, 0.1)")
    p.add_argument("--open-dossiers", type=_positive, default=env.get("BENCH_OPEN_DOSSIERS", "200000"),
                   help="open dossiers of the memory run (BENCH_OPEN_DOSSIERS, 200000)")
    p.add_argument("--restart-events", type=_positive, default=env.get("BENCH_RESTART_EVENTS", "1000000"),
                   help="messages before the restart (BENCH_RESTART_EVENTS, 1000000)")
    p.add_argument("--backfill-events", type=_positive, default=env.get("BENCH_BACKFILL_EVENTS", "3000000"),
                   help="messages of history loaded by backfill (BENCH_BACKFILL_EVENTS, 3000000)")
    p.add_argument("--state-dossiers", type=_positive, default=env.get("BENCH_STATE_DOSSIERS", "1000000"),
                   help="dossiers of history of the state run (BENCH_STATE_DOSSIERS, 1000000)")
    p.add_argument("--timeout", type=_positive, default=env.get("BENCH_TIMEOUT", "7200"),
                   help="seconds any one wait may take (BENCH_TIMEOUT, 7200)")
    p.add_argument("--publish", action="store_true",
                   help="only copy var/bench/results.json to benchmarks/results.json and regenerate BENCHMARKS.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from benchmarks import report

    if args.publish:
        report.publish()
        return 0
    from benchmarks import parts
    from benchmarks.harness import Services, base_settings

    base = base_settings()
    results = report.load_results(report.LOCAL_RESULTS)
    results["machine"] = report.machine()
    stamp = {"commit": report.commit(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    failed: list[str] = []

    def run(part: str, measure) -> None:
        print(f"{part}:", flush=True)
        load_before = os.getloadavg()[0]
        try:
            figures = measure()
        except Exception as exc:  # one part failing must not cost the others' figures
            print(f"  {part} failed: {exc}", flush=True)
            figures = {"error": (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]}
            failed.append(part)
        loads = {"load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)]}  # shared CPUs
        results.setdefault("parts", {})[part] = stamp | loads | figures
        report.save_results(report.LOCAL_RESULTS, results)

    if "contract" in args.only:
        run("contract", lambda: parts.contract(args.seed, args.events))
    if "state" in args.only:
        from benchmarks.state import bench_state

        run("state", lambda: bench_state(args.state_dossiers, args.open_dossiers))
    measures = {
        "ratio": lambda: parts.ratio(base, args.seed, args.events, args.timeout, args.load),
        "latency": lambda: parts.latency(base, args.seed, args.latency_rates, args.latency_seconds,
                                         args.scrape_interval, args.timeout),
        "memory": lambda: parts.memory(base, args.seed, args.open_dossiers, args.timeout),
        "restart": lambda: parts.restart(base, args.seed, args.restart_events, args.timeout),
        "scaleout": lambda: parts.scaleout(base, args.seed, args.events, args.timeout),
        "backfill": lambda: parts.backfill(base, args.seed, args.backfill_events, args.timeout),
    }
    chosen = [part for part in args.only if part in measures]
    if chosen:
        with Services(base):
            for part in chosen:
                run(part, measures[part])
    print()
    print(report.render(results, only=args.only))
    print(f"written to {report.LOCAL_RESULTS}")
    if failed:
        print(f"error: failed parts: {', '.join(failed)}", file=sys.stderr)
        return 1
    if "ratio" in args.only:
        print(report.ratio_line(results["parts"]["ratio"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
