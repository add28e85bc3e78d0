"""The connector's HTTP face: POST /notify (Orion's notifications), /health, /metrics and the query API."""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
import structlog
from flask import Blueprint, Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.exceptions import HTTPException

from connector.context import Services, services
from connector.ingest import Incoming, IngestResult, IngestWriter, observation_range
from connector.metrics import Metrics
from connector.settings import SettingsError
from devledger.jsondepth import json_depth
from ngsi.errors import NotificationError
from ngsi.headers import resolve_headers
from ngsi.model import Headers, ParsedNotification
from ngsi.parse import detect_format, parse_notification

log = structlog.get_logger("connector.notify")
notify_bp = Blueprint("notify", __name__)
# Orion-LD sends GeoJSON notifications (a FeatureCollection in `data`) as application/geo+json.
JSON_TYPES = ("application/json", "application/ld+json", "application/geo+json")


class ApiError(Exception):
    """An error answered to the client as JSON with the given status; the message names what is wrong."""

    def __init__(self, status: int, error: str, description: str, **extra: Any) -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.extra = status, error, description, extra


def create_app(svc: Services) -> Flask:
    """Build the WSGI app around already-built services (nothing is started here)."""
    app = Flask("connector")
    try:
        observation_range(svc.settings.ingest, svc.clock())  # a bad ingest.earliest_observation stops here
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    app.config["MAX_CONTENT_LENGTH"] = svc.settings.ingest.max_body
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["connector"] = svc
    svc.extras.setdefault("metrics", Metrics(svc.registry))
    svc.extras.setdefault(
        "ingest", IngestWriter(svc.store, svc.settings, svc.extras["metrics"].batch_size.observe)
    )
    for outcome in ("accepted", "duplicate", "late", "rejected", "conflict"):
        svc.extras["metrics"].readings.labels(outcome)  # exported from the start, as 0
    app.register_blueprint(notify_bp)
    _init_query_api(app)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    from connector.notify_wsgi import NotifyFastPath  # it answers through this module's notify_answer

    app.wsgi_app = NotifyFastPath(app.wsgi_app, svc)  # type: ignore[method-assign]
    return app


def _init_query_api(app: Flask) -> None:
    try:
        from connector.api import init_app
    except ImportError:  # the query API package is optional in a stripped-down build
        return
    init_app(app)


@notify_bp.post("/notify")
@notify_bp.post("/v2/notify")
def notify() -> tuple[Response, int]:
    """Store one Orion notification; answer 2xx only once its readings are committed.

    Only requests the lean path (connector/notify_wsgi.py) hands on arrive here: bodies without a usable
    Content-Length, over the size limit or chunked. Both answer through `notify_answer`.
    """
    headers = {name.lower(): value for name, value in request.headers.items()}
    status, body = notify_answer(services(), headers, request.mimetype, _flask_body)
    return jsonify(body), status


def _flask_body() -> bytes:
    return request.get_data(cache=False)


def notify_answer(
    svc: Services, headers: Mapping[str, str], mimetype: str, read_body: Callable[[], bytes]
) -> tuple[int, dict[str, Any]]:
    """The status and JSON answer to one notification (`headers` keyed by lower-case name), metrics and
    logs included. Raises ApiError (counted as rejected) for anything that cannot be stored."""
    started = time.perf_counter()
    svc.extras["ingest"].yield_to_writer()
    with _counted(svc) as seen:
        pending = seen.pending = prepare_notify(svc, headers, mimetype, read_body, seen)
        return finish_notify(svc, pending, _store(svc, pending.item), started)


