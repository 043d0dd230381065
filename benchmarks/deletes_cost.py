"""What reconciling deletes through amoCRM's events log (issue 25) costs an incremental run: the
amoCRM requests of one scheduled run with no deletion and with 500 leads deleted in amoCRM
without a webhook, by path. In-process: the app, moto, and a sandbox in a thread seeded with
1,000 leads (tests/faults/world.py builds them), so requests are counted, not timed.

    .venv/bin/python -m benchmarks.deletes_cost
"""

from __future__ import annotations

import copy
import json
import os

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_PREFIX": "bench-del-",
        "MAIN_BACKEND_API_KEY": "main-backend-key",
        "AMO_WEBHOOK_SECRET": "test-webhook-secret",
    }
)
for _var in ("AWS_ENDPOINT_URL", "MAIN_BACKEND_WEBHOOK_URL", "WEBHOOK_QUEUE_URL", "NOTIFY_QUEUE_URL", "SYNC_QUEUE_URL"):
    os.environ.pop(_var, None)

from moto import mock_aws  # noqa: E402
from moto.dynamodb.models import dynamodb_backends  # noqa: E402

from chalicelib import wiring  # noqa: E402
from chalicelib.models import ALL_MODELS  # noqa: E402
from chalicelib.services import sync  # noqa: E402
from sandbox.seed import SeedSize  # noqa: E402
from tests.faults import world as worlds  # noqa: E402  (the tests' in-process world; it reads tests/conftest.py)

MOTO_ACCOUNT = "123456789012"  # moto's default account id
LEADS, DELETED = 1_000, 500


def _tables() -> dict:
    with mock_aws():
        for model in ALL_MODELS:
            model.create_table(wait=True)
        return copy.deepcopy(dynamodb_backends[MOTO_ACCOUNT]["us-east-1"].tables)


def _run(world: worlds.World) -> tuple[dict[str, int], dict]:
    world.control("POST", "stats/reset")
    result = sync.scheduled_sync(wiring.amo())
    by_path = world.control("GET", "stats")["by_path"]
    return {path.split("?")[0]: n for path, n in by_path.items() if "/api/v4/" in path}, result["deletes"]


def main() -> None:
    worlds.SEED = SeedSize(pipelines=1, users=2, contacts=LEADS // 2, leads=LEADS, tasks=10, seed=7)
    with worlds.World(_tables(), queued=False) as world:
        assert world.call("POST", "sync-all?full=true")[0] == 200
        sync.scheduled_sync(wiring.amo())  # the events cursor starts here
        rows = [("no deletion", *_run(world))]
        for lead_id in sorted(world.sandbox.leads)[:DELETED]:
            world.control("POST", "delete", {"entity": "leads", "id": lead_id})
        rows.append((f"{DELETED} leads deleted, no webhook", *_run(world)))
    print(f"One scheduled incremental run after a full sync of {LEADS:,} leads (amoCRM requests by path):\n")
    print("| case | events | leads (list + trash) | other | total | deletes applied |")
    print("|---|---:|---:|---:|---:|---|")
    for case, by_path, deletes in rows:
        events = by_path.get("GET /api/v4/events", 0)
        leads = by_path.get("GET /api/v4/leads", 0)
        total, applied = sum(by_path.values()), json.dumps(deletes.get("applied"))
        print(f"| {case} | {events} | {leads} | {total - events - leads} | {total} | {applied} |")


if __name__ == "__main__":
    main()
