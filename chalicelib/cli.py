"""The operator's command line: `python -m chalicelib.cli <command>`.

Calls services only; never prints a token, key or secret. Exit code 0 on success, 1 on
failure, 2 on bad usage.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from chalicelib import logs, settings
from chalicelib.services import admin, tokens
from chalicelib.services.errors import ServiceError


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")


def cmd_create_tables(_: argparse.Namespace) -> int:
    for name, outcome in admin.create_tables():
        print(f"  {name}: {outcome}")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    report = admin.status()
    print("Configuration")
    _print_rows([(k, v) for k, v in report["config"].items()])
    if report["config_problems"]:
        for problem in report["config_problems"]:
            print(f"  ! {problem}")
    print("DynamoDB")
    _print_rows(report["tables"])
    print("amoCRM connection")
    _print_rows([(k, str(v)) for k, v in report["connection"].items()])
    healthy = report["tables_ok"] and report["connection"].get("connected") is True
    return 0 if healthy else 1


def cmd_refresh_token(_: argparse.Namespace) -> int:
    result = tokens.refresh_token(force=True)
    print(f"token refreshed; access token valid until {result['expiresAt']} (unix time)")
    return 0


def cmd_disconnect(_: argparse.Namespace) -> int:
    print(tokens.disconnect()["message"])
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "create-tables": (cmd_create_tables, "create every DynamoDB table (idempotent)"),
    "status": (cmd_status, "show configuration, table and amoCRM connection status"),
    "refresh-token": (cmd_refresh_token, "refresh the amoCRM access token now"),
    "disconnect": (cmd_disconnect, "forget the stored amoCRM tokens (to connect another account)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli",
                                     description="Operate the amoCRM integration service.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (handler, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        command.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    logs.configure(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ServiceError, settings.ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # the operator gets one line, not a traceback
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
