"""`smartmeter-connector subscribe` (Orion subscriptions) and `smartmeter-connector simulate` (meters)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from connector.settings import Settings, subscription_settings

if TYPE_CHECKING:
    from demo.simulator import SimulationReport


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `subscribe` and `simulate`."""
    subscribe = sub.add_parser(
        "subscribe", help="make sure Orion has exactly one subscription per entity type and tenant"
    )
    subscribe.add_argument("--check", action="store_true", help="also print Orion's delivery counters")
    subscribe.set_defaults(func=_subscribe)
    _add_simulate(sub)


def _add_simulate(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("simulate", help="send Orion-exact notifications from simulated smart meters")
    p.add_argument("--target", required=True, help="notify URL, e.g. http://127.0.0.1:8668/notify")
    p.add_argument("--meters", type=int, default=20)
    p.add_argument("--interval", type=float, default=60.0, help="simulated seconds between readings")
    p.add_argument("--format", default="normalized", help="normalized | keyValues | legacy | ld")
    p.add_argument("--duration", type=float, help="stop after this many wall-clock seconds")
    p.add_argument("--rounds", type=int, help="stop after this many readings per meter")
    p.add_argument("--rate", type=float, help="at most this many notifications per second")
    p.add_argument("--concurrency", type=int, default=1, help="parallel senders")
    p.add_argument(
        "--tenant", default="", help="Fiware-Service (NGSILD-Tenant for ld); default tenant if empty"
    )
    p.add_argument("--servicepath", default="/", help="Fiware-ServicePath")
    p.add_argument("--start", type=_utc, help="simulated clock at the first reading (ISO 8601, with Z)")
    p.add_argument(
        "--speedup", type=float, default=1.0, help="simulated seconds per wall second; 0 = unpaced"
    )
    p.add_argument("--duplicates", type=float, default=0.0, help="probability a notification is sent twice")
    p.add_argument("--late", type=float, default=0.0, help="probability a reading is sent late")
    p.add_argument("--late-delay", type=float, default=1200.0, help="how late, in simulated seconds")
    p.add_argument("--gaps", type=float, default=0.0, help="probability a reading is never sent")
    p.add_argument("--prosumers", type=float, default=0.3, help="share of meters with PV")
    p.add_argument("--batch", type=int, default=1, help="readings per legacy notification")
    p.add_argument("--seed", type=int, help="make the run reproducible")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_simulate)


def _utc(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset or Z: {text!r}")
    return when


def _subscribe(args: argparse.Namespace, settings: Settings) -> int:
    from ngsi.orion import OrionError
    from ngsi.subscription_spec import SubscriptionSpecError
    from ngsi.subscriptions import SubscriptionManager

    if not settings.orion.url:
        print("orion.url is not set (CONNECTOR_ORION_URL): no subscription to manage", file=sys.stderr)
        return 2
    manager = SubscriptionManager(subscription_settings(settings))
    try:
        outcomes = manager.ensure()
        statuses = manager.check() if args.check else []
    except (OrionError, SubscriptionSpecError) as exc:
        for outcome in manager.last_outcomes:  # the tenants done before and after the failing one
            print(outcome.describe())
        for tenant, reason in manager.last_errors.items():
            print(f"tenant {tenant!r} failed: {reason}", file=sys.stderr)
        print(f"subscribe failed: {exc}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        print(outcome.describe())
    for st in statuses:
        reason = st.last_failure_reason or "no failure"
        print(
            f"  {st.entity_type} {st.subscription_id}: {st.status}, sent {st.times_sent}, "
            f"failing {st.fails_counter}, last code {st.last_success_code}, {reason}"
        )
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from demo.simulator import SimulationConfig, SimulationError, simulate

    config = SimulationConfig(
        target=args.target,
        meters=args.meters,
        interval=args.interval,
        format=args.format,
        duration=args.duration,
        rounds=args.rounds,
        rate=args.rate,
        concurrency=args.concurrency,
        tenant=args.tenant,
        service_path=args.servicepath,
        start=args.start,
        speedup=args.speedup,
        duplicates=args.duplicates,
        late=args.late,
        late_delay=args.late_delay,
        gaps=args.gaps,
        prosumers=args.prosumers,
        batch=args.batch,
        seed=args.seed,
    )
    try:
        report = simulate(config, progress=None if args.quiet else _progress)
    except SimulationError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nsimulate: interrupted", file=sys.stderr)
        return 130
    if not args.quiet:
        print(file=sys.stderr)
    print(report.summary())
    return 0 if report.failures == 0 else 1


def _progress(report: SimulationReport) -> None:
    print("\r" + report.progress_line(), end="", file=sys.stderr, flush=True)
