"""Processes and checks for the reliability tests and benchmarks.

A dev ledger and connectors in their own processes (so a SIGKILL of one leaves the others running), a
sender that streams current-time notifications and records each one answered 200, and the checks that an
outsider can make afterwards: the store's readings, windows and ledger outbox, and each meter's asset
history read back from the ledger with bigchaindb_driver.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Fiware-Service": "rel",
    "Fiware-ServicePath": "/",
    "Fiware-Correlator": "reliability; cbnotif=1",
}


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    every: float = 0.2,
    state: Callable[[], object] | None = None,
) -> None:
    """Poll `check` until it is true; raise AssertionError naming `what` (and `state()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    shown = f": {state()}" if state else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{shown}")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


class LedgerProcess:
    """`python -m connector devledger` on a fixed port and data folder; `stop()` + `start()` is an outage."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.ws_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where the ledger's stderr (its error logs) goes: next to its data folder."""
        return self.data_dir.parent / f"devledger-{self.port}.log"

    @property
    def url(self) -> str:
        """Base URL of the ledger's HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LedgerProcess:
        """Start the ledger and return once its HTTP API answers."""
        args = ["--host", "127.0.0.1", "--port", str(self.port), "--ws-port", str(self.ws_port)]
        cmd = [sys.executable, "-m", "connector", "devledger", *args, "--data", str(self.data_dir)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        wait_until(lambda: _answers(self.url + "/api/v1/"), 30, "the dev ledger to answer")
        return self

    def stop(self) -> None:
        """Stop the ledger with SIGTERM (it commits what is pending) and wait for it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self):  # type: ignore[no-untyped-def]
        """A bigchaindb-driver client for the checks."""
        from bigchaindb_driver import BigchainDB

        return BigchainDB(self.url, timeout=10)


@dataclass
class ConnectorProcess:
    """`python -m connector run` with short windows, writing to an external ledger."""

    store_url: str
    state_dir: Path
    ledger_url: str
    port: int = field(default_factory=free_port)
    window_length: int = 3
    window_grace: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the connector."""
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The process environment: settings as CONNECTOR_* overrides."""
        return {
            **os.environ,
            "CONNECTOR_STORE_URL": self.store_url,
            "CONNECTOR_LISTEN": f"127.0.0.1:{self.port}",
            "CONNECTOR_LEDGER_ENABLED": "true",
            "CONNECTOR_LEDGER_EMBEDDED": "false",
            "CONNECTOR_LEDGER_URLS": f"[{self.ledger_url}]",
            "CONNECTOR_LEDGER_DISPATCH_INTERVAL": "0.5",
            "CONNECTOR_LEDGER_BACKOFF_BASE": "0.5",
            "CONNECTOR_LEDGER_BACKOFF_CAP": "2",
            "CONNECTOR_LEDGER_TIMEOUT": "5",
            "CONNECTOR_KEYSTORE_PATH": str(self.state_dir / "keystore"),
            "CONNECTOR_WINDOW_LENGTH": str(self.window_length),
            "CONNECTOR_WINDOW_GRACE": str(self.window_grace),
            "CONNECTOR_WINDOW_CLOSE_INTERVAL": "0.5",
            "CONNECTOR_STATE_DIR": str(self.state_dir),
            "CONNECTOR_LOGGING_LEVEL": "WARNING",
            **self.extra_env,
        }

    def start(self) -> ConnectorProcess:
        """Start the connector and return once `/health` answers 200."""
        log = open(self.state_dir / f"connector-{self.port}.log", "ab")  # noqa: SIM115 - the child owns it
        cmd = [sys.executable, "-m", "connector", "run"]
        self.proc = subprocess.Popen(cmd, env=self.env(), stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        wait_until(lambda: _answers(self.url + "/health"), 60, "the connector to become healthy")
        return self

    def kill(self) -> None:
        """SIGKILL the HTTP process and the ledger and closer processes at once: no shutdown code runs."""
        ledger = self.ledger_pids()
        for pid in ledger:
            os.kill(pid, signal.SIGKILL)
        self.kill_http()

    def kill_http(self) -> None:
        """SIGKILL the HTTP process only (its ledger and closer processes get SIGTERM from Linux and stop)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def kill_ledger(self, role: str | None = None) -> None:
        """SIGKILL the ledger and closer processes, or the one of `role` ("ledger", "closer") only; the
        HTTP process keeps answering and starts a new one of each."""
        for pid in self.ledger_pids(role):
            os.kill(pid, signal.SIGKILL)

    def ledger_pids(self, role: str | None = None) -> list[int]:
        """The processes of this connector that serve no HTTP: `--role ledger` and `--role closer` children
        of its HTTP process, or those of `role`."""
        if self.proc is None:
            return []
        if role is None:
            return child_pids(self.proc.pid, b"--role")
        return role_pids(self.proc.pid, role)

    def stop(self) -> None:
        """SIGTERM and wait (a clean stop)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


def children(primary_pid: int, flag: bytes = b"--primary-pid") -> dict[int, list[bytes]]:
    """The command lines (argv) of the processes started by `primary_pid` (their `--primary-pid`, or
    `flag`: the ledger process's dev ledger carries `--parent-pid`)."""
    found = {}
    for entry in os.listdir("/proc"):
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = args[args.index(flag) + 1] if flag in args else b""
        if parent == str(primary_pid).encode():
            found[int(entry)] = args
    return found


def role_pids(primary_pid: int, role: str) -> list[int]:
    """The processes `primary_pid` started with `run --role ROLE` (ledger, closer)."""
    return [
        pid
        for pid, args in children(primary_pid).items()
        if b"--role" in args and args[args.index(b"--role") + 1] == role.encode()
    ]


def child_pids(primary_pid: int, marker: bytes) -> list[int]:
    """Processes started by `primary_pid` whose command line holds `marker`."""
    return [pid for pid, args in children(primary_pid).items() if marker in args]


def notification(entity: str, when: datetime, power: float) -> str:
    """A normalized Orion notification of one SMX entity's power at `when`."""
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    meta = {"TimeInstant": {"type": "DateTime", "value": stamp}}
    data = {"id": entity, "type": "SMX", "P": {"type": "Number", "value": power, "metadata": meta}}
    return json.dumps({"subscriptionId": "reliability", "data": [data]})


class Sender:
    """Streams current-time notifications for `meters` entities to one or more connector URLs.

    Records `(entity, observed_at)` of every notification answered 200; a refused or broken connection is
    a notification that was never acknowledged (Orion would not retry it either).
    """

    def __init__(self, targets: list[str], meters: int, prefix: str = "R", pause: float = 0.0) -> None:
        self.targets = targets
        self.meters = meters
        self.prefix = prefix
        self.pause = pause
        self.acked: list[tuple[str, datetime]] = []
        self.failed = 0
        self.statuses: Counter[int] = Counter()  # every answer's status; 0 = no answer (refused, timeout)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)
        self._last: datetime | None = None

    def status_counts(self) -> Counter[int]:
        """A copy of the answers' status counts so far (0 = no answer)."""
        with self._lock:
            return Counter(self.statuses)

    def start(self) -> Sender:
        """Start streaming in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop streaming and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _next_time(self) -> datetime:
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # Orion sends milliseconds
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(milliseconds=1)
        self._last = now
        return now

    def _run(self) -> None:
        session = requests.Session()
        i = 0
        while not self._stop.is_set():
            entity = f"urn:ngsi-ld:SMX:{self.prefix}{i % self.meters}"
            when = self._next_time()
            target = self.targets[i % len(self.targets)] + "/notify"
            try:
                resp = session.post(
                    target, data=notification(entity, when, float(i % 1000)), headers=HEADERS, timeout=5
                )
                ok, status = resp.status_code == 200, resp.status_code
            except requests.RequestException:
                ok, status = False, 0
                session = requests.Session()
                time.sleep(0.05)
            with self._lock:
                self.statuses[status] += 1
            if ok:
                self.acked.append((entity, when))
            else:
                self.failed += 1
            i += 1
            if self.pause:
                time.sleep(self.pause)


class EthereumNode:
    """anvil with 1-s blocks and the settlement contract (intervals of the connector's window length),
    deployed by a fresh reporter key.

    Its chain is dumped to a state file on a clean `stop()` and loaded by the next `start()` on the same
    port, so stop + start is an Ethereum outage that keeps the chain.
    """

    def __init__(self, state_dir: Path, interval_length: int = ConnectorProcess.window_length) -> None:
        from eth_account import Account

        from connector.ethereum.anvil import AnvilProcess

        state = str(state_dir / "anvil-state.json")
        self.anvil = AnvilProcess(state=state, extra_args=("--block-time", "1"))
        self.account = Account.create()
        self.interval_length = interval_length  # the connector's window length
        self.address = ""

    def start(self) -> EthereumNode:
        """Start anvil (same port as before after a stop); deploy the contract the first time."""
        self.anvil.start()
        if not self.address:
            from connector.ethereum.deploy import deploy
            from connector.settings import EthereumSettings

            eth = EthereumSettings(enabled=True)
            self.address, _gas = deploy(self.w3(), self.account, eth, interval_length=self.interval_length)
        return self

    def stop(self) -> None:
        """SIGTERM anvil; it writes its state file."""
        self.anvil.stop(timeout=15)

    def w3(self) -> Any:
        """A web3 client on the node."""
        from connector.ethereum.client import connect

        return connect(self.anvil.url)

    def contract(self) -> Any:
        """The deployed settlement contract."""
        from connector.ethereum.client import settlement_contract

        return settlement_contract(self.w3(), self.address)

    def env(self) -> dict[str, str]:
        """Connector settings that turn the relay on against this node (2 confirmations, 0.5-s rounds)."""
        return {
            "CONNECTOR_ETHEREUM_ENABLED": "true",
            "CONNECTOR_ETHEREUM_RPC_URL": self.anvil.url,
            "CONNECTOR_ETHEREUM_CONTRACT_ADDRESS": self.address,
            "CONNECTOR_ETHEREUM_REPORTER_KEY": "0x" + self.account.key.hex().removeprefix("0x"),
            "CONNECTOR_ETHEREUM_CONFIRMATIONS": "2",
            "CONNECTOR_ETHEREUM_RELAY_INTERVAL": "0.5",
            "CONNECTOR_ETHEREUM_STUCK_AFTER": "20",
        }
