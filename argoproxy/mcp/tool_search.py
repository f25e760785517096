"""Tool catalogs that fit (`MCP_TOOL_SEARCH`, docs/mcp.md): when the tools a key may call at `/mcp` would take more
than `MCP_TOOL_SEARCH_SHARE` of `MCP_TOOL_SEARCH_WINDOW` tokens, or number more than `MCP_TOOL_SEARCH_TOOLS` (auto),
or always (on), tools/list offers one tool of the proxy's, `mcp_tool_search`, and the tools found by it in this
session, and `mcp_tool_call`, which calls a tool found by its name for a client that lists its tools only once
(a search that finds new ones tells the session's GET stream `notifications/tools/list_changed`, through
the supervisor: notices.py); every tool the key's globs allow stays callable by its prefixed name, found or not.

The search ranks the key's own listing (already narrowed by its globs: a tool outside them is never found) with
BM25 (rank_bm25, Okapi) over each tool's name, description and parameter names. The window is a setting: at
`/mcp` no request names a model, and the smallest model a deployment serves is the one to fit."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from argoproxy.mcp import jsonrpc

SEARCH_TOOL = "mcp_tool_search"  # no `__`: never a server's prefixed tool
CALL_TOOL = "mcp_tool_call"  # a found tool called through it, for clients that list their tools only once
DEFAULT_LIMIT = 5
MAX_LIMIT = 20
MAX_QUERY = 1000  # characters of a query read
MAX_FOUND = 64  # tools one session's listing keeps, its latest finds
MAX_SESSIONS = 10_000  # sessions a worker remembers finds for, least recently used out
WORD = re.compile(r"[A-Za-z][a-z]*|[0-9]+")  # camelCase, snake_case and kebab-case split into words

DEFINITION: dict[str, Any] = {
    "name": SEARCH_TOOL,
    "description": "Search the tools this server offers and get the best matches' names, descriptions and input "
                   "schemas. Call a tool found by its name as given. Use it before any task that needs a tool.",
    "inputSchema": {"type": "object", "properties": {
        "query": {"type": "string", "description": "What the tool should do, in a few words."},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT,
                  "description": "How many tools to return at most."}},
        "required": ["query"]},
}

CALLER: dict[str, Any] = {
    "name": CALL_TOOL,
    "description": "Call a tool that mcp_tool_search found, by its name, with its arguments.",
    "inputSchema": {"type": "object", "properties": {
        "name": {"type": "string", "description": "The tool's name, as mcp_tool_search gave it."},
        "arguments": {"type": "object", "description": "The tool's arguments, as its input schema says."}},
        "required": ["name"]},
}


def unwrapped(raw: dict[str, Any]) -> dict[str, Any] | None:
    """A call of CALL_TOOL as the call of the tool it names (the key's globs and limits then hold it as any
    call); None when it names no tool, or gives its arguments as anything but an object (never called with {}
    in their place)."""
    params: dict[str, Any] = raw.get("params") or {}
    given = params.get("arguments")
    arguments: dict[str, Any] = given if isinstance(given, dict) else {}
    name = arguments.get("name")
    if not isinstance(name, str) or name in (SEARCH_TOOL, CALL_TOOL):
        return None
    inner = arguments.get("arguments")
    if inner is not None and not isinstance(inner, dict):
        return None
    return {**raw, "params": {**params, "name": name, "arguments": inner or {}}}


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def tool_words(tool: dict[str, Any]) -> list[str]:
    """What a tool is found by: its name, its description and its parameters' names."""
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    params = " ".join(str(p) for p in properties) if isinstance(properties, dict) else ""
    return words(f"{tool.get('name', '')} {tool.get('description') or ''} {params}")


def ranked(tools: list[dict[str, Any]], query: str, limit: int) -> list[dict[str, Any]]:
    """The tools that match the query best, best first; none that shares no word with it."""
    asked = words(query[:MAX_QUERY])
    if not tools or not asked:
        return []
    from rank_bm25 import BM25Okapi  # imported on the first search: a proxy that never searches does not load numpy
    corpus = [tool_words(t) or ["-"] for t in tools]
    scores = BM25Okapi(corpus).get_scores(asked)
    shared = [i for i, doc in enumerate(corpus) if set(asked) & set(doc)]
    order = sorted(shared, key=lambda i: (-scores[i], i))
    return [tools[i] for i in order[:limit]]


@dataclass
class ToolSearch:
    """The settings, and what this worker remembers each session found (its later listings show those)."""
    mode: str = "off"  # auto, on, off
    share: float = 0.1
    most_tools: int = 40
    window: int = 32768
    count: Callable[[str], int] = len  # the meter's tokenizer (serve/mcp_mount.py wires it)
    found: OrderedDict[tuple[str, str], list[str]] = field(default_factory=OrderedDict)

    def applies(self, tools: list[dict[str, Any]]) -> bool:
        if self.mode != "auto":
            return self.mode == "on"
        if len(tools) > self.most_tools:
            return True
        return self.count(json.dumps(tools, separators=(",", ":"))) > self.share * self.window

    def listing(self, answer: dict[str, Any], owner: str, session: str) -> dict[str, Any]:
        """A tools/list answer as the key gets it: the search tool and this session's finds, when search applies."""
        result = answer.get("result")
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(tools, list) or not self.applies(tools):
            return answer
        kept = set(self.found.get((owner, session), ()))
        shown = [DEFINITION, CALLER, *(t for t in tools if t.get("name") in kept)]
        return {**answer, "result": {**result, "tools": shown}}

    def answer(self, id: jsonrpc.RequestId, arguments: Any, tools: list[dict[str, Any]]) -> dict[str, Any]:
        """The search tool's result: the matches as JSON text and as structured content (`remember` keeps them)."""
        arguments = arguments if isinstance(arguments, dict) else {}
        query, limit = arguments.get("query"), arguments.get("limit", DEFAULT_LIMIT)
        if not isinstance(query, str) or not query.strip():
            return tool_error(id, "query must be a non-empty string.")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            return tool_error(id, f"limit must be an integer from 1 to {MAX_LIMIT}.")
        matches = [{"name": t.get("name"), "description": t.get("description", ""),
                    "inputSchema": t.get("inputSchema", {"type": "object"})} for t in ranked(tools, query, limit)]
        found = {"tools": matches}
        return jsonrpc.result(id, {"content": [{"type": "text", "text": json.dumps(found)}],
                                   "structuredContent": found, "isError": False})

    def remember(self, owner: str, session: str, answer: dict[str, Any]) -> bool:
        """The search's finds kept for the session's listings; whether any is new there (its listing changed)."""
        result = answer.get("result") or {}
        names = [str(t.get("name")) for t in (result.get("structuredContent") or {}).get("tools", ())]
        if not session or not names:  # a 2026-07-28 client has no session: its listing shows the search alone
            return False
        key = (owner, session)
        before = self.found.pop(key, [])
        kept = [n for n in before if n not in names] + names
        self.found[key] = kept[-MAX_FOUND:]
        while len(self.found) > MAX_SESSIONS:
            self.found.popitem(last=False)
        return not set(names) <= set(before)


def tool_error(id: jsonrpc.RequestId, message: str) -> dict[str, Any]:
    return jsonrpc.result(id, {"content": [{"type": "text", "text": message}], "isError": True})
