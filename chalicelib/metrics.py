"""Counters and measurements for CloudWatch, written as embedded metric format (EMF) log lines:
no API call, no latency on the request path.

Code anywhere calls `count("AmoRequests")` or `measure("SyncDuration", 12.5, "Seconds",
Entity="leads")`; nothing else imports Powertools. Counts are summed and measurements kept
(the latest MAX_VALUES per metric) until `flush`, which the invocation middleware calls once per
invocation: one EMF line per set of dimensions, in the namespace POWERTOOLS_METRICS_NAMESPACE
(default AmoCrmIntegration) with the dimension `service` = POWERTOOLS_SERVICE_NAME (the stack
name when deployed, so the template's alarms find them). Only deployed invocations write the
lines; locally (tests, `chalice local`, the CLI) they are dropped. Thread-safe: a sync's worker
threads count too.

The names, what they count and the alarms on them are listed in README "Operating it".
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

DEFAULT_NAMESPACE = "AmoCrmIntegration"
MAX_VALUES = 99  # EMF allows 100 values per metric in one line; Powertools prints on its own at 100

Dimensions = tuple[tuple[str, str], ...]

_lock = threading.Lock()
_counts: dict[tuple[Dimensions, str], float] = {}
_values: dict[tuple[Dimensions, str], list[float]] = {}
_units: dict[str, str] = {}


def _key(name: str, dimensions: dict[str, str]) -> tuple[Dimensions, str]:
    return tuple(sorted((k, str(v)) for k, v in dimensions.items())), name


def count(name: str, amount: float = 1, **dimensions: str) -> None:
    """Add `amount` to a counter (unit Count) of this invocation."""
    key = _key(name, dimensions)
    with _lock:
        _counts[key] = _counts.get(key, 0.0) + amount
        _units[name] = "Count"


def measure(name: str, value: float, unit: str = "None", **dimensions: str) -> None:
    """Record one measurement (Seconds, Milliseconds, None …); CloudWatch keeps every value."""
    key = _key(name, dimensions)
    with _lock:
        values = _values.setdefault(key, [])
        values.append(float(value))
        del values[:-MAX_VALUES]
        _units[name] = unit


def flush(emit: bool = True) -> list[dict[str, Any]]:
    """Take everything recorded so far as EMF documents (one per dimension set), print them to
    stdout when `emit`, and start afresh. Returns the documents."""
    with _lock:
        counts, values, units = dict(_counts), {k: list(v) for k, v in _values.items()}, dict(_units)
        _counts.clear()
        _values.clear()
    by_dimensions: dict[Dimensions, dict[str, list[float]]] = {}
    for (dimensions, name), total in counts.items():
        by_dimensions.setdefault(dimensions, {})[name] = [total]
    for (dimensions, name), recorded in values.items():
        by_dimensions.setdefault(dimensions, {})[name] = recorded
    documents = [_document(dict(dimensions), metrics, units) for dimensions, metrics in sorted(by_dimensions.items())]
    if emit:
        for document in documents:
            sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    return documents


def _document(dimensions: dict[str, str], metrics: dict[str, list[float]], units: dict[str, str]) -> dict[str, Any]:
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    provider = AmazonCloudWatchEMFProvider(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
        service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "amocrm-integration",
    )
    for dimension, label in dimensions.items():
        provider.add_dimension(name=dimension, value=label)
    for name, recorded in sorted(metrics.items()):
        for value in recorded:
            provider.add_metric(name=name, unit=units.get(name, "None"), value=value)
    return dict(provider.serialize_metric_set())
