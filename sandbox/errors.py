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
    return ApiError(status, {"title": title, "type": f"https://httpstatus.es/{status}", "status": status,
                             "detail": detail, **extra})


def oauth_problem(status: int, title: str, detail: str, hint: str | None = None) -> ApiError:
    body = {"title": title, "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
            "status": status, "detail": detail}
    if hint:
        body = {"hint": hint, **body}
    return ApiError(status, body)


def validation_error(errors: list[dict]) -> ApiError:
    return ApiError(400, {"validation-errors": errors, "title": "Bad Request",
                          "type": "https://httpstatus.es/400", "status": 400,
                          "detail": "Request validation failed"})
