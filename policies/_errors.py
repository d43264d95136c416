"""Errors raised by the policies package.

The whole project shares one root, `FairschedError`, defined here because `policies` may import
nothing of ours; `fairsched.errors` re-exports it and hangs the runtime errors beneath it::

    FairschedError
    └── PolicyError            bad input to a policy or the fair queue (also ValueError)
        ├── InvalidJob         empty, non-string or over-long key; bad cost, deadline or id
        ├── InvalidWeight      weight not a number in [MIN_WEIGHT, MAX_WEIGHT]
        ├── InvalidTime        a time (`now`) that is not a finite number
        ├── UnknownPolicy      name not in the registry (also LookupError)
        └── UnknownOption      option the named policy does not take
"""

from __future__ import annotations


class FairschedError(Exception):
    """Raised for every error fairsched itself reports; catch this to catch them all."""


class PolicyError(FairschedError, ValueError):
    """Raised when a policy, job, weight or option is invalid; nothing has been changed."""


class InvalidJob(PolicyError):
    """Raised when a job record has a bad key, id, cost or deadline."""


class InvalidWeight(PolicyError):
    """Raised when a weight is not a number within [MIN_WEIGHT, MAX_WEIGHT]."""


class InvalidTime(PolicyError):
    """Raised when a time passed in (`now`) is not a finite number."""


class UnknownPolicy(PolicyError, LookupError):
    """Raised when a policy name is not registered."""


class UnknownOption(PolicyError):
    """Raised when a policy is configured with an option it does not take."""
