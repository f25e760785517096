"""Requests made by web pages: refused unless the page is the proxy's own or listed in ALLOWED_ORIGINS.

Any page open in the user's browser can send requests to a proxy on 127.0.0.1: a form post or a `text/plain`
fetch needs no CORS permission (the browser only hides the answer from the page), and the proxy's upstream
credential pays for them (with ARGO, every prompt goes under the user's own name). With DNS rebinding (the
page's own host name made to resolve to 127.0.0.1) the page reads the answers too. So, as Jupyter and Ollama do:

- a request whose `Origin` is another site than the one it was sent to is refused unless ALLOWED_ORIGINS lists
  it (browsers send `Origin` on every cross-site request and every POST; the status page's are same-site);
- while the proxy listens on a loopback TCP address, a request naming any host but a loopback one (`localhost`,
  `*.localhost`, 127.0.0.0/8, ::1, each with or without a port or a final dot) or one ALLOWED_HOSTS lists is
  refused: a rebinding page names its own site (PUBLIC_URL's host and origin count as listed). A browser cannot reach a Unix socket, so SOCKET clients may
  name any host.

Clients that are not browsers (the SDKs, curl, coding agents) send no `Origin` and name the host they connect
to. With HOST=0.0.0.0 (containers, a Service) the host names a deployment answers to are not known here: only
the `Origin` rule applies, and a rebinding page is stopped only by ENABLE_AUTH. The OAuth routes that answer any
site's pages (cors.py's CORS_KINDS: metadata, keys, registration, token) are exempt from the `Origin` rule alone.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from argoproxy.config.listener import is_loopback
from argoproxy.edge.cors import CORS_KINDS
from argoproxy.errors import ProxyError

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.edge.http_objects import Request

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_NAME = re.compile(r"[a-z0-9.-]+")  # a host name as browsers send it (no userinfo, path or fragment)


class WebPages:
    def __init__(self, settings: Settings) -> None:
        self.loopback_only = not settings.socket and is_loopback(settings.host)
        self.origins = {origin.strip().lower().rstrip("/") for origin in settings.allowed_origins}
        self.hosts = {host.strip().lower().rstrip(".") for host in settings.allowed_hosts}
        public = urlsplit(settings.public_url) if settings.public_url else None
        if public is not None and public.hostname:  # PUBLIC_URL (sign-in): the address people reach, its pages ours
            self.hosts.add(public.hostname.rstrip("."))
            self.origins.add(f"{public.scheme}://{public.netloc}".lower())

    def check(self, req: Request, kind: str = "") -> None:
        host = req.host.strip().lower()
        if not req.host_sent and req.protocol == "HTTP/1.1":  # RFC 9112 3.2: a 400, whatever the listener
            raise ProxyError(400, "An HTTP/1.1 request must name the host it is sent to (a Host header).",
                             code="missing_host")
        if self.loopback_only and host and not self._host_allowed(_without_port(host)):
            raise ProxyError(403, f"The proxy listens on this machine only and answers to loopback host names; "
                                  f"this request names `{host[:100]}` (a web page's, by DNS rebinding? A reverse "
                                  "proxy's name goes in ALLOWED_HOSTS).", code="host_not_allowed")
        origin = req.headers.get("Origin")
        if origin is not None and kind not in CORS_KINDS and not self._allowed(origin.strip().lower(), host):
            raise ProxyError(403, f"Requests from web pages of other sites are refused (Origin `{origin[:100]}`); "
                                  "ALLOWED_ORIGINS lists the ones that may.", code="origin_not_allowed")

    def _host_allowed(self, name: str) -> bool:
        return _loopback(name) or "*" in self.hosts or name.rstrip(".") in self.hosts

    def _allowed(self, origin: str, host: str) -> bool:
        return "*" in self.origins or origin.rstrip("/") in self.origins or _same_site(origin, host)


def _same_site(origin: str, host: str) -> bool:
    """Whether `origin` (scheme://host[:port]) is the site the request was sent to (its Host header)."""
    scheme, sep, netloc = origin.partition("://")
    if not sep or not host:
        return False  # `null` (a sandboxed frame, a file), or no Host to compare with
    default = _DEFAULT_PORTS.get(scheme, "")
    return netloc == host or netloc + default == host or netloc == host + default


def _without_port(host: str) -> str:
    if host.startswith("["):  # [::1] or [::1]:5000
        end = host.find("]")
        rest = host[end + 1:] if end > 0 else "?"
        return host[1:end] if rest == "" or (rest[:1] == ":" and rest[1:].isdigit()) else host
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def _loopback(name: str) -> bool:
    name = name[:-1] if name.endswith(".") else name  # `localhost.`: the same name, fully qualified
    if _NAME.fullmatch(name) and (name == "localhost" or name.endswith(".localhost")):
        return True  # browsers resolve these to loopback themselves, never through DNS
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
