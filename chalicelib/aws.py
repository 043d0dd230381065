"""One botocore data loader for every AWS client of the process.

A botocore session parses endpoints.json and each service's model the first time it builds a
client. PynamoDB makes a session per model (and per thread) and boto3 one more, so a cold
Lambda's first webhook parsed the same JSON three times: about 1.2 s of its 1.6 s
(scripts/webhook_cold_start.py). Sessions made here share one loader, and with it its cache:
each file is parsed once per process.
"""

from __future__ import annotations

from typing import Any

import botocore.loaders
import botocore.session
from pynamodb.connection import base as pynamodb_connection

_loader: botocore.loaders.Loader | None = None


def botocore_session(session_vars: Any = None) -> botocore.session.Session:
    """A new session (botocore clients are not shared across threads) with the shared loader."""
    global _loader
    session = botocore.session.Session(session_vars)
    if _loader is None:
        _loader = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _loader)
    return session


def share_loader_with_pynamodb() -> None:
    """PynamoDB asks `pynamodb.connection.base.get_session` for each connection's session."""
    pynamodb_connection.get_session = botocore_session
