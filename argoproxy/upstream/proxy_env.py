"""What the environment says about reaching a host, decided as requests (and curl) decide it.

Proxies: `http_proxy`, `https_proxy`, `all_proxy` (lower case first, then upper case), skipped for hosts
in `no_proxy` (host names, domain suffixes, host:port, IPv4 CIDR ranges, `*`); requests' own functions make
the decision, so the proxy and `/health` agree with requests and curl. Certificates: `REQUESTS_CA_BUNDLE`,
then `CURL_CA_BUNDLE`, as requests reads them. The environment is read when a host is first seen; callers
cache the answer per scheme://host:port (`ProxyChoice`), so the hot path never looks it up again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests.utils

_VARIABLES = ("{scheme}_proxy", "{SCHEME}_PROXY", "all_proxy", "ALL_PROXY")


@dataclass(frozen=True)
class ProxyChoice:
    """The proxy a host is reached through ("" = directly), and how to name it to a user."""

    url: str = ""
    variable: str = ""  # the environment variable that set it, e.g. HTTPS_PROXY

    @property
    def shown(self) -> str:
        """"proxy.example.com:3128 (HTTPS_PROXY)": never the proxy's credentials."""
        parts = urlsplit(self.url if "://" in self.url else "http://" + self.url)
        port = parts.port or (443 if parts.scheme == "https" else 1080 if parts.scheme.startswith("socks") else 80)
        where = f"{parts.hostname}:{port}"
        return f"{where} ({self.variable})" if self.variable else where


DIRECT = ProxyChoice()


def proxy_for(url: str) -> ProxyChoice:
    """The proxy requests would use for this URL with the current environment (NO_PROXY honoured)."""
    proxies = requests.utils.get_environ_proxies(url)
    proxy = requests.utils.select_proxy(url, proxies)
    if not proxy:
        return DIRECT
    return ProxyChoice(proxy, _variable_for(url, proxy))


def _variable_for(url: str, proxy: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    for template in _VARIABLES:
        name = template.format(scheme=scheme, SCHEME=scheme.upper())
        if os.environ.get(name, "").strip() == proxy.strip():
            return name
    return ""


def ca_bundle() -> str | bool:
    """The certificate bundle requests would verify with: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else its own."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

