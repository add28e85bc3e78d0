"""One connector process: store, embedded dev ledger, HTTP server (uvicorn) and the scheduler's jobs.

`Connector(settings).start()` builds and starts everything; `stop()` stops it in reverse order. `serve`
runs it in the foreground until SIGTERM/SIGINT. Nothing starts at import.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import socket
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from connector.app import create_app
from connector.asgi import ConnectorAsgi, HttpServer, bind
from connector.close_schedule import CloserTrigger
from connector.closer import close_batches
from connector.context import Clock, Services, utc_now
from connector.ingest import IngestConfig, IngestWriter
from connector.keystore import Keystore
from connector.ledger.embedded import DevLedgerChild
from connector.ledger.root_writer import RootWriter
from connector.ledger.writer import LedgerWriter
from connector.metrics import Metrics
from connector.periods import build_due_periods
from connector.roles import ALL, CLOSER, HTTP, LEDGER, WORKER
from connector.settings import Settings, SettingsError, subscription_settings
from connector.settings_env import exposure_warning
from connector.store.db import CHECKPOINT_EVERY, Store, checkpoint_round, migrate, open_store
from connector.store.models import State, Window
from devledger.lifecycle import StopSignals
from devledger.memory import RELEASE_EVERY, map_large_allocations, release_free_memory
from devledger.server import LedgerHandle, start_ledger
from ngsi.subscriptions import SubscriptionManager

log = structlog.get_logger("connector.service")


def configure_logging(settings: Settings) -> None:
    """Structured logs on stderr: JSON lines (or readable console lines), context vars merged in."""
    level = getattr(logging, settings.logging.level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer() if settings.logging.json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


def build_services(
    settings: Settings,
    store: Store,
    clock: Clock = utc_now,
    *,
    ledger_urls: list[str] | None = None,
    metrics_dir: Path | None = None,
) -> Services:
    """The services the HTTP app needs, built on `store`: metrics on a fresh registry (every reading
    outcome exported from the start, as 0) and the ingest writer (not started: `submit` then writes in
    the caller's thread). The ledger, relay and subscriptions are added by `Connector.start`."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for outcome in ("accepted", "duplicate", "late", "rejected", "conflict"):
        metrics.readings.labels(outcome)
    ingest = IngestWriter(store, IngestConfig.of(settings), metrics.batch_size.observe)
    return Services(
        settings,
        store,
        metrics,
        ingest,
        clock,
        registry,
        ledger_urls=list(ledger_urls or []),
        metrics_dir=None if metrics_dir is None else str(metrics_dir),
    )


def http_app(svc: Services, threads: int = 4) -> ConnectorAsgi:
    """The ASGI app uvicorn serves: the notify door in front of the Flask app (`threads` for WSGI)."""
    return ConnectorAsgi(create_app(svc), svc, threads)


class Connector:
    """Everything one connector process runs, started and stopped as a unit."""

    def __init__(self, settings: Settings, clock: Clock = utc_now, metrics_dir: Path | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.store = open_store(settings.store.url, settings.store.pool_size)
        # several processes (metrics_dir): /metrics sums them all (connector/supervisor.py)
        self.services = build_services(settings, self.store, clock, metrics_dir=metrics_dir)
        self.devledger: LedgerHandle | None = None
        self.keystore: Keystore | None = None
        self.ledger_writer: LedgerWriter | None = None
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self._stoppers: list[Callable[[], None]] = []
        self._stopping = threading.Event()  # long jobs (the closer) stop between batches once it is set
        self.server: Any = None
        self.url = ""

    def start(
        self,
        serve_http: bool = True,
        listen_socket: socket.socket | None = None,
        primary: bool = True,
        role: str = ALL,
    ) -> Connector:
        """Migrate the store, start the embedded ledger, background jobs and (optionally) the HTTP server.

        `role` splits this between processes (`run`, connector/supervisor.py): HTTP (the primary HTTP
        process: migration, /notify, the query API, the Orion subscription check), WORKER (another HTTP
        process; also `primary=False`), LEDGER (the ledger process: embedded dev ledger, ledger writer,
        period roots, Ethereum relay; with `server.closer_process` false also the window closer and the
        period-tree builder) and CLOSER (the closer process: window closer and period-tree builder). ALL
        (in-process use: tests, demo) runs everything.
        """
        role = WORKER if not primary else role
        first = role in (ALL, HTTP)  # migrates the store, checks Orion's subscriptions
        answers = role in (ALL, HTTP, WORKER)  # /notify and the query API
        writes = role in (ALL, LEDGER)  # the dev ledger, the ledger writer, period roots, the relay
        closes = role in (ALL, CLOSER) or (role == LEDGER and not self.settings.server.closer_process)
        if self.store.write_lock is not None:  # SQLite: who holds the write lock how long
            self.store.write_lock.observe = self.services.metrics.write_hold.labels(role).observe
        if first:
            _warn_if_exposed(self.settings)
            prepare_store(self.store, self.settings)
        if writes:
            self._start_ledger(separate=role == LEDGER)
        else:
            self._use_primary_ledger()
        self.app = create_app(self.services)
        if answers:
            ingest = self.services.ingest
            ingest.start()
            self._stoppers.append(ingest.stop)
        if closes:
            self._schedule("close-windows", self.close_windows, CloserTrigger(self.settings.window))
            if self.store.write_lock is not None:  # SQLite: the WAL copied back out of the writers' way
                self._schedule("store-checkpoint", lambda: checkpoint_round(self.store), CHECKPOINT_EVERY)
            self._start_tree_builder()  # period trees after the closer
        if writes:
            self._start_ledger_writer()
            self._start_root_writer()  # the period trees' roots written to the ledger
            self._start_relay()
        if writes or closes:
            map_large_allocations()  # big buffers given back when freed (devledger/memory.py)
            self._schedule("release-memory", release_free_memory, RELEASE_EVERY)
        if first:
            self._start_subscriptions()
        self.scheduler.start()
        self._stoppers.append(lambda: self.scheduler.shutdown(wait=True))
        if serve_http and answers:
            self._start_http(listen_socket)
        return self

    def stop(self) -> None:
        """Stop everything that was started, newest first."""
        self._stopping.set()
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                log.warning("service.stop_failed", error=repr(exc))
        self.services.ledger_reads.close()
        self.store.dispose()

    def close_windows(self) -> int:
        """One run of the window closer (also called directly by tests and the demo); the metric counts
        each batch as it commits."""
        closed = 0
        for infos in close_batches(self.store, self.settings, self.clock(), stopping=self._stopping.is_set):
            self.services.metrics.windows_closed.inc(len(infos))
            closed += len(infos)
        return closed

    def _schedule(self, name: str, fn: Callable[[], Any], when: float | BaseTrigger) -> None:
        """Run `fn` every `when` seconds, or when the trigger `when` fires; never two runs at once."""
        trigger = when if isinstance(when, BaseTrigger) else IntervalTrigger(seconds=when)
        self.scheduler.add_job(_logged(name, fn), trigger, id=name, max_instances=1, coalesce=True)

    def _start_ledger(self, separate: bool = False) -> None:
        """The ledger's URLs; the embedded dev ledger started first, `separate`ly in a child process (the
        ledger process of `run`, whose ports the supervisor pinned) or in this one (tests, demo)."""
        ledger = self.settings.ledger
        if not ledger.enabled:
            return
        if ledger.urls:
            self.services.ledger_urls = list(ledger.urls)
            return
        if not ledger.embedded:
            raise RuntimeError("ledger.urls is empty and ledger.embedded is false: no BigchainDB to write to")
        if separate and ledger.embedded_port and ledger.embedded_ws_port:
            child = DevLedgerChild(ledger)
            self._stoppers.append(child.stop)
            self.services.ledger_urls = [child.start()]
            log.info("devledger.started", url=child.url, pid=child.proc.pid if child.proc else None)
            return
        handle = start_ledger(
            host=ledger.embedded_host,
            port=ledger.embedded_port,
            ws_port=ledger.embedded_ws_port,
            data_dir=ledger.embedded_data,
        )
        self._stoppers.append(handle.stop)
        self.services.ledger_urls = [handle.url]
        self.devledger = handle
        log.info("devledger.started", url=handle.url)

    def _use_primary_ledger(self) -> None:
        """A worker reads the ledger the primary writes (the query API's history needs its URL)."""
        ledger = self.settings.ledger
        if ledger.enabled and ledger.urls:  # /health probes them from every process
            self.services.ledger_urls = list(ledger.urls)
        elif ledger.enabled and ledger.embedded:
            self.services.ledger_urls = [f"http://{ledger.embedded_host}:{ledger.embedded_port}"]

    def _start_ledger_writer(self) -> None:
        if not self.settings.ledger.enabled:
            return
        keystore = Keystore(self.settings.keystore.path, self.settings.keystore.passphrase)
        writer = LedgerWriter(
            self.settings.ledger,
            self.store,
            keystore,
            self.services.ledger_urls,
            self.clock,
            registry=self.services.registry,
        )
        self.keystore, self.ledger_writer = keystore, writer
        self._stoppers.append(writer.close)  # after the scheduler's shutdown (stoppers run newest first)
        dispatch = _counting_blocked(writer.dispatch_once, self.services.registry)
        self._schedule("ledger-dispatch", dispatch, self.settings.ledger.dispatch_interval)

    def _start_tree_builder(self) -> None:
        """Period trees after the closer (connector/periods.py)."""
        if not self.settings.trees.enabled:
            return
        built = Counter(
            "connector_period_trees",
            "Period trees built (one per tenant and period)",
            registry=self.services.registry,
        )
        build = lambda: built.inc(len(build_due_periods(self.store, self.settings, self.clock())))  # noqa: E731
        self._schedule("build-trees", build, self.settings.trees.interval)

    def _start_root_writer(self) -> None:
        """The period trees' roots anchored on the ledger by the root writer."""
        if not (self.settings.trees.enabled and self.settings.ledger.enabled):
            return
        keystore = self.keystore or Keystore(self.settings.keystore.path, self.settings.keystore.passphrase)
        roots = RootWriter(
            self.settings,
            self.store,
            keystore,
            self.services.ledger_urls,
            self.clock,
            registry=self.services.registry,
        )
        self._schedule("root-dispatch", roots.dispatch_once, self.settings.trees.interval)

    def _start_relay(self) -> None:
        eth = self.settings.ethereum
        if not eth.enabled:
            return
        from connector.ethereum.client import reporter_account
        from connector.ethereum.relay import RelayService, relay_round

        settings = self.settings
        if eth.embedded_anvil and not eth.rpc_url:
            from connector.ethereum.anvil import AnvilProcess

            anvil = AnvilProcess(state=str(Path(settings.state_dir) / "anvil-state.json")).start()
            self._stoppers.append(anvil.stop)
            settings = settings.replace(ethereum=dataclasses.replace(eth, rpc_url=anvil.url))
        if eth.mode == "portfolio":  # one record per tenant and interval (docs/settlement.md)
            from connector.ethereum.portfolio_relay import portfolio_round

            job = portfolio_round(settings, self.store, self.clock)
            self._schedule("ethereum-relay", job, eth.relay_interval)
            return
        relay = RelayService(
            settings.ethereum,
            self.store,
            self.clock,
            account=reporter_account(settings),
            registry=self.services.registry,
            stuck_after=eth.stuck_after,
        )
        self.services.relay = relay
        self._schedule("ethereum-relay", lambda: relay_round(relay), eth.relay_interval)

    def _start_subscriptions(self) -> None:
        orion = self.settings.orion
        if not orion.url:
            return
        manager = SubscriptionManager(
            subscription_settings(self.settings), clock=self.clock, registry=self.services.registry
        )
        self.services.subscriptions = manager
        if orion.subscribe_on_run:  # check() = ensure() + Orion's counters, so /health knows at once
            _logged(
                "orion-ensure", manager.check
            )()  # Orion may be down now: the periodic check repairs later
        self._schedule("orion-check", manager.check, orion.check_interval)

    def _start_http(self, listen_socket: socket.socket | None = None) -> None:
        host, port = self.settings.host_port
        sock = listen_socket if listen_socket is not None else bind(host, port)  # shared by every process
        self.server = HttpServer(ConnectorAsgi(self.app, self.services, self.settings.threads), sock)
        self.server.start()
        self._stoppers.append(self.server.stop)
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.server.port}"
        log.info("http.listening", url=self.url)


def _counting_blocked(dispatch: Callable[[], dict[str, int]], registry: Any) -> Callable[[], None]:
    """The ledger dispatch job, counting rows it could not sign (`connector_ledger_blocked_total`): a
    missing meter key or a wrong keystore passphrase blocks every row, and nothing else counts that."""
    blocked = Counter(
        "connector_ledger_blocked",
        "Outbox rows the ledger writer could not sign (keystore: wrong passphrase, missing key)",
        registry=registry,
    )

    def job() -> None:
        counts = dispatch()
        if counts.get("blocked"):
            blocked.inc(counts["blocked"])

    return job


def _warn_if_exposed(settings: Settings) -> None:
    warning = exposure_warning(settings)
    if warning:
        log.warning("security.exposed", detail=warning)


def _logged(name: str, fn: Callable[[], Any]) -> Callable[[], None]:
    def job() -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a failed run is logged; the next run tries again
            log.error("job.failed", job=name, error=type(exc).__name__, detail=str(exc)[:500])

    return job


def migrate_store(settings: Settings) -> None:
    """`prepare_store` on a store opened for it, then closed (the primary does this before workers start)."""
    store = open_store(settings.store.url, 1)
    try:
        prepare_store(store, settings)
    finally:
        store.dispose()


def prepare_store(store: Store, settings: Settings) -> None:
    """Bring the store's schema up to date and check it was built with this window length."""
    migrate(store)
    pin_window_length(store, settings.window.length)


WINDOW_LENGTH_KEY = "window.length"


def pin_window_length(store: Store, length: int) -> None:
    """Record the window length of a store's first start (of a store from before this check: the length
    of its closed windows); refuse to run it with another one.

    Everything stored follows from that length: each reading's window start, the closed windows and their
    fingerprint chains, and the readings' unique key (meter, window start, observation time, attribute;
    migration 0004). With another length, new windows would overlap closed ones and a reading sent again
    would fall in another window and be stored twice. Raises SettingsError naming both lengths.
    """
    try:
        stored = _pinned_length(store, length)
    except IntegrityError:  # another connector recorded it between our read and our insert (PostgreSQL)
        stored = _pinned_length(store, length)
    if stored != length:
        raise SettingsError(
            f"window.length: {length} s, but this store's readings and windows were built with "
            f"{stored} s; another window length needs another store (store.url)"
        )


def _pinned_length(store: Store, length: int) -> int:
    """The store's recorded window length, recorded now if it has none."""
    with store.begin() as conn:
        stored = conn.execute(select(State.value).where(State.key == WINDOW_LENGTH_KEY)).scalar()
        if stored is not None:
            return int(stored)
        # A store from before the pin: its closed windows tell the length they were built with.
        closed = conn.execute(select(Window.start, Window.end).limit(1)).first()
        first = length if closed is None else int((closed.end - closed.start).total_seconds())
        conn.execute(
            insert(State).values(key=WINDOW_LENGTH_KEY, value=str(first), updated_at=datetime.now(UTC))
        )
        return first


GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Garbage collection for a long-running server process, called once everything has started.

    A notification allocates hundreds of containers (a 100-entity legacy body about 600), so with
    CPython's default threshold of 700 the cyclic collector ran on almost every request, walking the
    whole heap of imported modules at each older-generation pass. `gc.freeze()` moves what start-up
    built out of the collector's sight; the higher first threshold lets it run every 50,000 allocations.
    Almost everything a request allocates is freed by reference counting anyway. Legacy notifications,
    one process: 344 -> 434 per second (docs/benchmarks/ingest.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(settings: Settings) -> int:
    """Run the connector in the foreground until SIGTERM or SIGINT; return the exit status."""
    configure_logging(settings)
    connector = Connector(settings)
    try:
        connector.start()
    except BaseException:  # e.g. a store it cannot run on (SettingsError): close what was opened
        connector.stop()
        raise
    tune_gc()
    stop = StopSignals()
    print(f"smartmeter-connector listening on {connector.url} (notify: {connector.url}/notify)", flush=True)
    while not stop.wait(0.5):
        pass
    connector.stop()
    return 0
