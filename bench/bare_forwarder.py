"""Calibration target for the latency section: the leanest Flask + requests.Session forwarder.

Not the product. It shows what the framework pair costs on this machine under the same harness (issue 2 quotes
1.1-1.3 ms of CPU per request for such a forwarder), so that the proxy's figures can be read against it.
Run by bench/run.py as ``gunicorn -k <class> -w 2 bare_forwarder:app`` with BARE_TARGET=http://127.0.0.1:PORT.
"""

from __future__ import annotations

import os

import requests
from flask import Flask, Response, request

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}
TARGET = os.environ["BARE_TARGET"].rstrip("/")
session = requests.Session()
app = Flask(__name__)


@app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def forward(path: str) -> Response:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    upstream = session.request(request.method, f"{TARGET}/{path}", params=request.args, headers=headers,
                               data=request.get_data(), stream=True, timeout=600)

    def body():
        try:
            yield from upstream.iter_content(chunk_size=None)
        finally:
            upstream.close()

    out = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP and k.lower() != "content-encoding"]
    return Response(body(), status=upstream.status_code, headers=out)
