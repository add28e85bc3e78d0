"""Several HTTP worker processes on one listening socket (`server.workers` > 1).

Python runs one thread at a time, so one process serves notifications on one core. With N workers the
primary process binds N listening sockets to the port (SO_REUSEPORT, see `listen_sockets`), then spawns
N-1 worker processes (`python -m connector run --worker-fd FD ...`), each inheriting one of them; every
process runs its HTTP server (uvicorn) and its own group-commit ingest writer on the same store. Only
the primary migrates the store (before any worker starts), runs the scheduler's jobs (window closing, ledger
dispatch, relay, Orion check) and the embedded dev ledger or anvil.

Workers are spawned, not forked, so the primary's threads never leak into a child, and they are spawned
from the main thread only: PR_SET_PDEATHSIG fires when the *thread* that created the child ends, and the
main thread lives as long as the primary. A worker gets SIGTERM when the primary dies (even by SIGKILL),
gets SIGTERM forwarded on a clean shutdown, and is restarted by the primary when it dies on its own.

Metrics: prometheus_client's multiprocess mode. Its value class is chosen from PROMETHEUS_MULTIPROC_DIR
when prometheus_client is first imported, so this module must not import it (nor anything that does)
before `serve_workers` has set that variable; workers inherit it. The folder is emptied at each start.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from connector.roles import ALL, CLOSER, HTTP, LEDGER
from connector.settings import Settings
from devledger.lifecycle import StopSignals, die_with_parent
from devledger.memory import ARENAS, limit_arenas

log = structlog.get_logger("connector.supervisor")
RESTART_PAUSE = 1.0  # seconds between restarts of the same worker: a crash loop must not spin
STOP_TIMEOUT = 15.0  # seconds a worker gets to finish its requests after SIGTERM


def listen_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per process, all bound to the same port with SO_REUSEPORT.

    The kernel spreads new connections evenly over the sockets (by a hash of the connection's addresses);
    with one shared socket, the process that happened to be idle took nearly every keep-alive connection
    of a small sender pool (measured 96/4 with 8 connections). The primary keeps every worker's socket
    open, so connections that reach a dead worker's socket wait for its replacement instead of being reset.
    """
    # A plain bind first: SO_REUSEPORT alone would let a second connector share a port already in use
    # (and silently take half its connections); this fails with "Address already in use" instead.
    with socket.create_server((host, port)) as probe:
        port = probe.getsockname()[1]  # a port 0 in the settings is the kernel's choice, the same for all
    return [socket.create_server((host, port), backlog=1024, reuse_port=True) for _ in range(count)]


def prepare_metrics_dir(state_dir: str) -> Path:
    """An empty folder for this run's multiprocess metrics: counters start at 0 with every start."""
    folder = Path(state_dir).resolve() / "prometheus-multiproc"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


class WorkerPool:
    """The primary's child processes: spawned, watched, restarted when they die, stopped with SIGTERM.

    Each slot is an HTTP worker's listening socket (kept open here across restarts) or the role of a
    process that serves no HTTP (LEDGER, CLOSER).
    """

    def __init__(self, command: Sequence[str], socks: Sequence[socket.socket | str]) -> None:
        self.command = list(command)
        self.socks = list(socks)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(socks)
        self.started_at = [0.0] * len(socks)
        self.restarts = 0

    def start(self) -> None:
        for slot in range(len(self.procs)):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        sock = self.socks[slot]
        fds: tuple[int, ...] = () if isinstance(sock, str) else (sock.fileno(),)
        role = ["--role", sock] if isinstance(sock, str) else ["--worker-fd", str(fds[0])]
        cmd = [*self.command, *role, "--primary-pid", str(os.getpid())]
        # Own process group: a terminal's Ctrl-C reaches the primary only, which stops the workers in order.
        self.procs[slot] = subprocess.Popen(cmd, pass_fds=fds, process_group=0)
        self.started_at[slot] = time.monotonic()
        kind = sock if isinstance(sock, str) else "http"
        log.info("worker.started", slot=slot, pid=self.procs[slot].pid, role=kind)  # type: ignore[union-attr]

    def pids(self) -> list[int]:
        """The running children's process ids, in slot order (the ledger and closer processes last)."""
        return [p.pid for p in self.procs if p is not None and p.poll() is None]

    def watch(self) -> None:
        """Restart every worker that has exited (call from the main thread, see the module docstring)."""
        for slot, proc in enumerate(self.procs):
            if proc is None or proc.poll() is None:
                continue
            if time.monotonic() - self.started_at[slot] < RESTART_PAUSE:
                continue
            log.warning("worker.died", slot=slot, pid=proc.pid, status=proc.returncode)
            self.restarts += 1
            self._spawn(slot)

    def stop(self) -> None:
        """SIGTERM every worker, wait for them, SIGKILL those still running after STOP_TIMEOUT."""
        alive = [p for p in self.procs if p is not None and p.poll() is None]
        for proc in alive:
            proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in alive:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def worker_command(config: str | None, workers: int) -> list[str]:
    """How the primary starts a worker: the same program, settings file, environment and worker count."""
    cmd = [sys.executable, "-m", "connector", *(["--config", config] if config else []), "run"]
    return [*cmd, "--workers", str(workers)]


