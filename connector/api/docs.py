"""GET /docs: a self-contained HTML page listing the API's operations from its OpenAPI document.

No script, stylesheet or font from a CDN: the page is rendered on the server from `api.spec`, so it works
without network access. The machine-readable document is at /openapi.json.
"""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Blueprint, Response
from flask_smorest import Api

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "code{background:#f3f3f3;padding:0 .2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.5rem 0}"
    "td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}"
)


def docs_blueprint(api: Api) -> Blueprint:
    """A blueprint serving /docs for `api`."""
    bp = Blueprint("api_docs", __name__)

    @bp.get("/docs")
    def docs() -> Response:
        return Response(render(api.spec.to_dict()), mimetype="text/html")

    return bp


def render(spec: dict[str, Any]) -> str:
    """The HTML page of an OpenAPI 3 document."""
    info = spec.get("info", {})
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(info.get('title', 'API'))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(info.get('title', 'API'))} <small>{escape(str(info.get('version', '')))}</small></h1>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3). ",
        "Every route is scoped by ",
        "the <code>Fiware-Service</code> and <code>Fiware-ServicePath</code> headers.</p>",
    ]
    for path, operations in spec.get("paths", {}).items():
        for method, op in operations.items():
            if isinstance(op, dict) and method != "parameters":
                parts.append(_operation(path, method, op, operations.get("parameters", [])))
    parts.append("</body></html>")
    return "".join(parts)


def _operation(path: str, method: str, op: dict[str, Any], shared: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(p.get('name', ''))}</code></td><td>{escape(p.get('in', ''))}</td>"
        f"<td>{escape(str(p.get('description', '')))}</td></tr>"
        for p in [*shared, *op.get("parameters", [])]
    )
    codes = ", ".join(escape(str(c)) for c in op.get("responses", {}))
    return (
        f"<h2><code>{method.upper()} {escape(path)}</code></h2>"
        f"<p>{escape(op.get('summary', ''))}</p><p>{escape(op.get('description', ''))}</p>"
        + (f"<table><tr><th>parameter</th><th>in</th><th>meaning</th></tr>{rows}</table>" if rows else "")
        + f"<p>Answers: {codes}</p>"
    )
