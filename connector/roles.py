"""What one connector process runs: its role (`Connector.start(role=...)`, `run --role`).

ALL runs everything in one process (tests, the demo, `server.ledger_process: false`); `run`'s default
layout is an HTTP process (HTTP; more HTTP processes are WORKERs), the ledger process (LEDGER) and the
closer process (CLOSER), the last two started by the HTTP process with `run --role` (connector/supervisor.py).
"""

from __future__ import annotations

ALL, HTTP, WORKER, LEDGER, CLOSER = "all", "http", "worker", "ledger", "closer"
APART = (LEDGER, CLOSER)  # the roles of the processes that serve no HTTP, each started with `run --role`
