"""The one tenant rule of the connector, following Orion: what a tenant name may be, how it is spelled,
and which request header names it.

Orion keeps tenants (`Fiware-Service`) in lowercase and treats the header case-insensitively, so "CityC"
and "cityc" are one tenant; a name is letters, digits and underscore, at most 50 characters; "" is the
default tenant. Orion-LD names the tenant with `NGSILD-Tenant`, which takes precedence over
`Fiware-Service` (reference/orion.md). A request that carries both with different tenants is refused
rather than resolved, so ingest and the query API can never file one request under two tenants.

Ingest, the query API, `api.tokens`, the Orion subscriptions and the keystore's meter names all go
through `normalise_tenant`, and both HTTP sides through `tenant_from_headers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ngsi.errors import NotificationError
from ngsi.schemas import short

TENANT_PATTERN = r"^[A-Za-z0-9_]{0,50}$"
_TENANT = re.compile(r"[A-Za-z0-9_]{1,50}")
LD_HEADER = "NGSILD-Tenant"
V2_HEADER = "Fiware-Service"


class TenantError(NotificationError):
    """A tenant name or the tenant headers of a request break the rule (a 400 wherever it is met)."""


def normalise_tenant(value: str, where: str = V2_HEADER) -> str:
    """`value` as the tenant it names (stripped, lowercase; "" = the default tenant).

    Raises TenantError naming `where` when it is not letters, digits and underscore, at most 50.
    """
    value = value.strip()
    if value and not _TENANT.fullmatch(value):
        raise TenantError(
            f"{where}: {short(value)} is not a valid tenant "
            "(letters, digits and underscore, at most 50 characters)"
        )
    return value.lower()


def tenant_from_headers(headers: Mapping[str, str]) -> str:
    """The tenant a request names: `NGSILD-Tenant` if present, else `Fiware-Service`, else "".

    Header names are case-insensitive. Raises TenantError when a value is invalid or when both headers
    are present and name different tenants.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    ld = lowered.get(LD_HEADER.lower())
    v2 = lowered.get(V2_HEADER.lower())
    ld_tenant = None if ld is None else normalise_tenant(ld, LD_HEADER)
    v2_tenant = None if v2 is None else normalise_tenant(v2, V2_HEADER)
    if ld_tenant is not None and v2_tenant is not None and ld_tenant != v2_tenant:
        raise TenantError(
            f"{LD_HEADER} ({short(ld or '')}) and {V2_HEADER} ({short(v2 or '')}) name different tenants; "
            "send one of them, or the same tenant in both"
        )
    if ld_tenant is not None:
        return ld_tenant
    return v2_tenant or ""
