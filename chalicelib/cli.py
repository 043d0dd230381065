"""The operator's command line: `python -m chalicelib.cli <command>`.

Calls services only; never prints a token, key or secret. Exit code 0 on success, 1 on
failure, 2 on bad usage. `--stage NAME` (before or after the command) acts on a deployed stage:
its environment is read from its stack and .chalice/config.json with the operator's AWS
credentials (scripts/stage_env.py, so only from the repository's checkout); without it the
environment is used as it is (the local stack's `.local/service.env`).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time
from collections.abc import Callable

from chalicelib import logs, settings, wiring
from chalicelib.amo.errors import AmoError
from chalicelib.services import admin, budget_store, connection, erasure, notifications, pipelines, sync, webhooks
from chalicelib.services.errors import AmbiguousGuest, ServiceError


class ProgressLine:
    """One self-overwriting line on stderr: entity, page, items so far, rate, errors."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()

    def __call__(self, event: dict) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        page = f"page {event['page']:>5}" if event.get("page") else "done      "
        line = (
            f"{event['entity']:<9} {page}  {event['synced']:>8} synced  "
            f"{event['synced'] / elapsed:8.1f}/s  {event['errors']} errors"
        )
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if event.get("page") is None else ""))
        elif event.get("page") is None or event["page"] % 20 == 0:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _summary(results: dict, elapsed: float) -> int:
    print(f"\n{'entity':<10} {'synced':>8} {'errors':>7}  status")
    failed = 0
    for entity, result in results.items():
        errors = result.get("errors") or []
        failed += len(errors)
        status = result.get("status", "complete")
        if result.get("jobId"):
            status += f" (job {result['jobId']})"
        print(f"{entity:<10} {result.get('synced', 0):>8} {len(errors):>7}  {status}")
        for error in errors[:5]:
            print(f"    {error.get('id')}: {error.get('message')}")
        if len(errors) > 5:
            print(f"    … and {len(errors) - 5} more")
    print(f"finished in {elapsed:.1f}s")
    return 1 if failed else 0


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")


def cmd_create_tables(_: argparse.Namespace) -> int:
    for name, outcome in admin.create_tables():
        print(f"  {name}: {outcome}")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    report = admin.status(wiring.amo)
    print("Configuration")
    _print_rows([(k, v) for k, v in report["config"].items()])
    if report["config_problems"]:
        for problem in report["config_problems"]:
            print(f"  ! {problem}")
    print("DynamoDB")
    _print_rows(report["tables"])
    if report["mapping"] is not None:
        _print_unmapped(report["mapping"])
    print("amoCRM connection and notifications")
    _print_rows(
        [
            (f"{k}.{sub}" if isinstance(v, dict) else k, str(value))
            for k, v in report["connection"].items()
            for sub, value in (v.items() if isinstance(v, dict) else [(None, v)])
        ]
    )
    healthy = report["tables_ok"] and report["connection"].get("connected") is True
    return 0 if healthy else 1


def _print_unmapped(mapping: dict) -> None:
    print("Stage mapping")
    if not mapping["data"]:
        print("  every stage is mapped")
        return
    print(
        f"  {mapping['count']} stage(s) without a mapping hold {mapping['unmappedLeads']} lead(s) "
        "(map them: PUT stages/{id}/mapping or POST mapping/auto-apply)"
    )
    _print_rows(
        [
            (f"{s['pipelineName']} / {s['stageName']} ({s['pipelineId']}/{s['stageId']})", f"{s['leads']} lead(s)")
            for s in mapping["data"]
        ]
    )


def cmd_refresh_token(_: argparse.Namespace) -> int:
    result = wiring.token_store().refresh_token()
    if not result["refreshed"]:
        print(f"not refreshed: {result['reason']}; valid until {result['expiresAt']} (unix time)")
        return 0
    print(f"token refreshed; access token valid until {result['expiresAt']} (unix time)")
    return 0


def cmd_set_long_lived_token(_: argparse.Namespace) -> int:
    """The token is read from stdin (or typed without echo), never from the command line, where
    the process list and the shell history would keep it."""
    token = getpass.getpass("long-lived token: ") if sys.stdin.isatty() else sys.stdin.readline()
    result = connection.store_long_lived_token(wiring.amo(), token.strip())
    print(f"{result['message']}: account {result['accountId']}, expires at {result['expiresAt']} (unix time)")
    if result["daysLeft"] is not None and result["daysLeft"] < 14:
        print(f"  ! it expires in {result['daysLeft']:.1f} days: issue a longer-lived one")
    return 0


