"""The one way this service keeps process-wide state: `@memoize`.

A memoized function builds its value once per distinct arguments and keeps it for the life
of the warm Lambda (or for `ttl` seconds). Building happens under the function's lock, so
two threads never build two of something that must be unique (a rate limiter, a session).
Settings are passed as arguments, so a changed setting (a test, `chalice local` after an
edit) gets a new value instead of a stale one. `clear_all()` is for tests.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
_memoized: list[Any] = []


def memoize(ttl: float | None = None) -> Callable[[F], F]:
    def decorate(build: F) -> F:
        lock = threading.Lock()
        values: dict[tuple, tuple[Any, float]] = {}

        @functools.wraps(build)
        def cached(*args: Any) -> Any:
            with lock:
                hit = values.get(args)
                now = time.monotonic()
                if hit is not None and (ttl is None or now - hit[1] < ttl):
                    return hit[0]
                value = build(*args)
                values[args] = (value, now)
                return value

        def forget(*args: Any) -> None:
            with lock:
                if args:
                    values.pop(args, None)
                else:
                    values.clear()

        cached.forget = forget  # type: ignore[attr-defined]
        _memoized.append(cached)
        return cached  # type: ignore[return-value]

    return decorate


def clear_all() -> None:
    """Forget every memoized value (tests start from a cold Lambda)."""
    for cached in _memoized:
        cached.forget()
