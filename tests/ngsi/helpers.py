"""Shared test helpers for the NGSI parser tests: verbatim payloads and short constructors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ngsi.model import Headers, ParsedNotification
from ngsi.parse import parse_notification

PAYLOADS = Path(__file__).parent / "payloads"
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T_2019 = datetime(2019, 3, 18, 16, 13, 45, 275000, tzinfo=UTC)


def payload(name: str) -> Any:
    """The decoded body of a verbatim payload file, read as bytes as the HTTP layer receives it."""
    return json.loads((PAYLOADS / name).read_bytes())


def headers(attrs_format: str | None = None) -> Headers:
    """Headers of the default tenant with the given Ngsiv2-AttrsFormat."""
    return Headers(tenant="", service_path="/", correlator=None, attrs_format=attrs_format)


def parse(body: Any, attrs_format: str | None = None, time_attribute: str = "") -> ParsedNotification:
    """parse_notification with default headers and the fixed receipt time RECEIVED."""
    return parse_notification(body, headers(attrs_format), RECEIVED, time_attribute)


def utc(text: str) -> datetime:
    """An aware UTC datetime from ISO text ("2019-03-18T16:13:45.275Z")."""
    return datetime.fromisoformat(text).astimezone(UTC)
