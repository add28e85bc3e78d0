"""Contract unit tests on a real anvil: roles, duplicates, plans, imbalance arithmetic, chain head."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from connector.ethereum.contract import chain_head, charge_for, meter_key
from connector.ethereum.deploy import deploy
from tests.ethereum.conftest import ETH, funded, transact

T0 = 1_552_924_800  # 2019-03-18 16:00 UTC
M1 = meter_key("t1", "/a", "m1")
M2 = meter_key("t1", "/a", "m2")
FP1, FP2 = b"\x11" * 32, b"\x22" * 32
LTX = b"\xaa" * 32


def record(w3, account, c, start, meters, energies, fps):  # type: ignore[no-untyped-def]
    return transact(
        w3, account, c.functions.recordIntervals(start, meters, energies, fps, [LTX] * len(meters))
    )


def selector(c, name: str) -> str:  # type: ignore[no-untyped-def]
    abi = next(e for e in c.abi if e.get("type") == "error" and e["name"] == name)
    sig = f"{name}({','.join(i['type'] for i in abi['inputs'])})"
    return "0x" + Web3.keccak(text=sig)[:4].hex()


def test_reporter_only(w3: Web3, settlement, owner: LocalAccount) -> None:
    """Only a whitelisted reporter can record; a stranger's call reverts with NotReporter."""
    stranger = funded(w3)
    with pytest.raises(ContractCustomError) as err:
        record(w3, stranger, settlement, T0, [M1], [5], [FP1])
    assert str(err.value.data).startswith(selector(settlement, "NotReporter"))


def test_reporter_rotation(w3: Web3, settlement, owner: LocalAccount) -> None:
    """The owner adds a new reporter and removes the old one; only the new key can then record."""
    new = funded(w3)
    transact(w3, owner, settlement.functions.setReporter(new.address, True))
    transact(w3, owner, settlement.functions.setReporter(owner.address, False))
    record(w3, new, settlement, T0, [M1], [5], [FP1])
    with pytest.raises(ContractCustomError):
        record(w3, owner, settlement, T0 + 900, [M1], [5], [FP1])
    assert settlement.functions.recordOf(M1, T0).call()[0] is True


def test_owner_only_parameters(w3: Web3, settlement) -> None:
    """setParams, setBrp and setReporter revert with NotOwner for anyone but the owner."""
    stranger = funded(w3)
    for call in (
        settlement.functions.setParams(1, 1),
        settlement.functions.setBrp(stranger.address),
        settlement.functions.setReporter(stranger.address, True),
    ):
        with pytest.raises(ContractCustomError) as err:
            transact(w3, stranger, call)
        assert str(err.value.data).startswith(selector(settlement, "NotOwner"))


def test_brp_only_plans(w3: Web3, settlement) -> None:
    """Plans from anyone but the BRP revert with NotBrp."""
    with pytest.raises(ContractCustomError) as err:
        transact(w3, funded(w3), settlement.functions.submitPlans(T0, [M1], [100]))
    assert str(err.value.data).startswith(selector(settlement, "NotBrp"))


def test_chain_head_matches_python(w3: Web3, settlement, owner: LocalAccount) -> None:
    """The on-chain head after three intervals equals the Python formula over the same links."""
    links = [(T0, 120, FP1), (T0 + 900, -35, FP2), (T0 + 1800, 0, b"\x33" * 32)]
    for start, energy, fp in links:
        record(w3, owner, settlement, start, [M1], [energy], [fp])
    assert settlement.functions.chainHead(M1).call() == chain_head(links)


def test_duplicate_identical_is_noop(w3: Web3, settlement, owner: LocalAccount) -> None:
    """Resending identical data changes nothing and emits no event."""
    record(w3, owner, settlement, T0, [M1], [120], [FP1])
    head = settlement.functions.chainHead(M1).call()
    receipt = record(w3, owner, settlement, T0, [M1], [120], [FP1])
    assert receipt["status"] == 1 and receipt["logs"] == []
    assert settlement.functions.chainHead(M1).call() == head


