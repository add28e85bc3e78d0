"""The query API's errors and the one place the Flask app turns errors into HTTP answers.

The body has the shape of the connector's other errors and of FIWARE's APIs:
`{"error": "BadRequest", "description": "...", "errors": {parameter: [problems]}}` (`errors` only for bad
parameters). Routes raise `connector.errors.ApiError` subclasses; the argument parser raises
`BadParameter`; `render` answers them and werkzeug's own HTTP errors (404 route, 405) alike, so these
never fall through to a 500.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

from connector.errors import ApiError, error_answer


class BadParameter(ApiError):
    """A query parameter or header is not valid (400)."""

    status, error = 400, "BadRequest"


class Unauthorized(ApiError):
    """The bearer token of the tenant is missing or wrong (401)."""

    status, error = 401, "Unauthorized"


class NotFound(ApiError):
    """The meter (or feature) does not exist for this tenant (404)."""

    status, error = 404, "NotFound"


class Conflict(ApiError):
    """The request is ambiguous for this tenant, e.g. one entity id in several service paths (409)."""

    status, error = 409, "Conflict"


class LedgerUnavailable(ApiError):
    """The ledger could not be read; the caller may retry later (503)."""

    status, error = 503, "ServiceUnavailable"


class ErrorSchema(ma.Schema):
    """The error body (documentation of `render`'s output)."""

    error = ma.fields.String(required=True, metadata={"description": "e.g. BadRequest, NotFound"})
    description = ma.fields.String(required=True, metadata={"description": "what is wrong, for a person"})
    errors = ma.fields.Dict(metadata={"description": "problems by parameter name"})


def render(error: Exception) -> Response:
    """The JSON answer for an ApiError or one of werkzeug's HTTP errors (unknown route, wrong method)."""
    if isinstance(error, HTTPException):
        name = error.name.replace(" ", "")
        error = ApiError(error.description or name, status=error.code or 500, error=name)
    if not isinstance(error, ApiError):
        raise error
    status, body, headers = error_answer(error)
    response = jsonify(body)
    response.status_code = status
    response.headers.extend(headers)
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
