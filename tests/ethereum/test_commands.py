"""The CLI of this area end to end on anvil: deploy, relay, plan upload, settle, report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from connector.cli import build_parser
from connector.ethereum.client import STATE_KEY, reporter_account, settlement_contract
from connector.ethereum.contract import meter_key, unix_seconds
from connector.ethereum.plans import PlanFileError, parse_plan_csv
from connector.ethereum.portfolio_ops import parse_portfolio_csv
from connector.ethereum.relay import RelayService
from connector.ethereum.report import settlement_rows
from connector.settings import load_settings
from connector.store.db import Store
from connector.store.models import State
from tests.ethereum.fixtures import add_grid
from tests.ethereum.test_relay import mine, run_until_final

KEY = "0x" + "42" * 32


def test_deploy_plan_settle_report(store: Store, store_url: str, anvil, w3, tmp_path, clock, capsys) -> None:
    """deploy stores the address; relayed + planned intervals settle on chain; the report shows the charge."""
    settings = load_settings(
        overrides={"store.url": store_url, "ethereum.rpc_url": anvil.url, "ethereum.reporter_key": KEY}
    )
    assert main_with(settings, ["contract", "deploy"]) == 0
    address = capsys.readouterr().out.strip()
    with store.reading() as conn:
        assert conn.execute(select(State.value).where(State.key == STATE_KEY)).scalar() == address

    grid = add_grid(store, meters=2, intervals=1)
    relay = RelayService(settings.ethereum, store, clock.now, w3=w3, account=reporter_account(settings))
    run_until_final(relay, w3)
    (first, second) = (ws[0] for ws in grid.values())
    plan = tmp_path / "plan.csv"
    plan.write_text(
        "tenant,service_path,entity_id,interval_start,planned_wh\n"
        f"t1,/a,{first.entity_id},{first.start.isoformat()},90\n"
        f"t1,/a,{second.entity_id},{second.start.isoformat()},110\n"
    )
    assert main_with(settings, ["plan", "upload", str(plan)]) == 0
    assert relay.settle_once() == 2
    mine(w3, 2)
    relay.confirm_once()
    contract = settlement_contract(w3, address)
    key = meter_key("t1", "/a", first.entity_id)
    # first meter: 100.4 Wh -> 100 on chain, plan 90: +10 Wh at 200 micro-EUR/Wh = 2000 micro-EUR
    assert contract.functions.imbalanceOf(key, unix_seconds(first.start)).call() == [True, 10, 2000]
    assert contract.functions.runningBalance(key).call() == 2000
    rows = settlement_rows(store, first.meter_id, None, None)
    assert [(r["imbalance_wh"], r["charge_eur"], r["settled"], r["relay_status"]) for r in rows] == [
        (10, "0.002", True, "final")
    ]
    capsys.readouterr()
    assert main_with(settings, ["settlement", "report", "--from", "2019-03-18T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert first.entity_id in out and "0.002" in out and "settled" in out


def main_with(settings: Any, argv: list[str]) -> int:
    """Run a sub-command as the CLI does, with these settings instead of config + environment."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args, settings))


PLAN = "tenant,service_path,entity_id,interval_start,planned_wh\nt,/,m,2019-03-18T16:00:00Z,5\n"
PORTFOLIO_PLAN = "tenant,interval_start,planned_wh\nt,2019-03-18T16:00:00Z,5\n"


@pytest.mark.parametrize("parse, good", [(parse_plan_csv, PLAN), (parse_portfolio_csv, PORTFOLIO_PLAN)])
def test_plan_csv_errors_name_the_line(parse: Callable[[str], list[Any]], good: str) -> None:
    """Per meter and per portfolio, a bad value, a missing offset or an int64 overflow is reported with
    its line; a missing column is named."""
    assert parse(good)[0].planned_wh == 5
    for text, needle in [
        (good.replace(",5\n", ",x\n"), "line 2"),
        (good.replace("Z,5", ",5"), "line 2: interval_start needs a UTC offset"),
        (good.replace(",5\n", f",{2**63}\n"), "line 2: planned_wh out of range"),
        ("tenant,planned_wh\n", "lacks column(s)"),
        ("tenant,planned_wh\n", "interval_start"),
    ]:
        with pytest.raises(PlanFileError) as caught:
            parse(text)
        assert needle in str(caught.value), text


def test_report_without_rows(store_url: str, capsys) -> None:
    """The report on an empty store says so and exits 0."""
    settings = load_settings(overrides={"store.url": store_url})
    assert main_with(settings, ["settlement", "report"]) == 0
    assert "no relayed intervals" in capsys.readouterr().out
