"""Sanity of the load and PV profiles the simulator draws from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from demo import profiles
from demo.payloads import orion_time


def hours_of_year(step_hours: int = 5) -> list[datetime]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [start + timedelta(hours=h) for h in range(0, 24 * 365, step_hours)]


def test_pv_never_negative_and_zero_at_night():
    """PV output is >= 0 all year, and 0 whenever the sun is below the horizon."""
    for when in hours_of_year():
        pv = profiles.pv_power_w(6.0, when)
        assert pv >= 0
        if profiles.sun_elevation_sine(when) <= 0:
            assert pv == 0
    assert profiles.pv_power_w(6.0, datetime(2026, 6, 21, 23, 0, tzinfo=UTC)) == 0  # local midnight
    assert profiles.pv_power_w(6.0, datetime(2026, 12, 21, 4, 0, tzinfo=UTC)) == 0  # winter 5 am


def test_pv_peaks_near_solar_noon_and_higher_in_summer():
    """A 6 kWp array gives about 4 kW at a June noon in Terni, less in December."""
    june = profiles.pv_power_w(6.0, datetime(2026, 6, 21, 11, 10, tzinfo=UTC))
    december = profiles.pv_power_w(6.0, datetime(2026, 12, 21, 11, 10, tzinfo=UTC))
    assert 4000 < june < 4800
    assert 1000 < december < june / 2


def test_daily_shape_averages_to_one_and_peaks_in_the_evening():
    """The H0-like shape has a daily mean of 1, a night trough and an evening peak."""
    day = datetime(2026, 3, 18)  # a Wednesday
    samples = [profiles.daily_shape(day + timedelta(minutes=m)) for m in range(0, 1440, 5)]
    assert sum(samples) / len(samples) == pytest.approx(1.0, abs=0.01)
    assert profiles.daily_shape(day.replace(hour=3)) < 0.6 < 1.3 < profiles.daily_shape(day.replace(hour=19))


@pytest.mark.parametrize(
    "when, kind", [("2026-03-18", "weekday"), ("2026-03-21", "saturday"), ("2026-03-22", "sunday")]
)
def test_day_kinds(when, kind):
    """Weekdays, Saturdays and Sundays use their own tables."""
    assert profiles.day_kind(datetime.fromisoformat(when)) == kind


def test_dynamisation_is_bdews_polynomial():
    """BDEW's H0 dynamisation: 1.24 at day 0, winter above 1, summer below 1."""
    assert profiles.dynamisation(0) == pytest.approx(1.24)
    assert profiles.dynamisation(15) > 1.15 and profiles.dynamisation(200) < 0.85


def test_household_yearly_energy_matches_annual_consumption():
    """Integrating the expected load over a year gives the annual consumption within 5 %."""
    step = 1
    energy_kwh = sum(profiles.household_power_w(3500, t) * step / 1000 for t in hours_of_year(step))
    assert energy_kwh == pytest.approx(3500, rel=0.05)


def test_orion_time_format():
    """Times are rendered like Orion: UTC, milliseconds, Z."""
    when = datetime(2019, 3, 18, 16, 13, 45, 275999, tzinfo=UTC)
    assert orion_time(when) == "2019-03-18T16:13:45.275Z"
