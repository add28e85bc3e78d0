"""Query parameters parsed the way BigchainDB's flask-restful `reqparse` parsers do, with its messages."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from devledger.errors import ParameterError

MISSING = "Missing required parameter in the JSON body or the post body or the query string"


@dataclass(frozen=True)
class Param:
    """One parameter: its name, converter (raising ValueError with the message) and whether required."""

    name: str
    convert: Callable[[str], Any]
    required: bool = False


def parse(query: dict[str, list[str]], params: Sequence[Param], strict: bool = False) -> dict[str, Any]:
    """Converted values (None when absent); ParameterError with reqparse's body on the first problem."""
    values: dict[str, Any] = {}
    for param in params:
        given = query.get(param.name)
        if not given:
            if param.required:
                raise ParameterError({"message": {param.name: MISSING}})
            values[param.name] = None
            continue
        try:
            values[param.name] = param.convert(given[0])
        except ValueError as exc:
            raise ParameterError({"message": {param.name: str(exc)}}) from exc
    unknown = [name for name in query if name not in values]
    if strict and unknown:
        raise ParameterError({"message": "Unknown arguments: " + ", ".join(unknown)})
    return values


def valid_txid(value: str) -> str:
    """A 64-hex transaction id, lower-cased."""
    if re.match("^[a-fA-F0-9]{64}$", value):
        return value.lower()
    raise ValueError("Invalid hash")


def valid_bool(value: str) -> bool:
    """ "true" or "false" in any case."""
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ValueError('Boolean value must be "true" or "false" (lowercase)')


def valid_ed25519(value: str) -> str:
    """A base58 ed25519 public key."""
    if re.match("^[1-9a-zA-Z]{43,44}$", value) and not re.match(".*[Il0O]", value):
        return value
    raise ValueError("Invalid base58 ed25519 key")


def valid_operation(value: str) -> str:
    """CREATE or TRANSFER, in any case."""
    upper = value.upper()
    if upper in ("CREATE", "TRANSFER"):
        return upper
    raise ValueError('Operation must be "CREATE" or "TRANSFER"')


def valid_mode(value: str) -> str:
    """async, sync or commit."""
    if value in ("async", "sync", "commit"):
        return value
    raise ValueError('Mode must be "async", "sync" or "commit"')


def text(value: str) -> str:
    """Any string."""
    return value


# MongoDB's limit() takes a 64-bit integer; a larger one never reaches a query.
MAX_INT64 = 2**63 - 1


def integer(value: str) -> int:
    """Python's int(), with its error text (flask-restful's `type=int`), within a 64-bit integer."""
    number = int(value)
    if abs(number) > MAX_INT64:
        raise ValueError(f"{value[:40]} is out of range (a 64-bit integer)")
    return number
