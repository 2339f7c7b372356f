"""`tthc …` (also `python -m pipeline …`): one command line for every job.

Argument parsing lives here; each command's work lives in its own module, imported
only when that command runs (so ``sql`` does not pay for Faust's import time).
Any :class:`~pipeline.config.UserError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from typing import Sequence

from pipeline.config import ConfigError, Settings, UserError, load_settings, positive_float, positive_int
from pipeline.secrets import read_secret, redact, remember


PROG = "tthc"
GRAFANA_TOKEN = "TTHC_GRAFANA_TOKEN"  # secrets of `grafana provision`, each also as <name>_FILE
GRAFANA_CLICKHOUSE_URL = "TTHC_GRAFANA_CLICKHOUSE_URL"

DESCRIPTION = """\
Live one-stop-desk (TTHC) indicators: Kafka -> worker -> ClickHouse -> Prometheus.

The same commands run as `tthc COMMAND` or `python -m pipeline COMMAND`. Every
setting is a TTHC_* environment variable (docs/configuration.md); the flags shown
override them. A bad value or argument prints one line (error: ...) and exits 2."""

EPILOG = """\
examples:
  tthc infra up                          # local Kafka, Prometheus, Alertmanager
  tthc worker &                          # the stream processor
  tthc simulate --rate 20 --duration 5m  # synthetic dossiers
  tthc indicators --window 30d           # the indicators from the stored facts
  tthc COMMAND --help                    # what a command does, its options, an example"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' and examples' line breaks and appends each option's default
    (when it has one worth showing) to its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and "default" not in text
            and default not in (None, False, [], argparse.SUPPRESS)
            and (action.option_strings or action.nargs in ("?", "*"))
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _version() -> str:
    try:
        return metadata.version("tthc-pipeline")
    except metadata.PackageNotFoundError:  # a checkout run without `pip install -e .`
        return "unknown (not installed; run `make setup`)"


def _command(commands, name: str, summary: str, description: str, example: str, parents=()) -> argparse.ArgumentParser:
    """A sub-command with its one-line summary (in the list), what it does and an example."""
    return commands.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n{description}",
        epilog="example:\n" + "\n".join(f"  {line}" for line in example.splitlines()),
        parents=list(parents),
    )


