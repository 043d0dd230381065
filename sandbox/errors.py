"""amoCRM's error answers as one exception: a status code and a problem+json body.

Operations raise ApiError; the HTTP layer (server.py) only writes it out.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, body: Any = None, content_type: str = "application/problem+json"):
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type


def problem(status: int, title: str, detail: str, **extra: Any) -> ApiError:
    return ApiError(
        status, {"title": title, "type": f"https://httpstatus.es/{status}", "status": status, "detail": detail, **extra}
    )


def oauth_problem(status: int, title: str, detail: str, hint: str | None = None) -> ApiError:
    body = {
        "title": title,
        "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
        "status": status,
        "detail": detail,
    }
    if hint:
        body = {"hint": hint, **body}
    return ApiError(status, body)


def validation_error(errors: list[dict]) -> ApiError:
    return ApiError(
        400,
        {
            "validation-errors": errors,
            "title": "Bad Request",
            "type": "https://httpstatus.es/400",
            "status": 400,
            "detail": "Request validation failed",
        },
    )


def validation_failure(shape: str, entries: list[dict]) -> ApiError:
    """400 for invalid entities in one of the shapes amoCRM answers with (reference §3.5, §13):
    `validation-errors`, `errors-map` (keyed by entity id) or `errors-array`. Each entry has
    `request_id`, `errors` [{code, path, detail}] and, for an entity that has an id, `id`."""
    if shape == "errors-map":
        return problem(
            400,
            "Bad Request",
            "Invalid request body",
            errors={str(entry.get("id") or entry["request_id"]): _sentence(entry["errors"]) for entry in entries},
        )
    if shape == "errors-array":
        return ApiError(
            400,
            {
                "_total_items": 0,
                "errors": [
                    {
                        "title": "Entity not found" if error["code"] == "NotFound" else "Bad Request",
                        "status": 400,
                        "detail": _sentence([error]),
                    }
                    for entry in entries
                    for error in entry["errors"]
                ],
            },
        )
    return validation_error([{"request_id": entry["request_id"], "errors": entry["errors"]} for entry in entries])


def _sentence(errors: list[dict]) -> str:
    return "; ".join(f"{e['path']}: {e['detail']}" if e["path"] else e["detail"] for e in errors)
