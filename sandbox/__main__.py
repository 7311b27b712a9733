"""python -m sandbox {serve,directory,totals,bench,send-webhooks}"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from datetime import date

import yaml

from sandbox.agency import directory
from sandbox.config import SandboxConfig
from sandbox.faults import FaultInjector
from sandbox.scenarios import parse as parse_scenario
from sandbox.server import SandboxServer
from sandbox.totals import expected_totals, iter_records
from sandbox.webhook_sender import send_webhooks


def _config(args: argparse.Namespace) -> SandboxConfig:
    values = {name: getattr(args, name) for name in
              ("seed", "clients", "agents_per_client", "days", "calls_per_agent_per_day", "retell_workspaces",
               "corrupt_rate")}
    if args.end_date:
        values["end_date"] = date.fromisoformat(args.end_date)
    values["scenarios"] = tuple(args.scenario)
    return SandboxConfig(**values)


def _scenario(text: str) -> tuple:
    try:
        return parse_scenario(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    defaults = SandboxConfig()
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--agents-per-client", type=int, default=defaults.agents_per_client)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--calls-per-agent-per-day", type=int, default=defaults.calls_per_agent_per_day)
    parser.add_argument("--retell-workspaces", type=int, default=defaults.retell_workspaces)
    parser.add_argument("--corrupt-rate", type=float, default=defaults.corrupt_rate,
                        help="share of records damaged on purpose, to exercise quarantine")
    parser.add_argument("--end-date", help="last generated UTC day (default: yesterday)")
    parser.add_argument("--scenario", action="append", default=[], type=_scenario, metavar="KIND,ARG,...",
                        help="plant an anomaly, e.g. spike,0,2026-03-10,4 or silent_provider,twilio,2026-03-12 "
                             "(repeatable; kinds and arguments in sandbox/scenarios.py)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the provider APIs")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 429/5xx")
    serve.add_argument("--slow-rate", type=float, default=0.0, help="share of requests answered slowly")
    serve.add_argument("--slow-ms", type=int, default=2000)
    serve.add_argument("--prerender", action="store_true",
                       help="render every listed record before serving (about 2 KB of memory per record)")
    serve.add_argument("--plain", action="store_true",
                       help="generate and encode every listing on each request instead of keeping records rendered")

    out = commands.add_parser("directory", help="write the clients/agents/assignments YAML")
    out.add_argument("--output", default="-")

    commands.add_parser("totals", help="print what was generated, per provider and client")
    commands.add_parser("bench", help="generate every record and print the rate")

    hooks = commands.add_parser("send-webhooks", help="POST signed webhooks for one day")
    hooks.add_argument("--day", required=True)
    hooks.add_argument("--retell-url")
    hooks.add_argument("--twilio-url")

    args = parser.parse_args(argv)
    try:
        config = _config(args)
    except ValueError as exc:
        parser.error(str(exc))

    if args.command == "serve":
        faults = FaultInjector(args.error_rate, args.slow_rate, args.slow_ms, seed=config.seed)
        server = SandboxServer((args.host, args.port), config, faults, rendered=not args.plain)
        if args.prerender and not args.plain:
            started = time.perf_counter()
            count = server.records.prerender()
            print(f"sandbox rendered {count} listed records in {time.perf_counter() - started:.1f} s", flush=True)
        print(f"sandbox serving {config.to_json()} on {server.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    elif args.command == "directory":
        text = yaml.safe_dump(directory(config), sort_keys=False)
        if args.output == "-":
            sys.stdout.write(text)
        else:
            with open(args.output, "w") as handle:
                handle.write(text)
    elif args.command == "totals":
        for (provider, client_id), total in sorted(expected_totals(config).items()):
            print(f"{provider:<11} {client_id:<11} {total.objects:>9} objects  {total.cost_usd:>14} USD")
    elif args.command == "bench":
        started = time.perf_counter()
        count = sum(1 for _ in iter_records(config))
        seconds = time.perf_counter() - started
        rate = round(count / seconds)
        print(json.dumps({"records": count, "seconds": round(seconds, 2), "records_per_second": rate}))
    elif args.command == "send-webhooks":
        print(send_webhooks(config, date.fromisoformat(args.day), args.retell_url, args.twilio_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
