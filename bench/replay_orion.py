"""Replay a folder of recorded Orion / Orion-LD notifications against a connector and check every number.

Each case is one JSON file: `headers`, `body` (or `raw_body` when `json` is false), `url`, `family`, ...
(the layout of ../shared/orion-notifications). A connector is started on its embedded defaults (SQLite
store, in-process dev ledger) in a temporary folder; every case is POSTed to /notify (the query string of
its URL kept) with its own headers. Then every numeric attribute value of every case answered 2xx is looked
up through the query API (GET /v1/meters/{id}/readings with the case's tenant and service path): found
among the readings or the conflicts, or listed in that case's `rejected` with a reason (an attribute of that
very entity), or missing.

Usage: python -m bench.replay_orion DIR [--store URL] [--show N]
Prints one JSON object: cases, statuses (2xx/4xx/5xx), values checked/found/rejected/missing, the 4xx
and 5xx cases with their answers, and the first missing values.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

NUMERIC = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
LD_MEMBERS = {"id", "type", "@context", "scope", "createdAt", "modifiedAt", "deletedAt", "location"}
LD_VALUE_KEYS = ("value", "object", "languageMap", "vocab", "valueList", "objectList", "json")
DROPPED_HEADERS = {"content-length", "host", "transfer-encoding", "connection"}
Value = tuple[str, str, str, str, Decimal]  # tenant, service path, entity id, attribute, number
Key = tuple[str, str, str, str]  # tenant, service path, entity id, attribute
Expected = tuple[str, Value, set[tuple[str, str]]]  # case, value, the case's rejected (entity id, where)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--store", help="store URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--show", type=int, default=20, help="missing values listed at most")
    args = parser.parse_args(argv)
    cases = sorted(args.folder.glob("*.json"))
    if not cases:
        parser.error(f"no *.json case in {args.folder}")
    with tempfile.TemporaryDirectory(prefix="replay-orion-") as tmp, connector(Path(tmp), args.store) as url:
        report = replay(url, [json.loads(p.read_text()) for p in cases], args.show)
    print(json.dumps(report, indent=1))
    return 0 if not report["statuses"]["5xx"] and not report["values"]["missing"] else 1


def replay(url: str, cases: list[dict[str, Any]], show: int) -> dict[str, Any]:
    """POST every case, then look every numeric value up; the report described in the module docstring."""
    session = requests.Session()
    statuses: Counter[str] = Counter()
    refused: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()  # why parts of 2xx notifications were listed as rejected
    expected: list[Expected] = []
    for case in cases:
        resp = post(session, url, case)
        statuses[f"{resp.status_code // 100}xx"] += 1
        answer = _json(resp)
        if resp.status_code >= 300:
            refused.append(
                {"case": case.get("case"), "family": case.get("family"), "status": resp.status_code,
                 "answer": answer}
            )  # fmt: skip
            continue
        parts = answer.get("rejected", []) if isinstance(answer, dict) else []
        rejected = {(str(r.get("id")), str(r.get("where", ""))) for r in parts}
        reasons.update(_reason(r.get("reason")) for r in parts)
        expected += [(str(case.get("case")), v, rejected) for v in numeric_values(case)]
    found, rejected_n, missing = check_values(session, url, expected)
    return {
        "cases": len(cases),
        "statuses": {k: statuses.get(k, 0) for k in ("2xx", "4xx", "5xx")},
        "values": {"checked": len(expected), "found": found, "rejected": rejected_n, "missing": len(missing)},
        "rejected_parts": dict(reasons.most_common()),
        "refused_cases": refused,
        "missing_values": missing[:show],
    }


def post(session: requests.Session, url: str, case: dict[str, Any]) -> requests.Response:
    """POST one case to /notify with its own headers and body (its URL's query string kept)."""
    query = urlsplit(case.get("url", "")).query
    target = f"{url}/notify" + (f"?{query}" if query else "")
    headers = {k: v for k, v in case.get("headers", {}).items() if k.lower() not in DROPPED_HEADERS}
    if case.get("json", True) and case.get("raw_body") is None:
        data = json.dumps(case["body"]).encode()
    else:
        data = (case.get("raw_body") or "").encode()
    return session.post(target, data=data, headers=headers, timeout=60)


def check_values(
    session: requests.Session, url: str, expected: list[Expected]
) -> tuple[int, int, list[dict[str, Any]]]:
    """(found, rejected with a reason, missing) over the expected values, each meter's numbers read once."""
    keys = dict.fromkeys(value[:4] for _, value, _ in expected)
    return classify(expected, {key: stored_numbers(session, url, *key) for key in keys})


def classify(
    expected: list[Expected], stored: dict[Key, set[Decimal]]
) -> tuple[int, int, list[dict[str, Any]]]:
    """(found, rejected, missing): a value is found among its meter attribute's stored numbers, else
    rejected when its case's answer lists that attribute of that entity, else missing."""
    found = rejected = 0
    missing: list[dict[str, Any]] = []
    for case, (tenant, path, entity, attr, number), rejected_where in expected:
        if number in stored[(tenant, path, entity, attr)]:
            found += 1
        elif any(i == entity and (w.endswith(f".{attr}") or f".{attr}[" in w) for i, w in rejected_where):
            rejected += 1
        else:
            missing.append({"case": case, "tenant": tenant, "path": path, "entity": entity, "attr": attr,
                            "number": str(number)})  # fmt: skip
    return found, rejected, missing


def stored_numbers(
    session: requests.Session, url: str, tenant: str, path: str, entity: str, attr: str
) -> set[Decimal]:
    """The numbers stored for one meter's attribute: its readings and its conflicts."""
    headers = {"Fiware-Service": tenant, "Fiware-ServicePath": path}
    resp = session.get(
        f"{url}/v1/meters/{quote(entity, safe='')}/readings",
        params={"attr": attr, "limit": 10000},
        headers=headers,
        timeout=60,
    )
    if resp.status_code != 200:
        return set()
    answer = resp.json()
    rows = answer.get("readings", []) + answer.get("conflicts", [])
    return {Decimal(r["number"]) for r in rows if r.get("number") is not None}


# -- what a case carries -------------------------------------------------------------------------------


def numeric_values(case: dict[str, Any]) -> list[Value]:
    """Every numeric attribute value of a case's notification, with its meter (tenant, path, entity)."""
    if not case.get("json", True) or case.get("raw_body") is not None:
        return []
    headers = {k.lower(): v for k, v in case.get("headers", {}).items()}
    tenant = (headers.get("ngsild-tenant") or headers.get("fiware-service") or "").strip().lower()
    paths = [p.strip().rstrip("/") or "/" for p in headers.get("fiware-servicepath", "/").split(",")]
    values = []
    for index, (entity, attrs) in enumerate(entities(case["body"], headers.get("ngsiv2-attrsformat"))):
        path = paths[min(index, len(paths) - 1)]
        values += [(tenant, path, entity, name, n) for name, n in attrs if n is not None]
    return values


def entities(body: Any, attrs_format: str | None) -> Iterator[tuple[str, list[tuple[str, Decimal | None]]]]:
    """(entity id, [(attribute, number or None)]) for each entity, read the way each format writes it."""
    if not isinstance(body, dict):
        return
    data = body.get("data")
    simplified = attrs_format in ("simplifiedNormalized", "simplifiedKeyValues")
    if simplified or ("id" in body and "data" not in body):
        items: list[Any] = [body]
    elif isinstance(data, dict) and isinstance(data.get("features"), list):  # NGSI-LD GeoJSON
        features = [f for f in data["features"] if isinstance(f, dict)]
        items = [{**(f.get("properties") or {}), "id": f.get("id")} for f in features]
    elif "contextResponses" in body:
        items = [r.get("contextElement") for r in body.get("contextResponses") or [] if isinstance(r, dict)]
        for element in items:
            if isinstance(element, dict) and isinstance(element.get("id"), str):
                attrs = [a for a in element.get("attributes") or [] if isinstance(a, dict)]
                yield element["id"], [(str(a.get("name")), number(a.get("value"))) for a in attrs]
        return
    else:
        items = data if isinstance(data, list) else []
    ld = body.get("type") == "Notification" or "notifiedAt" in body
    for entity in items:
        if not isinstance(entity, dict) or not isinstance(entity.get("id"), str) or "deletedAt" in entity:
            continue
        pairs = []
        for name, attr in entity.items():
            if name in ("id", "type") or (ld and name in LD_MEMBERS):
                continue
            for plain in _plain_values(attr):
                pairs.append((name, number(plain)))
        yield entity["id"], pairs


def _plain_values(attr: Any) -> list[Any]:
    if isinstance(attr, list) and attr and all(isinstance(a, dict) and "value" in a for a in attr):
        return [a["value"] for a in attr]  # NGSI-LD multi-attribute
    if isinstance(attr, dict):
        for key in LD_VALUE_KEYS:
            if key in attr:
                return [attr[key]]
        return [attr]
    return [attr]


def number(value: Any) -> Decimal | None:
    """A finite number (or numeric text, as NGSIv1 sends them) as a Decimal; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, str) and len(value) <= 64 and NUMERIC.fullmatch(value):
        text = value
    else:
        return None
    try:
        result = Decimal(text)
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


# -- the connector under test ----------------------------------------------------------------------------


class connector:  # noqa: N801 - used as a context manager, like open()
    """A connector process on embedded defaults in `folder`, on free ports; yields its base URL."""

    def __init__(self, folder: Path, store: str | None) -> None:
        self.folder, self.store = folder, store
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Any = None

    def __enter__(self) -> str:
        port, ledger, ws = free_port(), free_port(), free_port()
        var = self.folder / "var"
        env = {
            **os.environ,
            "CONNECTOR_LISTEN": f"127.0.0.1:{port}",
            "CONNECTOR_STATE_DIR": str(var),
            "CONNECTOR_STORE_URL": self.store or f"sqlite:///{var}/connector.sqlite3",
            "CONNECTOR_KEYSTORE_PATH": str(var / "keystore"),
            "CONNECTOR_LEDGER_EMBEDDED_DATA": str(var / "devledger"),
            "CONNECTOR_LEDGER_EMBEDDED_PORT": str(ledger),
            "CONNECTOR_LEDGER_EMBEDDED_WS_PORT": str(ws),
            "CONNECTOR_LOGGING_LEVEL": "WARNING",
        }
        var.mkdir(parents=True, exist_ok=True)
        self.log = (self.folder / "connector.log").open("wb")
        cmd = [sys.executable, "-m", "connector", "run"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                time.sleep(0.2)
        self.__exit__()
        raise SystemExit(f"the connector did not start; see {self.folder / 'connector.log'}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reason(reason: Any) -> str:
    """A rejection reason without the names and times that make each one unique."""
    return re.sub(r"'[^']*'|\d{4}-\S+", "...", str(reason))[:100]


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text[:300]


if __name__ == "__main__":
    sys.exit(main())
