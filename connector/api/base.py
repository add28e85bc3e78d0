"""What every query-API blueprint shares: the argument parser (bad parameters are 400s), the request's
tenant scope and token check, and the documented error answers."""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import current_app, g, request
from webargs.flaskparser import FlaskParser

from connector.api import queries
from connector.api.errors import ErrorSchema, bad_parameters
from connector.api.tenancy import (
    SERVICE_PATH_PATTERN,
    Scope,
    check_token,
    scope_from_headers,
)
from connector.context import services
from ngsi.tenants import TENANT_PATTERN

TENANCY_PARAMETERS: list[dict[str, Any]] = [
    {
        "in": "header",
        "name": "Fiware-Service",
        "required": False,
        "schema": {"type": "string", "pattern": TENANT_PATTERN},
        "description": "tenant (case-insensitive, lower-cased as Orion does); absent = the default tenant",
    },
    {
        "in": "header",
        "name": "NGSILD-Tenant",
        "required": False,
        "schema": {"type": "string", "pattern": TENANT_PATTERN},
        "description": "tenant (NGSI-LD); wins over Fiware-Service; both naming different tenants: 400",
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


def authorize() -> Any:
    """Resolve the request's scope from its headers and check its bearer token (before every route); then
    hand a sub-route URL that really names a meter's detail to the detail route (see `_whole_id_detail`)."""
    scope = scope_from_headers(request.headers)
    check_token(services().settings.api, scope.tenant, request.headers.get("Authorization"))
    g.connector_scope = scope
    return _whole_id_detail(scope)


SUB_ROUTES = ("readings", "history", "verify", "settlement", "proof")


def _whole_id_detail(scope: Scope) -> Any:
    """The meter detail answer when a sub-route URL is the detail URL of an id ending in `/<sub-route>`.

    Entity ids may hold '/', and servers decode `%2F` before routing, so `/v1/meters/urn:x%2Freadings`
    arrives as `/v1/meters/urn:x/readings`: the readings of `urn:x`, or the detail of `urn:x/readings`. The
    sub-route wins when meter `urn:x` exists; otherwise the detail of the whole id is answered. None lets
    the matched route run.
    """
    entity_id = (request.view_args or {}).get("entity_id")
    suffix = request.url_rule.rule.rsplit("/", 1)[-1] if request.url_rule else ""
    if entity_id is None or suffix not in SUB_ROUTES:
        return None
    whole = f"{entity_id}/{suffix}"
    with services().store.reading() as conn:
        if queries.meter_exists(conn, scope, entity_id) or not queries.meter_exists(conn, scope, whole):
            return None
    return current_app.view_functions["meters.meter"](entity_id=whole)


def request_scope() -> Scope:
    """The scope `authorize` resolved for this request."""
    return g.connector_scope  # type: ignore[no-any-return]
