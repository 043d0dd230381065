"""SQS: where work that must not be lost goes. The client is created once, on first use."""
from __future__ import annotations

import json
import threading

import boto3

from chalicelib import settings

_client = None
_lock = threading.Lock()


def sqs():
    global _client
    with _lock:
        if _client is None:
            _client = boto3.client("sqs")  # honours AWS_ENDPOINT_URL (moto server locally)
        return _client


def sync_queue_configured() -> bool:
    return bool(settings.sync_queue_url())


def send_sync_continuation(job_id: str) -> None:
    sqs().send_message(QueueUrl=settings.sync_queue_url(), MessageBody=json.dumps({"jobId": job_id}))