async def notify_answer_async(
    svc: Services, headers: Mapping[str, str], mimetype: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    """`notify_answer` for the event loop (connector/asgi.py): the same checks, answer, metrics and logs;
    the request waits for its group commit without holding a thread."""
    started = time.perf_counter()
    svc.extras["ingest"].yield_to_writer()
    with _counted(svc) as seen:
        pending = seen.pending = prepare_notify(svc, headers, mimetype, lambda: body, seen)
        try:
            result = await svc.extras["ingest"].submit_async(pending.item)
        except Exception as exc:  # noqa: BLE001 - as _store: the store is unavailable, answered 503
            raise _store_failed(exc) from None
        return finish_notify(svc, pending, result, started)


class _Seen:
    pending: PendingNotify | None = None
    format: str = "unknown"  # set as soon as the body's shape tells it, so rejections count by format


@contextlib.contextmanager
def _counted(svc: Services) -> Iterator[_Seen]:
    """Count and log an ApiError as a rejected notification (of its format once parsed); clear the
    request's log context in every case."""
    seen = _Seen()
    try:
        yield seen
    except ApiError as exc:
        notify_rejected(svc, exc, seen.pending.parsed.format if seen.pending else seen.format)
        raise
    finally:
        structlog.contextvars.clear_contextvars()


@dataclasses.dataclass(frozen=True)
class PendingNotify:
    """A notification checked and parsed, waiting for its readings to be committed."""

    item: Incoming
    rejected: list[dict[str, Any]]

    @property
    def parsed(self) -> ParsedNotification:
        return self.item.parsed


def prepare_notify(
    svc: Services,
    raw_headers: Mapping[str, str],
    mimetype: str,
    read_body: Callable[[], bytes],
    seen: _Seen | None = None,
) -> PendingNotify:
    """Everything before the store: secret, media type, JSON, headers, tenant, parsing. Raises ApiError.

    A well-formed notification with nothing usable in it (deleted entities, only time attributes, every
    reading rejected) is not an error: its parts are listed in `rejected` and it is answered 200.
    """
    settings = svc.settings
    _check_secret(raw_headers, settings.ingest.notify_secret, settings.ingest.notify_secret_header)
    if mimetype not in JSON_TYPES:
        message = f"Content-Type must be application/json, got '{mimetype}'"
        raise ApiError(415, "UnsupportedMediaType", message)
    body = _json_body(read_body())
    if seen is not None:  # counted under this format if it is refused from here on
        attrs_format = raw_headers.get("ngsiv2-attrsformat", "").strip() or None
        seen.format = detect_format(body, Headers("", "/", attrs_format=attrs_format))
    try:
        headers = resolve_headers(raw_headers)
    except NotificationError as exc:
        raise ApiError(400, "BadRequest", str(exc)) from None
    structlog.contextvars.bind_contextvars(
        tenant=headers.tenant, service_path=headers.service_path, correlator=headers.correlator
    )
    if settings.ingest.tenants and headers.tenant not in {t.lower() for t in settings.ingest.tenants}:
        raise ApiError(403, "Forbidden", f"tenant '{headers.tenant}' is not accepted by this connector")
    received_at = svc.clock()
    earliest, latest = observation_range(settings.ingest, received_at)
    try:
        parsed = parse_notification(
            body, headers, received_at, settings.ingest.time_attribute, earliest, latest
        )
    except NotificationError as exc:
        raise ApiError(400, "BadRequest", str(exc)) from None
    rejected = [{"where": r.where, "id": r.entity_id, "reason": r.reason} for r in parsed.rejected]
    if rejected:
        svc.extras["metrics"].readings.labels("rejected").inc(len(rejected))
    return PendingNotify(Incoming(parsed, headers, received_at), rejected)


def finish_notify(
    svc: Services, pending: PendingNotify, result: IngestResult, started: float
) -> tuple[int, dict[str, Any]]:
    """Count, log and answer a committed notification."""
    metrics: Metrics = svc.extras["metrics"]
    _count_stored(metrics, result)
    log.info(
        "notify.stored",
        format=pending.parsed.format,
        accepted=result.accepted,
        duplicates=result.duplicates,
        late=result.late,
        conflicts=len(result.conflicts),
        rejected=len(pending.rejected),
    )
    answer = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "late": result.late,
        "rejected": pending.rejected,
        "conflicts": result.conflicts,
    }
    metrics.notifications.labels(pending.parsed.format, "accepted").inc()
    metrics.ack_latency.observe(time.perf_counter() - started)
    return 200, answer


def notify_rejected(svc: Services, exc: ApiError, fmt: str) -> None:
    """Count and log a notification answered with an error."""
    svc.extras["metrics"].notifications.labels(fmt, "rejected").inc()
    log.info("notify.rejected", status=exc.status, reason=exc.description)


