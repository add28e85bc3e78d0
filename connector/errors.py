"""The one error family answered to HTTP clients, and the one function that words its answer.

Every refusal the connector answers (a notification it cannot store, a bad query parameter, an unknown
meter, an unreachable ledger) is an `ApiError`: a status, an error name in the style of FIWARE's APIs
(`BadRequest`, `NotFound`) and a description for a person. `error_answer` turns one into the status, JSON
body and extra headers: the ASGI notify door writes them itself, the Flask app through its one error
handler (`connector.api.errors.render`).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as JSON `{"error", "description"[, "errors"]}` with `status`.

    Subclasses fix `status` and `error`; a plain ApiError names them. `headers` are sent with the answer
    (e.g. Retry-After); `errors` lists problems by parameter name.
    """

    status = 400
    error = "BadRequest"

    def __init__(
        self,
        description: str,
        *,
        status: int | None = None,
        error: str | None = None,
        headers: dict[str, str] | None = None,
        errors: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        if status is not None:
            self.status = status
        if error is not None:
            self.error = error
        self.headers = headers or {}
        self.errors = errors


def error_answer(exc: ApiError) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """The status, JSON body and extra headers answering `exc`."""
    body: dict[str, Any] = {"error": exc.error, "description": exc.description}
    if exc.errors:
        body["errors"] = exc.errors
    return exc.status, body, list(exc.headers.items())
