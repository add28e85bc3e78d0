"""The BigchainDB 2.2.2 HTTP API over the dev ledger, as a plain WSGI application.

Bodies, status codes and texts follow BigchainDB (Flask + flask-restful + flask-cors): errors from
`make_error` are `{"message":...,"status":...}` (keys sorted, so "message" comes first), parameter errors
are reqparse's `{"message": {...}}`, unknown URLs get werkzeug's HTML 404, and every route answers with
and without a trailing slash.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from devledger import queries
from devledger.errors import InvalidTransaction, ParameterError
from devledger.jsondepth import nests_deeper_than
from devledger.ledger import CommitFailed, Ledger
from devledger.params import (
    Param,
    integer,
    parse,
    text,
    valid_bool,
    valid_ed25519,
    valid_mode,
    valid_operation,
    valid_txid,
)

log = logging.getLogger(__name__)

VERSION = "2.2.2"
DOCS = f"https://docs.bigchaindb.com/projects/server/en/v{VERSION}/"
EVENTS_PATH = "/api/v1/streams/valid_transactions"
BAD_JSON = "The browser (or proxy) sent a request that this server could not understand."
NOT_ALLOWED = "The method is not allowed for the requested URL."
HTML_404 = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<title>404 Not Found</title>\n'
    "<h1>Not Found</h1>\n<p>The requested URL was not found on the server.  If you entered the URL "
    "manually please check your spelling and try again.</p>\n"
)
CORS_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"

# BigchainDB 2.2.2 checks a transaction, then forwards it to Tendermint's RPC (`broadcast_tx_*`) as base64
# inside a JSON-RPC body, and Tendermint refuses an RPC body above `max_body_bytes = 1000000` (1 MB, its
# default: config/config.go DefaultRPCConfig, `[rpc] max_body_bytes` in config.toml). Base64 makes the
# transaction 4/3 larger and the envelope ({"method": "broadcast_tx_commit", "jsonrpc": "2.0", "params":
# [...], "id": "<uuid4>"}) adds 113 bytes, so the largest transaction a deployment accepts is about 749,913
# bytes; a larger body is answered 413 (Request Entity Too Large) without being read, as the reverse proxy
# BigchainDB recommends in front of a node does (docs: production-nodes/reverse-proxy-notes.md).
TENDERMINT_MAX_BODY_BYTES = 1_000_000
JSONRPC_ENVELOPE_BYTES = 113
MAX_TX_BYTES = (TENDERMINT_MAX_BODY_BYTES - JSONRPC_ENVELOPE_BYTES) // 4 * 3
# BigchainDB stores each transaction as a MongoDB document, and BSON nests at most 100 levels (MongoDB's
# limits, "Nested Depth for BSON Documents"): a deeper transaction could never be stored, so it is a 400.
MAX_NESTING = 100


@dataclass(frozen=True)
class Response:
    """Status, body text and content type of one answer."""

    status: int
    body: str
    content_type: str = "application/json"


@dataclass(frozen=True)
class Request:
    """What a route handler needs from the WSGI environ."""

    method: str
    query: dict[str, list[str]]
    body: bytes


def jsonify(data: object, status: int = 200) -> Response:
    """Flask's `jsonify`: compact, keys sorted."""
    return Response(status, json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n")


def resource(data: object, status: int = 200) -> Response:
    """flask-restful's output of a resource's return value (insertion order)."""
    return Response(status, json.dumps(data) + "\n")


def make_error(status: int, message: str | None = None) -> Response:
    """BigchainDB's `make_error`."""
    text = "Not found" if message is None and status == 404 else message
    return jsonify({"message": text, "status": status}, status)


class LedgerApp:
    """WSGI app serving the ledger; `streams_url` is advertised by the info routes."""

    def __init__(self, ledger: Ledger, streams_url: str, validator_key: str) -> None:
        self.ledger = ledger
        self.storage = ledger.storage
        self.streams_url = streams_url
        self.validator_key = validator_key
        self._routes: list[tuple[re.Pattern[str], dict[str, Callable[..., Response]]]] = [
            (re.compile(r"^$"), {"GET": self.root}),
            (re.compile(r"^/api/v1$"), {"GET": self.api_v1}),
            (re.compile(r"^/api/v1/transactions$"), {"GET": self.list_transactions, "POST": self.post}),
            (re.compile(r"^/api/v1/transactions/([^/]+)$"), {"GET": self.get_transaction}),
            (re.compile(r"^/api/v1/outputs$"), {"GET": self.outputs}),
            (re.compile(r"^/api/v1/assets$"), {"GET": self.assets}),
            (re.compile(r"^/api/v1/metadata$"), {"GET": self.metadata}),
            (re.compile(r"^/api/v1/blocks$"), {"GET": self.list_blocks}),
            (re.compile(r"^/api/v1/blocks/([0-9]+)$"), {"GET": self.get_block}),
            (re.compile(r"^/api/v1/validators$"), {"GET": self.validators}),
        ]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        response, allowed = self._dispatch(environ, method)
        headers = [("Content-Type", response.content_type)]
        headers += _cors(environ, allowed)
        body = response.body.encode()
        headers.append(("Content-Length", str(len(body))))
        start_response(_STATUS_LINES[response.status], headers)
        return [b"" if method == "HEAD" else body]

    def _dispatch(self, environ: dict[str, Any], method: str) -> tuple[Response, list[str]]:
        path = environ.get("PATH_INFO", "").rstrip("/")
        for pattern, handlers in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            allowed = _allowed(handlers)
            if method == "OPTIONS":
                return Response(200, "", "text/html; charset=utf-8"), allowed
            handler = handlers.get("GET" if method == "HEAD" else method)
            if handler is None:
                return resource({"message": NOT_ALLOWED}, 405), allowed
            try:
                request = _request(environ, method)
            except BodyTooLarge as exc:
                return make_error(413, str(exc)), allowed
            return self._run(handler, request, match.groups()), allowed
        return Response(404, HTML_404, "text/html; charset=utf-8"), []

    def _run(self, handler: Callable[..., Response], request: Request, args: tuple[str, ...]) -> Response:
        try:
            return handler(request, *args)
        except ParameterError as exc:
            return resource(exc.body, 400)
        except Exception:  # noqa: BLE001 - the WSGI edge: log it, answer like Flask does, keep serving
            log.exception("devledger.http.error")
            return resource({"message": "Internal Server Error"}, 500)

    # -- routes ---------------------------------------------------------------------------------------

    def root(self, request: Request) -> Response:
        """GET /"""
        info = {"api": {"v1": self._v1_info("/api/v1/")}, "docs": DOCS, "software": "BigchainDB"}
        return jsonify({**info, "version": VERSION})

    def api_v1(self, request: Request) -> Response:
        """GET /api/v1"""
        return jsonify(self._v1_info("/"))

    def _v1_info(self, prefix: str) -> dict[str, str]:
        return {
            "docs": DOCS + "http-client-server-api.html",
            "transactions": f"{prefix}transactions/",
            "blocks": f"{prefix}blocks/",
            "assets": f"{prefix}assets/",
            "outputs": f"{prefix}outputs/",
            "streams": self.streams_url,
            "metadata": f"{prefix}metadata/",
            "validators": f"{prefix}validators",
        }

    def post(self, request: Request) -> Response:
        """POST /api/v1/transactions?mode=async|sync|commit"""
        mode = parse(request.query, [Param("mode", valid_mode)])["mode"] or "async"
        # Measured before parsing (json.loads recurses in C per level); what passes nests no deeper.
        if nests_deeper_than(request.body, MAX_NESTING):
            return make_error(
                400, f"Invalid transaction (ValidationError): nested deeper than {MAX_NESTING} levels"
            )
        try:
            tx = json.loads(request.body)
        except ValueError:
            return resource({"message": BAD_JSON}, 400)
        try:
            checked = self.ledger.submit(tx, wait_commit=mode == "commit")
        except InvalidTransaction as exc:
            return make_error(400, exc.message)
        except CommitFailed as exc:
            return make_error(500, str(exc))
        return Response(202, checked.serialized + "\n")

    def get_transaction(self, request: Request, tx_id: str) -> Response:
        """GET /api/v1/transactions/{id}"""
        body = queries.transaction(self.storage, tx_id)
        return make_error(404) if body is None else Response(200, body + "\n")

    def list_transactions(self, request: Request) -> Response:
        """GET /api/v1/transactions?asset_id=&operation=&last_tx="""
        args = parse(
            request.query,
            [
                Param("operation", valid_operation),
                Param("asset_id", valid_txid, True),
                Param("last_tx", valid_bool),
            ],
        )
        body = queries.transactions_of_asset(
            self.storage, args["asset_id"], args["operation"], args["last_tx"]
        )
        return Response(200, body + "\n")

    def outputs(self, request: Request) -> Response:
        """GET /api/v1/outputs?public_key=&spent="""
        args = parse(
            request.query, [Param("public_key", valid_ed25519, True), Param("spent", valid_bool)], True
        )
        return resource(queries.outputs(self.storage, args["public_key"], args["spent"]))

    def assets(self, request: Request) -> Response:
        """GET /api/v1/assets?search=&limit="""
        return self._search(request, "assets")

    def metadata(self, request: Request) -> Response:
        """GET /api/v1/metadata?search=&limit="""
        return self._search(request, "metadata")

    def _search(self, request: Request, table: str) -> Response:
        args = parse(request.query, [Param("search", text, True), Param("limit", integer)])
        if not args["search"]:
            return make_error(400, "text_search cannot be empty")
        return resource(queries.text_search(self.storage, table, args["search"], args["limit"] or 0))

    def list_blocks(self, request: Request) -> Response:
        """GET /api/v1/blocks?transaction_id="""
        args = parse(request.query, [Param("transaction_id", text, True)], strict=True)
        return resource(queries.blocks_with(self.storage, args["transaction_id"]))

    def get_block(self, request: Request, height: str) -> Response:
        """GET /api/v1/blocks/{height}"""
        body = queries.block(self.storage, int(height))
        return make_error(404) if body is None else Response(200, body + "\n")

    def validators(self, request: Request) -> Response:
        """GET /api/v1/validators"""
        return resource(
            [{"public_key": {"type": "ed25519-base64", "value": self.validator_key}, "voting_power": 10}]
        )


_STATUS_LINES = {status.value: f"{status.value} {status.phrase.upper()}" for status in HTTPStatus}


def _allowed(handlers: dict[str, Callable[..., Response]]) -> list[str]:
    return sorted({*handlers, "HEAD", "OPTIONS"} if "GET" in handlers else {*handlers, "OPTIONS"})


class BodyTooLarge(Exception):
    """A request body above MAX_TX_BYTES (answered 413)."""


def _request(environ: dict[str, Any], method: str) -> Request:
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    body = b""
    if method == "POST":
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > MAX_TX_BYTES:
            raise BodyTooLarge(_too_large(int(length)))
        stream = environ["wsgi.input"]
        body = stream.read(int(length)) if length.isdigit() else stream.read(MAX_TX_BYTES + 1)
        if len(body) > MAX_TX_BYTES:
            raise BodyTooLarge(_too_large(len(body)))
    return Request(method, query, body)


def _too_large(size: int) -> str:
    return f"Transaction too large: {size} bytes; the limit is {MAX_TX_BYTES} bytes (Tendermint's RPC limit)"


def _cors(environ: dict[str, Any], allowed: list[str]) -> list[tuple[str, str]]:
    # flask-cors with origins="*": echo a request's Origin (with Vary), else "*"; preflights get methods.
    origin = environ.get("HTTP_ORIGIN")
    headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")] if origin else []
    if not origin:
        headers.append(("Access-Control-Allow-Origin", "*"))
    if allowed and environ["REQUEST_METHOD"].upper() == "OPTIONS":
        headers.append(("Allow", ", ".join(allowed)))
        if environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            headers.append(("Access-Control-Allow-Methods", CORS_METHODS))
            requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
            if requested:
                headers.append(("Access-Control-Allow-Headers", requested))
    return headers
