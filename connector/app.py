"""The connector's Flask app: /health, /version, /metrics and the query API (connector/api/).

POST /notify is not here: the ASGI app uvicorn serves (connector/asgi.py) answers it on the event loop
through the notify use case (connector/notify.py) and hands every other request to this app. Errors are
rendered in one place, `connector.api.errors.render`.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.exceptions import HTTPException

from connector.api import init_app as init_query_api
from connector.api.errors import render
from connector.context import Services, services
from connector.errors import ApiError
from connector.health import health_report, version_info
from connector.ingest import observation_range
from connector.settings import SettingsError

status_bp = Blueprint("status", __name__)


def create_app(svc: Services) -> Flask:
    """Build the WSGI app around already-built services (nothing is built or started here)."""
    app = Flask("connector")
    try:
        observation_range(svc.settings.ingest, svc.clock())  # a bad ingest.earliest_observation stops here
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    app.config["MAX_CONTENT_LENGTH"] = svc.settings.ingest.max_body
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["connector"] = svc
    app.register_blueprint(status_bp)
    init_query_api(app)
    app.register_error_handler(ApiError, render)
    app.register_error_handler(HTTPException, render)
    return app


@status_bp.get("/health")
def health() -> tuple[Response, int]:
    """Each dependency's state and the overall status: 200 ok or degraded, 503 when the store fails."""
    status, body = health_report(services())
    return jsonify(body), status


@status_bp.get("/version")
def version() -> Response:
    """The package version, the source revision when known, and the store's schema revision."""
    return jsonify(version_info(services()))


@status_bp.get("/metrics")
def metrics_endpoint() -> Response:
    """Prometheus text exposition of the connector's metrics (of all its processes when there are several)."""
    svc = services()
    registry = svc.registry
    if svc.metrics_dir:  # server.workers > 1: every process writes its values to this folder
        registry = CollectorRegistry()
        MultiProcessCollector(registry, svc.metrics_dir)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
