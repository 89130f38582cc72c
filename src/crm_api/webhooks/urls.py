"""Which webhook URLs we post to: HTTPS on public addresses, unless insecure webhooks are allowed
(development and tests), so an API key cannot make the service probe its own network."""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")


def url_problem(url: str, allow_insecure: bool) -> str | None:
    """Why this URL may not be an endpoint, or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as error:
        return f"not a valid URL: {error}"
    if parts.scheme.lower() not in ("http", "https") or not host:
        return "expected an http(s) URL with a host"
    if allow_insecure:
        return None
    if parts.scheme.lower() != "https":
        return "must use https"
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return "must not point at a local host name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not address.is_global:
        return "must not point at a loopback, private or reserved address"
    return None


async def resolves_publicly(host: str, port: int) -> bool:
    """Whether every address the host resolves to is public (checked again at delivery time:
    a name that was public when the endpoint was created may not be any more)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return True  # the request itself will fail and say why
    return all(ipaddress.ip_address(info[4][0]).is_global for info in infos)
