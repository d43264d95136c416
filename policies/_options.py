"""Validators and converters for policy options (each names the option it rejects)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._errors import PolicyError
from ._job import check_weights


def positive(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: `value` is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(f"{attribute.name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise PolicyError(f"{attribute.name} must be finite and > 0, got {value!r}")


def non_negative(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: `value` is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(f"{attribute.name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise PolicyError(f"{attribute.name} must be finite and >= 0, got {value!r}")


def unit_interval(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: `value` is a number in (0, 1]."""
    positive(instance, attribute, value)
    if value > 1:
        raise PolicyError(f"{attribute.name} must be in (0, 1], got {value!r}")


def frozen_weights(weights: Mapping[str, float] | None) -> Mapping[str, float]:
    """Check every key and weight and return them as a read-only mapping."""
    if weights is None:
        return MappingProxyType({})
    if not isinstance(weights, Mapping):
        raise PolicyError(
            f"weights must be a mapping of key to weight, got {type(weights).__name__}"
        )
    return MappingProxyType(check_weights(weights))
