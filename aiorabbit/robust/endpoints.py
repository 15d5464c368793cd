"""Broker addresses: one URL, several, or several hosts in one URL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import InvalidArgument
from ..parameters import ConnectionParameters

__all__ = ["endpoints"]


def endpoints(url_or_urls: str | Sequence[str] | None, **options: Any) -> list[ConnectionParameters]:
    """One :class:`ConnectionParameters` per broker address: several URLs,
    or several ``host:port`` separated by commas in one URL."""
    if url_or_urls is None or isinstance(url_or_urls, str):
        urls = [url_or_urls]
    else:
        urls = list(url_or_urls)
        if not urls:
            raise InvalidArgument("connect_robust needs at least one URL")
    out = []
    for url in urls:
        for one in _split_hosts(url):
            out.append(ConnectionParameters.from_url(one, **options))
    return out


def _split_hosts(url: str | None) -> list[str | None]:
    if url is None:
        return [None]
    try:
        parts = urlsplit(url)
    except ValueError:
        # from_url explains what is wrong without quoting the password.
        return [url]
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [url]
    return [urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}")) for host in hosts.split(",") if host]