def test_duplicate_different_emits_conflict(w3: Web3, settlement, owner: LocalAccount) -> None:
    """A second record with other data keeps the first and emits RecordConflict; the batch goes on."""
    record(w3, owner, settlement, T0, [M1], [120], [FP1])
    receipt = record(w3, owner, settlement, T0, [M1, M2], [121, 7], [FP1, FP2])
    conflicts = settlement.events.RecordConflict().process_receipt(receipt, errors=DISCARD)
    assert [(e.args.meterId, e.args.energyWh) for e in conflicts] == [(M1, 121)]
    assert settlement.functions.recordOf(M1, T0).call()[:2] == [True, 120]
    assert settlement.functions.recordOf(M2, T0).call()[:2] == [True, 7]


def test_bad_batches_revert(w3: Web3, settlement, owner: LocalAccount) -> None:
    """Mismatched array lengths, an empty fingerprint and energy beyond int64 revert the batch."""
    calls = [
        (settlement.functions.recordIntervals(T0, [M1, M2], [1], [FP1], [LTX]), "LengthMismatch"),
        (settlement.functions.recordIntervals(T0, [M1], [1], [b"\x00" * 32], [LTX]), "EmptyFingerprint"),
        (settlement.functions.recordIntervals(T0, [M1], [2**63], [FP1], [LTX]), "EnergyOutOfRange"),
    ]
    for call, name in calls:
        with pytest.raises(ContractCustomError) as err:
            transact(w3, owner, call)
        assert str(err.value.data).startswith(selector(settlement, name))


@pytest.mark.parametrize(
    ("actual", "planned", "tolerance", "imbalance"),
    [
        (1500, 1000, 0, 500),
        (800, 1000, 0, -200),
        (1010, 1000, 10, 10),
        (1011, 1000, 10, 11),
        (990, 1000, 10, -10),
    ],
)
def test_imbalance_and_charge(w3: Web3, settlement, owner, actual, planned, tolerance, imbalance) -> None:  # type: ignore[no-untyped-def]
    """Imbalance = actual - planned (negative: above plan); charged at the price only beyond the tolerance."""
    transact(w3, owner, settlement.functions.setParams(200_000, tolerance))
    record(w3, owner, settlement, T0, [M1], [actual], [FP1])
    transact(w3, owner, settlement.functions.submitPlans(T0, [M1], [planned]))
    expected_charge = charge_for(imbalance, 200_000, tolerance)
    assert settlement.functions.imbalanceOf(M1, T0).call() == [True, imbalance, expected_charge]
    assert expected_charge == (0 if abs(imbalance) <= tolerance else abs(imbalance) * 200)


def test_settle_accumulates_balance_once(w3: Web3, settlement, owner: LocalAccount) -> None:
    """settle() charges each recorded+planned interval once, skips the rest, and locks the plan."""
    record(w3, owner, settlement, T0, [M1, M2], [1500, 700], [FP1, FP2])
    record(w3, owner, settlement, T0 + 900, [M1], [900], [FP2])
    transact(w3, owner, settlement.functions.submitPlans(T0, [M1], [1000]))
    transact(w3, owner, settlement.functions.submitPlans(T0 + 900, [M1], [1000]))
    receipt = transact(w3, owner, settlement.functions.settle(T0, [M1, M2]))
    transact(w3, owner, settlement.functions.settle(T0, [M1]))
    transact(w3, owner, settlement.functions.settle(T0 + 900, [M1]))
    settled = settlement.events.Settled().process_receipt(receipt, errors=DISCARD)
    assert [(e.args.imbalanceWh, e.args.chargeMicroEur) for e in settled] == [(500, 100_000)]
    assert settlement.functions.runningBalance(M1).call() == 100_000 + 20_000
    assert settlement.functions.runningBalance(M2).call() == 0
    with pytest.raises(ContractCustomError) as err:
        transact(w3, owner, settlement.functions.submitPlans(T0, [M1], [1400]))
    assert str(err.value.data).startswith(selector(settlement, "AlreadySettled"))


