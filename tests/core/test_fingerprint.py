"""Algorithm 1 (window fingerprint), Algorithm 2 (chain hash), the chain seed and seal_window."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.core.fingerprint import (
    StoredReading,
    chain_hash,
    chain_seed,
    fingerprint,
    fingerprint_steps,
    seal_window,
)
from connector.core.windows import split_into_windows, window_end

from ._factory import SEED, T0, rd, specs

END = T0 + timedelta(seconds=900)
SPEC = specs(P=("power", "W"), E=("energy_register", "kWh"))
READINGS = [
    rd("P", 0, "100", attr_type="W", unit="W"),
    rd("E", 0, "12.5", unit="kWh"),
    rd("status", 30, "on", attr_type="Text"),
    rd("P", 60, "200", attr_type="W", unit="W"),
    rd("E", 60, "12.51", unit="kWh"),
]


def test_empty_window_fingerprint_is_the_seed() -> None:
    """With no readings Algorithm 1's loop does not run: the fingerprint is the seed."""
    assert fingerprint([], SEED) == SEED
    assert fingerprint([], "ab" * 32) == "ab" * 32


def test_one_reading_fingerprint_is_sha256_of_documented_bytes() -> None:
    """One reading: SHA-256 of the record exactly as docs/fingerprint.md spells it."""
    r = StoredReading("P", "W", T0 + timedelta(seconds=825.275), '"-84.891"', Decimal("-84.891"), "W")
    expected_bytes = (
        b'{"attr":"P","number":"-84.891","observed_at":"2019-03-18T16:13:45.275000Z","prev":"'
        + SEED.encode()
        + b'","type":"W","unit":"W","value":"\\"-84.891\\""}'
    )
    assert list(fingerprint_steps([r], SEED)) == [
        (expected_bytes, hashlib.sha256(expected_bytes).hexdigest())
    ]
    assert fingerprint([r], SEED) == hashlib.sha256(expected_bytes).hexdigest()


def test_steps_chain_each_hash_into_the_next() -> None:
    """Each step's record carries the previous step's hash; the first carries the seed."""
    steps = list(fingerprint_steps(READINGS, SEED))
    assert len(steps) == len(READINGS)
    prevs = [SEED] + [h for _, h in steps[:-1]]
    for (data, _), prev in zip(steps, prevs, strict=True):
        assert f'"prev":"{prev}"'.encode() in data
    assert fingerprint(READINGS, SEED) == steps[-1][1]


def test_canonical_order_is_time_then_attribute() -> None:
    """Records are hashed by observation time, then attribute name, whatever the arrival order."""
    steps = list(fingerprint_steps(list(reversed(READINGS)), SEED))
    attrs_times = [
        (data.split(b'"attr":"')[1].split(b'"')[0], data.split(b'"observed_at":"')[1][:19])
        for data, _ in steps
    ]
    assert attrs_times == [
        (b"E", b"2019-03-18T16:00:00"),
        (b"P", b"2019-03-18T16:00:00"),
        (b"status", b"2019-03-18T16:00:30"),
        (b"E", b"2019-03-18T16:01:00"),
        (b"P", b"2019-03-18T16:01:00"),
    ]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_out_of_order_arrival_gives_same_fingerprint(order: tuple[int, ...]) -> None:
    """Every arrival order of the same readings yields the same fingerprint and window."""
    shuffled = [READINGS[i] for i in order] + READINGS[4:]
    assert fingerprint(shuffled, SEED) == fingerprint(READINGS, SEED)
    assert seal_window(shuffled, T0, END, SEED, SPEC) == seal_window(READINGS, T0, END, SEED, SPEC)