def cmd_sync_all(args: argparse.Namespace) -> int:
    started = time.monotonic()
    results = sync.sync_all(
        wiring.amo(), leads_limit=args.leads_limit, full=args.full, progress=ProgressLine(), related=args.related
    )
    return _summary(results, time.monotonic() - started)


def _sync_one(entity: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        started = time.monotonic()
        result = sync.sync_entity(
            wiring.amo(), entity=entity, limit=args.limit, incremental=not args.full, progress=ProgressLine()
        )
        return _summary({entity: result}, time.monotonic() - started)

    return run


def cmd_sync_pipelines(_: argparse.Namespace) -> int:
    started = time.monotonic()
    return _summary({"pipelines": pipelines.sync_pipelines(wiring.amo())}, time.monotonic() - started)


def cmd_register_webhook(args: argparse.Namespace) -> int:
    result = webhooks.register(wiring.amo(), url=args.url)
    print(f"{result['message']}: {result['destination']}\n  events: {', '.join(result['settings'])}")
    for retired in result.get("retired", []):
        print(f"  deleted the subscription with the previous secret: {retired}")
    for number, step in enumerate(result.get("steps", []), 1):  # registration: manual
        print(f"  {number}. {step}")
    return 0


def cmd_unregister_webhook(args: argparse.Namespace) -> int:
    """With --secret-from-stdin, the subscription that carries that secret (the one being rotated
    out, docs/operating.md 'Rotating a secret'): this process alone uses it as AMO_WEBHOOK_SECRET."""
    if args.secret_from_stdin:
        secret = (
            getpass.getpass("the subscription's secret: ") if sys.stdin.isatty() else sys.stdin.readline()
        ).strip()
        if not secret:
            raise settings.ConfigError("no secret on stdin")
        os.environ["AMO_WEBHOOK_SECRET"] = secret
    result = webhooks.unregister(wiring.amo(), args.url)
    print(f"{result['message']}: {result['destination']}")
    return 0


def cmd_deliver_notifications(_: argparse.Namespace) -> int:
    result = notifications.deliver_pending()
    print(f"pending {result['pending']}, delivered {result['delivered']}")
    if "held" in result:
        print(result["held"])
    return 0 if result["pending"] == result["delivered"] else 1


def cmd_redrive(_: argparse.Namespace) -> int:
    result = notifications.redrive()
    print(
        f"dead-letter messages cleared {result['deadLetterMessagesCleared']}, "
        f"notifications sent again {result['redriven']}"
    )
    return 0


def cmd_connect(_: argparse.Namespace) -> int:
    consent = connection.consent_url()
    print(
        "Open this address as an amoCRM administrator and allow access (valid for "
        f"{consent['expiresInSeconds'] // 60} minutes, once):"
    )
    print(consent["url"])
    return 0


def cmd_disconnect(_: argparse.Namespace) -> int:
    print(connection.disconnect()["message"])
    return 0


def cmd_erase_guest(args: argparse.Namespace) -> int:
    """What POST guests/erase does; prints counts only, never the person's data."""
    if sum(x is not None for x in (args.amo_contact_id, args.email, args.phone)) != 1:
        print("error: give exactly one of --amo-contact-id, --email, --phone", file=sys.stderr)
        return 2
    try:
        result = erasure.erase_guest(
            wiring.amo,
            amo_contact_id=args.amo_contact_id,
            email=args.email,
            phone=args.phone,
            also_in_amo=args.also_in_amo,
        )
    except AmbiguousGuest as error:
        print(f"error: {error}: {', '.join(map(str, error.contact_ids))}", file=sys.stderr)
        return 1
    print(f"erased guest (amoCRM contact {result['amoContactId']})")
    _print_rows([(table, str(count)) for table, count in result["erased"].items()])
    print(f"  amoCRM contact cleared: {'yes' if result['amoChanged'] else 'no'}")
    return 0


def cmd_budget(args: argparse.Namespace) -> int:
    """The shared amoCRM budget's pause, cool-down and block, with who set them; `clear` lifts
    them (after amoCRM's support lifted a block, or to drop a pause nobody should wait for)."""
    if args.action == "margin":
        if args.seconds is None:
            raise ServiceError("budget margin needs the new margin in seconds, e.g. `budget margin 0.08`")
        try:
            result = budget_store.set_margin(args.seconds, settings.amo_rate_limit_per_second())
        except ValueError as error:
            raise ServiceError(str(error)) from None
        print(f"margin {result['marginSeconds']}s from {result['from']} (was {result['before']})")
        return 0
    if args.action == "clear":
        result = budget_store.clear()
        print(f"cleared: {', '.join(result['cleared']) or 'nothing was paused or blocked'}")
        for what, by in (("pause", result["before"]["pausedBy"]), ("block", result["before"]["blockedBy"])):
            if by:
                print(f"  the {what} was set by {by}")
        return 0
    shown = budget_store.show()
    _print_rows([(name, "-" if value is None else str(value)) for name, value in shown.items()])
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "create-tables": (cmd_create_tables, "create every DynamoDB table (idempotent)"),
    "status": (cmd_status, "show configuration, table and amoCRM connection status"),
    "refresh-token": (cmd_refresh_token, "refresh the amoCRM access token now"),
    "connect": (cmd_connect, "print amoCRM's consent address with a fresh single-use state"),
    "set-long-lived-token": (cmd_set_long_lived_token, "store a long-lived token (read from stdin; never refreshed)"),
    "disconnect": (cmd_disconnect, "forget the stored amoCRM tokens (to connect another account)"),
    "register-webhook": (cmd_register_webhook, "subscribe the service's webhook URL in amoCRM (idempotent)"),
    "unregister-webhook": (cmd_unregister_webhook, "remove that subscription"),
    "deliver-notifications": (cmd_deliver_notifications, "send pending Main Backend notifications now"),
    "redrive": (cmd_redrive, "send dead Main Backend notifications again"),
    "erase-guest": (cmd_erase_guest, "erase one guest's personal data from every table (and amoCRM's contact)"),
    "budget": (cmd_budget, "show or clear the shared amoCRM budget's pause, cool-down and block; set its margin"),
    "sync-all": (cmd_sync_all, "pipelines and stages, then leads (full unless --incremental)"),
    "sync-pipelines": (cmd_sync_pipelines, "pipelines and stages"),
    "sync-leads": (_sync_one("leads"), "leads with their contacts"),
    "sync-contacts": (_sync_one("contacts"), "contacts"),
    "sync-tasks": (_sync_one("tasks"), "tasks"),
}


