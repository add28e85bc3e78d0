"""Error classification table, and where the reporter key comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from web3.exceptions import (
    BadResponseFormat,
    ContractCustomError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)

from connector.ethereum.client import KEYSTORE_NAME, reporter_account
from connector.ethereum.errors import Action, FeeCapReached, NotAccepted, classify
from connector.ethereum.testing import rpc_error
from connector.settings import EthereumSettings, KeystoreSettings, Settings


def http_error(status: int) -> requests.HTTPError:
    """requests' HTTPError as web3's HTTPProvider raises it (raise_for_status)."""
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (ContractCustomError("0x07c4dc6c", data="0x07c4dc6c"), Action.REVERT),
        (Web3RPCError("{'code': -32003, 'message': 'nonce too low'}"), Action.RESYNC_NONCE),
        (
            Web3RPCError("{'code': -32000, 'message': 'replacement transaction underpriced'}"),
            Action.BUMP_FEES,
        ),
        (
            Web3RPCError("{'code': -32003, 'message': 'max fee per gas less than block base fee'}"),
            Action.BUMP_FEES,
        ),
        (Web3RPCError("{'code': -32003, 'message': 'transaction already imported'}"), Action.ALREADY_SENT),
        (TimeExhausted("no receipt"), Action.LOOKUP_RECEIPT),
        (requests.ConnectionError("refused"), Action.RETRY),
        (requests.ReadTimeout("slow"), Action.RETRY),
        (ConnectionResetError(), Action.RETRY),
        (ProviderConnectionError("no node"), Action.RETRY),
        (TransactionNotFound("not yet"), Action.RETRY),
        (http_error(502), Action.RETRY),
        (http_error(429), Action.RETRY),
        (http_error(400), Action.UNKNOWN),
        (rpc_error(-32005, "limit exceeded"), Action.RETRY),
        (rpc_error(-32002, "resource unavailable"), Action.RETRY),
        (rpc_error(-32003, "Insufficient funds for gas * price + value"), Action.RETRY),
        (FeeCapReached("above the cap"), Action.RETRY),
        (NotAccepted("kept refusing"), Action.RETRY),
        (rpc_error(-32000, "execution reverted"), Action.REVERT),
        (rpc_error(-32000, "intrinsic gas too low"), Action.UNKNOWN),
        (TypeError("Transaction had invalid fields: {'gas': 'x'}"), Action.UNKNOWN),
        (ValueError("unexpected input"), Action.UNKNOWN),
        (BadResponseFormat("html from a proxy"), Action.UNKNOWN),
        (KeyError("to"), Action.UNKNOWN),
    ],
)
def test_classify(exc: Exception, action: Action) -> None:
    """Each error class and text anvil/geth/web3/requests/eth-account give maps to the documented next
    step; one without evidence is UNKNOWN (dead, alerted), never retried."""
    assert classify(exc) is action


def test_dead_actions() -> None:
    """Only a revert and an unknown error give the work up."""
    assert {a for a in Action if a.dead} == {Action.REVERT, Action.UNKNOWN}


class RecordingKeystore:
    """A keystore stand-in with the real call shape: secret(name, create) creates once, then returns it."""

    created: dict[str, bytes] = {}

    def __init__(self, path: str, passphrase: str) -> None:
        self.path, self.passphrase = path, passphrase

    def secret(self, name: str, create):  # type: ignore[no-untyped-def]
        return self.created.setdefault(name, create())


def test_reporter_key_from_settings_wins(tmp_path: Path) -> None:
    """ethereum.reporter_key is used as is when set."""
    settings = Settings(ethereum=EthereumSettings(reporter_key="0x" + "42" * 32))
    assert reporter_account(settings, RecordingKeystore).key.hex().endswith("42" * 32)


def test_reporter_key_from_keystore_is_stable(tmp_path: Path) -> None:
    """Without a setting the key is the keystore's named secret: created once, the same afterwards."""
    settings = Settings(keystore=KeystoreSettings(path=str(tmp_path), passphrase="p"))
    first = reporter_account(settings, RecordingKeystore)
    assert reporter_account(settings, RecordingKeystore).address == first.address
    assert KEYSTORE_NAME in RecordingKeystore.created


def test_reporter_key_from_real_keystore(tmp_path: Path) -> None:
    """With the real encrypted keystore the reporter key is created once and never written in clear."""
    settings = Settings(keystore=KeystoreSettings(path=str(tmp_path / "ks"), passphrase="correct horse"))
    first = reporter_account(settings)
    assert reporter_account(settings).address == first.address
    stored = b"".join(f.read_bytes() for f in (tmp_path / "ks").rglob("*") if f.is_file())
    assert first.key not in stored and first.key.hex().encode() not in stored
