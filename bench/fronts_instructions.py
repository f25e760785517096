"""Instructions per request of one front door, counted by valgrind's callgrind (which the machine's load does not
move), for docs/performance.md, "The last run" (the front doors against the chat path).

    valgrind --tool=callgrind --zero-before=os_getpgid --dump-before=os_getppid --callgrind-out-file=OUT \
        .venv/bin/python bench/fronts_instructions.py DOOR MODE N

DOOR: chat or responses (or messages, google); MODE: whole or streamed (a 20-chunk stream, no gaps; --chunks).
The proxy's WSGI app runs in this process under gevent (default settings, so a Responses answer is stored), the
fake upstream (bench/upstream.py) in its own process, which valgrind does not follow. WARM_UP requests are sent,
then os.getpgid() is called (callgrind zeroes its counts there), then N requests one after the other, then
os.getppid() (callgrind writes what it counted since: OUT.1): OUT.1's total over N is the instructions per
request, start-up and the first requests' one-time work left out. Gunicorn's own share (parsing the request, the
socket) is not counted. `--store false` sends the Responses door's requests with `store: false`. The worker is
tuned as Gunicorn's post_worker_init tunes it with FAST_PATH on, the default (argoproxy.fastpath: its patches,
the app's objects frozen out of the garbage collector's sight, young collections every 10,000 allocations);
`--untuned` leaves Python's defaults, which count each allocation-heavy request's collections a few times over.
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
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import FRONT_REQUESTS  # noqa: E402
from targets import HOST, Upstream  # noqa: E402

CHUNKS = 20
WARM_UP = 20
SETTLE = 1.0  # seconds for the stored responses' writes behind their answers (slowed down by valgrind)


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
    ap.add_argument("--chunks", type=int, default=CHUNKS, help="a stream's chunks (default %(default)s)")
    ap.add_argument("--untuned", action="store_true", help="no fast path, Python's own collector settings")
    ap.add_argument("--flush-delay", type=float, help="seconds a batch of stored responses waits for more "
                    "(write_behind.FLUSH_DELAY; valgrind runs some 50 times slower, so the shipped 4 ms "
                    "gathers fewer answers a batch than at full speed)")
    args = ap.parse_args()
    upstream = Upstream.start()
    try:
        for key in [k for k in os.environ if k.startswith(("OPENAI_", "TARGET_", "RESPONSES_"))]:
            del os.environ[key]
        os.environ.update(HOME=tempfile.mkdtemp(prefix="cot_proxy_instr_"),
                          TARGET_BASE_URL=f"http://{HOST}:{upstream.port}/v1/")
        from argoproxy import fastpath
        if not args.untuned:
            fastpath.install()
        import cot_proxy
        app = cot_proxy.app
        if args.flush_delay is not None:
            from argoproxy.state import write_behind
            write_behind.FLUSH_DELAY = args.flush_delay
        if not args.untuned:
            fastpath.tune_worker()
        _, path, make = next(f for f in FRONT_REQUESTS if f[0] == args.door)
        stream = args.mode == "streamed"
        body = make(stream, args.chunks)
        if args.door == "responses" and args.store == "false":
            body["store"] = False
        data, where = json.dumps(body).encode(), path(stream, args.chunks)
        statuses: list[str] = []

        def send(count: int) -> None:
            for _ in range(count):
                out = app(environ(where, data), lambda status, headers, exc=None: statuses.append(status))
                size = sum(len(piece) for piece in out)
                if hasattr(out, "close"):
                    out.close()
                if not statuses[-1].startswith("200") or not size:
                    raise SystemExit(f"answer {statuses[-1]}, {size} bytes")

        send(WARM_UP)
        time.sleep(SETTLE)  # gevent's: the stored responses of the warm-up are written before the count starts
        os.getpgid(0)  # callgrind --zero-before=os_getpgid
        send(args.count)
        time.sleep(SETTLE)  # and those counted, before it ends
        os.getppid()  # callgrind --dump-before=os_getppid
    finally:
        upstream.stop()
    print(f"{args.door} {args.mode}: {args.count} requests, {statuses[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
