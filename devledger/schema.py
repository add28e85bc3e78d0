"""JSON schemas of BigchainDB v2.0 CREATE and TRANSFER transactions, written from the v2.0 rules.

Checked fast with a validator fastjsonschema compiles once (Python `re` patterns and draft-04 types, as
jsonschema), and with jsonschema only when that fails, so the error text is jsonschema's best match
(BigchainDB answers `Invalid transaction schema: <it>`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema.exceptions import ValidationError

_SHA3 = {"type": "string", "pattern": "[0-9a-f]{64}"}
_BASE58 = {"type": "string", "pattern": "[1-9a-zA-Z^OIl]{43,44}"}
_PUBLIC_KEYS = {"anyOf": [{"type": "array", "items": {"$ref": "#/definitions/base58"}}, {"type": "null"}]}
_CONDITION_DETAILS = {
    "anyOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "public_key"],
            "properties": {
                "type": {"type": "string", "pattern": "^ed25519-sha-256$"},
                "public_key": {"$ref": "#/definitions/base58"},
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "threshold", "subconditions"],
            "properties": {
                "type": {"type": "string", "pattern": "^threshold-sha-256$"},
                "threshold": {"type": "integer", "minimum": 1, "maximum": 100},
                "subconditions": {"type": "array", "items": {"$ref": "#/definitions/condition_details"}},
            },
        },
    ]
}
_CONDITION_URI = (
    "^ni:///sha-256;([a-zA-Z0-9_-]{0,86})[?]"
    "(fpt=(ed25519|threshold)-sha-256(&)?|cost=[0-9]+(&)?|subtypes=ed25519-sha-256(&)?){2,3}$"
)
_DEFINITIONS: dict[str, Any] = {
    "sha3_hexdigest": _SHA3,
    "base58": _BASE58,
    "public_keys": _PUBLIC_KEYS,
    "offset": {"type": "integer", "minimum": 0},
    "condition_details": _CONDITION_DETAILS,
    "operation": {"type": "string", "enum": ["CREATE", "TRANSFER"]},
    "asset": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": {"$ref": "#/definitions/sha3_hexdigest"},
            "data": {"anyOf": [{"type": "object", "additionalProperties": True}, {"type": "null"}]},
        },
    },
    "output": {
        "type": "object",
        "additionalProperties": False,
        "required": ["amount", "condition", "public_keys"],
        "properties": {
            "amount": {"type": "string", "pattern": "^[0-9]{1,20}$"},
            "condition": {
                "type": "object",
                "additionalProperties": False,
                "required": ["details", "uri"],
                "properties": {
                    "details": {"$ref": "#/definitions/condition_details"},
                    "uri": {"type": "string", "pattern": _CONDITION_URI},
                },
            },
            "public_keys": {"$ref": "#/definitions/public_keys"},
        },
    },
    "input": {
        "type": "object",
        "additionalProperties": False,
        "required": ["owners_before", "fulfillment"],
        "properties": {
            "owners_before": {"$ref": "#/definitions/public_keys"},
            "fulfillment": {
                "anyOf": [
                    {"type": "string", "pattern": "^[a-zA-Z0-9_-]*$"},
                    {"$ref": "#/definitions/condition_details"},
                ]
            },
            "fulfills": {
                "anyOf": [
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["output_index", "transaction_id"],
                        "properties": {
                            "output_index": {"$ref": "#/definitions/offset"},
                            "transaction_id": {"$ref": "#/definitions/sha3_hexdigest"},
                        },
                    },
                    {"type": "null"},
                ]
            },
        },
    },
    "metadata": {
        "anyOf": [{"type": "object", "additionalProperties": True, "minProperties": 1}, {"type": "null"}]
    },
}

COMMON_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "additionalProperties": False,
    "title": "Transaction Schema",
    "required": ["id", "inputs", "outputs", "operation", "metadata", "asset", "version"],
    "properties": {
        "id": {"anyOf": [{"$ref": "#/definitions/sha3_hexdigest"}, {"type": "null"}]},
        "operation": {"$ref": "#/definitions/operation"},
        "asset": {"$ref": "#/definitions/asset"},
        "inputs": {"type": "array", "title": "Transaction inputs", "items": {"$ref": "#/definitions/input"}},
        "outputs": {"type": "array", "items": {"$ref": "#/definitions/output"}},
        "metadata": {"$ref": "#/definitions/metadata"},
        "version": {"type": "string", "pattern": "^2\\.0$"},
    },
    "definitions": _DEFINITIONS,
}

CREATE_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "title": "Transaction Schema - CREATE specific constraints",
    "required": ["asset", "inputs"],
    "properties": {
        "asset": {
            "additionalProperties": False,
            "properties": {
                "data": {"anyOf": [{"type": "object", "additionalProperties": True}, {"type": "null"}]}
            },
            "required": ["data"],
        },
        "inputs": {
            "type": "array",
            "title": "Transaction inputs",
            "maxItems": 1,
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["fulfills"],
                "properties": {"fulfills": {"type": "null"}},
            },
        },
    },
}

TRANSFER_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "title": "Transaction Schema - TRANSFER specific properties",
    "required": ["asset"],
    "properties": {
        "asset": {
            "additionalProperties": False,
            "properties": {"id": {"$ref": "#/definitions/sha3_hexdigest"}},
            "required": ["id"],
        },
        "inputs": {
            "type": "array",
            "title": "Transaction inputs",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["fulfills"],
                "properties": {"fulfills": {"type": "object"}},
            },
        },
    },
    "definitions": {"sha3_hexdigest": _SHA3},
}


def _min_properties(validator: Any, minimum: int, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "object") and len(instance) < minimum:
        yield ValidationError(f"{instance!r} does not have enough properties")


def _min_items(validator: Any, minimum: int, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "array") and len(instance) < minimum:
        yield ValidationError(f"{instance!r} is too short")


def _max_items(validator: Any, maximum: int, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "array") and len(instance) > maximum:
        yield ValidationError(f"{instance!r} is too long")


# BigchainDB 2.2.2 runs jsonschema 2.x; newer releases reworded these three messages, so restore them.
_Draft4 = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    {"minProperties": _min_properties, "minItems": _min_items, "maxItems": _max_items},
)


class SchemaCheck:
    """One schema, checked fast with fastjsonschema and explained with jsonschema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._fast = fastjsonschema.compile(schema)
        self._slow = _Draft4(schema)

    def error(self, instance: object) -> str | None:
        """None when `instance` is valid, else jsonschema's message."""
        try:
            self._fast(instance)
            return None
        except fastjsonschema.JsonSchemaException:
            best = jsonschema.exceptions.best_match(self._slow.iter_errors(instance))
            # The two engines can disagree on exotic regexes; jsonschema is the one BigchainDB quotes.
            return best.message if best is not None else None


_COMMON = SchemaCheck(COMMON_SCHEMA)
_CREATE = SchemaCheck(CREATE_SCHEMA)
_TRANSFER = SchemaCheck(TRANSFER_SCHEMA)


def schema_error(tx: object) -> str | None:
    """The jsonschema message of the first v2.0 schema `tx` breaks (common, then CREATE/TRANSFER), or None."""
    error = _COMMON.error(tx)
    if error is not None:
        return error
    operation = tx.get("operation") if isinstance(tx, dict) else None
    return (_TRANSFER if operation == "TRANSFER" else _CREATE).error(tx)