def test_plan_before_record(w3: Web3, settlement, owner: LocalAccount) -> None:
    """A plan submitted ahead stays intact when the interval is recorded into the same slot."""
    transact(w3, owner, settlement.functions.submitPlans(T0, [M1], [-250]))
    record(w3, owner, settlement, T0, [M1], [-300], [FP1])
    assert settlement.functions.planOf(M1, T0).call() == [True, -250, False]
    assert settlement.functions.imbalanceOf(M1, T0).call() == [True, -50, 10_000]


EVEN = b"\x5e" * 31 + b"\x00"  # meter ids ending in an even and an odd byte: their word pairs are offset
ODD = b"\x5e" * 31 + b"\x01"


def test_interval_length_and_alignment(w3: Web3, settlement, owner: LocalAccount) -> None:
    """The deployed interval length is readable; a start that is not a multiple of it reverts everywhere."""
    assert settlement.functions.intervalLength().call() == 900
    for call in (
        settlement.functions.recordIntervals(T0 + 60, [M1], [1], [FP1], [LTX]),
        settlement.functions.submitPlans(T0 + 60, [M1], [1]),
        settlement.functions.settle(T0 + 60, [M1]),
    ):
        with pytest.raises(ContractCustomError) as err:
            transact(w3, owner, call)
        assert str(err.value.data).startswith(selector(settlement, "MisalignedInterval"))


def test_zero_interval_length_is_refused(w3: Web3, owner: LocalAccount) -> None:
    """A contract with interval length 0 cannot be deployed."""
    with pytest.raises(ContractCustomError) as err:
        deploy(w3, owner, ETH, interval_length=0)
    assert str(err.value.data) == "0x" + Web3.keccak(text="ZeroIntervalLength()")[:4].hex()


@pytest.mark.parametrize("meter", [EVEN, ODD], ids=["even id", "odd id"])
def test_neighbour_intervals_in_one_word_stay_apart(w3: Web3, settlement, owner, meter: bytes) -> None:  # type: ignore[no-untyped-def]
    """Four consecutive intervals (two shared words): each keeps its own record, duplicate check and plan."""
    links = [(T0 + 900 * k, 100 * k - 150, bytes([k + 1]) * 32) for k in range(4)]
    for start, energy, fp in links:
        record(w3, owner, settlement, start, [meter], [energy], [fp])
    assert settlement.functions.chainHead(meter).call() == chain_head(links)
    for start, energy, fp in links:
        assert settlement.functions.recordOf(meter, start).call() == [True, energy, fp[:8]]
        assert record(w3, owner, settlement, start, [meter], [energy], [fp])["logs"] == []
    receipt = record(w3, owner, settlement, T0 + 900, [meter], [-50], [b"\x02" * 8 + b"\x77" * 24])
    assert receipt["logs"] == []  # same energy and same 64-bit tag: an identical resend
    receipt = record(w3, owner, settlement, T0 + 900, [meter], [999], [b"\x77" * 32])
    assert len(settlement.events.RecordConflict().process_receipt(receipt, errors=DISCARD)) == 1
    assert settlement.functions.recordOf(meter, T0 + 900).call() == [True, -50, b"\x02" * 8]
    assert settlement.functions.chainHead(meter).call() == chain_head(links)
    for k in range(4):
        transact(w3, owner, settlement.functions.submitPlans(T0 + 900 * k, [meter], [10 * k]))
    transact(w3, owner, settlement.functions.settle(T0 + 900, [meter]))
    transact(w3, owner, settlement.functions.submitPlans(T0 + 1800, [meter], [33]))
    assert [settlement.functions.planOf(meter, start).call() for start, _, _ in links] == [
        [True, 0, False],
        [True, 10, True],
        [True, 33, False],
        [True, 30, False],
    ]
    assert settlement.functions.imbalanceOf(meter, T0 + 900).call() == [True, -60, 12_000]
    assert settlement.functions.runningBalance(meter).call() == 12_000
    assert settlement.functions.recordOf(meter, T0 + 3600).call() == [False, 0, b"\x00" * 8]
