"""Who is asking: the tenant and service paths of a request (FIWARE headers) and its bearer token.

Scoping follows Orion's query rules: the tenant is resolved by `ngsi.tenants` exactly as ingest resolves it
(`NGSILD-Tenant` wins over `Fiware-Service`, both naming different tenants is a 400, names are lower-cased;
"" = the default tenant);
`Fiware-ServicePath` is a comma-separated list of at most 10 paths, each `/a/b` (exactly that path) or
`/a/b/#` (that path and everything below); absent means `/#`, every path of the tenant.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, true
from werkzeug.datastructures import Headers

from connector.api.errors import BadParameter, Unauthorized
from connector.settings import ApiSettings
from connector.store.models import Meter
from ngsi.tenants import TenantError, normalise_tenant, tenant_from_headers

_PATH = r"(/#?|(/[A-Za-z0-9_\-]{1,50}){1,10}(/#)?)"
# What scope_from_headers accepts, for the OpenAPI document: up to 10 comma-separated paths, or nothing.
SERVICE_PATH_PATTERN = rf"^( *{_PATH}( *, *{_PATH}){{0,9}} *)?$"
_COMPONENT = re.compile(r"^[A-Za-z0-9_\-]{1,50}$")
MAX_PATHS = 10


@dataclass(frozen=True)
class Scope:
    """The tenant and the service-path patterns a request may see."""

    tenant: str
    paths: tuple[str, ...]  # "/a" (exact) or "/a/#" (subtree); "/#" is everything

    def clause(self) -> ColumnElement[bool]:
        """A SQL condition on meters restricting them to this scope."""
        tenant_ok = Meter.tenant == self.tenant
        if "/#" in self.paths:
            return tenant_ok
        conditions = [_path_condition(p) for p in self.paths]
        return tenant_ok & or_(*conditions) if conditions else tenant_ok & ~true()


def _path_condition(pattern: str) -> ColumnElement[bool]:
    if pattern.endswith("/#"):
        base = pattern[:-2]
        return (Meter.service_path == base) | Meter.service_path.startswith(base + "/", autoescape=True)
    return Meter.service_path == pattern


def scope_from_headers(headers: Headers) -> Scope:
    """The request's Scope; BadParameter (400) when a header is malformed."""
    try:
        tenant = tenant_from_headers(dict(headers.items()))
    except TenantError as exc:
        raise BadParameter(exc.message) from None
    raw = headers.get("Fiware-ServicePath", "").strip() or "/#"
    paths = tuple(p.strip() for p in raw.split(","))
    if len(paths) > MAX_PATHS:
        raise BadParameter(f"Fiware-ServicePath: at most {MAX_PATHS} paths")
    for path in paths:
        _check_path(path)
    return Scope(tenant, paths)


def _check_path(path: str) -> None:
    if path in ("/", "/#"):
        return
    body = path[:-2] if path.endswith("/#") else path
    parts = body.split("/")
    if parts[0] != "" or len(parts) > 11 or not all(_COMPONENT.match(p) for p in parts[1:]):
        raise BadParameter(
            f"Fiware-ServicePath: {path!r} is not a service path like /a/b or /a/b/# "
            "(components of letters, digits, '_' or '-', at most 10 levels)"
        )


def check_token(settings: ApiSettings, tenant: str, authorization: str | None) -> None:
    """Raise Unauthorized unless auth is off (no tokens) or `authorization` is the tenant's bearer token.

    With tokens configured, a tenant without a token of its own is refused: an unlisted tenant must not be
    readable by anyone who can reach the port.
    """
    if not settings.tokens:
        return
    # Settings validation normalises the configured names; normalising here too keeps a token table built
    # any other way (tests, a future loader) from becoming unreachable for a mixed-case name.
    expected = {normalise_tenant(name): token for name, token in settings.tokens.items()}.get(tenant)
    scheme, _, given = (authorization or "").partition(" ")
    if (
        not expected
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(given.strip().encode(), expected.encode())
    ):
        raise Unauthorized(
            "a valid bearer token for this Fiware-Service is required",
            headers={"WWW-Authenticate": 'Bearer realm="smartmeter-connector"'},
        )
