"""Per-attribute window summaries: statistics, energy by integration and by register delta."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connector.core.aggregate import AggregationError, summarize, unit_factor, window_energy_wh
from connector.core.kinds import AttributeSpec

from ._factory import rd, specs

P_W = specs(P=("power", "W"))


def one(readings, spec_for=P_W) -> dict:
    (summary,) = summarize(readings, spec_for)
    return summary


def test_empty_window_has_no_summary() -> None:
    """No readings: an empty list."""
    assert summarize([], P_W) == []


def test_one_reading_summary() -> None:
    """One reading: it is min, max, mean, first and last; integrated energy is zero."""
    assert one([rd("P", 825.275, "-84.891", attr_type="W")]) == {
        "attr": "P",
        "type": "W",
        "kind": "power",
        "count": 1,
        "min": "-84.891",
        "max": "-84.891",
        "mean": "-84.891",
        "first": "-84.891",
        "first_at": "2019-03-18T16:13:45.275000Z",
        "last": "-84.891",
        "last_at": "2019-03-18T16:13:45.275000Z",
        "energy_wh": "0",
    }


@pytest.mark.parametrize(
    ("spec", "points", "energy"),
    [
        # 100 W -> 200 W -> 100 W over two minutes: 18000 W·s = 5 Wh
        (("power", "W"), [(0, "100"), (60, "200"), (120, "100")], "5"),
        (("power", ""), [(0, "100"), (60, "200"), (120, "100")], "5"),
        (("power", "kW"), [(0, "0.1"), (60, "0.2"), (120, "0.1")], "5"),
        (("power", "WTT"), [(0, "100"), (60, "200"), (120, "100")], "5"),
        (("power", "KWT"), [(0, "0.1"), (60, "0.2"), (120, "0.1")], "5"),
        # uneven sampling: 0..10 s at 360 W (1 Wh), 10..370 s ramping 360 -> 0 W (18 Wh)
        (("power", "W"), [(0, "360"), (10, "360"), (370, "0")], "19"),
        # export: -84.891 W held for 899 s = -21.19916916... Wh, rounded to 6 places
        (("power", "W"), [(0, "-84.891"), (899, "-84.891")], "-21.199169"),
        # sub-second spacing: 3600 W for 1 ms = 0.001 Wh
        (("power", "W"), [(0, "3600"), (0.001, "3600")], "0.001"),
        (("energy_register", "Wh"), [(0, "1000.5"), (300, "1003"), (600, "1012.25")], "11.75"),
        (("energy_register", "kWh"), [(0, "12.345"), (600, "12.350")], "5"),
        (("energy_register", "KWH"), [(0, "12.345"), (600, "12.350")], "5"),
        (("energy_register", "MWh"), [(0, "1.000001"), (600, "1.000002")], "1"),
        (("energy_register", "Wh"), [(0, "7")], "0"),
        # a register reset shows as a negative delta, never hidden
        (("energy_register", "Wh"), [(0, "100"), (600, "5")], "-95"),
    ],
)
def test_energy_table(spec: tuple[str, str], points: list[tuple[float, str]], energy: str) -> None:
    """Power integrates by trapezoids; a register gives last - first; units scale; order is irrelevant."""
    readings = [rd("E", s, v) for s, v in points]
    assert one(readings, specs(E=spec))["energy_wh"] == energy
    assert one(list(reversed(readings)), specs(E=spec))["energy_wh"] == energy


@pytest.mark.parametrize(
    ("values", "mean"),
    [
        (["1", "1", "2"], "1.333333"),
        (["1", "2"], "1.5"),
        (["0.0000005", "0"], "0"),  # 0.00000025 rounds down
        (["0.000003", "0"], "0.000002"),  # 0.0000015: tie, to even
        (["0.000005", "0"], "0.000002"),  # 0.0000025: tie, to even
        (["-1", "-2", "-2"], "-1.666667"),
        (["10.10", "10.1"], "10.1"),
    ],
)
def test_mean_rounding_table(values: list[str], mean: str) -> None:
    """The mean is exact, then rounded once to 6 places with ties to even."""
    readings = [rd("V", i, v) for i, v in enumerate(values)]
    assert one(readings, specs())["mean"] == mean


def test_statistics_follow_observation_time_not_arrival() -> None:
    """first/last are by observation time; min/max/count over all numeric readings; stats have no energy."""
    readings = [rd("V", 30, "230.5"), rd("V", 10, "229"), rd("V", 20, "231.25")]
    summary = one(readings, specs())
    assert summary["kind"] == "stats"
    assert "energy_wh" not in summary
    assert (summary["first"], summary["first_at"]) == ("229", "2019-03-18T16:00:10.000000Z")
    assert (summary["last"], summary["last_at"]) == ("230.5", "2019-03-18T16:00:30.000000Z")
    assert (summary["min"], summary["max"], summary["count"]) == ("229", "231.25", 3)


def test_non_numeric_readings_are_not_summarized() -> None:
    """Text attributes get no summary; an attribute's non-numeric values are left out of its statistics."""
    readings = [
        rd("status", 0, "on", attr_type="Text"),
        rd("P", 0, "100"),
        rd("P", 10, "n/a"),
        rd("P", 20, "300"),
        rd("meta", 5, None),
    ]
    summary = summarize(readings, P_W)
    assert [s["attr"] for s in summary] == ["P"]
    assert (summary[0]["count"], summary[0]["mean"], summary[0]["energy_wh"]) == (2, "200", "1.111111")