def _build_parser() -> argparse.ArgumentParser:
    # --data-dir is accepted before and after the command (SUPPRESS: the later one wins, none leaves
    # TTHC_DATA_DIR in charge)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", dest="data_dir", default=argparse.SUPPRESS, metavar="DIR",
        help="all local state: embedded ClickHouse, Kafka data, logs (TTHC_DATA_DIR; default ./var)",
    )
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG, parents=[common])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)
    with_common = (common,)

    infra = _command(
        commands, "infra", "start, stop or inspect the local Kafka, Prometheus and Alertmanager",
        "Runs the services on this machine on the TTHC_*_PORT ports, data in DIR/infra.\n"
        "up: start them (and create the topics); down: stop them; status: each one's state;\n"
        "fetch: only download the Kafka jars (make setup does it).",
        "tthc infra up --brokers 3\ntthc infra status", with_common,
    )
    infra.add_argument("action", choices=["up", "down", "status", "fetch"], help="what to do: up, down, status or fetch")
    infra.add_argument("--brokers", type=_positive_int, help="local Kafka brokers (TTHC_KAFKA_BROKERS; default 1)")
    infra.add_argument("--scram", action="store_true",
                       help="SASL/SCRAM listener (sets TTHC_KAFKA_SECURITY_PROTOCOL=SASL_* for this command)")
    infra.add_argument("--tls", action="store_true",
                       help="TLS listener with a throw-away CA (sets SSL, or SASL_SSL with --scram)")

    worker = _command(
        commands, "worker", "run the stream processor",
        "Consumes the input topic, validates each event, keeps case state and the live\n"
        "indicators, writes ClickHouse and serves /metrics, /healthz and POST /sql on\n"
        "127.0.0.1:TTHC_WEB_PORT; translates the DVCQG raw topic (TTHC_DVCQG_TOPIC) into\n"
        "contract events. Runs until SIGTERM or Ctrl-C.",
        "tthc worker --clock event --web-port 6066", with_common,
    )
    worker.add_argument("--clock", choices=["wall", "event"],
                        help="T is the wall clock, or the latest event time for replays (TTHC_CLOCK; default wall)")
    worker.add_argument("--web-port", dest="web_port", metavar="PORT",
                        help="HTTP port of /metrics, /healthz, /sql (TTHC_WEB_PORT; default 6066)")
    worker.add_argument("--app-id", dest="app_id", metavar="ID",
                        help="Faust app id = Kafka consumer group (TTHC_APP_ID; default tthc-pipeline)")

    replay = _command(
        commands, "replay", "send a JSONL file to the input topic, one message per line",
        "Each line becomes one message keyed by its case_id; a progress bar shows on stderr.\n"
        "Replaying a file twice adds nothing: every valid line is then a duplicate.",
        "tthc replay var/history-2025.jsonl --rate 500", with_common,
    )
    replay.add_argument("file", help="the JSONL file of events (one JSON object per line)")
    replay.add_argument("--rate", type=_positive_float, metavar="N",
                        help="messages per second (default: as fast as the broker takes them)")

    backfill = _command(
        commands, "backfill", "load a JSONL history straight into the facts and the worker's changelog",
        "For a history the broker does not hold: stop the workers of the group first; start\n"
        "them afterwards and they rebuild from the changelog (docs/operations.md).",
        "tthc backfill var/history-2025.jsonl", with_common,
    )
    backfill.add_argument("file", help="the JSONL file of events, in any order")

    simulate = _command(
        commands, "simulate", "produce synthetic dossier lifecycles, live or as a year of history",
        "Live: sends events at --rate for --duration to the input topic.\n"
        "History: with --history YEAR --out FILE writes the year as JSONL (no broker).",
        "tthc simulate --rate 20 --duration 10m --incident unit=TTPVHCC,indicator=satisfaction,level=0.6\n"
        "tthc simulate --history 2025 --scale 0.02 --out var/history-2025.jsonl", with_common,
    )
    simulate.add_argument("--rate", type=_positive_float, default=20.0, help="events per second (live)")
    simulate.add_argument("--duration", type=_duration, default=60.0,
                          help="how long to run (live), in seconds or e.g. 90s, 5m, 1h")
    simulate.add_argument("--units", type=_positive_int, default=None,
                          help="live: how many units of the registry produce dossiers (default 12; --demo: 60)")
    simulate.add_argument("--seed", type=int, default=None,
                          help="random seed, for a repeatable run (default: random live, 2025 for --history)")
    simulate.add_argument("--demo", action="store_true",
                          help="live: the demo's preset (60 units, --baseline clean, the incident of "
                               "pipeline.feed.simulate.DEMO_INCIDENT unless --incident is given)")
    simulate.add_argument("--baseline", choices=("realistic", "clean"), default=None,
                          help="live: 'clean' = no weak spot, every unit well above its targets, no sector "
                               "effect (the demo: only the --incident pages; default: realistic)")
    simulate.add_argument("--history", type=int, metavar="YEAR",
                          help="write a year of the province as JSONL to --out instead of sending live events")
    simulate.add_argument("--out", metavar="FILE", help="output file of --history")
    simulate.add_argument("--scale", type=_positive_float, default=1.0,
                          help="--history: volume factor (1 = the province's real volume)")
    simulate.add_argument("--days", type=_positive_int, metavar="N",
                          help="--history: only the first N days of the year (default: the whole year)")
    simulate.add_argument("--format", dest="output_format", choices=["contract", "dvcqg"], default="contract",
                          help="contract events (default) or DVCQG sync calls (live: posted to the intake)")
    simulate.add_argument(
        "--incident", action="append", default=[], metavar="unit=U,indicator=I,level=L",
        help="drive one unit's indicator down to level L (0-1); repeatable",
    )

    intake = _command(
        commands, "intake", "serve the DVCQG-compatible sync endpoint, or load a sync log",
        "The calls a provincial one-stop system already sends the national portal (login, then\n"
        "DongBoHoSoMC, CapNhatTienDoHoSoMC, DongBoDanhGia), answered error_code 0 once the raw\n"
        "record is in Kafka (TTHC_DVCQG_TOPIC); on TTHC_INTAKE_HOST:TTHC_INTAKE_PORT, accounts from\n"
        "TTHC_INTAKE_ACCOUNTS_FILE (docs/intake.md). The worker translates them into contract events.",
        "tthc intake\ntthc intake --file sync-log.jsonl", with_common,
    )
    intake.add_argument("--file", metavar="FILE",
                        help="a sync log: one DVCQG request body per line; exits once all are in Kafka")

    rules = _command(
        commands, "rules", "write the Prometheus rules generated from the targets file",
        "Recording and alerting rules from deploy/targets.toml (TTHC_TARGETS_FILE); a test\n"
        "fails when the committed deploy/prometheus/rules differ from this output.",
        "tthc rules\ntthc rules --out var/demo/rules --for 1m", with_common,
    )
    rules.add_argument("--out", metavar="DIR", help="directory (default: deploy/prometheus/rules)")
    rules.add_argument(
        "--for", dest="for_override", type=_prom_duration, metavar="DURATION",
        help="every alert's for/keep_firing_for, e.g. 30s (demos and tests only; default: the targets file's)",
    )

    webhook = _command(
        commands, "webhook-log", "print and log the local Alertmanager's notifications",
        "Listens on 127.0.0.1:TTHC_WEBHOOK_PORT (default 5001) for Alertmanager's webhooks and\n"
        "prints one line per alert; the JSON goes to DIR/logs/alerts.jsonl.",
        "tthc webhook-log\ntthc webhook-log --host 0.0.0.0", with_common,
    )
    webhook.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                         help="address to listen on (the compose layout's container: 0.0.0.0)")

    sql = _command(
        commands, "sql", "run a read-only SQL query on the stored facts",
        "Through the running worker's POST /sql when it serves this data dir, else on the\n"
        "store itself. Tables: case_events, invalid_events, cases, units, indicator_snapshots\n"
        "(docs/analysts.md); read the replacing tables with FINAL.",
        'tthc sql "SELECT event_type, count() FROM case_events FINAL GROUP BY event_type"\n'
        'tthc sql "SHOW TABLES" --format csv', with_common,
    )
    sql.add_argument("query", help="one SELECT, SHOW, DESCRIBE or EXPLAIN statement (ClickHouse SQL)")
    sql.add_argument("--format", choices=["json", "table", "csv"], default="table",
                     help="a table for people, json or csv for scripts")

    indicators = _command(
        commands, "indicators", "compute the indicators from the stored facts (batch SQL)",
        "The same figures as the live gauges, computed from case_events alone, for a unit,\n"
        "a sector or the province at time T.",
        "tthc indicators --window 30d,mtd,ytd --unit TTPVHCC\n"
        "tthc indicators --window mtd --sector dat_dai --at 2025-07-31T23:59:59+07:00 --format json", with_common,
    )
    indicators.add_argument("--window", required=True, metavar="W[,W...]",
                            help="windows, comma-separated: 1h, 24h, 7d, 30d, mtd, qtd, ytd (required)")
    indicators.add_argument("--unit", metavar="UNIT", help="one unit's code, e.g. TTPVHCC (default: the province)")
    indicators.add_argument("--sector", metavar="SECTOR", help="one sector's code, e.g. dat_dai (default: all sectors)")
    indicators.add_argument("--at", metavar="TIME", help="RFC 3339 time T, e.g. 2025-07-01T00:00:00+07:00 (default: now)")
    indicators.add_argument("--format", choices=["json", "table"], default="table",
                            help="a table for people, json for scripts")

    report = _command(
        commands, "report", "write the period report: HTML, PDF and CSV from the stored facts",
        "A month, a quarter or a year, computed for that exact calendar period\n"
        "(Asia/Ho_Chi_Minh); the PDF is printed by headless Chromium (docs/reports.md).",
        "tthc report --period 2025-06 --out var/reports\n"
        "tthc report --period 2025 --unit BG_SO_TP --out var/reports --no-pdf\n"
        "tthc report --period 2025-06/bc --kind 766 --out var/reports", with_common,
    )
    report.add_argument("--period", required=True, metavar="PERIOD",
                        help="a month 2025-06, a quarter 2025-Q2 or a year 2025 (required); add /bc for the "
                             "reporting-regime period (15th of the month before to the 14th, Decree 09/2019/NĐ-CP), "
                             "e.g. 2025-06/bc")
    report.add_argument("--kind", choices=("report", "766"), default="report",
                        help="the period report, or the 766 score publication page")
    report.add_argument("--unit", metavar="UNIT", help="one unit's report (default: every unit and the province)")
    report.add_argument("--out", required=True, metavar="DIR", help="output directory (required)")
    report.add_argument("--no-pdf", dest="no_pdf", action="store_true", help="skip the PDF (no Chromium needed)")
    report.add_argument(
        "--structure", choices=("period", "today"), default="period",
        help="units as in force in the period, or mapped onto today's units",
    )

    grafana = _command(
        commands, "grafana", "build the Grafana boards' JSON or provision a running Grafana",
        "build: the boards and provisioning files from pipeline/boards and the targets;\n"
        "provision: folder, data sources and boards into a Grafana through its API.",
        "tthc grafana build --out var/grafana\ntthc grafana provision --url http://127.0.0.1:3000", with_common,
    )
    grafana_actions = grafana.add_subparsers(
        dest="grafana_action", metavar="ACTION", title="actions", parser_class=_Parser
    )
    build = _command(
        grafana_actions, "build", "write the boards' JSON and the Grafana provisioning files",
        "Without --out: dashboards/*.json and deploy/grafana/provisioning/ in the repository\n"
        "(a test fails when the committed files drift). With --out DIR: everything under DIR.",
        "tthc grafana build --out var/grafana", with_common,
    )
    build.add_argument("--out", metavar="DIR",
                       help="write everything here: DIR/dashboards and DIR/provisioning (default: the repository)")
    provision = _command(
        grafana_actions, "provision", "create the folder, data sources and boards in a running Grafana",
        "Idempotent: running it again changes nothing new. The token and the ClickHouse URL\n"
        "are secrets: give them as TTHC_GRAFANA_TOKEN(_FILE) and TTHC_GRAFANA_CLICKHOUSE_URL(_FILE)\n"
        "rather than on the command line, which other users of the machine can read.",
        "TTHC_GRAFANA_TOKEN_FILE=/run/secrets/grafana tthc grafana provision --url http://127.0.0.1:3000 \\\n"
        "  --prometheus-url http://127.0.0.1:19090", with_common,
    )
    provision.add_argument("--url", required=True, help="Grafana address, e.g. http://127.0.0.1:3000 (required)")
    provision.add_argument("--token", help="service account token, Editor or Admin (default: TTHC_GRAFANA_TOKEN(_FILE))")
    provision.add_argument("--prometheus-url", dest="prometheus_url", metavar="URL",
                           help="Prometheus as Grafana reaches it (default: the local one)")
    provision.add_argument(
        "--clickhouse-url", dest="clickhouse_url", metavar="URL",
        help="http(s)://user:password@host:8123/db (default: TTHC_GRAFANA_CLICKHOUSE_URL(_FILE), "
        "else TTHC_CLICKHOUSE_DSN if a server)",
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
        from pipeline.feed.dvcqg import registries_for
        from pipeline.stream.worker import run_worker

        # the DVCQG translation's registries: the deploy files and the simulated world's codes
        return run_worker(settings, registries_for(settings))
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
                                   days=args.days, output_format=args.output_format)
            what = "DVCQG calls" if args.output_format == "dvcqg" else "events"
            print(f"simulate: wrote {result.events} {what} ({result.dossiers} dossiers, {result.feedbacks} feedback) "
                  f"of {result.first_day}..{result.last_day} to {result.path}")
            return 0
        if args.output_format == "dvcqg":
            from pipeline.feed.simulate import run_dvcqg_simulation

            run_dvcqg_simulation(settings, rate=args.rate, duration=args.duration, units=units,
                                 incidents=incidents, seed=args.seed)
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
    if args.command == "intake":
        from pipeline.intake.server import run_file, run_intake

        return run_file(settings, args.file) if args.file else run_intake(settings)
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

        return run_webhook_log(settings.webhook_port, settings.data_dir / "logs" / "alerts.jsonl", args.host)
    if args.command == "sql":
        from pipeline.access import print_sql

        return print_sql(settings, args.query, args.format)
    if args.command == "indicators":
        from pipeline.reports.indicator_table import print_indicators

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

        return run_report(settings, args.period, args.unit, args.out, pdf=not args.no_pdf, structure=args.structure,
                          kind=args.kind)
    if args.command == "grafana":
        if args.grafana_action == "build":
            from pipeline.boards.command import run_build

            return run_build(settings, args.out)
        from pipeline.boards.command import run_provision

        # secrets: the flag (readable by other users in the process list) or, better, the
        # environment or a file, like every other secret (pipeline/secrets.py)
        token = remember(args.token) or read_secret(GRAFANA_TOKEN)
        clickhouse_url = remember(args.clickhouse_url) or read_secret(GRAFANA_CLICKHOUSE_URL)
        return run_provision(settings, args.url, token, args.prometheus_url, clickhouse_url)
    raise UserError(f"unknown command {args.command!r}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, or a :class:`UserError` of one line that names the way on."""
    parser = _build_parser()
    args, extras = parser.parse_known_args(argv)
    command = getattr(args, "command", None)
    where = f"{PROG} {command}" if command else PROG
    if extras:
        raise UserError(f"{where}: unrecognized arguments: {' '.join(extras)} (see `{where} --help`)")
    if command is None:
        names = ", ".join(_subcommands(parser))
        raise UserError(f"{PROG}: no command given; choose one of {names} (see `{PROG} --help`)")
    if command == "grafana" and args.grafana_action is None:
        raise UserError(f"{where}: no action given; choose build or provision (see `{where} --help`)")
    return args


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers of ``parser`` by name (for the help test and the messages)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        return _dispatch(args, _settings(args))
    except (UserError, ConfigError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)  # never a secret (pipeline/secrets.py)
        return 2
    except KeyboardInterrupt:
        return 130