STAGE_HELP = "act on this deployed stage (its stack's outputs and settings; your AWS credentials)"


def use_stage(stage: str) -> None:
    try:
        from scripts import stage_env  # the deploy side: the repository's checkout, not the Lambda package
    except ModuleNotFoundError:
        raise settings.ConfigError(
            "--stage works from the repository's checkout (it reads .chalice/config.json)"
        ) from None
    print(stage_env.apply(stage), file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.cli", description="Operate the amoCRM integration service."
    )
    parser.add_argument("--stage", default=None, help=STAGE_HELP)
    stage = argparse.ArgumentParser(add_help=False)
    stage.add_argument("--stage", default=argparse.SUPPRESS, help=STAGE_HELP)  # after the command too
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (handler, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, parents=[stage])
        command.set_defaults(handler=handler)
        if name == "budget":
            command.add_argument(
                "action", choices=("show", "clear", "margin"), nargs="?", default="show", help="show (default)"
            )
            command.add_argument("seconds", nargs="?", type=float, help="margin: the deployment's new margin")
        if name in ("register-webhook", "unregister-webhook"):
            command.add_argument("--url", help="the webhook URL (default: WEBHOOK_PUBLIC_URL)")
        if name == "unregister-webhook":
            command.add_argument(
                "--secret-from-stdin",
                action="store_true",
                help="remove the subscription carrying the secret read from stdin (an old one, after a rotation)",
            )
        if name == "erase-guest":
            command.add_argument("--amo-contact-id", type=_positive, help="the guest's amoCRM contact id")
            command.add_argument("--email", help="the guest's e-mail (compared in lower case)")
            command.add_argument("--phone", help="the guest's phone (compared by its digits)")
            command.add_argument(
                "--also-in-amo",
                action="store_true",
                help="also clear the person in amoCRM (contact, lead fields and task texts naming them)",
            )
        if name == "sync-all":
            command.add_argument("--leads-limit", type=_non_negative, default=0, help="0 = every lead (default)")
            command.add_argument("--related", action="store_true", help="also contacts and tasks")
        elif name in ("sync-leads", "sync-contacts", "sync-tasks"):
            command.add_argument("--limit", type=_non_negative, default=0, help="0 = all (default)")
        if name.startswith("sync-") and name != "sync-pipelines":
            mode = command.add_mutually_exclusive_group()
            mode.add_argument("--full", dest="full", action="store_true", default=True, help="everything (default)")
            mode.add_argument(
                "--incremental",
                dest="full",
                action="store_false",
                help="only what changed since the last complete run (minus an overlap)",
            )
    return parser


def _non_negative(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError("must be a non-negative integer")
    return int(value)


def _positive(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    logs.configure(logging.WARNING, stream_name="stderr")
    args = build_parser().parse_args(argv)
    try:
        if args.stage:
            use_stage(args.stage)
        return args.handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ServiceError, AmoError, settings.ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # the operator gets one line, not a traceback
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
