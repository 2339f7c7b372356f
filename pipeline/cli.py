"""``python -m pipeline …``: one command line for every job.

Argument parsing lives here; each command's work lives in its own module, imported
only when that command runs (so ``sql`` does not pay for Faust's import time).
Any :class:`~pipeline.config.UserError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from pipeline.config import ConfigError, Settings, UserError, load_settings, positive_float, positive_int


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        raise UserError(f"{self.prog}: {message}")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", dest="data_dir", help="state directory (TTHC_DATA_DIR)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    infra = commands.add_parser("infra", help="local Kafka, Prometheus, Alertmanager")
    infra.add_argument("action", choices=["up", "down", "status", "fetch"])
    infra.add_argument("--brokers", type=_positive_int, help="local Kafka brokers (TTHC_KAFKA_BROKERS; default 1)")
    infra.add_argument("--scram", action="store_true", help="SASL/SCRAM listener (TTHC_KAFKA_SECURITY_PROTOCOL=SASL_*)")
    infra.add_argument("--tls", action="store_true", help="TLS listener with a throw-away CA (…=SSL or SASL_SSL)")

    worker = commands.add_parser("worker", help="the stream processor")
    worker.add_argument("--clock", choices=["wall", "event"], help="TTHC_CLOCK")
    worker.add_argument("--web-port", dest="web_port", help="TTHC_WEB_PORT")
    worker.add_argument("--app-id", dest="app_id", help="TTHC_APP_ID (consumer group)")

    replay = commands.add_parser("replay", help="send a JSONL file, one message per line")
    replay.add_argument("file")
    replay.add_argument("--rate", type=_positive_float, help="messages per second (default: as fast as possible)")

    backfill = commands.add_parser(
        "backfill", help="load a JSONL history straight into the facts and the worker's state (worker stopped)"
    )
    backfill.add_argument("file")

    simulate = commands.add_parser("simulate", help="synthetic dossier lifecycles")
    simulate.add_argument("--rate", type=_positive_float, default=20.0, help="events per second")
    simulate.add_argument("--duration", type=_duration, default=60.0, help="e.g. 90, 90s, 5m, 1h")
    simulate.add_argument("--units", type=_positive_int, default=None,
                          help="live: how many units of the registry (default 12; --demo: 60)")
    simulate.add_argument("--seed", type=int, default=None)
    simulate.add_argument("--demo", action="store_true",
                          help="live: the demo's preset (60 units, --baseline clean, the incident of "
                               "pipeline.feed.simulate.DEMO_INCIDENT unless --incident is given)")
    simulate.add_argument("--baseline", choices=("realistic", "clean"), default=None,
                          help="live: 'clean' = no weak spot, every unit well above its targets, no sector "
                               "effect (the demo: only the --incident pages)")
    simulate.add_argument("--history", type=int, metavar="YEAR",
                          help="write a year of the province as JSONL to --out instead of sending live events")
    simulate.add_argument("--out", help="output file of --history")
    simulate.add_argument("--scale", type=_positive_float, default=1.0,
                          help="--history: volume factor (1 = the province's real volume)")
    simulate.add_argument("--days", type=_positive_int, help="--history: only the first N days of the year")
    simulate.add_argument(
        "--incident",
        action="append",
        default=[],
        help="unit=U,indicator=I,level=0.5 (repeatable): drive one unit's indicator down",
    )

    rules = commands.add_parser("rules", help="write the Prometheus rules generated from the targets file")
    rules.add_argument("--out", help="directory (default: deploy/prometheus/rules)")
    rules.add_argument(
        "--for", dest="for_override", type=_prom_duration,
        help="every alert's for/keep_firing_for, e.g. 30s (demos and tests; not for production)",
    )

    commands.add_parser("webhook-log", help="log the local Alertmanager's notifications (TTHC_WEBHOOK_PORT)")

    sql = commands.add_parser("sql", help="read-only ad-hoc SQL on the stored facts")
    sql.add_argument("query")
    sql.add_argument("--format", choices=["json", "table", "csv"], default="table")

    indicators = commands.add_parser("indicators", help="batch indicators from stored facts")
    indicators.add_argument("--window", required=True, help="1h,24h,7d,30d,mtd,qtd,ytd (comma-separated)")
    indicators.add_argument("--unit")
    indicators.add_argument("--sector")
    indicators.add_argument("--at", help="RFC 3339 time T (default: now)")
    indicators.add_argument("--format", choices=["json", "table"], default="table")
    report = commands.add_parser("report", help="the period report: HTML, PDF and CSV from the stored facts")
    report.add_argument("--period", required=True, help="a month 2025-06, a quarter 2025-Q2 or a year 2025")
    report.add_argument("--unit", help="one unit's report (default: every unit and the province)")
    report.add_argument("--out", required=True, help="output directory")
    report.add_argument("--no-pdf", dest="no_pdf", action="store_true", help="skip the PDF (no Chromium needed)")
    report.add_argument(
        "--structure", choices=("period", "today"), default="period",
        help="units as in force in the period (default), or mapped onto today's units",
    )
    grafana = commands.add_parser("grafana", help="the Grafana boards: build the JSON, provision a Grafana")
    grafana_actions = grafana.add_subparsers(
        dest="grafana_action", metavar="build|provision", required=True, parser_class=_Parser
    )
    build = grafana_actions.add_parser("build", help="write dashboards/*.json and deploy/grafana/provisioning")
    build.add_argument("--out", help="directory for the boards' JSON (default: dashboards/)")
    provision = grafana_actions.add_parser("provision", help="folder, data sources and boards into a running Grafana")
    provision.add_argument("--url", required=True, help="Grafana address, e.g. http://127.0.0.1:3000")
    provision.add_argument("--token", help="service account token (Editor or Admin)")
    provision.add_argument("--prometheus-url", dest="prometheus_url", help="as Grafana reaches Prometheus (default: the local one)")
    provision.add_argument(
        "--clickhouse-url", dest="clickhouse_url", help="http(s)://user:password@host:8123/db (default: TTHC_CLICKHOUSE_DSN if a server)"
    )
    return parser


def _flag(parse):
    """A value parser of :mod:`pipeline.config` as an argparse type: one implementation for
    the variables and the flags; its ConfigError becomes argparse's one-line error."""

    def convert(raw: str):
        try:
            return parse("the value", raw)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__  # argparse names the type in its messages
    return convert