def serve_workers(settings: Settings, config: str | None) -> int:
    """Run the primary of a multi-process connector in the foreground until SIGTERM or SIGINT.

    The primary serves HTTP; `server.workers - 1` more HTTP processes share its port; with
    `server.ledger_process` (the default) one more process, the ledger process, runs the embedded dev
    ledger, the ledger writer and the Ethereum relay, and with `server.closer_process` (the default)
    another, the closer process, runs the window closer and the period-tree builder (`serve_worker`;
    without it the ledger process runs them too).
    """
    socks = listen_sockets(*settings.host_port, settings.server.workers)
    metrics_dir = prepare_metrics_dir(settings.state_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # read by prometheus_client at import
    settings = _pin_embedded_ports(settings)
    from connector import service  # imports prometheus_client: only now

    service.configure_logging(settings)
    service.migrate_store(settings)  # once, before several processes could race to migrate
    split = settings.server.ledger_process
    apart = [LEDGER, *([CLOSER] if settings.server.closer_process else [])] if split else []
    children: list[socket.socket | str] = [*socks[1:], *apart]
    pool = WorkerPool(worker_command(config, settings.server.workers), children)
    stop = StopSignals()
    pool.start()
    connector = None
    try:
        role = HTTP if split else ALL
        connector = service.Connector(settings, metrics_dir=metrics_dir)
        connector.start(listen_socket=socks[0], role=role)
        service.tune_gc()
        layout = "".join(f" + a {role} process" for role in apart)
        print(
            f"smartmeter-connector listening on {connector.url} (notify: {connector.url}/notify), "
            f"{settings.server.workers} HTTP processes{layout}",
            flush=True,
        )
        while not stop.wait(0.5):
            pool.watch()
    finally:
        pool.stop()
        if connector is not None:
            connector.stop()
        for sock in socks:
            sock.close()
    return 0


def _pin_embedded_ports(settings: Settings) -> Settings:
    """An embedded dev ledger on port 0 gets a fixed free port now, told to every child through the
    environment: the ledger process starts it, the HTTP processes read from it."""
    ledger = settings.ledger
    if not (settings.server.ledger_process and ledger.enabled and ledger.embedded and not ledger.urls):
        return settings
    ports = {}
    for name in ("embedded_port", "embedded_ws_port"):
        port = getattr(ledger, name)
        if port == 0:
            with socket.create_server((ledger.embedded_host, 0)) as probe:
                port = probe.getsockname()[1]
            os.environ[f"CONNECTOR_LEDGER_{name.upper()}"] = str(port)
        ports[name] = port
    return settings.replace(ledger=dataclasses.replace(ledger, **ports))


def serve_worker(settings: Settings, fd: int | None, primary_pid: int, role: str = LEDGER) -> int:
    """Run one child process until SIGTERM or the primary dies: an HTTP worker on the inherited socket
    `fd`, or (`fd` None) the process of `role` (LEDGER or CLOSER)."""
    die_with_parent()
    if os.getppid() != primary_pid:  # the primary died before the line above took effect
        return 0
    from connector import service

    service.configure_logging(settings)
    metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])  # set by the primary, see module docstring
    stop = StopSignals()
    connector = service.Connector(settings, metrics_dir=metrics_dir)
    if fd is None:
        # /notify first when both want the CPU; the closer's short turns at the write lock are not held up
        os.nice(settings.server.closer_nice if role == CLOSER else settings.server.ledger_nice)
        limit_arenas(ARENAS)
        connector.start(serve_http=False, role=role)
    else:
        connector.start(listen_socket=socket.socket(fileno=fd), primary=False)
    service.tune_gc()
    try:
        wait_for(stop, primary_pid)
    finally:
        connector.stop()
    return 0


def wait_for(stop: StopSignals, primary_pid: int) -> None:
    """Block the main thread until SIGTERM/SIGINT or until the primary is gone.

    The parent check backs up PR_SET_PDEATHSIG should its signal ever be missed.
    """
    while not stop.wait(0.5):
        if os.getppid() != primary_pid:
            log.warning("worker.orphaned", primary_pid=primary_pid)
            return
