"""Imported first by the modules that need Hypothesis: a missing one says how to install it."""

from __future__ import annotations

try:
    import hypothesis
except ImportError as exc:  # pragma: no cover - the dev environment has Hypothesis
    raise ImportError(
        "fairsched.testing needs Hypothesis; install it with: pip install 'fairsched[testing]'"
    ) from exc

#: The installed Hypothesis version (importing this module proves there is one).
HYPOTHESIS_VERSION: str = hypothesis.__version__
