"""Errors the dev ledger answers with, carrying BigchainDB 2.2.2's exact texts."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every dev ledger error."""


class InvalidTransaction(LedgerError):
    """A posted transaction is invalid; `message` is the body text BigchainDB answers with (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @classmethod
    def of(cls, kind: str, text: str) -> InvalidTransaction:
        """`Invalid transaction (<kind>): <text>`, BigchainDB's format for its ValidationError subclasses."""
        return cls(f"Invalid transaction ({kind}): {text}")


class ParameterError(LedgerError):
    """A query parameter is missing or malformed; `body` is the JSON body flask-restful would answer with."""

    def __init__(self, body: dict[str, object]) -> None:
        super().__init__(str(body))
        self.body = body


class ChainBroken(LedgerError):
    """The stored block chain does not verify; `height` is the first bad block."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(f"block {height}: {reason}")
        self.height = height
        self.reason = reason
