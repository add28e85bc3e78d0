"""The notification headers Orion sends, resolved and checked by Orion's own rules."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ngsi.errors import NotificationError
from ngsi.model import Headers
from ngsi.schemas import short
from ngsi.tenants import tenant_from_headers

# Orion (rest.cpp servicePathCheck): a service path is absolute, at most 10 levels of alphanumeric or
# underscore components of 1 to 50 characters. A notification carries the entity's single path, so the
# query-only form "/a/#" is refused here; a comma-separated list is what Orion 2.x sent with a legacy
# notification of several entities: one path per entity, in order (Headers.service_paths).
# Orion's own check allows only [A-Za-z0-9_], but its documentation (and reference/orion.md) shows paths such
# as /terni/district-4; a receiver should accept what deployments actually send, so hyphens pass too.
_PATH_COMPONENT = re.compile(r"[A-Za-z0-9_-]{1,50}")
MAX_PATH_LEVELS = 10
MAX_CORRELATOR = 256  # the store's column width; longer correlators are cut, they only serve logs


def resolve_headers(headers: Mapping[str, str]) -> Headers:
    """The tenant, service path, correlator and attrs format of a notification request.

    Names are case-insensitive. The tenant follows `ngsi.tenants.tenant_from_headers` (NGSILD-Tenant wins;
    both naming different tenants is refused); the service path defaults to "/"; a comma-separated list
    ("/a,/b", legacy multi-entity notifications) gives one path per entity. Raises NotificationError
    naming the header when the tenant or service path breaks Orion's rules.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    tenant = tenant_from_headers(lowered)
    paths = tuple(_service_path(p.strip()) for p in lowered.get("fiware-servicepath", "").split(","))
    service_path = paths[0]
    correlator = lowered.get("fiware-correlator", "").strip()[:MAX_CORRELATOR] or None
    attrs_format = lowered.get("ngsiv2-attrsformat", "").strip() or None
    return Headers(
        tenant=tenant,
        service_path=service_path,
        correlator=correlator,
        attrs_format=attrs_format,
        service_paths=paths if len(paths) > 1 else (),
    )


def _service_path(value: str) -> str:
    """The service path, "/" when absent; trailing slashes are dropped as Orion does ("/a/" is "/a")."""
    path = value.rstrip("/") or "/"
    if path == "/":
        return path
    problem = _path_problem(path)
    if problem:
        raise NotificationError(f"Fiware-ServicePath: {short(value)} {problem}")
    return path


def _path_problem(path: str) -> str | None:
    """None when `path` is an absolute path Orion accepts, else why not."""
    if not path.startswith("/"):
        return "must start with '/'"
    components = path[1:].split("/")
    if len(components) > MAX_PATH_LEVELS:
        return f"has more than {MAX_PATH_LEVELS} levels"
    for component in components:
        if not _PATH_COMPONENT.fullmatch(component):
            return "has a component that is empty, longer than 50 characters or not letters/digits/underscore"
    return None
