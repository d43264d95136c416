"""Payload serializers: JSON by default, any kombu-registered one by name, pickle by opt-in.

The payload (a task's name, arguments and options) is encoded before anything is stored, so an
argument the serializer cannot encode raises `SerializationError` and nothing is written.
"""

from __future__ import annotations

import enum
import json
import pickle
import warnings
from typing import Any

from attrs import frozen

from .errors import ConfigurationError, SerializationError


class SerializerType(str, enum.Enum):
    """The serializers users name most; any other kombu-registered name works as a string."""

    JSON = "json"
    MSGPACK = "msgpack"
    YAML = "yaml"
    PICKLE = "pickle"


class PickleWarning(UserWarning):
    """Warned when pickle is enabled: whoever can write to the storage can run code."""


@frozen
class Serializer:
    """Encodes payloads to bytes and back under one serializer name."""

    name: str

    def dumps(self, obj: Any) -> bytes:
        """Encode `obj`.

        Raises:
            SerializationError: `obj` holds something this serializer cannot encode.
        """
        try:
            if self.name == "json":
                return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
            if self.name == "pickle":
                return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            from kombu.serialization import dumps

            _, _, data = dumps(obj, serializer=self.name)  # type: ignore[no-untyped-call]
            return data if isinstance(data, bytes) else data.encode()
        except SerializationError:
            raise
        except Exception as exc:  # each serializer raises its own types
            raise SerializationError(
                f"cannot encode task arguments with {self.name!r}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode bytes written by `dumps`."""
        if self.name == "json":
            return json.loads(data)
        if self.name == "pickle":
            return pickle.loads(data)  # only reached when the user chose pickle
        from kombu.serialization import loads, registry

        content_type, content_encoding, _ = registry._encoders[self.name]
        return loads(data, content_type, content_encoding, accept={content_type})  # type: ignore[no-untyped-call]


def get_serializer(name: str | SerializerType = SerializerType.JSON) -> Serializer:
    """The serializer called `name`: json, pickle, or any name kombu has registered.

    Raises:
        ConfigurationError: no serializer has that name; the message lists those that do.
    """
    value = name.value if isinstance(name, SerializerType) else name
    if not isinstance(value, str):
        raise ConfigurationError(f"serializer must be a name, got {type(name).__name__}")
    value = value.lower()
    if value == "pickle":
        warnings.warn(
            "pickle serializer enabled: anyone who can write to the task storage can run "
            "code in your workers; prefer json",
            PickleWarning,
            stacklevel=2,
        )
        return Serializer("pickle")
    if value == "json":
        return Serializer("json")
    try:
        from kombu.serialization import registry
    except ImportError as exc:
        raise ConfigurationError(
            f"serializer {value!r} needs kombu (pip install 'fairsched[celery]')"
        ) from exc
    if value not in registry._encoders:
        valid = sorted({"json", "pickle", *registry._encoders})
        raise ConfigurationError(f"unknown serializer {value!r}; valid: {', '.join(valid)}")
    return Serializer(value)
