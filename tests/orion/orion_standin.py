"""An HTTP stand-in of Orion's subscription API (NGSIv2 and Orion-LD), served for real on loopback.

It checks every request as Orion does (method, path, tenant headers, content type, body schema) and answers
400 with Orion's error JSON on a bad one, keeps subscriptions per tenant, and lets a test play Orion's part:
turn a subscription inactive/paused/expired, set its delivery counters, or fail the next requests.

`deliver()` plays one notification's outcome with each broker's own accounting: Orion v2 counts any HTTP
answer as delivered (`lastSuccessCode`), counts transport failures in `failsCounter` and turns the
subscription `inactive` once `failsCounter` had reached `maxFailsLimit` before a failure, and lists an
active one whose last notification failed as `failed`; Orion-LD counts `consecutiveErrors` and pauses the
subscription after 3. Orion-LD answers 404 "No such tenant" to a GET of subscriptions for a tenant nothing
was created in yet.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from .orion_bodies import Bad, _check_ld, _check_v2
from .receiver import QuietHandler

V2 = "/v2/subscriptions"
LD = "/ngsi-ld/v1/subscriptions"
LD_PAUSE_AFTER = 3
TENANT = re.compile(r"^[A-Za-z0-9_]{1,50}$")
PATH_PART = re.compile(r"^[A-Za-z0-9_]{1,50}$")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class OrionStandIn:
    """The stand-in's state; `url` is where it listens once started."""

    url: str = ""
    subs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # tenant -> id -> stored
    requests: list[Seen] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer the next requests with
    ld_tenants: set[str] = field(default_factory=lambda: {""})  # Orion-LD tenants that exist

    # --- what a test does in Orion's place -------------------------------------------------------------
    def all(self, tenant: str = "") -> list[dict[str, Any]]:
        """The stored subscriptions of a tenant."""
        return list(self.subs.get(tenant, {}).values())

    def set_fields(self, tenant: str, sub_id: str, **fields: Any) -> None:
        """Overwrite top-level fields, e.g. status="inactive" or expires="2000-01-01T00:00:00.000Z"."""
        self.subs[tenant][sub_id].update(fields)

    def set_counters(self, tenant: str, sub_id: str, **counters: Any) -> None:
        """Set notification counters such as timesSent, failsCounter, lastFailureReason."""
        self.subs[tenant][sub_id]["notification"].update(counters)

    def deliver(self, tenant: str, sub_id: str, *, code: int | None = 200, reason: str = "") -> None:
        """One notification of the subscription: answered `code`, or a transport failure when None."""
        stored = self.subs[tenant][sub_id]
        n = stored["notification"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        n["timesSent"] = n.get("timesSent", 0) + 1
        n["lastNotification"] = now
        ld = sub_id.startswith("urn:ngsi-ld:")
        if ld:
            self._deliver_ld(stored, n, now, code, reason)
            return
        if code is None:  # Orion v2: only transport errors are failures
            # As Orion's subNotificationErrorStatus: the limit is compared with the count before this
            # failure, so the subscription turns inactive at failure maxFailsLimit + 1; the count stays.
            before = n.get("failsCounter", 0)
            n["failsCounter"] = before + 1
            n["lastFailure"], n["lastFailureReason"] = now, reason or "Couldn't connect to server"
            if 0 < n.get("maxFailsLimit", 0) <= before:
                stored["status"] = "inactive"
        else:
            n["lastSuccess"], n["lastSuccessCode"] = now, code
            n.pop("failsCounter", None)

    @staticmethod
    def _deliver_ld(
        stored: dict[str, Any], n: dict[str, Any], now: str, code: int | None, reason: str
    ) -> None:
        if code is not None and 200 <= code < 300:
            n["lastSuccess"], n["consecutiveErrors"] = now, 0
            return
        n["timesFailed"] = n.get("timesFailed", 0) + 1
        n["consecutiveErrors"] = n.get("consecutiveErrors", 0) + 1
        n["lastFailure"], n["lastErrorReason"] = now, reason or f"HTTP {code}"
        if n["consecutiveErrors"] >= LD_PAUSE_AFTER:
            stored["status"] = "paused"

    def writes(self) -> list[Seen]:
        """Requests that changed something (POST, PATCH, DELETE)."""
        return [r for r in self.requests if r.method != "GET"]

    # --- the HTTP side ------------------------------------------------------------------------------
    def app(self) -> Flask:
        app = Flask("orion-standin")
        for base in (V2, LD):
            app.add_url_rule(base, base + "c", self._collection, methods=["GET", "POST"])
            app.add_url_rule(base + "/<sub_id>", base + "i", self._item, methods=["GET", "PATCH", "DELETE"])
        app.register_error_handler(Bad, self._bad)
        return app

    def _bad(self, exc: Bad) -> Response:
        if request.path.startswith(LD):
            doc = {"type": f"https://uri.etsi.org/ngsi-ld/errors/{exc.error}", "title": exc.error}
            doc["detail"] = exc.description
            if exc.error == "NonExistingTenant":  # Orion-LD's own words
                doc["title"], doc["detail"] = "No such tenant", exc.description.split(": ", 1)[1]
        else:
            doc = {"error": exc.error, "description": exc.description}
        resp = jsonify(doc)
        resp.status_code = exc.status
        return resp

    def _begin(self) -> tuple[bool, str, Any]:
        body = request.get_json(silent=True) if request.data else None
        self.requests.append(Seen(request.method, request.full_path, dict(request.headers), body))
        if self.fail_next:
            raise Bad(self.fail_next.pop(0), "InternalServerError", "stand-in told to fail")
        ld = request.path.startswith(LD)
        tenant = _tenant(ld)
        if request.method in ("POST", "PATCH"):
            _check_content_type(ld)
            if not isinstance(body, dict):
                raise Bad(400, "ParseError", "Errors found in incoming JSON buffer")
            if ld and "@context" not in body:
                raise Bad(400, "BadRequestData", "application/ld+json payload without @context")
        return ld, tenant, body

    def _collection(self) -> Response:
        ld, tenant, body = self._begin()
        if request.method == "GET":
            if ld and tenant not in self.ld_tenants:
                raise Bad(404, "NonExistingTenant", f"No such tenant: {tenant}")
            return self._list(ld, tenant)
        (_check_ld if ld else _check_v2)(body, partial=False)
        if ld:
            self.ld_tenants.add(tenant)
        sub_id = f"urn:ngsi-ld:subscription:{uuid.uuid4()}" if ld else uuid.uuid4().hex[:24]
        stored = _store(body, ld, sub_id, request.headers.get("Fiware-ServicePath", "/"))
        self.subs.setdefault(tenant, {})[sub_id] = stored
        resp = Response(status=201)
        resp.headers["Location"] = f"{LD if ld else V2}/{sub_id}"
        return resp

    def _list(self, ld: bool, tenant: str) -> Response:
        limit, offset = int(request.args.get("limit", 20)), int(request.args.get("offset", 0))
        if not 0 < limit <= 1000:
            raise Bad(
                400, "BadRequest", "Bad pagination limit: /" + str(limit) + "/ [a maximum of 1000 allowed]"
            )
        subs = [_render(s, ld) for s in self.all(tenant) if ld or _path_matches(s)]
        return jsonify(subs[offset : offset + limit])

    def _item(self, sub_id: str) -> Response:
        ld, tenant, body = self._begin()
        stored = self.subs.get(tenant, {}).get(sub_id)
        if stored is None:
            raise Bad(404, "NotFound", "The requested subscription has not been found. Check id")
        if request.method == "GET":
            return jsonify(_render(stored, ld))
        if request.method == "DELETE":
            del self.subs[tenant][sub_id]
            return Response(status=204)
        (_check_ld if ld else _check_v2)(body, partial=True)
        stored.update({k: v for k, v in body.items() if k != "@context"})
        if ld and "isActive" in body:
            stored["status"] = "active" if body["isActive"] else "paused"
        if "notification" in body:
            stored["notification"] = dict(body["notification"])
        return Response(status=204)


def _tenant(ld: bool) -> str:
    tenant = request.headers.get("NGSILD-Tenant" if ld else "Fiware-Service", "")
    if ld and not tenant:
        tenant = request.headers.get("Fiware-Service", "")
    if tenant and not TENANT.match(tenant):
        raise Bad(400, "BadRequest", "bad character in tenant name")
    path = request.headers.get("Fiware-ServicePath")
    if not ld and path is not None:
        _check_service_path(path)
    return tenant.lower()


def _check_service_path(path: str) -> None:
    for one in path.split(","):
        one = one.strip()
        if not one.startswith("/"):
            raise Bad(
                400, "BadRequest", "Only /absolute/ Service Paths allowed [a service path must begin with /]"
            )
        parts = [p for p in one[1:].split("/") if p]
        if parts and parts[-1] == "#":
            parts = parts[:-1]
        if len(parts) > 10 or any(not PATH_PART.match(p) for p in parts):
            raise Bad(400, "BadRequest", "a component of ServicePath contains an illegal character")


def _check_content_type(ld: bool) -> None:
    ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    allowed = ("application/json", "application/ld+json") if ld else ("application/json",)
    if ctype not in allowed:
        raise Bad(415, "UnsupportedMediaType", f"not supported content type: {ctype or 'none'}")
    if ld and ctype == "application/json" and "@context" in (request.get_json(silent=True) or {}):
        raise Bad(400, "BadRequestData", "@context in payload but Content-Type is application/json")


def _store(body: dict[str, Any], ld: bool, sub_id: str, service_path: str) -> dict[str, Any]:
    stored = {k: v for k, v in body.items() if k != "@context"}
    stored["id"] = sub_id
    stored["notification"] = dict(stored["notification"])
    if ld:
        stored["status"] = "active" if stored.get("isActive", True) else "paused"
    else:
        stored.setdefault("status", "active")
        stored["_servicePath"] = service_path
    return stored


def _path_matches(stored: dict[str, Any]) -> bool:
    asked = request.headers.get("Fiware-ServicePath", "/#")
    return asked == "/#" or stored.get("_servicePath") == asked


def _render(stored: dict[str, Any], ld: bool) -> dict[str, Any]:
    """A subscription as Orion lists it: read-only fields added, expiry rendered Orion's way."""
    out = {k: v for k, v in stored.items() if not k.startswith("_")}
    out["notification"] = dict(out["notification"])
    if ld:
        out["isActive"] = out.get("status") == "active"
        out["notification"]["status"] = "failed" if out["notification"].get("consecutiveErrors") else "ok"
        return out
    out["subject"] = {
        **out["subject"],
        "condition": {"notifyOnMetadataChange": True, **out["subject"].get("condition", {})},
    }
    out["notification"].setdefault("onlyChangedAttrs", False)
    out["notification"]["covered"] = False
    if "expires" in out:
        out["expires"] = _orion_time(out["expires"])
        if out["expires"] <= datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"):
            out["status"] = "expired"
    n = out["notification"]
    if out.get("status") == "active" and n.get("lastFailure", "") > n.get("lastSuccess", ""):
        out["status"] = "failed"
    return out


def _orion_time(value: str) -> str:
    """Orion echoes 2040-01-01T00:00:00.00Z as 2040-01-01T00:00:00.000Z."""
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$", value)
    return f"{m.group(1)}.{(m.group(2) or '').ljust(3, '0')[:3]}Z" if m else value


class Served:
    """The stand-in served by werkzeug on 127.0.0.1 in a daemon thread; `stop()` shuts it down."""

    def __init__(self) -> None:
        self.orion = OrionStandIn()
        self.server = make_server(
            "127.0.0.1", 0, self.orion.app(), threaded=True, request_handler=QuietHandler
        )
        self.orion.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
