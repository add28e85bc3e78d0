"""The one place query-API errors become HTTP answers.

The body has the shape of the connector's other errors and of FIWARE's APIs:
`{"error": "BadRequest", "description": "...", "errors": {parameter: [problems]}}` (`errors` only for bad
parameters). Routes raise `ApiError` subclasses; the argument parser raises `BadParameter`; `init_app`
registers `render` for ApiError, so these never fall through to a 500.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(HTTPException):
    """Base of the query API's errors: a status code and a message meant for the caller."""

    code = 400

    def __init__(
        self, message: str, headers: dict[str, str] | None = None, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description=message)
        self.extra_headers = headers or {}
        self.errors = errors


class BadParameter(ApiError):
    """A query parameter or header is not valid (400)."""

    code = 400


class Unauthorized(ApiError):
    """The bearer token of the tenant is missing or wrong (401)."""

    code = 401


class NotFound(ApiError):
    """The meter (or feature) does not exist for this tenant (404)."""

    code = 404


class Conflict(ApiError):
    """The request is ambiguous for this tenant, e.g. one entity id in several service paths (409)."""

    code = 409


class LedgerUnavailable(ApiError):
    """The ledger could not be read; the caller may retry later (503)."""

    code = 503


class ErrorSchema(ma.Schema):
    """The error body (documentation of `render`'s output)."""

    error = ma.fields.String(required=True, metadata={"description": "e.g. BadRequest, NotFound"})
    description = ma.fields.String(required=True, metadata={"description": "what is wrong, for a person"})
    errors = ma.fields.Dict(metadata={"description": "problems by parameter name"})


def render(error: HTTPException) -> Response:
    """The JSON answer for `error`."""
    body: dict[str, Any] = {"error": error.name.replace(" ", ""), "description": error.description}
    errors = getattr(error, "errors", None)
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = error.code or 500
    for name, value in getattr(error, "extra_headers", {}).items():
        response.headers[name] = value
    return response


def bad_parameters(messages: dict[str, Any]) -> BadParameter:
    """A BadParameter summarising marshmallow/webargs messages (nested by location) by parameter name."""
    flat: dict[str, Any] = {}
    for key, value in messages.items():
        if key in ("query", "headers", "view_args", "path", "json") and isinstance(value, dict):
            flat.update({str(k): v for k, v in value.items()})
        else:
            flat[str(key)] = value
    parts = [f"{name}: {_text(problems)}" for name, problems in sorted(flat.items())]
    return BadParameter("invalid parameter(s): " + "; ".join(parts), errors=flat)


def _text(problems: Any) -> str:
    if isinstance(problems, list):
        return " ".join(str(p) for p in problems)
    return str(problems)
