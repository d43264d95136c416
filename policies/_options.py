"""Validators and converters for policy options (each names the option it rejects)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._errors import PolicyError
from ._job import check_weights
from ._numbers import check_number


def positive(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: `value` is a finite number > 0."""
    check_number(value, attribute.name, PolicyError, low=0, low_open=True)


def non_negative(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: `value` is a finite number >= 0."""
    check_number(value, attribute.name, PolicyError, low=0)


def unit_interval(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: `value` is a number in (0, 1]."""
    check_number(value, attribute.name, PolicyError, low=0, low_open=True, high=1)


def frozen_weights(weights: Mapping[str, float] | None) -> Mapping[str, float]:
    """Check every key and weight and return them as a read-only mapping."""
    if weights is None:
        return MappingProxyType({})
    if not isinstance(weights, Mapping):
        raise PolicyError(
            f"weights must be a mapping of key to weight, got {type(weights).__name__}"
        )
    return MappingProxyType(check_weights(weights))
