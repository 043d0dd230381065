"""How long a fresh process takes to acknowledge its first webhook (amoCRM waits about 2 s and
disables a hook that keeps answering late, reference §13): `import app`, then one form-encoded
`leads[status]` delivery through the route with the webhook queue configured. AWS is moto in
this process; setting it up (tables, queue, a connected account) is not counted.

    python -m scripts.webhook_cold_start            # one fresh process, prints JSON
    python -m scripts.webhook_cold_start --runs 3   # three fresh processes, one after the other
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
SECRET = "cold-start-secret"
ACCOUNT_ID = 30896271
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AMO_BASE_URL": "https://coldstart.amocrm.ru",
    "AMO_CLIENT_ID": "client-id",
    "AMO_CLIENT_SECRET": "client-secret",
    "AMO_REDIRECT_URI": "https://service.example.com/api/integrations/amo-crm/callback",
    "AMO_WEBHOOK_SECRET": SECRET,
    "MAIN_BACKEND_API_KEY": "main-backend-key",
    "TABLE_PREFIX": "coldstart-",
}
BODY = urlencode(
    {
        "leads[status][0][id]": "17657",
        "leads[status][0][status_id]": "142",
        "leads[status][0][pipeline_id]": "1113",
        "leads[status][0][old_status_id]": "2030",
        "leads[status][0][last_modified]": "1588241643",
        "leads[status][0][updated_at]": "1588241643",
        "account[id]": str(ACCOUNT_ID),
        "account[subdomain]": "coldstart",
        "account[_links][self]": "https://coldstart.amocrm.ru",
    }
)


def forget_parsed_aws_json() -> None:
    """What the set-up's clients loaded is forgotten: the route builds its own, as when cold."""
    from chalicelib.models import ALL_MODELS  # noqa: PLC0415

    for model in ALL_MODELS:
        model._connection = None
    shared = sys.modules.get("chalicelib.aws")  # the process-wide botocore loader, where there is one
    if shared is not None:
        shared._loader = None  # type: ignore[attr-defined]


def _one() -> dict:
    """In this (fresh) process: the import, then the first delivery."""
    started = time.perf_counter()
    import app  # noqa: PLC0415 - what is measured

    imported = time.perf_counter()
    import boto3  # noqa: PLC0415 - the harness, not counted
    from chalice.test import Client  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    with mock_aws():
        # set up through clients of their own (each botocore session loads its service models),
        # so the route's first delivery still builds its clients as a cold Lambda does
        sqs = boto3.session.Session().client("sqs")
        queue = sqs.create_queue(QueueName="coldstart-webhooks")["QueueUrl"]
        os.environ["WEBHOOK_QUEUE_URL"] = queue
        from chalicelib.models import ALL_MODELS, AmoToken  # noqa: PLC0415

        for model in ALL_MODELS:
            model.create_table(wait=True)
        AmoToken(access_token="a", refresh_token="r", expires_at=time.time() + 86400, account_id=ACCOUNT_ID).save()
        forget_parsed_aws_json()
        client = Client(app.app)
        before = time.perf_counter()
        response = client.http.post(
            f"/integrations/amo-crm/webhook?secret={SECRET}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=BODY,
        )
        answered = time.perf_counter()
        queued = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert response.status_code == 200, response.body
    assert queued["Attributes"]["ApproximateNumberOfMessages"] == "1", "the event was not queued"
    import_ms, first_ms = (imported - started) * 1000, (answered - before) * 1000
    return {"import_app_ms": round(import_ms), "first_ack_ms": round(first_ms), "total_ms": round(import_ms + first_ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=0, help="fresh processes to run (0: measure in this one)")
    args = parser.parse_args()
    if not args.runs:
        print(json.dumps(_one()))
        return
    env = {"PATH": os.environ.get("PATH", ""), **ENV}
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-m", "scripts.webhook_cold_start"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        print(out.stdout.strip() or out.stderr.strip()[-2000:])


if __name__ == "__main__":
    main()
