"""Portfolio mode beside per-meter mode at 2,000 meters (seed 004's scenario): gas per meter-interval of
recording, planning and settling, and the cost of one dispute (proveMeter). Called by bench.gas_bench.

Per-meter mode (`Settlement`): per interval 20 transactions of 100 meters each for records, plans and
settlement. Portfolio mode (`PortfolioSettlement`): per interval one recordPortfolio (energy + root of the
interval's tree over the 2,000 meters, docs/trees.md), one submitPlans and one settle. Both modes record
four consecutive intervals; the steady figure is the mean of the third and fourth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from connector.core.trees import Period, PeriodTree, WindowLeaf
from connector.ethereum.client import settlement_contract
from connector.ethereum.deploy import deploy
from connector.ethereum.portfolio import deploy_portfolio, portfolio_contract, portfolio_key, prove_args

METERS = 2_000
BATCH = 100  # meters per transaction in per-meter mode (what the relay's gas cap allows)
LENGTH = 900
REGIONS, GROUPS = 4, 5  # service paths /r<0..3>/g<0..4>: 100 meters per group
SEED_004 = 137_131  # gas per reading transaction reported by seed 004
PORTFOLIO = portfolio_key("t1")


@dataclass(frozen=True)
class Costs:
    """Gas per meter-interval, steady (mean of intervals 3 and 4)."""

    record: int
    plan: int
    settle: int

    @property
    def total(self) -> int:
        return self.record + self.plan + self.settle


@dataclass(frozen=True)
class SideBySide:
    per_meter: Costs
    portfolio: Costs
    portfolio_tx: Costs  # gas of the one transaction per interval (not divided)
    dispute_first: int  # proveMeter of a meter's first proven window (its chain head is created)
    dispute_next: int  # proveMeter of the same meter's next window (its chain head is updated)
    proof_depth: int


def per_meter(bench: Any, eth: Any, start: int) -> Costs:
    """Records, plans, settlement of 2,000 meters per interval, in batches of 100."""
    c = settlement_contract(bench.w3, deploy(bench.w3, bench.sender.account, eth, interval_length=LENGTH)[0])
    meters = bench.ids(METERS)
    batches = [meters[i : i + BATCH] for i in range(0, METERS, BATCH)]
    gas: list[list[int]] = []
    for k in range(4):
        t = start + k * LENGTH
        plan = sum(bench.send(c.functions.submitPlans(t, b, [1000] * len(b))) for b in batches)
        rec = sum(bench.send(_record_call(bench, c, t, b)) for b in batches)
        done = sum(bench.send(c.functions.settle(t, b)) for b in batches)
        gas.append([rec, plan, done])
    return Costs(*(round((gas[2][i] + gas[3][i]) / 2 / METERS) for i in range(3)))


def _record_call(bench: Any, c: Any, t: int, batch: list[bytes]) -> Any:
    n = len(batch)
    return c.functions.recordIntervals(t, batch, [1234] * n, bench.ids(n), bench.ids(n))


def leaves(rng: random.Random, t: int) -> list[WindowLeaf]:
    """The 2,000 meters' windows at t, spread over 4 regions x 5 groups."""
    return [
        WindowLeaf(
            "t1",
            f"/r{m % REGIONS}/g{m // REGIONS % GROUPS}",
            f"urn:ngsi-ld:SmartMeter:{m:04d}",
            t,
            rng.randrange(0, 2_000),
            rng.randbytes(32),
            rng.randbytes(32),
        )
        for m in range(METERS)
    ]


