"""A ledger writer in its own process, for the crash test: it SIGKILLs itself right after a send succeeds.

Usage: python tests/ledger/writer_process.py '{"store": URL, "keystore": DIR, "ledger": URL}'
Exit 0 once the outbox has no open rows; a kill shows as -SIGKILL to the parent.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from connector.keystore import Keystore
from connector.ledger.client import DriverClient
from connector.ledger.outbox import OPEN
from connector.ledger.writer import LedgerWriter
from connector.settings import load_settings
from connector.store.db import open_store
from connector.store.models import LedgerOutbox


class DiesAfterSend(DriverClient):
    """The real driver client, except that the process dies between a successful send and its confirmation."""

    def send(self, tx: dict[str, Any], mode: str) -> None:
        super().send(tx, mode)
        os.kill(os.getpid(), signal.SIGKILL)


def main(config: dict[str, str]) -> int:
    settings = load_settings(overrides={"store.url": config["store"], "ledger.backoff_base": 0.2})
    store = open_store(config["store"])
    writer = LedgerWriter(
        settings.ledger,
        store,
        Keystore(config["keystore"]),
        [config["ledger"]],
        lambda: datetime.now(UTC),
        client_factory=lambda: DiesAfterSend([config["ledger"]], settings.ledger),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        writer.dispatch_once()
        with store.reading() as conn:
            if not conn.scalar(select(func.count()).where(LedgerOutbox.status.in_(OPEN))):
                return 0
        time.sleep(0.1)
    return 1


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
