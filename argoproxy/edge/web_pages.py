"""Requests made by web pages: refused unless the page is the proxy's own.

Any page open in the user's browser can send requests to a proxy on 127.0.0.1: a form post or a `text/plain`
fetch needs no CORS permission (the browser only hides the answer from the page), and the proxy's upstream
credential pays for them (with ARGO, every prompt goes under the user's own name). With DNS rebinding (the
page's own host name made to resolve to 127.0.0.1) the page reads the answers too. So, as Jupyter and Ollama do:

- a request whose `Origin` is another site than the one it was sent to is refused (browsers send `Origin` on
  every cross-site request and every POST; the status page's own requests are same-site);
- while the proxy listens on loopback or on a Unix socket, a request naming any host but a loopback one
  (`localhost`, `*.localhost`, 127.0.0.0/8, ::1) is refused: a rebinding page names its own site.

Clients that are not browsers (the SDKs, curl, coding agents) send no `Origin` and name the host they connect
to. With HOST=0.0.0.0 (containers, a Service) the host names a deployment answers to are not known here: only
the `Origin` rule applies.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from argoproxy.errors import ProxyError

if TYPE_CHECKING:
    from argoproxy.config.settings import Settings
    from argoproxy.edge.http_objects import Request

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


class WebPages:
    def __init__(self, settings: Settings) -> None:
        self.loopback_only = bool(settings.socket) or _loopback(settings.host)

    def check(self, req: Request) -> None:
        host = req.host.strip().lower()
        if self.loopback_only and host and not _loopback(_without_port(host)):
            raise ProxyError(403, f"The proxy listens on this machine only and answers to loopback host names; "
                                  f"this request names `{host[:100]}` (a web page's, by DNS rebinding?).",
                             code="host_not_allowed")
        origin = req.headers.get("Origin")
        if origin is not None and not _same_site(origin.strip().lower(), host):
            raise ProxyError(403, f"Requests from web pages of other sites are refused (Origin `{origin[:100]}`).",
                             code="origin_not_allowed")


def _same_site(origin: str, host: str) -> bool:
    """Whether `origin` (scheme://host[:port]) is the site the request was sent to (its Host header)."""
    scheme, sep, netloc = origin.partition("://")
    if not sep or not host:
        return False  # `null` (a sandboxed frame, a file), or no Host to compare with
    default = _DEFAULT_PORTS.get(scheme, "")
    return netloc == host or netloc + default == host or netloc == host + default


def _without_port(host: str) -> str:
    if host.startswith("["):  # [::1]:5000
        return host[1:host.find("]")] if "]" in host else host
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def _loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # browsers resolve these to loopback themselves
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
