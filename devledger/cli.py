"""`smartmeter-connector devledger`: run the dev ledger, or `--check` its block chain."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the devledger sub-command."""
    parser = sub.add_parser(
        "devledger",
        help="run a single-node ledger faithful to the BigchainDB 2.2.2 HTTP API",
        description="A single-node BigchainDB 2.2.2-compatible ledger for development and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9984, help="HTTP API port (default 9984)")
    parser.add_argument("--ws-port", type=int, default=9985, help="websocket stream port (default 9985)")
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--data", metavar="DIR", help="keep the ledger in a SQLite file in DIR")
    store.add_argument("--memory", action="store_true", help="keep the ledger in memory only")
    parser.add_argument(
        "--block-interval",
        type=duration,
        default=0.0,
        metavar="TIME",
        help="emulate Tendermint's time between blocks, e.g. 1s or 500ms: transactions wait for the next "
        "block and mode=commit answers then (default 0: every transaction is committed at once)",
    )
    parser.add_argument("--check", action="store_true", help="verify the block hash chain in --data and exit")
    parser.set_defaults(func=handler)


def duration(text: str) -> float:
    """Seconds from "1s", "500ms", "0.5" or "2" (seconds when no unit); >= 0."""
    value = text.strip().lower()
    scale = 1.0
    if value.endswith("ms"):
        value, scale = value[:-2], 0.001
    elif value.endswith("s"):
        value = value[:-1]
    try:
        seconds = float(value) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 1s, 500ms)") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 1s, 500ms)")
    return seconds


def handler(args: argparse.Namespace, settings: Any) -> int:
    """Serve until SIGINT/SIGTERM (exit 0); with --check: 0 chain intact, 1 broken, 2 no ledger."""
    if args.check:
        return _check(args.data)
    if not args.data and not args.memory:
        print("devledger: give --data DIR or --memory", file=sys.stderr)
        return 2
    return _serve(args)


def _check(data: str | None) -> int:
    from devledger.chain import verify_chain
    from devledger.errors import ChainBroken

    if not data:
        print("devledger --check needs --data DIR", file=sys.stderr)
        return 2
    try:
        height = verify_chain(Path(data))
    except FileNotFoundError as exc:
        print(f"devledger: no ledger at {exc}", file=sys.stderr)
        return 2
    except ChainBroken as exc:
        print(f"devledger: chain BROKEN at height {exc.height}: {exc.reason}")
        return 1
    print(f"devledger: chain OK, {height} blocks")
    return 0


TICK = 0.2  # seconds between two looks at the stop flag


def _serve(args: argparse.Namespace) -> int:
    from devledger.lifecycle import StopSignals
    from devledger.memory import (
        ARENAS,
        RELEASE_EVERY,
        limit_arenas,
        map_large_allocations,
        release_free_memory,
    )
    from devledger.server import start_ledger

    limit_arenas(ARENAS)  # before its threads start: what one frees, the others reuse
    map_large_allocations()
    data = None if args.memory else args.data
    handle = start_ledger(args.host, args.port, args.ws_port, data, block_interval=args.block_interval)
    stop = StopSignals()  # a flag the loop below polls: no lock taken in a signal handler
    blocks = f", blocks every {args.block_interval:g} s" if args.block_interval else ""
    print(f"devledger: listening on {handle.url} (stream {handle.ws_url}){blocks}", flush=True)
    try:
        idle = 0.0
        while not stop.wait(TICK):
            idle += TICK
            if idle >= RELEASE_EVERY:  # the heap's free pages given back between bursts
                release_free_memory()
                idle = 0.0
    finally:
        handle.stop()
    return 0
