"""A small Orion client for subscriptions: NGSIv2 (`/v2/subscriptions`) and NGSI-LD (Orion-LD).

Only what the subscription manager needs: list, create, patch and delete subscriptions of one tenant.
Transient failures (refused connection, timeout, 5xx, 429) are retried a few times with a short backoff;
anything else raises `OrionRequestError` carrying Orion's own error text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

LD_CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
PAGE_SIZE = 100
# Orion answers 5xx when MongoDB is briefly unreachable and 429/503 under load; a refused connection or a
# timeout means it is restarting. All of these pass by themselves. 4xx other than 429 will not.
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


class OrionError(Exception):
    """Base of everything the Orion client raises."""


class OrionUnavailable(OrionError):
    """Orion could not be reached or kept failing transiently after all retries."""


class OrionRequestError(OrionError):
    """Orion refused a request (4xx): retrying will not help. `status` and Orion's `description` attached."""

    def __init__(self, method: str, path: str, status: int, description: str) -> None:
        super().__init__(f"Orion refused {method} {path}: {status} {description}")
        self.status = status
        self.description = description


@dataclass(frozen=True)
class Scope:
    """Which tenant and service path a request is for (tenant "" = Orion's default tenant)."""

    tenant: str = ""
    service_path: str = "/#"


class OrionClient:
    """Subscription calls against one Orion (NGSIv2) or Orion-LD (NGSI-LD when `ld`)."""

    def __init__(
        self,
        base_url: str,
        *,
        ld: bool = False,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ld = ld
        self.session = session or requests.Session()
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep

    @property
    def collection(self) -> str:
        """The subscriptions collection path of the API in use."""
        return "/ngsi-ld/v1/subscriptions" if self.ld else "/v2/subscriptions"

    def list_subscriptions(self, scope: Scope) -> list[dict[str, Any]]:
        """Every subscription of the tenant, following Orion's offset pagination."""
        found: list[dict[str, Any]] = []
        while True:
            params = {"limit": str(PAGE_SIZE), "offset": str(len(found))}
            page = self._request("GET", self.collection, scope, params=params).json()
            if not isinstance(page, list):
                raise OrionError(
                    f"Orion answered GET {self.collection} with {type(page).__name__}, not a list"
                )
            found += page
            if len(page) < PAGE_SIZE:
                return found

    def create_subscription(self, scope: Scope, body: dict[str, Any]) -> str:
        """Create a subscription; return the id Orion put in the Location header."""
        resp = self._request("POST", self.collection, scope, body=body)
        location = resp.headers.get("Location", "")
        sub_id = location.rstrip("/").rsplit("/", 1)[-1]
        if not sub_id:
            raise OrionError(f"Orion created a subscription without a Location header ({resp.status_code})")
        return sub_id

    def patch_subscription(self, scope: Scope, sub_id: str, body: dict[str, Any]) -> None:
        """Change fields of a subscription (Orion answers 204)."""
        self._request("PATCH", f"{self.collection}/{sub_id}", scope, body=body)

    def delete_subscription(self, scope: Scope, sub_id: str) -> None:
        """Remove a subscription (Orion answers 204)."""
        self._request("DELETE", f"{self.collection}/{sub_id}", scope)

    def headers(self, scope: Scope, *, with_body: bool) -> dict[str, str]:
        """The tenant headers Orion expects: Fiware-Service/-ServicePath (v2) or NGSILD-Tenant (LD)."""
        h: dict[str, str] = {"Accept": "application/json"}
        if self.ld:
            if scope.tenant:
                h["NGSILD-Tenant"] = scope.tenant
            if with_body:
                h["Content-Type"] = "application/ld+json"
            return h
        if scope.tenant:
            h["Fiware-Service"] = scope.tenant
        h["Fiware-ServicePath"] = scope.service_path
        if with_body:
            h["Content-Type"] = "application/json"
        return h

    def _request(
        self,
        method: str,
        path: str,
        scope: Scope,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> requests.Response:
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = self.headers(scope, with_body=body is not None)
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                resp = self.session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code < 400:
                    return resp
                if resp.status_code not in TRANSIENT_STATUS:
                    raise OrionRequestError(method, path, resp.status_code, _description(resp))
                last = f"{resp.status_code} {_description(resp)}"
            if attempt < self.attempts:
                self.sleep(self.backoff * 2 ** (attempt - 1))
        raise OrionUnavailable(
            f"Orion at {self.base_url} failed {method} {path} {self.attempts} times: {last}"
        )


def _description(resp: requests.Response) -> str:
    """Orion's error text: `{"error": ..., "description": ...}` (v2) or `{"title", "detail"}` (LD)."""
    try:
        doc = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(doc, dict):
        parts = [str(doc[k]) for k in ("error", "description", "title", "detail") if doc.get(k)]
        if parts:
            return ": ".join(parts)
    return resp.text[:200]
