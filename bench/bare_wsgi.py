"""Second calibration target: the same forwarder as bare_forwarder.py written as plain WSGI over urllib3.

Issue 2 quotes 0.45-0.65 ms of CPU per request for such a forwarder on its machine; with bare_forwarder.py it
tells how fast this machine is at the moment of the run. Not the product.
Run by bench/run.py as ``gunicorn -k <class> -w 2 bare_wsgi:app`` with BARE_TARGET=http://127.0.0.1:PORT.
"""

from __future__ import annotations

import os

import urllib3

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}
TARGET = os.environ["BARE_TARGET"].rstrip("/")
pool = urllib3.PoolManager(maxsize=1024)


def app(environ, start_response):
    headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
               if k.startswith("HTTP_") and k[5:].replace("_", "-").lower() not in HOP}
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else None
    query = environ.get("QUERY_STRING")
    url = TARGET + environ.get("PATH_INFO", "/") + (f"?{query}" if query else "")
    upstream = pool.request(environ["REQUEST_METHOD"], url, body=body, headers=headers, preload_content=False,
                            decode_content=False, redirect=False, retries=False, timeout=600)
    out = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP]
    start_response(f"{upstream.status} {upstream.reason or ''}", out)

    def body_iter():
        try:
            yield from upstream.stream(65536, decode_content=False)
        finally:
            upstream.release_conn()

    return body_iter()
