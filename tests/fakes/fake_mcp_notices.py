"""A small MCP server that sends what a server sends unasked, for the tests of the streams clients listen on
(tests/integration/test_mcp_listen.py).

    python fake_mcp_notices.py         stdio: a plain line loop
    python fake_mcp_notices.py PORT    Streamable HTTP on 127.0.0.1:PORT/mcp: the official SDK's MCPServer

Tools: announce {text}: a log message (info, logger "fake") saying `text`, then its tools changed; touch {uri}:
the resource `uri` changed. Resource: notes://today. At 2025-11-25 over HTTP the log message rides the call's
own stream and the other notifications the session's GET stream (the SDK's choice for notifications tied to no
request). Over stdio it also serves resources/subscribe, unsubscribe and logging/setLevel (its log messages below
the level asked are not sent), and says each on stderr (`fake_mcp_notices: subscribe notes://today`), where the
tests read it in the proxy's log. (The SDK's MCPServer over stdio is not used: it waits for ever on its own
writer when it sends a notification tied to no request.)"""

import json
import sys

LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
TOOLS = [{"name": "announce", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
         {"name": "touch", "inputSchema": {"type": "object", "properties": {"uri": {"type": "string"}}}}]
state = {"level": "debug"}


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def notify(method: str, params: dict | None = None) -> None:
    send({"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})})


def called(name: str, args: dict) -> str:
    if name == "announce":
        if LEVELS.index(state["level"]) <= LEVELS.index("info"):
            notify("notifications/message", {"level": "info", "logger": "fake", "data": args.get("text", "")})
        notify("notifications/tools/list_changed")
        return "announced"
    notify("notifications/resources/updated", {"uri": args.get("uri", "")})
    return "touched"


def answer(method: str, params: dict) -> dict:
    if method == "initialize":
        return {"protocolVersion": "2025-11-25", "serverInfo": {"name": "notices", "version": "1"},
                "capabilities": {"tools": {"listChanged": True}, "resources": {"subscribe": True}, "logging": {}}}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        return {"content": [{"type": "text", "text": called(params.get("name", ""), params.get("arguments") or {})}]}
    if method == "resources/list":
        return {"resources": [{"uri": "notes://today", "name": "today"}]}
    if method == "resources/read":
        return {"contents": [{"uri": params.get("uri"), "text": "nothing yet"}]}
    if method in ("resources/subscribe", "resources/unsubscribe"):
        print(f"fake_mcp_notices: {method.partition('/')[2]} {params.get('uri')}", file=sys.stderr, flush=True)
        return {}
    if method == "logging/setLevel":
        state["level"] = params.get("level", "debug")
        print(f"fake_mcp_notices: level {state['level']}", file=sys.stderr, flush=True)
        return {}
    return {}


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        if "id" in message and "method" in message:
            send({"jsonrpc": "2.0", "id": message["id"],
                  "result": answer(message["method"], message.get("params") or {})})


def http(port: int) -> None:
    import warnings

    from mcp.server.mcpserver import Context, MCPServer  # annotations evaluated here: no __future__ import above

    warnings.simplefilter("ignore")  # the logging capability's deprecation at 2026-07-28: not these tests' concern
    server = MCPServer("notices")

    @server.tool()
    async def announce(text: str, ctx: Context) -> str:
        await ctx.info(text, logger_name="fake")
        await ctx.session.send_tool_list_changed()
        return "announced"

    @server.tool()
    async def touch(uri: str, ctx: Context) -> str:
        await ctx.session.send_resource_updated(uri)
        return "touched"

    @server.resource("notes://today")
    def today() -> str:
        return "nothing yet"

    server.run("streamable-http", host="127.0.0.1", port=port)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        http(int(sys.argv[1]))
    else:
        main()
