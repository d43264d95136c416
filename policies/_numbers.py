"""One check for every number fairsched takes: finite, of the right kind, within bounds."""

from __future__ import annotations

import math

#: Bools are ints to Python, never numbers to us.
_NUMBER = (int, float)


def check_number(
    value: object,
    name: str,
    error: type[Exception],
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
    integer: bool = False,
) -> float:
    """`value` as a float, or `error` naming `name` and saying what was expected.

    A number is an int or a float (not a bool), finite, an int when `integer`, and within
    [`low`, `high`] (`low` excluded when `low_open`).

    >>> check_number(2, "window", ValueError, low=1, integer=True)
    2.0
    >>> check_number(float("nan"), "now", ValueError)
    Traceback (most recent call last):
    ...
    ValueError: now must be finite, got nan
    """
    if isinstance(value, bool) or not isinstance(value, int if integer else _NUMBER):
        kind = "an int" if integer else "a number"
        raise error(f"{name} must be {kind}, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise error(f"{name} must be finite, got {value!r}")
    too_low = low is not None and (number <= low if low_open else number < low)
    if too_low or (high is not None and number > high):
        raise error(f"{name} must be {_range(low, low_open, high)}, got {value!r}")
    return number


def _range(low: float | None, low_open: bool, high: float | None) -> str:
    if high is None:
        return f"finite and {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"<= {high:g}"
    if low_open:
        return f"in ({low:g}, {high:g}]"
    return f"between {low:g} and {high:g}"
