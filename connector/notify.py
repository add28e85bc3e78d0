"""The notify use case: one Orion notification checked, parsed, stored and answered.

No transport here: the HTTP door (connector/asgi.py) hands over the request's headers, media type and a
way to read its body, and writes back the status and JSON answer computed here. Everything before the
store is `prepare_notify`; the store is the group-committing ingest writer (connector/ingest.py); after it,
`finish_notify` counts, logs and words the answer. Refusals are `ApiError`s, counted as rejected.
"""

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

from connector.context import Services
from connector.errors import ApiError
from connector.ingest import Incoming, IngestResult, observation_range
from connector.metrics import Metrics
from devledger.jsondepth import nests_deeper_than
from ngsi.errors import NotificationError
from ngsi.headers import resolve_headers
from ngsi.model import Headers, ParsedNotification
from ngsi.parse import detect_format, parse_notification

log = structlog.get_logger("connector.notify")
NOTIFY_PATHS = frozenset(("/notify", "/v2/notify"))
# Orion-LD sends GeoJSON notifications (a FeatureCollection in `data`) as application/geo+json.
JSON_TYPES = ("application/json", "application/ld+json", "application/geo+json")


async def notify_answer(
    svc: Services, headers: Mapping[str, str], mimetype: str, read_body: Callable[[], bytes]
) -> tuple[int, dict[str, Any]]:
    """The status and JSON answer to one notification (`headers` keyed by lower-case name, `mimetype` the
    Content-Type's lower-cased media type), metrics and
    logs included; the request waits for its group commit without holding a thread. Raises ApiError
    (counted as rejected) for anything that cannot be stored."""
    started = time.perf_counter()
    svc.ingest.yield_to_writer()
    with _counted(svc) as seen:
        pending = seen.pending = prepare_notify(svc, headers, mimetype, read_body, seen)
        try:
            result = await svc.ingest.submit_async(pending.item)
        except Exception as exc:  # noqa: BLE001 - the store is unavailable: not the sender's fault, 503
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
    ingest = svc.settings.ingest
    _check_secret(raw_headers, ingest.notify_secret, ingest.notify_secret_header)
    if mimetype not in JSON_TYPES:
        message = f"Content-Type must be application/json, got '{mimetype}'"
        raise ApiError(message, status=415, error="UnsupportedMediaType")
    body = _json_body(read_body())
    if seen is not None:  # counted under this format if it is refused from here on
        attrs_format = raw_headers.get("ngsiv2-attrsformat", "").strip() or None
        seen.format = detect_format(body, Headers("", "/", attrs_format=attrs_format))
    headers = _resolved(raw_headers)
    if ingest.tenants and headers.tenant not in {t.lower() for t in ingest.tenants}:
        message = f"tenant '{headers.tenant}' is not accepted by this connector"
        raise ApiError(message, status=403, error="Forbidden")
    received_at = svc.clock()
    earliest, latest = observation_range(ingest, received_at)
    try:
        parsed = parse_notification(body, headers, received_at, ingest.time_attribute, earliest, latest)
    except NotificationError as exc:
        raise ApiError(str(exc)) from None
    rejected = [{"where": r.where, "id": r.entity_id, "reason": r.reason} for r in parsed.rejected]
    if rejected:
        svc.metrics.readings.labels("rejected").inc(len(rejected))
    return PendingNotify(Incoming(parsed, headers, received_at), rejected)


def _resolved(raw_headers: Mapping[str, str]) -> Headers:
    """The notification's tenant, service path and correlator, bound to the request's log lines."""
    try:
        headers = resolve_headers(raw_headers)
    except NotificationError as exc:
        raise ApiError(str(exc)) from None
    structlog.contextvars.bind_contextvars(
        tenant=headers.tenant, service_path=headers.service_path, correlator=headers.correlator
    )
    return headers


def finish_notify(
    svc: Services, pending: PendingNotify, result: IngestResult, started: float
) -> tuple[int, dict[str, Any]]:
    """Count, log and answer a committed notification."""
    _count_stored(svc.metrics, result)
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
    svc.metrics.notifications.labels(pending.parsed.format, "accepted").inc()
    svc.metrics.ack_latency.observe(time.perf_counter() - started)
    return 200, answer


def notify_rejected(svc: Services, exc: ApiError, fmt: str) -> None:
    """Count and log a notification answered with an error."""
    svc.metrics.notifications.labels(fmt, "rejected").inc()
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


def _store_failed(exc: Exception) -> ApiError:
    log.error("notify.store_failed", error=type(exc).__name__, detail=str(exc)[:300])
    message = "the store could not commit the readings; nothing was stored"
    return ApiError(message, status=503, error="ServiceUnavailable", headers={"Retry-After": "5"})


def too_large(limit: int) -> ApiError:
    """The 413 of a notification over ingest.max_body."""
    message = f"the notification is larger than the limit of {limit} bytes (ingest.max_body)"
    return ApiError(message, status=413, error="RequestEntityTooLarge")


def _check_secret(headers: Mapping[str, str], secret: str, header: str) -> None:
    if not secret:
        return
    given = headers.get(header.lower(), "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise ApiError(f"missing or wrong {header} header", status=401, error="Unauthorized")


def _json_body(raw: bytes) -> Any:
    if not raw:
        raise ApiError("empty body: expected a JSON notification")
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
    # json.loads recurses in C per level: a stack overflow would kill the process
    if nests_deeper_than(raw, MAX_JSON_DEPTH):
        raise ApiError(f"body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(f"body is not valid JSON: {exc}") from None


def answer_bytes(body: dict[str, Any]) -> bytes:
    """A JSON answer, byte for byte as Flask's jsonify writes it (compact, one trailing newline)."""
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()
