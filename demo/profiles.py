"""Load and generation profiles for simulated smart meters (pure functions of time).

Household load: an H0-like daily shape. The hourly tables below follow the shape of the BDEW standard load
profile H0 (German household profile, winter weekday / Saturday / Sunday), normalised to a daily mean of 1;
they are a documented approximation, not the official quarter-hour table. The season is applied with
BDEW's official dynamisation polynomial for H0, F(d) = -3.92e-10 d^4 + 3.2e-7 d^3 - 7.02e-5 d^2
+ 2.1e-3 d + 1.24 (d = day of the year), which is 1.24 in early January and about 0.8 in summer.
A household with annual consumption A kWh then draws A / 8760 kW times shape times F on average.

PV generation: clear-sky, proportional to the sine of the sun's elevation at the site (declination by
Cooper's formula, hour angle from local solar time), times peak power and a performance ratio. It is zero
whenever the sun is below the horizon, so it is never negative and always zero at night.

Sign convention of the simulated meter's power P (consumer reference-arrow system, as DSOs meter
households): P > 0 is power drawn from the grid, P < 0 is power fed into the grid by a prosumer whose PV
output exceeds its load (seed 003's -84.891 W is such a moment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

# Hourly relative load, hour 0 = 00:00-01:00 local time (H0-like, see module docstring).
# fmt: off
_WEEKDAY = (67, 57, 52, 50, 50, 54, 72, 105, 120, 118, 116, 121,
            135, 131, 117, 110, 113, 137, 164, 170, 160, 145, 124, 94)
_SATURDAY = (75, 63, 56, 53, 52, 53, 62, 84, 112, 130, 138, 145,
             152, 141, 124, 115, 118, 136, 158, 164, 156, 143, 126, 99)
_SUNDAY = (80, 66, 58, 54, 52, 52, 56, 68, 92, 124, 145, 160,
           170, 152, 125, 110, 110, 126, 150, 160, 154, 140, 120, 92)
# fmt: on


def _normalised(table: tuple[int, ...]) -> tuple[float, ...]:
    mean = sum(table) / len(table)
    return tuple(v / mean for v in table)


SHAPES = {
    "weekday": _normalised(_WEEKDAY),
    "saturday": _normalised(_SATURDAY),
    "sunday": _normalised(_SUNDAY),
}


@dataclass(frozen=True)
class Site:
    """Where the meters are: Terni, Italy (the eDREAM pilot of seed 003) by default."""

    latitude: float = 42.56
    longitude: float = 12.65
    utc_offset_hours: float = 1.0  # civil time households live by (CET; daylight saving ignored)


def day_kind(local: datetime) -> str:
    """weekday, saturday or sunday."""
    return {5: "saturday", 6: "sunday"}.get(local.weekday(), "weekday")


def daily_shape(local: datetime) -> float:
    """The H0-like relative load at a local time, linearly interpolated between hourly means."""
    table = SHAPES[day_kind(local)]
    hour = local.hour + local.minute / 60 + local.second / 3600
    # Each hourly mean is placed at the middle of its hour, interpolation wraps around midnight.
    pos = (hour - 0.5) % 24
    i = int(pos)
    frac = pos - i
    return table[i] * (1 - frac) + table[(i + 1) % 24] * frac


def dynamisation(day_of_year: int) -> float:
    """BDEW's H0 seasonal factor for a day of the year (1..366)."""
    d = float(day_of_year)
    return -3.92e-10 * d**4 + 3.2e-7 * d**3 - 7.02e-5 * d**2 + 2.1e-3 * d + 1.24


def household_power_w(annual_kwh: float, when: datetime, site: Site = Site()) -> float:
    """Expected household load in W at a UTC time, before noise."""
    local = when + timedelta(hours=site.utc_offset_hours)
    mean_w = annual_kwh * 1000 / 8760
    return mean_w * daily_shape(local) * dynamisation(local.timetuple().tm_yday)


def sun_elevation_sine(when: datetime, site: Site = Site()) -> float:
    """Sine of the sun's elevation at the site for a UTC time (negative when below the horizon)."""
    doy = when.timetuple().tm_yday
    declination = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
    solar_hours = when.hour + when.minute / 60 + when.second / 3600 + site.longitude / 15
    hour_angle = math.radians(15 * (solar_hours - 12))
    lat = math.radians(site.latitude)
    overhead = math.sin(lat) * math.sin(declination)
    return overhead + math.cos(lat) * math.cos(declination) * math.cos(hour_angle)


def pv_power_w(peak_kw: float, when: datetime, site: Site = Site(), performance_ratio: float = 0.8) -> float:
    """Clear-sky PV output in W at a UTC time: >= 0, and 0 while the sun is below the horizon."""
    return max(0.0, sun_elevation_sine(when, site)) * peak_kw * 1000 * performance_ratio
