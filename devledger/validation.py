"""Transaction validation in BigchainDB 2.2.2's order and with its messages.

`check_stateless` does everything that needs no ledger state (id hash, schema, key names, languages,
amounts, signature maths) and can run in parallel; `check_against` finishes under the ledger lock with the
checks that need committed and pending state (duplicates, inputs, double spends, asset ids, amounts).
Signatures are verified with bigchaindb-driver's transaction model (its `Transaction.from_dict` and
`_inputs_valid`, the code BigchainDB itself validates with) and cryptoconditions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

import rapidjson
from bigchaindb_driver.common import exceptions as bdb_errors
from bigchaindb_driver.common.transaction import Transaction
from bigchaindb_driver.common.utils import serialize
from sha3 import sha3_256

from devledger.errors import InvalidTransaction
from devledger.fastpath import FastResult, fast_result
from devledger.schema import schema_error

# MongoDB text search languages (BigchainDB's VALID_LANGUAGES).
VALID_LANGUAGES = frozenset(
    [
        "danish",
        "dutch",
        "english",
        "finnish",
        "french",
        "german",
        "hungarian",
        "italian",
        "norwegian",
        "portuguese",
        "romanian",
        "russian",
        "spanish",
        "swedish",
        "turkish",
        "none",
        "da",
        "nl",
        "en",
        "fi",
        "fr",
        "de",
        "hu",
        "it",
        "nb",
        "pt",
        "ro",
        "ru",
        "es",
        "sv",
        "tr",
    ]
)
_BAD_KEY = re.compile(r"^[$]|\.|\x00")


@dataclass(frozen=True, slots=True)
class OutputInfo:
    """What validation needs to know about one output."""

    amount: int
    condition_uri: str
    public_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Checked:
    """A transaction that passed every stateless check."""

    id: str
    operation: str
    asset_id: str
    spends: tuple[tuple[str, int], ...]
    spend_condition_uris: tuple[str, ...]
    outputs: tuple[OutputInfo, ...]
    signatures_valid: bool
    body: dict[str, Any]
    serialized: str


class LedgerView(Protocol):
    """Committed plus pending state, as validation sees it."""

    def has_create(self, tx_id: str) -> bool:
        """Whether a CREATE with this id is committed or pending (answered from memory)."""
        ...

    def has_transaction(self, tx_id: str) -> bool: ...

    def output(self, tx_id: str, index: int) -> tuple[OutputInfo, str] | None:
        """The output and its asset id, or None when the transaction or the index does not exist."""
        ...

    def spender(self, tx_id: str, index: int) -> str | None: ...


def check_stateless(tx: object, fast: bool = True) -> Checked:
    """Check `tx` as BigchainDB does before it looks at the ledger; raise InvalidTransaction with its text.

    Signatures of the common shape are checked by `fastpath` (same verdict, a quarter of the CPU);
    `fast=False` always goes through the driver's model, the reference the fast path is tested against.
    """
    if not isinstance(tx, dict):
        # BigchainDB crashes with a 500 here; a clear 400 is kinder and no client relies on the crash.
        raise InvalidTransaction(f"Invalid transaction schema: {_repr(tx)} is not of type 'object'")
    _check_id(tx)
    error = schema_error(tx)
    if error is not None:
        raise InvalidTransaction(f"Invalid transaction schema: {error}")
    _check_keys(tx)
    serialized = serialize(tx)
    result = fast_result(tx) if fast else None
    if result is not None:
        return _fast_checked(tx, result, serialized)
    return _checked(tx, _model(tx), serialized)


def check_against(checked: Checked, view: LedgerView) -> None:
    """The stateful checks, in BigchainDB's order; raise InvalidTransaction with its text."""
    if checked.operation == "CREATE":
        if view.has_create(checked.id):
            raise InvalidTransaction.of("DuplicateTransaction", f"transaction `{checked.id}` already exists")
        if not checked.signatures_valid:
            raise _bad_signature()
        return
    _check_transfer(checked, view)


def _check_transfer(checked: Checked, view: LedgerView) -> None:
    spent: list[tuple[OutputInfo, str]] = []
    for tx_id, index in checked.spends:
        if not view.has_transaction(tx_id):
            raise InvalidTransaction.of("InputDoesNotExist", f"input `{tx_id}` doesn't exist")
        if view.spender(tx_id, index) is not None:
            raise InvalidTransaction.of("DoubleSpend", f"input `{tx_id}` was already spent")
        found = view.output(tx_id, index)
        if found is None:
            # BigchainDB fails with an IndexError (500) on an output index past the end; we say why instead.
            raise InvalidTransaction.of("InputDoesNotExist", f"input `{tx_id}` doesn't exist")
        spent.append(found)
    if len(set(checked.spends)) != len(checked.spends):
        raise InvalidTransaction.of("DoubleSpend", f'tx "{checked.id}" spends inputs twice')
    _check_assets_and_amounts(checked, spent)
    uris_match = all(
        output.condition_uri == uri
        for (output, _), uri in zip(spent, checked.spend_condition_uris, strict=True)
    )
    if not (uris_match and checked.signatures_valid):
        raise _bad_signature()


