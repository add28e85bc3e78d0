"""The canonical encoding that fingerprints and chain hashes are computed over (see docs/fingerprint.md).

UTF-8 JSON, object keys sorted by Unicode code point, no insignificant whitespace, strings escaped
minimally, no floating-point numbers: decimals are written as strings in a fixed plain form and times as
fixed-width UTC strings with microseconds. Every function here is pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

MAX_DECIMAL_TEXT = 1000  # characters; a longer plain form is refused rather than encoded
MEAN_PLACES = 6  # derived values (mean, energy) are rounded once to this many decimal places


class CanonicalError(ValueError):
    """A value has no canonical encoding (a float, NaN, a naive time, a non-string key, ...)."""


def decimal_text(d: Decimal | int) -> str:
    """The canonical text of a finite decimal.

    Plain positional notation, no exponent, no `+`, no leading zeros in the integer part, no trailing zeros
    in the fraction and no trailing `.`; zero (including -0) is `0`. `Decimal("-84.8910")` -> `-84.891`,
    `Decimal("1.5E+3")` -> `1500`.
    """
    if type(d) is not Decimal:
        if isinstance(d, bool) or not isinstance(d, (Decimal, int)):
            raise CanonicalError(f"expected a Decimal, got {type(d).__name__}")
        d = Decimal(d)
    text = str(d)
    if len(text) <= _SHORT and text.isascii() and "E" not in text and text[-1:].isdigit():
        # str() wrote it positionally (exponent <= 0, not tiny, finite): only zeros to trim. A third of
        # a verify's recomputation went to the general path below before this shortcut.
        return _trimmed(text)
    return plain_decimal_text(d)


def plain_decimal_text(d: Decimal) -> str:
    """`decimal_text` by the general path, from the decimal's digits and exponent (any finite decimal;
    `decimal_text` takes a shortcut for the usual short ones, tested against this)."""
    if not d.is_finite():
        raise CanonicalError(f"{d} has no canonical decimal form")
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    coeff = int("".join(map(str, digits)))
    if coeff == 0:
        return "0"
    while exp < 0 and coeff % 10 == 0:
        coeff, exp = coeff // 10, exp + 1
    if exp > MAX_DECIMAL_TEXT or -exp > MAX_DECIMAL_TEXT:
        raise CanonicalError(f"decimal {d} is too large or too small for its plain form")
    if exp >= 0:
        text = str(coeff) + "0" * exp
    else:
        padded = str(coeff).rjust(1 - exp, "0")
        text = padded[:exp] + "." + padded[exp:]
    return ("-" if sign else "") + text


_SHORT = 40  # characters of str(Decimal) taken by the shortcut: far below MAX_DECIMAL_TEXT


def _trimmed(text: str) -> str:
    # Positional decimal text without redundant fraction zeros, and "0" for any zero (also "-0.00").
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("0", "-0") else text


def round_places(x: Fraction, places: int = MEAN_PLACES) -> Decimal:
    """`x` rounded to `places` decimal places, ties to even, as an exact Decimal."""
    scaled = round(x * 10**places)  # Fraction.__round__ rounds half to even
    return Decimal(f"{scaled}E-{places}")


def round_ratio(numerator: int, denominator: int, places: int = MEAN_PLACES) -> Decimal:
    """`round_places(Fraction(numerator, denominator), places)` in integers alone (`denominator` > 0):
    the same rounding, without Fraction's normalizing at every step."""
    if denominator <= 0:
        raise ValueError(f"denominator must be positive, got {denominator}")
    scaled, rest = divmod(numerator * 10**places, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and scaled % 2):
        scaled += 1
    return Decimal(f"{scaled}E-{places}")


def time_text(t: datetime) -> str:
    """The canonical text of an aware time: `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, always 6 digits."""
    if t.tzinfo is UTC:
        # isoformat of a UTC time ends in "+00:00" and has a 4-digit year: the same fields, in C.
        return t.isoformat(timespec="microseconds")[:-6] + "Z"
    if t.tzinfo is None or t.utcoffset() is None:
        raise CanonicalError("naive datetime has no canonical form; use timezone-aware UTC")
    u = t.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond:06d}Z"
    )


def _plain(obj: Any, where: str) -> Any:
    """`obj` with Decimals and datetimes replaced by their canonical strings; other types refused."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, Decimal):
        return decimal_text(obj)
    if isinstance(obj, datetime):
        return time_text(obj)
    if isinstance(obj, float):
        raise CanonicalError(f"{where}: floats are not allowed in the canonical encoding; use Decimal")
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise CanonicalError(f"{where}: object keys must be strings, got {type(key).__name__}")
            out[key] = _plain(value, f"{where}.{key}")
        return out
    if isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise CanonicalError(f"{where}: {type(obj).__name__} has no canonical encoding")


def canonical_json(obj: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of `obj` (dicts, lists, str, int, bool, None, Decimal, datetime).

    Keys sorted by code point, separators `,` and `:` with no spaces, non-ASCII characters written as
    UTF-8 (not `\\u` escapes), only `"`, `\\` and U+0000..U+001F escaped. Raises CanonicalError for
    floats, non-finite decimals, naive datetimes, non-string keys and strings that are not valid Unicode
    (lone surrogates).
    """
    text = json.dumps(_plain(obj, "$"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return utf8(text)


def utf8(text: str) -> bytes:
    """`text` as UTF-8; CanonicalError for a string that is not valid Unicode (a lone surrogate)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"string is not valid Unicode: {exc.reason}") from None