def _replace(index: int, **changes: object) -> list[StoredReading]:
    out = list(READINGS)
    out[index] = dataclasses.replace(out[index], **changes)
    return out


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(_replace(0, value_json='"100.0"'), id="value text"),
        pytest.param(_replace(0, number=Decimal("100.001")), id="number"),
        pytest.param(_replace(0, observed_at=T0 + timedelta(microseconds=1)), id="time +1us"),
        pytest.param(_replace(3, observed_at=T0 + timedelta(seconds=59)), id="time -1s"),
        pytest.param(_replace(0, attr="Q"), id="attr"),
        pytest.param(_replace(0, attr_type="Number"), id="attr type"),
        pytest.param(_replace(0, attr_type=None), id="attr type null"),
        pytest.param(_replace(0, unit="kW"), id="unit"),
        pytest.param(_replace(2, value_json='"off"'), id="non-numeric value"),
        pytest.param(READINGS[:-1], id="reading removed"),
        pytest.param(READINGS[1:], id="first reading removed"),
        pytest.param([*READINGS, rd("note", 90, "x", attr_type="Text")], id="non-numeric reading added"),
    ],
)
def test_any_change_changes_the_fingerprint(changed: list[StoredReading]) -> None:
    """Changing any value, time, attribute, type or unit, or adding/removing a reading, changes it."""
    assert fingerprint(changed, SEED) != fingerprint(READINGS, SEED)


def test_seed_changes_the_fingerprint() -> None:
    """The same readings under a different seed (previous chain hash) give a different fingerprint."""
    assert fingerprint(READINGS, SEED) != fingerprint(READINGS, "1" * 64)


def test_non_numeric_readings_count_in_fingerprint_not_summary() -> None:
    """A text reading changes fingerprint and reading_count but not the summary."""
    with_text = seal_window(READINGS, T0, END, SEED, SPEC)
    without = seal_window([r for r in READINGS if r.attr != "status"], T0, END, SEED, SPEC)
    assert with_text.summary == without.summary
    assert (with_text.reading_count, without.reading_count) == (5, 4)
    assert with_text.fingerprint != without.fingerprint
    assert with_text.chain_hash != without.chain_hash


@pytest.mark.parametrize("seed", ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, None])
def test_malformed_seed_is_refused(seed: object) -> None:
    """The seed must be 64 lowercase hex characters."""
    with pytest.raises(ValueError, match="64 lowercase hex"):
        fingerprint(READINGS, seed)  # type: ignore[arg-type]


def _chain_args() -> dict:
    w = seal_window(READINGS, T0, END, SEED, SPEC)
    return {
        "summary": w.summary,
        "fingerprint": w.fingerprint,
        "prev_chain_hash": SEED,
        "window_start": T0,
        "window_end": END,
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("summary", []),
        ("summary", [{"attr": "P", "count": 2}]),
        ("fingerprint", "1" * 64),
        ("prev_chain_hash", "2" * 64),
        ("window_start", T0 - timedelta(seconds=900)),
        ("window_end", END + timedelta(microseconds=1)),
    ],
)
def test_chain_hash_binds_every_input(name: str, value: object) -> None:
    """Changing the summary, fingerprint, previous chain hash or either window bound changes H(T_i)."""
    args = _chain_args()
    base = chain_hash(**args)
    assert chain_hash(**{**args, name: value}) != base


def test_close_window_matches_parts() -> None:
    """seal_window is summarize + fingerprint seeded with prev + chain_hash over them."""
    w = seal_window(READINGS, T0, END, SEED, SPEC)
    assert w.fingerprint == fingerprint(READINGS, SEED)
    assert w.chain_hash == chain_hash(w.summary, w.fingerprint, SEED, T0, END)
    assert (w.prev_chain_hash, w.start, w.end, w.reading_count) == (SEED, T0, END, 5)
    assert w.energy_wh == Decimal("10")  # the register (12.5 -> 12.51 kWh) wins over integrated power
    assert w.summary_json.startswith('[{"attr":"E","count":2,"energy_wh":"10",')


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (T0 + timedelta(seconds=1), END, "outside"),
        (T0, T0 + timedelta(seconds=60), "outside"),  # the reading at exactly 60 s is in the next window
        (END, T0, "before its end"),
        (T0.replace(tzinfo=None), END, "naive"),
    ],
)
def test_close_window_refuses_bad_bounds(start: datetime, end: datetime, message: str) -> None:
    """Readings outside [start, end), reversed or naive bounds raise ValueError."""
    with pytest.raises(ValueError, match=message):
        seal_window(READINGS, start, end, SEED, SPEC)


