"""A small stdio MCP server, strict about the protocol, for the gateway's tests (no registry needed).

Speaks 2025-11-25 over stdio: one JSON-RPC message per line. Strict: anything but `initialize` (and `ping`)
before the handshake, a request id reused while in flight, a message that is not JSON-RPC 2.0 or a batch is an
error, and it writes the error to stderr too, where the tests read it in the proxy's log.

Tools: echo {text}, add {a, b}, slow {seconds}, crash (exits at once), whoami (its pid, HOME and environment's
variable names), garbage (lines that are no message and answers to nothing asked, then its answer), flood {count}
(notifications, then its answer), fails (a result with isError), progress {steps} (progress notifications to the request's token),
drip {seconds, every} (a progress notification every `every` seconds for `seconds`, then its answer), held
{group, seconds} (answers, after `seconds`, the most calls of its `group` it saw at once), tally (how many calls
of each tool and `group` argument it has run: `echo:bots`), and one with a 70-character name. Prompts: greet {name}. Resources: fake://readme, and the
template fake://notes/{id}. Requests are answered on threads, so a slow call does not hold the others.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

LONG_TOOL = "a_tool_whose_name_is_long_enough_to_pass_the_limit_once_it_is_prefixed"
TOOLS = [
    {"name": "echo", "description": "Say it back.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    {"name": "add", "description": "Add two numbers.",
     "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}},
    {"name": "slow", "description": "Answer after a while.",
     "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}}},
    {"name": "crash", "description": "Exit at once.", "inputSchema": {"type": "object"}},
    {"name": "whoami", "description": "pid, HOME and the environment's names.", "inputSchema": {"type": "object"}},
    {"name": LONG_TOOL, "description": "A long name.", "inputSchema": {"type": "object"}},
    {"name": "garbage", "description": "Write lines that are no message, answer nothing asked, then answer.",
     "inputSchema": {"type": "object"}},
    {"name": "progress", "description": "Report {steps} steps of progress (to the request's progressToken), then answer.",
     "inputSchema": {"type": "object", "properties": {"steps": {"type": "integer"}}}},
    {"name": "flood", "description": "Send {count} notifications, then answer.",
     "inputSchema": {"type": "object", "properties": {"count": {"type": "integer"}}}},
    {"name": "fails", "description": "A tool that fails: a result with isError.", "inputSchema": {"type": "object"}},
    {"name": "drip", "description": "Report progress every {every} seconds for {seconds}, then answer.",
     "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}, "every": {"type": "number"}}}},
    {"name": "held", "description": "Answer after {seconds} the most calls of {group} seen at once.",
     "inputSchema": {"type": "object", "properties": {"group": {"type": "string"}, "seconds": {"type": "number"}}}},
    {"name": "tally", "description": "The calls run, by tool and group argument.", "inputSchema": {"type": "object"}},
]
write_lock = threading.Lock()
in_flight: set = set()
state = {"initialized": False}
counts_lock = threading.Lock()
tally: dict = {}  # "tool:group" -> calls run
at_once: dict = {}  # group -> (held calls running now, the most seen at once)


def send(message: dict) -> None:
    with write_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def fail(id, code: int, message: str) -> None:
    print(f"fake_mcp_server: refused: {message}", file=sys.stderr, flush=True)
    send({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})


def text(value: str) -> dict:
    return {"content": [{"type": "text", "text": value}], "isError": False}


def call_tool(name: str, args: dict, meta: dict | None = None) -> dict:
    with counts_lock:
        counted = f"{name}:{args.get('group', '')}"
        tally[counted] = tally.get(counted, 0) + 1
    if name == "echo":
        return text(str(args.get("text", "")))
    if name == "add":
        return text(str(args.get("a", 0) + args.get("b", 0)))
    if name == "slow":
        print(f"fake_mcp_server: slow call for {args.get('seconds', 1)} s", file=sys.stderr, flush=True)
        time.sleep(float(args.get("seconds", 1)))
        return text("slept")
    if name == "crash":
        os._exit(3)
    if name == "fails":
        return {"content": [{"type": "text", "text": "it failed"}], "isError": True}
    if name == "whoami":
        return text(json.dumps({"pid": os.getpid(), "home": os.environ.get("HOME"), "env": sorted(os.environ)}))
    if name == LONG_TOOL:
        return text("long")
    if name == "garbage":
        with write_lock:
            sys.stdout.write("this is not JSON\n[1, 2]\n" + json.dumps({"jsonrpc": "2.0", "id": 987654, "result": {}})
                             + "\n" + json.dumps({"jsonrpc": "2.0", "id": "nobody's", "result": {}}) + "\n")
            sys.stdout.flush()
        return text("after garbage")
    if name == "progress":
        token = (meta or {}).get("progressToken")
        steps = int(args.get("steps", 3))
        for n in range(steps):
            if token is not None:
                send({"jsonrpc": "2.0", "method": "notifications/progress",
                      "params": {"progressToken": token, "progress": n + 1, "total": steps}})
        return text(f"{steps} steps, token {'given' if token is not None else 'none'}")
    if name == "drip":
        token, every = (meta or {}).get("progressToken"), float(args.get("every", 0.1))
        print("fake_mcp_server: dripping", file=sys.stderr, flush=True)
        for n in range(max(1, int(float(args.get("seconds", 1)) / every))):
            if token is not None:
                send({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token,
                                                                                     "progress": n + 1}})
            time.sleep(every)
        return text("dripped")
    if name == "held":
        group = str(args.get("group", ""))
        with counts_lock:
            now, most = at_once.get(group, (0, 0))
            at_once[group] = (now + 1, max(most, now + 1))
        time.sleep(float(args.get("seconds", 0.1)))
        with counts_lock:
            now, most = at_once[group]
            at_once[group] = (now - 1, most)
        return text(json.dumps({"most_at_once": most}))
    if name == "tally":
        with counts_lock:
            return text(json.dumps(tally))
    if name == "flood":
        for n in range(int(args.get("count", 1000))):
            send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": n}})
        return text("after flood")
    raise KeyError(name)


def answer(message: dict) -> dict:
    method, params = message["method"], message.get("params") or {}
    if method == "initialize":
        state["initialized"] = True
        return {"protocolVersion": "2025-11-25", "serverInfo": {"name": "fake-mcp", "version": "1.0"},
                "capabilities": {"tools": {"listChanged": True}, "prompts": {}, "resources": {}}}
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        return call_tool(params["name"], params.get("arguments") or {}, params.get("_meta"))
    if method == "prompts/list":
        return {"prompts": [{"name": "greet", "arguments": [{"name": "name", "required": True}]}]}
    if method == "prompts/get":
        return {"messages": [{"role": "user", "content": {"type": "text",
                                                          "text": f"Hello, {params['arguments']['name']}!"}}]}
    if method == "resources/list":
        return {"resources": [{"uri": "fake://readme", "name": "readme", "mimeType": "text/plain"}]}
    if method == "resources/templates/list":
        return {"resourceTemplates": [{"uriTemplate": "fake://notes/{id}", "name": "note"}]}
    if method == "resources/read":
        return {"contents": [{"uri": params["uri"], "mimeType": "text/plain", "text": f"read {params['uri']}"}]}
    raise LookupError(method)


def serve(message: dict) -> None:
    id = message["id"]
    try:
        send({"jsonrpc": "2.0", "id": id, "result": answer(message)})
    except KeyError as exc:  # (a LookupError too: caught first)
        fail(id, -32602, f"Unknown tool or argument: {exc}")
    except LookupError:
        fail(id, -32601, f"Method not found: {message['method']}")
    finally:
        in_flight.discard(id)


def main() -> None:
    print("fake_mcp_server: started", file=sys.stderr, flush=True)
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            fail(None, -32700, "Parse error")
            continue
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            fail(None, -32600, "Invalid Request")
            continue
        if "method" not in message:
            continue  # a response to nothing we asked: ignored
        if "id" not in message:  # notifications: initialized, cancelled (said on stderr: the proxy's log)
            if message["method"] == "notifications/cancelled":
                print(f"fake_mcp_server: cancelled {(message.get('params') or {}).get('requestId')}", file=sys.stderr,
                      flush=True)
            continue
        id = message["id"]
        if id in in_flight:
            fail(id, -32600, f"Request id {id!r} is already in flight")
            continue
        if not state["initialized"] and message["method"] not in ("initialize", "ping"):
            fail(id, -32600, "Not initialized")
            continue
        in_flight.add(id)
        threading.Thread(target=serve, args=(message,), daemon=True).start()


if __name__ == "__main__":
    main()
