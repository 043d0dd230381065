"""What amoCRM said when it refused a request, in words a caller can act on (reference §3.5, §13).

amoCRM explains a refusal in one of several shapes:
- `{"validation-errors": [{"request_id", "errors": [{"code", "path", "detail"}]}], "detail": …}`;
- `{"errors": {"<entity id or request id>": "<sentence>"}, "detail": "Invalid request body"}`;
- `{"_total_items": 0, "errors": [{"title", "detail"}]}`;
- plain problem+json `{"title", "detail", "hint"}`.
`describe` turns any of them into one line: the summary, then each reason (field path + detail).
Whatever amoCRM echoes back, a token never reaches a message: anything shaped like an access
token (a JWT), a refresh token or a bearer header is masked, and so is the `secret` query value
of a URL (our webhook destination carries the webhook secret; amoCRM's refusal of a
subscription may quote it).
"""

from __future__ import annotations

import re
from typing import Any

MAX_REASONS = 10
MAX_CHARS = 1000
_SECRETS = re.compile(
    r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?"  # a JWT (access or long-lived token)
    r"|def50200[0-9a-fA-F]+"  # a refresh token
    r"|(?i:bearer)\s+\S+"
    r"|(?i:(?<=[?&]secret=))[^&#\s\"'<>;,()\[\]{}]+"  # a URL's secret, as sent (it is URL-encoded) …
    r"|(?i:(?<=secret%3D)).+?(?=%26|[&#\s\"'<>;,()\[\]{}]|$)"  # … and inside an encoded URL
)


def scrub(text: str) -> str:
    """The text with anything token-like replaced by `***`."""
    return _SECRETS.sub("***", text)


# a 404's detail that names what is missing: "Pipeline not found", "Lead not found", "Entity not
# found" (reference §3.5); "Unknown path", "Account not found" or an HTML page name no entity
_ENTITY_GONE = re.compile(
    r"^\s*(?:the\s+)?(?:lead|contact|compan(?:y|ies)|task|pipeline|status|note|event|customer|user|role|entit(?:y|ies)"
    r"|catalog element)s?\b[^.]*\bnot\s+found"
    r"|^\s*(?:сделк|контакт|компани|задач|воронк|этап|статус|примечани|событи|сущност)\w*\b[^.]*\bне\s+найден",
    re.IGNORECASE,
)


def names_entity(body: Any) -> bool:
    """True when a 404's problem+json body says an entity is missing (its `detail` or `title`
    names one), the only 404 that confirms a delete or a not-found (reference §3.5, §13)."""
    if not isinstance(body, dict):
        return False
    errors = body.get("errors")  # `{"_total_items": 0, "errors": [{"title": "Entity not found", …}]}`
    parts = [body, *(e for e in errors if isinstance(e, dict))] if isinstance(errors, list) else [body]
    return any(
        isinstance(part.get(key), str) and _ENTITY_GONE.match(part[key])
        for part in parts
        for key in ("detail", "title")
    )


def summary(body: Any) -> str:
    """`title: detail: hint` of a problem+json body ("" when there is none)."""
    if not isinstance(body, dict):
        return ""
    return ": ".join(str(body[key]) for key in ("title", "detail", "hint") if isinstance(body.get(key), (str, int)))


def reasons(body: Any) -> list[str]:
    """Each reason amoCRM gave, as `path: detail` (or `<id>: sentence`), in the order given."""
    if not isinstance(body, dict):
        return []
    found: list[str] = []
    for item in body.get("validation-errors") or []:
        for problem in (item.get("errors") or []) if isinstance(item, dict) else []:
            if isinstance(problem, dict):
                detail = problem.get("detail") or problem.get("code") or "invalid"
                found.append(f"{problem['path']}: {detail}" if problem.get("path") else str(detail))
    errors = body.get("errors")
    if isinstance(errors, dict):
        found.extend(f"{key}: {value}" for key, value in errors.items() if isinstance(value, (str, int)))
    elif isinstance(errors, list):
        for problem in errors:
            if isinstance(problem, dict):
                words = [str(problem[k]) for k in ("title", "detail") if problem.get(k)]
                found.append(": ".join(words) or "error")
            elif isinstance(problem, str):
                found.append(problem)
    return found[:MAX_REASONS]


def describe(body: Any, fallback: str) -> str:
    """One line for an error message: amoCRM's summary and every reason, tokens masked."""
    parts = [summary(body) or fallback, *reasons(body)]
    return scrub("; ".join(p for p in parts if p))[:MAX_CHARS]
