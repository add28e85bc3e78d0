"""Header resolution: case-insensitive names, NGSILD-Tenant wins (a different Fiware-Service is refused),
defaults, Orion's rules."""

from __future__ import annotations

import pytest

from ngsi.errors import NotificationError
from ngsi.headers import resolve_headers
from ngsi.model import Headers

RESOLVED = [
    ({}, Headers("", "/", None, None)),
    ({"Fiware-Service": "tk"}, Headers("tk", "/", None, None)),
    ({"fiware-service": "tk", "fiware-servicepath": "/terni"}, Headers("tk", "/terni", None, None)),
    ({"FIWARE-SERVICE": "TK_2"}, Headers("tk_2", "/", None, None)),
    ({"Fiware-Service": "T1", "NGSILD-Tenant": "t1"}, Headers("t1", "/", None, None)),
    ({"ngsild-tenant": "t1"}, Headers("t1", "/", None, None)),
    ({"Fiware-Service": ""}, Headers("", "/", None, None)),
    ({"Fiware-Service": " tk "}, Headers("tk", "/", None, None)),
    ({"Fiware-ServicePath": ""}, Headers("", "/", None, None)),
    ({"Fiware-ServicePath": "/"}, Headers("", "/", None, None)),
    ({"Fiware-ServicePath": "/terni/district_4/"}, Headers("", "/terni/district_4", None, None)),
    ({"Fiware-ServicePath": "/terni/district-4"}, Headers("", "/terni/district-4", None, None)),
    ({"Fiware-ServicePath": "/" + "/".join(["a"] * 10)}, Headers("", "/" + "/".join(["a"] * 10), None, None)),
    ({"Fiware-ServicePath": "/" + "a" * 50}, Headers("", "/" + "a" * 50, None, None)),
    (
        {"Fiware-Correlator": "9e10fc36-0242ac1a0005; cbnotif=1", "Ngsiv2-AttrsFormat": "normalized"},
        Headers("", "/", "9e10fc36-0242ac1a0005; cbnotif=1", "normalized"),
    ),
    ({"ngsiv2-attrsformat": "keyValues"}, Headers("", "/", None, "keyValues")),
    ({"Fiware-Correlator": "c" * 300}, Headers("", "/", "c" * 256, None)),
    ({"Content-Type": "application/json", "User-Agent": "orion/4.0.0"}, Headers("", "/", None, None)),
]


@pytest.mark.parametrize(("raw", "expected"), RESOLVED)
def test_headers_resolve(raw, expected):
    """Valid headers resolve to the tenant, service path, correlator and attrs format."""
    assert resolve_headers(raw) == expected


INVALID = [
    ({"Fiware-Service": "t-1"}, "Fiware-Service: 't-1' is not a valid tenant"),
    ({"Fiware-Service": "a" * 51}, "Fiware-Service: '" + "a" * 40 + "'... is not a valid tenant"),
    ({"Fiware-Service": "tenant.sr"}, "Fiware-Service: 'tenant.sr' is not a valid tenant"),
    ({"NGSILD-Tenant": "bad tenant"}, "NGSILD-Tenant: 'bad tenant' is not a valid tenant"),
    ({"Fiware-Service": "t\u00e9"}, "Fiware-Service: 't\\xe9' is not a valid tenant"),
    (
        {"Fiware-Service": "tk", "NGSILD-Tenant": "t1"},
        "NGSILD-Tenant ('t1') and Fiware-Service ('tk') name different",
    ),
    (
        {"NGSILD-Tenant": "", "Fiware-Service": "tk"},
        "NGSILD-Tenant ('') and Fiware-Service ('tk') name different",
    ),
    ({"Fiware-ServicePath": "terni"}, "Fiware-ServicePath: 'terni' must start with '/'"),
    ({"Fiware-ServicePath": "/a//b"}, "Fiware-ServicePath: '/a//b' has a component that is empty"),
    ({"Fiware-ServicePath": "/Service sr"}, "Fiware-ServicePath: '/Service sr' has a component"),
    ({"Fiware-ServicePath": "/a/#"}, "Fiware-ServicePath: '/a/#' has a component"),
    ({"Fiware-ServicePath": "/" + "a" * 51}, "has a component that is empty, longer than 50 characters"),
    ({"Fiware-ServicePath": "/" + "/".join(["a"] * 11)}, "has more than 10 levels"),
]


@pytest.mark.parametrize(("raw", "message"), INVALID)
def test_invalid_tenant_or_service_path_is_refused(raw, message):
    """A tenant or service path that Orion itself refuses raises NotificationError naming the header."""
    with pytest.raises(NotificationError) as err:
        resolve_headers(raw)
    assert message in err.value.message
