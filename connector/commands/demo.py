"""`smartmeter-connector demo`: the whole flow end to end on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import argparse

from connector.settings import Settings


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the `demo` sub-command."""
    p = sub.add_parser(
        "demo", help="run the whole flow end to end on embedded defaults, with compressed time"
    )
    p.add_argument("--meters", type=int, default=20)
    p.add_argument("--windows", type=int, default=5, help="complete 1-minute windows to simulate")
    p.add_argument("--speedup", type=float, default=10.0, help="simulated seconds per wall second")
    p.add_argument("--state", default="var/demo", help="folder for the demo's store, keystore and ledger")
    p.add_argument("--no-ethereum", action="store_true", help="skip anvil, the contract and settlement")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from demo.run import DemoOptions, run_demo

    opts = DemoOptions(
        meters=args.meters,
        windows=args.windows,
        speedup=args.speedup,
        state_dir=args.state,
        ethereum=not args.no_ethereum,
    )
    return run_demo(opts)