def _check_assets_and_amounts(checked: Checked, spent: list[tuple[OutputInfo, str]]) -> None:
    asset_ids = {asset_id for _, asset_id in spent}
    if len(asset_ids) > 1:
        raise InvalidTransaction.of(
            "AssetIdMismatch", "All inputs of all transactions passed need to have the same asset id"
        )
    if asset_ids.pop() != checked.asset_id:
        raise InvalidTransaction.of(
            "AssetIdMismatch", "The asset id of the input does not match the asset id of the transaction"
        )
    amount_in = sum(output.amount for output, _ in spent)
    amount_out = sum(output.amount for output in checked.outputs)
    if amount_in != amount_out:
        raise InvalidTransaction.of(
            "AmountError",
            f"The amount used in the inputs `{amount_in}` needs to be same as the amount used in the "
            f"outputs `{amount_out}`",
        )


def _bad_signature() -> InvalidTransaction:
    return InvalidTransaction.of("InvalidSignature", "Transaction signature is invalid.")


def _check_id(tx: dict[str, Any]) -> None:
    if "id" not in tx:
        raise InvalidTransaction.of("InvalidHash", "No transaction id found!")
    proposed = tx["id"]
    try:
        valid = sha3_256(serialize({**tx, "id": None}).encode()).hexdigest()
    except (ValueError, TypeError, OverflowError):
        valid = None
    if proposed != valid:
        raise InvalidTransaction.of(
            "InvalidHash",
            f"The transaction's id '{proposed}' isn't equal to the hash of its body, i.e. it's not valid.",
        )


def _check_keys(tx: dict[str, Any]) -> None:
    _walk_keys("asset", tx["asset"].get("data", {}))
    _walk_keys("metadata", tx.get("metadata", {}))
    _walk_languages(tx["asset"].get("data", {}))
    _walk_languages(tx.get("metadata", {}))


def _walk_keys(name: str, value: object) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if _BAD_KEY.search(key):
                raise InvalidTransaction.of(
                    "ValidationError",
                    f'Invalid key name "{key}" in {name} object. The key name cannot contain characters '
                    '".", "$" or null characters',
                )
            _walk_keys(name, inner)
    elif isinstance(value, list):
        for item in value:
            _walk_keys(name, item)


def _walk_languages(value: object) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "language":
                _check_language(inner)
            else:
                _walk_languages(inner)
    elif isinstance(value, list):
        for item in value:
            _walk_languages(item)


def _check_language(value: object) -> None:
    if not isinstance(value, str) or value not in VALID_LANGUAGES:
        raise InvalidTransaction.of(
            "ValidationError",
            f'MongoDB does not support text search for the language "{value}". If you do not understand '
            'this error message then please rename key/field "language" to something else like "lang".',
        )


def _model(tx: dict[str, Any]) -> Transaction:
    try:
        return Transaction.from_dict(tx)
    except bdb_errors.ValidationError as exc:
        raise InvalidTransaction.of(type(exc).__name__, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - cryptoconditions raises many types for one cause
        # An unparsable fulfillment URI; BigchainDB answers this for ASN.1 errors and crashes on the rest.
        raise InvalidTransaction.of("InvalidSignature", "Fulfillment URI couldn't been parsed") from exc


def _checked(tx: dict[str, Any], model: Transaction, serialized: str) -> Checked:
    operation = tx["operation"]
    spends = tuple((i.fulfills.txid, i.fulfills.output) for i in model.inputs if i.fulfills)
    try:
        own_uris = tuple(i.fulfillment.condition_uri for i in model.inputs)
        outputs = tuple(
            OutputInfo(o.amount, o.fulfillment.condition_uri, tuple(o.public_keys or ()))
            for o in model.outputs
        )
    except Exception as exc:  # noqa: BLE001 - see _model
        raise InvalidTransaction.of("InvalidSignature", "Fulfillment URI couldn't been parsed") from exc
    return Checked(
        id=tx["id"],
        operation=operation,
        asset_id=tx["id"] if operation == "CREATE" else tx["asset"]["id"],
        spends=spends,
        spend_condition_uris=own_uris,
        outputs=outputs,
        signatures_valid=_signatures_valid(model, own_uris),
        body=tx,
        serialized=serialized,
    )


def _fast_checked(tx: dict[str, Any], fast: FastResult, serialized: str) -> Checked:
    operation = tx["operation"]
    return Checked(
        id=tx["id"],
        operation=operation,
        asset_id=tx["id"] if operation == "CREATE" else tx["asset"]["id"],
        spends=fast.spends,
        spend_condition_uris=fast.spend_condition_uris,
        outputs=tuple(OutputInfo(*output) for output in fast.outputs),
        signatures_valid=fast.signatures_valid,
        body=tx,
        serialized=serialized,
    )


def _signatures_valid(model: Transaction, own_uris: tuple[str, ...]) -> bool:
    # Each input is checked against its own condition here; under the lock the ledger then compares those
    # URIs with the spent outputs' URIs, which together is exactly the driver's `inputs_valid(outputs)`.
    try:
        if model.operation == "CREATE":
            return bool(model.inputs_valid())
        return bool(model._inputs_valid(list(own_uris)))
    except Exception:  # noqa: BLE001 - malformed fulfillments make the model raise instead of saying False
        return False


def _repr(value: object) -> str:
    try:
        return repr(json.loads(rapidjson.dumps(value)))
    except (ValueError, TypeError):
        return repr(value)