_positive_int = _flag(positive_int)
_positive_float = _flag(positive_float)


def _duration(raw: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    text = raw.strip().lower()
    scale = units.get(text[-1:], None)
    number = text[:-1] if scale else text
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {raw!r} (use 90, 90s, 5m or 1h)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {raw!r}")
    return value


def _prom_duration(raw: str) -> str:
    import re

    if not re.fullmatch(r"[1-9][0-9]*(ms|s|m|h|d|w)", raw.strip()):
        raise argparse.ArgumentTypeError(f"not a duration: {raw!r} (use e.g. 30s, 5m or 1h)")
    return raw.strip()


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: getattr(args, key, None)
        for key in ("data_dir", "clock", "web_port", "app_id")
    }
    overrides["kafka_brokers"] = getattr(args, "brokers", None)
    scram, tls = getattr(args, "scram", False), getattr(args, "tls", False)
    if scram or tls:  # `infra up --scram/--tls`: the listener the clients' protocol names
        overrides["kafka_security_protocol"] = {(True, False): "SASL_PLAINTEXT", (False, True): "SSL",
                                                (True, True): "SASL_SSL"}[(scram, tls)]
    return load_settings(overrides=overrides)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "infra":
        from pipeline.infra import manager

        return manager.run_action(settings, args.action)
    if args.command == "worker":
        from pipeline.stream.worker import run_worker

        return run_worker(settings)
    if args.command == "replay":
        from pipeline.feed.replay import replay_file

        replay_file(settings, args.file, rate=args.rate)
        return 0
    if args.command == "backfill":
        from pipeline.stream.backfill import run_backfill

        run_backfill(settings, args.file)
        return 0
    if args.command == "simulate":
        from pipeline.feed import simulate as sim
        from pipeline.feed.simulate import parse_incident, run_simulation, write_history

        incidents = [parse_incident(text) for text in args.incident]
        if args.demo and not incidents:
            incidents = [parse_incident(sim.DEMO_INCIDENT)]
        units = args.units or (sim.DEMO_UNITS if args.demo else sim.DEFAULT_UNITS)
        baseline = args.baseline or (sim.DEMO_BASELINE if args.demo else "realistic")
        if args.history is not None or args.out is not None:
            if args.history is None or not args.out:
                raise UserError("--history YEAR and --out FILE go together")
            result = write_history(settings, args.history, args.out, scale=args.scale,
                                   seed=2025 if args.seed is None else args.seed, incidents=incidents,
                                   days=args.days)
            print(f"simulate: wrote {result.events} events ({result.dossiers} dossiers, {result.feedbacks} feedback) "
                  f"of {result.first_day}..{result.last_day} to {result.path}")
            return 0
        run_simulation(
            settings,
            rate=args.rate,
            duration=args.duration,
            units=units,
            incidents=incidents,
            seed=args.seed,
            baseline=baseline,
        )
        return 0
    if args.command == "rules":
        from pipeline.alerting.rules import RULES_DIR, RuleOptions, write_rules
        from pipeline.core.targets import TargetsError
        from pipeline.targets_file import load_targets

        try:
            targets = load_targets(settings.targets_file)
        except TargetsError as exc:
            raise UserError(str(exc)) from None
        out = args.out or RULES_DIR
        for path in write_rules(targets, out, RuleOptions(for_override=args.for_override)):
            print(f"rules: wrote {path}")
        return 0
    if args.command == "webhook-log":
        from pipeline.alerting.webhook import run_webhook_log

        return run_webhook_log(settings.webhook_port, settings.data_dir / "logs" / "alerts.jsonl")
    if args.command == "sql":
        from pipeline.access import print_sql

        return print_sql(settings, args.query, args.format)
    if args.command == "indicators":
        from pipeline.access import print_indicators

        return print_indicators(
            settings,
            windows=args.window,
            unit=args.unit,
            sector=args.sector,
            at=args.at,
            output_format=args.format,
        )
    if args.command == "report":
        from pipeline.reports.command import run_report

        return run_report(settings, args.period, args.unit, args.out, pdf=not args.no_pdf, structure=args.structure)
    if args.command == "grafana":
        if args.grafana_action == "build":
            from pipeline.boards.build import run_build

            return run_build(settings, args.out)
        from pipeline.boards.provision import run_provision

        return run_provision(settings, args.url, args.token, args.prometheus_url, args.clickhouse_url)
    raise UserError(f"unknown command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
        return _dispatch(args, _settings(args))
    except (UserError, ConfigError) as exc:
        from pipeline.secrets import redact

        print(f"error: {redact(str(exc))}", file=sys.stderr)  # never a secret (pipeline/secrets.py)
        return 2
    except KeyboardInterrupt:
        return 130