def test_summaries_sorted_by_attribute_code_point() -> None:
    """One dict per numeric attribute, sorted by name; names with '.' or '$' are fine (it is a list)."""
    readings = [rd(name, 0, "1") for name in ["a.b", "P", "$x", "b", "Ä"]]
    assert [s["attr"] for s in summarize(readings, specs())] == ["$x", "P", "a.b", "b", "Ä"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (AttributeSpec("power", "Wh"), "not valid for kind power"),
        (AttributeSpec("power", "mW"), "not valid"),
        (AttributeSpec("energy_register", "kW"), "not valid for kind energy_register"),
        (AttributeSpec("volume", ""), "unknown attribute kind"),
    ],
)
def test_bad_specs_are_refused(spec: AttributeSpec, message: str) -> None:
    """A unit that does not match the kind, or an unknown kind, raises AggregationError."""
    with pytest.raises(AggregationError, match=message):
        unit_factor(spec)
    with pytest.raises(AggregationError, match=message):
        summarize([rd("X", 0, "1")], lambda attr: spec)


@pytest.mark.parametrize(
    ("kinds", "energies", "total"),
    [
        ([], [], None),
        (["stats"], [None], None),
        (["power"], ["1.5"], Decimal("1.5")),
        (["power", "power"], ["1.5", "2.000001"], Decimal("3.500001")),
        (["energy_register", "power"], ["10", "9.5"], Decimal("10")),
        (["energy_register", "energy_register", "power"], ["10", "-2.5", "9.5"], Decimal("7.5")),
    ],
)
def test_window_energy_prefers_registers(
    kinds: list[str], energies: list[str | None], total: Decimal | None
) -> None:
    """The window total sums register energy if any register is present, else power energy, else None."""
    summary = [
        {"kind": k, **({"energy_wh": e} if e is not None else {})}
        for k, e in zip(kinds, energies, strict=True)
    ]
    result = window_energy_wh(summary)
    assert result == total
    if total is not None:
        assert str(result) == str(total)


def test_type_is_that_of_the_earliest_numeric_reading() -> None:
    """When an attribute's type changes within a window, the summary reports the earliest reading's type."""
    readings = [rd("P", 20, "2", attr_type="Float"), rd("P", 0, "x", attr_type="Text"), rd("P", 10, "1")]
    assert one(readings)["type"] == "Number"
