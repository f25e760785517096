"""`cot-proxy mcp list [config.yaml] [flags]`: the running proxy's MCP servers (docs/mcp.md), each with its state
as the proxy's supervisor knows it and its tools under their prefixed names.

The proxy is found and asked as `cot-proxy agents` asks it (argoproxy/launch/run.py): its address from the same
settings, its listener proven to be the user's before the key goes to it, and the key run would use (COT_PROXY_KEY,
else the proxy's own key this user can read). A team key sees the tools its globs allow.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable

from argoproxy.launch.mcp_gateway import KeyRefused, NotServed, Server, endpoint, served
from argoproxy.launch.proxy import Refused, address, base_url, listening, prove
from argoproxy.launch.environments import USER_KEY_ENV
from argoproxy.launch.run import FlagParser, own_key, prepare, scratch_base, take_option, typed

STATES = {"ready": "running"}  # the supervisor's words as shown (starting, restarting, stopped stay)


def usage(prog: str) -> str:
    return f"usage: {prog} mcp list [config.yaml] [flags] [--env-file FILE]"


HELP = """

mcp list: the MCP servers the running proxy serves at /mcp, each with its state (running, starting,
restarting, stopped) and its tools under the names clients call them by (git__status). The proxy is the one
these settings name; its key is COT_PROXY_KEY, else the proxy's own key when this user can read it."""


def main(argv: list[str], prog: str, parse_flags: FlagParser) -> int:
    def say(line: str) -> None:
        print(f"{prog} mcp: {line}", file=sys.stderr, flush=True)
    if not argv or argv[0] in ("-h", "--help") or argv[0] != "list" or {"-h", "--help"} & set(argv[1:]):
        asked = bool(argv) and argv[0] in ("-h", "--help", "list")
        print(usage(prog) + (HELP if asked else ""), file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    try:
        return show(argv[1:], prog, parse_flags, say)
    except Refused as exc:
        say(str(exc))
        return 2


def show(argv: list[str], prog: str, parse_flags: FlagParser, say: Callable[[str], None]) -> int:
    env_file, argv = take_option(argv, "--env-file")
    settings, _ = prepare(argv, env_file, parse_flags, say)
    host, port = address(settings)
    url = base_url(host, port)
    if not listening(host, port):
        raise Refused(f"no proxy listens on {url}: start it (`{typed(prog)}`), or name its config or --port")
    with tempfile.TemporaryDirectory(prefix="cot-proxy-mcp-", dir=scratch_base()) as made:
        prove(host, port, Path(made))
    key = own_key(settings)
    if key is None:
        raise Refused(f"the proxy at {url} asks for a key and none of its keys is readable here: set {USER_KEY_ENV}")
    try:
        servers = served(url, key)
    except KeyRefused:
        raise Refused(f"the proxy at {url} refused the key: set {USER_KEY_ENV} to a key it accepts") from None
    except NotServed:
        raise Refused(f"the proxy at {url} serves no MCP servers: name them under mcp_servers in its config "
                      "(docs/mcp.md)") from None
    print(f"MCP servers at {endpoint(url)}:")
    for server in servers:
        print(line(server))
        for tool in server.tools:
            print(f"  {tool}")
    return 0


def line(server: Server) -> str:
    """`git: running, 12 tools` (or why it is not running, and how often it was started again)."""
    state = STATES.get(server.state, server.state)
    said = [f"{state} ({server.error})" if server.error and state != "running" else state]
    if server.processes is not None:  # per_session: a process per client session
        said.append(f"{server.processes} session process{'es' if server.processes != 1 else ''}")
    if server.restarts:
        said.append(f"restarted {server.restarts} time{'s' if server.restarts != 1 else ''}")
    said.append(f"{len(server.tools)} tool{'s' if len(server.tools) != 1 else ''}")
    return f"{server.name}: {', '.join(said)}"