@pytest.mark.parametrize("length", [60, 900, 3600])
def test_chain_links_windows_across_a_leap(length: int) -> None:
    """Window i is seeded with and linked to window i-1's chain hash, silent windows skipped."""
    seed = chain_seed("tk", "/terni", "urn:ngsi-ld:SMX:BBB6099")
    offsets = [0, 1, length - 1, length, 5 * length + 2, 5 * length + 3]
    readings = [rd("P", s, str(100 + i)) for i, s in enumerate(offsets)]
    prev, closed = seed, []
    for start, group in split_into_windows(readings, length):
        w = seal_window(group, start, window_end(start, length), prev, SPEC)
        closed.append(w)
        prev = w.chain_hash
    assert [w.reading_count for w in closed] == [3, 1, 2]
    assert [w.start - T0 for w in closed] == [
        timedelta(0),
        timedelta(seconds=length),
        timedelta(seconds=5 * length),
    ]
    assert closed[0].prev_chain_hash == seed
    for before, after in zip(closed, closed[1:], strict=False):
        assert after.prev_chain_hash == before.chain_hash
        assert after.fingerprint == fingerprint(
            [r for r in readings if after.start <= r.observed_at < after.end], before.chain_hash
        )
    assert len({w.chain_hash for w in closed}) == 3


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("", "/", "e1"), ("", "/", "e2")),
        (("", "/", "e1"), ("t", "/", "e1")),
        (("", "/", "e1"), ("", "/a", "e1")),
        (("a", "/b", "c"), ("a/", "b", "c")),  # fields are separate JSON strings, not concatenated
    ],
)
def test_chain_seed_differs_per_meter(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    """Different tenant, service path or entity id give a different seed H(T_0)."""
    assert chain_seed(*a) != chain_seed(*b)


def test_chain_seed_is_sha256_of_documented_identity() -> None:
    """The seed is SHA-256 of the canonical identity object shown in docs/fingerprint.md."""
    data = (
        b'{"domain":"smartmeter-connector/v1","entity_id":"urn:ngsi-ld:SMX:BBB6099",'
        b'"service_path":"/","tenant":""}'
    )
    assert chain_seed("", "/", "urn:ngsi-ld:SMX:BBB6099") == hashlib.sha256(data).hexdigest()


_attrs = st.sampled_from(["P", "E", "V", "status", "a.b", "ü"])
_readings = st.lists(
    st.builds(
        lambda attr, us, n, text: StoredReading(
            attr=attr,
            attr_type="Number" if text is None else "Text",
            observed_at=T0 + timedelta(microseconds=us),
            value_json=f'"{n}"' if text is None else f'"{text}"',
            number=n if text is None else None,
        ),
        _attrs,
        st.integers(min_value=0, max_value=900 * 10**6 - 1),
        st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
        st.one_of(st.none(), st.text(alphabet="abc", max_size=3)),
    ),
    max_size=12,
    unique_by=lambda r: (r.attr, r.observed_at),
)


@given(readings=_readings, data=st.data())
def test_window_is_invariant_under_permutation(readings: list[StoredReading], data: st.DataObject) -> None:
    """Any permutation of a window's readings gives the same summary, fingerprint and chain hash."""
    permuted = data.draw(st.permutations(readings))
    spec_for = specs(P=("power", "kW"), E=("energy_register", "Wh"))
    assert seal_window(permuted, T0, END, SEED, spec_for) == seal_window(readings, T0, END, SEED, spec_for)


def test_times_are_compared_on_the_utc_line() -> None:
    """The same instant given with another UTC offset fingerprints identically."""
    from datetime import timezone

    r = READINGS[0]
    shifted = dataclasses.replace(r, observed_at=r.observed_at.astimezone(timezone(timedelta(hours=2))))
    assert shifted.observed_at.tzinfo == UTC
    assert fingerprint([shifted], SEED) == fingerprint([r], SEED)


def test_same_attribute_and_instant_twice_is_still_order_independent() -> None:
    """Two readings of one attribute at one instant (the store forbids it) still fingerprint order-free."""
    a, b = rd("P", 0, "1"), rd("P", 0, "2")
    assert fingerprint([a, b], SEED) == fingerprint([b, a], SEED)
    assert seal_window([a, b], T0, END, SEED, SPEC) == seal_window([b, a], T0, END, SEED, SPEC)
    assert fingerprint([a, b], SEED) != fingerprint([a], SEED)
