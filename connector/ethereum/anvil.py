"""Start and stop an anvil dev node from node_modules on a free loopback port (tests, demo, embedded)."""

from __future__ import annotations

import atexit
import os
import re
import subprocess
import threading
import time
from pathlib import Path

ANVIL = (
    Path(__file__).resolve().parents[2]
    / "node_modules"
    / "@foundry-rs"
    / "anvil-linux-amd64"
    / "bin"
    / "anvil"
)
_LISTENING = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")


class AnvilError(RuntimeError):
    """anvil could not be started."""


class AnvilProcess:
    """One anvil child process (prague hardfork, loopback only); killed at interpreter exit at the latest.

    `port=0` picks a free port; a restart reuses the port it got first, so clients keep their URL.
    `state` (a file path) makes anvil dump its chain there on a clean stop and load it on start.
    """

    def __init__(
        self,
        port: int = 0,
        binary: Path = ANVIL,
        state: str | None = None,
        extra_args: tuple[str, ...] = (),
        chain_id: int = 31337,
    ) -> None:
        self.port = port
        self.binary = binary
        self.state = state
        self.extra_args = extra_args
        self.chain_id = chain_id
        self._proc: subprocess.Popen[bytes] | None = None
        self._drainer: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> "AnvilProcess":
        """Start anvil and return once it listens; raises AnvilError if it does not within `timeout`."""
        if not self.binary.exists():
            raise AnvilError(f"anvil not found at {self.binary}; run `npm ci`")
        args = [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port), "--hardfork", "prague"]
        args += ["--chain-id", str(self.chain_id)]
        if self.state:
            args += ["--state", self.state]
        self._proc = subprocess.Popen(
            [*args, *self.extra_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        atexit.register(self.stop)
        self.port = self._wait_listening(timeout)
        self._drainer = threading.Thread(target=self._drain, daemon=True, name="anvil-stdout")
        self._drainer.start()
        return self

    def _wait_listening(self, timeout: float) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line and self._proc.poll() is not None:
                break
            seen += line
            found = _LISTENING.search(line)
            if found:
                return int(found.group(1))
        self.stop()
        raise AnvilError(f"anvil did not start: {seen[-2000:].decode(errors='replace')}")

    def _drain(self) -> None:
        # Keep reading anvil's output so a full pipe never blocks it.
        proc = self._proc
        if proc is not None and proc.stdout is not None:
            try:
                for _ in proc.stdout:
                    pass
            except ValueError:  # closed by stop()
                pass

    def stop(self, timeout: float = 5.0) -> None:
        """Stop anvil (SIGTERM, so a --state file is written), killing it if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self._close(proc)

    def kill(self) -> None:
        """Kill anvil at once (no state dump): a crash."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, 9)
            proc.wait()
        self._close(proc)

    def _close(self, proc: "subprocess.Popen[bytes]") -> None:
        if self._drainer is not None:
            self._drainer.join(2.0)
            self._drainer = None
        if proc.stdout is not None:
            proc.stdout.close()

    def restart(self, timeout: float = 10.0) -> "AnvilProcess":
        """Stop cleanly and start again on the same port."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> "AnvilProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