def _count_stored(metrics: Metrics, result: IngestResult) -> None:
    # Counters that stay 0 are not touched: each inc() takes a lock, and most notifications are all new.
    if result.accepted - result.late:
        metrics.readings.labels("accepted").inc(result.accepted - result.late)
    if result.late:
        metrics.readings.labels("late").inc(result.late)
    if result.duplicates:
        metrics.readings.labels("duplicate").inc(result.duplicates)
    if result.conflicts:
        metrics.readings.labels("conflict").inc(len(result.conflicts))


def _store(svc: Services, item: Incoming) -> IngestResult:
    try:
        return svc.extras["ingest"].submit(item)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - the store is unavailable: not the sender's fault, not a crash
        raise _store_failed(exc) from None


def _store_failed(exc: Exception) -> ApiError:
    log.error("notify.store_failed", error=type(exc).__name__, detail=str(exc)[:300])
    message = "the store could not commit the readings; nothing was stored"
    return ApiError(503, "ServiceUnavailable", message, retry_after=5)


def too_large(limit: int) -> ApiError:
    """The 413 of a notification over ingest.max_body, as the Flask route words it."""
    message = f"the notification is larger than the limit of {limit} bytes (ingest.max_body)"
    return ApiError(413, "RequestEntityTooLarge", message)


def _check_secret(headers: Mapping[str, str], secret: str, header: str) -> None:
    if not secret:
        return
    given = headers.get(header.lower(), "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise ApiError(401, "Unauthorized", f"missing or wrong {header} header")


def _json_body(raw: bytes) -> Any:
    if not raw:
        raise ApiError(400, "BadRequest", "empty body: expected a JSON notification")
    return decode_json(raw)


_DIGITS = bytes(57 if 48 <= b <= 57 else 32 for b in range(256))  # every digit -> "9", the rest -> " "
_LONG_NUMBER = b"9" * 19
MAX_JSON_DEPTH = 1024  # orjson's own limit; far beyond any notification; see devledger/jsondepth.py


def decode_json(raw: bytes) -> Any:
    """The JSON body decoded exactly as `json.loads` decodes it, through orjson where that is the same.

    orjson decodes twice as fast, but it turns integers beyond 64 bits into floats, so a body with a run
    of 19 or more digits goes to json.loads; so does everything orjson refuses (NaN, lone surrogates,
    UTF-16, a byte-order mark, deep nesting), which json.loads accepts or answers with its own message.
    """
    if raw.translate(_DIGITS).find(_LONG_NUMBER) < 0:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    if json_depth(raw) > MAX_JSON_DEPTH:  # json.loads recurses in C per level: a stack overflow kills us
        raise ApiError(
            400, "BadRequest", f"body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "BadRequest", f"body is not valid JSON: {exc}") from None


@notify_bp.get("/health")
def health() -> tuple[Response, int]:
    """Each dependency's state and the overall status: 200 ok or degraded, 503 when the store fails."""
    from connector.health import health_report

    status, body = health_report(services())
    return jsonify(body), status


@notify_bp.get("/version")
def version() -> Response:
    """The package version, the source revision when known, and the store's schema revision."""
    from connector.health import version_info

    return jsonify(version_info(services()))


@notify_bp.get("/metrics")
def metrics_endpoint() -> Response:
    """Prometheus text exposition of the connector's metrics (of all its processes when there are several)."""
    svc = services()
    registry = svc.registry
    if "metrics_dir" in svc.extras:  # server.workers > 1: every process writes its values to this folder
        registry = CollectorRegistry()
        MultiProcessCollector(registry, svc.extras["metrics_dir"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _api_error(exc: ApiError) -> Response:
    status, body, headers = error_answer(exc)
    resp = jsonify(body)
    resp.status_code = status
    resp.headers.extend(headers)
    return resp


def error_answer(exc: ApiError) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """The status, JSON body and extra headers answering `exc`."""
    body = {"error": exc.error, "description": exc.description}
    body.update({k: v for k, v in exc.extra.items() if k != "retry_after"})
    headers = [("Retry-After", str(exc.extra["retry_after"]))] if "retry_after" in exc.extra else []
    return exc.status, body, headers


def _http_error(exc: HTTPException) -> Response:
    description = exc.description
    if exc.code == 413:
        limit = services().settings.ingest.max_body
        description = f"the notification is larger than the limit of {limit} bytes (ingest.max_body)"
    resp = jsonify({"error": exc.name.replace(" ", ""), "description": description})
    resp.status_code = exc.code or 500
    return resp
