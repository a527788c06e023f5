"""Which webhook receiver URLs OpenRouter may be given: the one check, below both its users.

The connection's ``callback_url`` extra is checked while the connection is resolved
(:mod:`airflow_provider_orvideo._internal.api`), an operator's ``callback_url`` argument while
its arguments are checked, and :class:`~airflow_provider_orvideo.webhooks.CallbackTarget`
checks the URL it extends. This module imports nothing of the provider, so each of them imports
it without importing the others (``webhooks`` re-exports :func:`check_callback_url`, its
documented name). :func:`is_loopback_host` is also what decides whether a connection points at
this machine for ``[openrouter] loopback_poll_scale`` (:mod:`airflow_provider_orvideo.polling`).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "CALLBACK_QUERY_FIELDS",
    "MAX_CALLBACK_URL_LENGTH",
    "check_callback_url",
    "is_loopback_host",
]

MAX_CALLBACK_URL_LENGTH = 2048

CALLBACK_QUERY_FIELDS = ("conn_id", "dag_id", "task_id", "run_id", "map_index")
"""The query parameters the provider appends to the callback URL (``CallbackTarget.QUERY_FIELDS``):
a URL that already has one is refused, as the receiver could not tell whose value counts."""


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a URL's host name) is this machine: ``localhost`` (and ``*.localhost``) or a
    loopback address. A DNS name is never taken for this machine, whatever it resolves to."""
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_callback_url(url: str) -> str:
    """The receiver URL OpenRouter will POST to, checked; ``ValueError`` saying what is wrong.

    OpenRouter delivers to ``https://`` URLs only; ``http://`` is allowed to this machine alone
    (a local emulator). No user name or password (the URL is sent to OpenRouter and shown in its
    logs) and no fragment; the provider adds its own query parameters (see
    :class:`~airflow_provider_orvideo.webhooks.CallbackTarget`).
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("the callback URL is empty")
    url = url.strip()
    if len(url) > MAX_CALLBACK_URL_LENGTH:
        raise ValueError(
            f"the callback URL is {len(url)} characters long, more than {MAX_CALLBACK_URL_LENGTH}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as error:
        raise ValueError(f"the callback URL {url[:80]!r} is not a URL ({error})") from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(
            f"the callback URL {url[:80]!r} is not an absolute https:// URL "
            "(e.g. https://airflow.example.com/orvideo/webhook)"
        )
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError(
            f"the callback URL {url[:80]!r} uses http:// to {host!r}: OpenRouter delivers webhooks "
            "to https:// URLs only (http:// is accepted for this machine alone, e.g. an emulator)"
        )
    if parts.username or parts.password:
        raise ValueError(
            "the callback URL carries a user name or password: it is sent to OpenRouter and shown "
            "in its logs; the receiver authenticates webhooks by their signature instead"
        )
    if parts.fragment:
        raise ValueError(f"the callback URL {url[:80]!r} has a fragment (#...), which is never sent")
    if any(key in CALLBACK_QUERY_FIELDS for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        raise ValueError(
            f"the callback URL {url[:80]!r} already has one of the query parameters the provider adds "
            f"({', '.join(CALLBACK_QUERY_FIELDS)})"
        )
    return url
