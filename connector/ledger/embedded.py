"""The embedded dev ledger in a process of its own, a child of the ledger process (`run`'s default layout).

In one interpreter with the window closer and the ledger writer, the dev ledger's HTTP threads took the
GIL from the thread holding the store's write lock: the closer's write step, 15-43 ms alone, held the lock
up to 857 ms, and /notify waited for it (docs/benchmarks/anchoring.md). As a child (`python -m devledger`)
it runs beside them. It gets SIGTERM when the ledger process dies, even by SIGKILL (PR_SET_PDEATHSIG, so it
is spawned from the main thread); if it dies on its own, the ledger process stops, and `run` starts a new
ledger process, which starts a new dev ledger on the same folder and ports.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import requests
import structlog

from connector.settings import LedgerSettings

log = structlog.get_logger("connector.devledger")

STOP_TIMEOUT = 10.0  # seconds a stopping dev ledger gets before SIGKILL


class DevLedgerChild:
    """`python -m devledger` on the embedded ledger's host, ports and folder, started and watched."""

    def __init__(self, ledger: LedgerSettings) -> None:
        self.host, self.port = ledger.embedded_host, ledger.embedded_port
        self.url = f"http://{self.host}:{self.port}"
        self.cmd = [
            sys.executable, "-m", "devledger", "--parent-pid", str(os.getpid()),
            "--host", ledger.embedded_host, "--port", str(ledger.embedded_port),
            "--ws-port", str(ledger.embedded_ws_port),
            *(["--data", ledger.embedded_data] if ledger.embedded_data else ["--memory"]),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    def start(self, timeout: float = 120.0) -> str:
        """Spawn it and wait until it answers (a dev ledger of an earlier ledger process may still be
        letting go of the ports: then it is spawned again); its URL."""
        deadline = time.monotonic() + timeout
        while self._port_taken():  # the dev ledger of a ledger process that just died, shutting down
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.url}: the embedded dev ledger's port is taken by another program")
            time.sleep(0.2)
        while True:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL)
            if self._answers(self.proc, deadline):
                break
            self.proc.kill()
            self.proc.wait()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the embedded dev ledger did not start at {self.url}")
            time.sleep(0.5)
        threading.Thread(target=self._watch, args=(self.proc,), name="devledger-watch", daemon=True).start()
        return self.url

    def _port_taken(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((self.host, self.port)) == 0

    def _answers(self, proc: subprocess.Popen[bytes], deadline: float) -> bool:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/", timeout=2).ok:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        if not self._stopping.is_set():  # it died on its own: this ledger process stops and `run` restarts it
            log.error("devledger.died", exit_code=code)
            os.kill(os.getpid(), signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT."""
        self._stopping.set()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
