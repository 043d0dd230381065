"""Run the sandbox: `python -m sandbox --port 8790 [--leads 1200 …]`."""

from __future__ import annotations

import argparse
import gc
import signal
import sys

from sandbox import seed
from sandbox.config import CHOICES
from sandbox.server import serve
from sandbox.state import Config, Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local amoCRM sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--client-id", default=Config.client_id)
    parser.add_argument("--client-secret", default=Config.client_secret)
    parser.add_argument("--subdomain", default=Config.subdomain, help="the account's subdomain")
    parser.add_argument("--redirect-uri", default="", help="the integration's registered redirect URI")
    parser.add_argument(
        "--webhook-url", default="", help="send every webhook here (besides /api/v4/webhooks subscriptions)"
    )
    parser.add_argument("--token-lifetime", type=int, default=86400, help="access token lifetime, seconds")
    parser.add_argument("--rate-limit", type=float, default=7.0, help="requests per rolling second before 429")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--filters",
        choices=CHOICES["filters"],
        default=Config.filters,
        help="list filters: on, ignored (account not enrolled), range-only (one bound → 204)",
    )
    parser.add_argument(
        "--webhook-format",
        choices=CHOICES["webhook_format"],
        default=Config.webhook_format,
        help="stage-change webhooks: full account webhooks or the robot's compact ones",
    )
    parser.add_argument(
        "--retry-after", type=int, default=None, help="send Retry-After: N with every 429 (amoCRM sends none)"
    )
    parser.add_argument(
        "--api-domain",
        default=Config.api_domain,
        help="the shared API host the tokens name (default: localhost:<port>, or 127.0.0.1:<port> for a localhost one)",
    )
    parser.add_argument(
        "--webhook-retry-scale",
        type=float,
        default=Config.webhook_retry_scale,
        help="webhook redelivery delays (5 min, 15 min, 15 min, 1 h) times this",
    )
    parser.add_argument(
        "--error-shape",
        choices=CHOICES["error_shape"],
        default=Config.error_shape,
        help="400 body for invalid leads, contacts and tasks",
    )
    parser.add_argument(
        "--missing-entity-status",
        type=int,
        choices=CHOICES["missing_entity_status"],
        default=Config.missing_entity_status,
        help="single GET of an entity that does not exist",
    )
    defaults = seed.SeedSize()
    for name in ("pipelines", "users", "contacts", "leads", "tasks", "seed"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    args = parser.parse_args(argv)

    config = Config(
        client_id=args.client_id,
        client_secret=args.client_secret,
        subdomain=args.subdomain,
        redirect_uri=args.redirect_uri,
        webhook_url=args.webhook_url,
        token_lifetime=args.token_lifetime,
        rate_limit=args.rate_limit,
        latency_ms=args.latency_ms,
        filters=args.filters,
        webhook_format=args.webhook_format,
        retry_after=args.retry_after,
        api_domain=args.api_domain,
        webhook_retry_scale=args.webhook_retry_scale,
        error_shape=args.error_shape,
        missing_entity_status=args.missing_entity_status,
    )
    size = seed.SeedSize(
        pipelines=args.pipelines,
        users=args.users,
        contacts=args.contacts,
        leads=args.leads,
        tasks=args.tasks,
        seed=args.seed,
    )
    server = serve(args.host, args.port, Sandbox(config, size))
    # The seeded account lives as long as the server: kept out of the garbage collector, whose
    # full passes over 50,000 leads stalled every request thread, after which the requests that
    # had queued meanwhile were stamped as arriving together (8 starts in 850 ms, and a 429).
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"amoCRM sandbox on {config.public_url} ({server.sandbox.counts()})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
