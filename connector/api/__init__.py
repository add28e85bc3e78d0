"""The query API: meters, anchored history, raw readings, tamper verification, settlement; OpenAPI 3 at
/openapi.json and a self-contained docs page at /docs.

`init_app(app)` wires it into the connector's Flask app (whose error handler, `errors.render`, answers the
routes' ApiErrors); routes reach the store, settings and ledger URLs through `connector.context.services()`.
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from connector import __version__
from connector.api import catalog, errors, history, meters, proofs, readings, verification
from connector.api.base import TENANCY_PARAMETERS
from connector.api.docs import docs_blueprint
from connector.audit import LedgerReadError

BLUEPRINTS = (meters.blp, history.blp, readings.blp, verification.blp, proofs.blp, catalog.blp)


class ConnectorApi(Api):
    """flask-smorest's Api with the connector's error body."""

    ERROR_SCHEMA = errors.ErrorSchema

    def handle_http_exception(self, error):  # type: ignore[no-untyped-def]
        return errors.render(error)


def init_app(app: Flask) -> Api:
    """Register the query API's blueprints, error handlers, /openapi.json and /docs on `app`."""
    app.config.setdefault("API_TITLE", "smartmeter-connector query API")
    app.config.setdefault("API_VERSION", __version__)
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    spec_kwargs = {
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
    }
    api = ConnectorApi(app, spec_kwargs=spec_kwargs)
    for blp in BLUEPRINTS:
        api.register_blueprint(blp, parameters=TENANCY_PARAMETERS)
    app.register_blueprint(docs_blueprint(api))
    app.register_error_handler(LedgerReadError, _ledger_unavailable)
    return api


def _ledger_unavailable(exc: LedgerReadError):  # type: ignore[no-untyped-def]
    return errors.render(errors.LedgerUnavailable(str(exc)))
