"""What every query-API blueprint shares: the argument parser (bad parameters are 400s), the request's
tenant scope and token check, and the documented error answers."""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import g, request
from webargs.flaskparser import FlaskParser

from connector.api.errors import ErrorSchema, bad_parameters
from connector.api.tenancy import (
    SERVICE_PATH_PATTERN,
    TENANT_PATTERN,
    Scope,
    check_token,
    scope_from_headers,
)
from connector.context import services

TENANCY_PARAMETERS: list[dict[str, Any]] = [
    {
        "in": "header",
        "name": "Fiware-Service",
        "required": False,
        "schema": {"type": "string", "pattern": TENANT_PATTERN},
        "description": "tenant; absent = the default tenant",
    },
    {
        "in": "header",
        "name": "Fiware-ServicePath",
        "required": False,
        "schema": {"type": "string", "pattern": SERVICE_PATH_PATTERN},
        "description": "comma-separated /a/b (exact) or /a/b/# (subtree); absent = /#",
    },
]


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def handle_error(
        self, error: Any, req: Any, schema: Any, *, error_status_code: Any, error_headers: Any
    ) -> Any:
        raise bad_parameters(error.normalized_messages())


class ApiBlueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint whose routes are scoped and authorized, and document their errors."""

    ARGUMENTS_PARSER = _Parser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_request(authorize)

    def errors(self, *codes: int) -> Any:
        """Document error answers `codes` (besides 400 and 401, which every route may give)."""

        def decorator(func: Any) -> Any:
            for code in (400, 401, *codes):
                func = self.alt_response(code, schema=ErrorSchema, description=_REASONS[code])(func)
            return func

        return decorator


_REASONS = {
    400: "bad parameter or header",
    401: "missing or wrong bearer token",
    404: "unknown meter, or feature not configured",
    409: "entity id in several service paths",
    503: "the ledger cannot be read now",
}


def authorize() -> None:
    """Resolve the request's scope from its headers and check its bearer token (before every route)."""
    scope = scope_from_headers(request.headers)
    check_token(services().settings.api, scope.tenant, request.headers.get("Authorization"))
    g.connector_scope = scope


def request_scope() -> Scope:
    """The scope `authorize` resolved for this request."""
    return g.connector_scope  # type: ignore[no-any-return]
