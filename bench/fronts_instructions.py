"""Instructions per request of one front door, counted by valgrind's callgrind (which the machine's load does not
move), for docs/performance.md "The Responses door's cost".

    valgrind --tool=callgrind --callgrind-out-file=OUT .venv/bin/python bench/fronts_instructions.py DOOR MODE N

DOOR: chat or responses (or messages, google); MODE: whole or streamed (a 20-chunk stream, no gaps). The proxy's
WSGI app runs in this process under gevent (default settings, so a Responses answer is stored), the fake upstream
(bench/upstream.py) in its own process, which valgrind does not follow. N requests are sent one after the other;
run it twice (N=20 and N=120, say) and divide the difference of the two totals by the difference of the counts:
start-up and the first requests' one-time work cancel. Gunicorn's own share (parsing the request, the socket) is
not counted. `--store false` sends the Responses door's requests with `store: false`.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import FRONT_REQUESTS  # noqa: E402
from targets import HOST, Upstream  # noqa: E402

CHUNKS = 20


def environ(path: str, body: bytes) -> dict[str, object]:
    target, _, query = path.partition("?")
    return {"REQUEST_METHOD": "POST", "PATH_INFO": target, "QUERY_STRING": query, "RAW_URI": path,
            "SERVER_NAME": HOST, "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": HOST,
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "HTTP_HOST": f"{HOST}:8000",
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("door")
    ap.add_argument("mode", choices=("whole", "streamed"))
    ap.add_argument("count", type=int)
    ap.add_argument("--store", choices=("true", "false"), default="true")
    args = ap.parse_args()
    upstream = Upstream.start()
    try:
        for key in [k for k in os.environ if k.startswith(("OPENAI_", "TARGET_", "RESPONSES_"))]:
            del os.environ[key]
        os.environ.update(HOME=tempfile.mkdtemp(prefix="cot_proxy_instr_"),
                          TARGET_BASE_URL=f"http://{HOST}:{upstream.port}/v1/")
        import cot_proxy
        app = cot_proxy.app
        _, path, make = next(f for f in FRONT_REQUESTS if f[0] == args.door)
        stream = args.mode == "streamed"
        body = make(stream, CHUNKS)
        if args.door == "responses" and args.store == "false":
            body["store"] = False
        data, where = json.dumps(body).encode(), path(stream, CHUNKS)
        statuses: list[str] = []
        for _ in range(args.count):
            out = app(environ(where, data), lambda status, headers, exc=None: statuses.append(status))
            size = sum(len(piece) for piece in out)
            if hasattr(out, "close"):
                out.close()
            if not statuses[-1].startswith("200") or not size:
                raise SystemExit(f"answer {statuses[-1]}, {size} bytes")
    finally:
        upstream.stop()
    print(f"{args.door} {args.mode}: {args.count} requests, {statuses[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
