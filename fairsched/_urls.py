"""Connection URLs without their secrets, for anything that prints or logs one.

>>> redact_url("redis://:s3cret@cache:6379/0")
'redis://:***@cache:6379/0'
>>> redact_url("rediss://worker:s3cret@cache/0?password=x&db=1")
'rediss://worker:***@cache/0?password=***&db=1'
>>> redact_url("redis://lonelytoken@cache/0")
'redis://***@cache/0'
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["MASK", "RedactedURL", "redact_url"]

MASK = "***"

#: Query parameters that carry credentials (redis-py and kombu accept several of them).
_SECRET_PARAM = re.compile(r"pass|secret|token|auth|key|credential", re.IGNORECASE)


def redact_url(url: object) -> str:
    """`url` with its password (or a lone user-info, which some clients read as one) and any
    credential query parameters replaced by `***`. Text that is not a URL is returned whole
    when it holds no `@`, else masked entirely, since it cannot be parsed safely."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return MASK if "@" in text else text
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(name) for name, _ in pairs):
            masked = [(n, MASK if _SECRET_PARAM.search(n) else v) for n, v in pairs]
            query = urlencode(masked, safe="*")
    if netloc == parts.netloc and query == parts.query:
        return text
    # Built by hand: urlunsplit drops the '//' of a URL with no host (unix:///path).
    out = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else f"{netloc}{parts.path}"
    if query:
        out += f"?{query}"
    if parts.fragment:
        out += f"#{parts.fragment}"
    return out


class RedactedURL(str):
    """A URL that is itself everywhere it is used, but whose `repr` hides its secrets.

    Celery's `celery report` and `app.conf.humanize(censored=True)` mask `broker_url` and
    `result_backend` by name and print other settings with `repr`; storing the storage URL
    as a `RedactedURL` keeps its password out of those reports and of any log line that
    formats the settings with `%r`.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redact_url(str(self)))