def portfolio(bench: Any, eth: Any, start: int) -> tuple[list[int], int, int, int]:
    """One record, plan and settlement per interval for the 2,000 meters; then two disputes.

    Returns the steady gas per transaction (record, plan, settle), the two disputes' gas, the proof depth.
    """
    account = bench.sender.account
    c = portfolio_contract(bench.w3, deploy_portfolio(bench.w3, account, eth, interval_length=LENGTH)[0])
    rng = random.Random(20190318)
    trees, gas = [], []
    for k in range(4):
        t = start + k * LENGTH
        tree = PeriodTree("t1", Period("window", t, LENGTH), leaves(rng, t))
        energy = tree.energy_wh
        plan = bench.send(c.functions.submitPlans(PORTFOLIO, [t], [energy - 500]))
        rec = bench.send(
            c.functions.recordPortfolio(PORTFOLIO, t, energy, tree.root, METERS, rng.randbytes(32))
        )
        done = bench.send(c.functions.settle(PORTFOLIO, [t]))
        trees.append(tree)
        gas.append([rec, plan, done])
    steady = [round((gas[2][i] + gas[3][i]) / 2) for i in range(3)]
    disputed = trees[2].leaves()[0]
    proofs = [tree.proof(disputed.service_path, disputed.entity_id, tree.period.start) for tree in trees[2:]]
    first, following = (bench.send(c.functions.proveMeter(*prove_args(PORTFOLIO, p))) for p in proofs)
    return steady, first, following, len(proofs[0].steps)


def run(bench: Any, eth: Any, start: int) -> SideBySide:
    """Both modes at 2,000 meters on the bench's anvil."""
    steady, first, following, depth = portfolio(bench, eth, start)
    per_interval = Costs(*(round(g / METERS) for g in steady))
    return SideBySide(
        per_meter(bench, eth, start + 100 * LENGTH), per_interval, Costs(*steady), first, following, depth
    )


def render(s: SideBySide) -> str:
    """The side-by-side section of docs/benchmarks/gas.md."""
    pm, pf, tx = s.per_meter, s.portfolio, s.portfolio_tx
    rows = [
        f"| recording | {pm.record:,} | **{pf.record:,}** | {tx.record:,} |",
        f"| BRP plan | {pm.plan:,} | {pf.plan:,} | {tx.plan:,} |",
        f"| settlement | {pm.settle:,} | {pf.settle:,} | {tx.settle:,} |",
        f"| **all three** | **{pm.total:,}** | **{pf.total:,}** | {tx.total:,} |",
        f"| recording in seed 004 (its figure, one reading per transaction) | {SEED_004:,} | | |",
    ]
    return SECTION.format(
        table="\n".join(rows),
        first=s.dispute_first,
        following=s.dispute_next,
        depth=s.proof_depth,
        ratio=round(pm.total / max(pf.total, 1)),
        meters=round(s.dispute_first / max(pm.record, 1)),
    )


SECTION = """
## Portfolio mode at 2,000 meters, side by side

Seed 004's scenario: 2,000 meters, one 15-minute interval after another. Per-meter mode
(`Settlement`) needs, per interval, 20 transactions of 100 meters for the records, 20 for the BRP's plans
and 20 for settlement. Portfolio mode (`PortfolioSettlement`, docs/settlement.md) needs one of each: the
record holds the portfolio's energy and the root of the interval's tree over all 2,000 windows
(docs/trees.md; meters in 4 regions x 5 groups). Gas per meter-interval, steady (mean of intervals 3 and 4):

| per meter-interval | per-meter mode | portfolio mode | portfolio mode, per transaction |
|---|---:|---:|---:|
{table}

Aim: under 1,000 gas per meter-interval at 2,000 meters: met (bold). Recording, planning and settling
together cost about 1/{ratio:,} of what they cost in per-meter mode, because the cost per interval no
longer grows with the meters: 2,000 or 20,000 meters cost the same three transactions. The price: a single
meter's record is on chain only once somebody proves it (below); until then the chain holds the root that
commits to it, and the connector's store and BigchainDB hold the record.

One dispute: `proveMeter` of one meter's window against the interval root, with its audit path of {depth}
siblings (the meter among the 100 of its group, the group among 5, the region among 4), sent by anyone:

| dispute | gas |
|---|---:|
| a meter's first proven window (record word and chain head created) | {first:,} |
| the same meter's next window (record word created, chain head updated) | {following:,} |

A dispute costs about what per-meter mode pays to record {meters} meter-intervals; disputes are the
exception, records are every interval.
"""
