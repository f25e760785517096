"""Every server's tools, prompts and resources as one server's (`/mcp`), or one server's as it has them
(`/mcp/<server>`): the listings gathered and renamed (names.py), a call taken back to its server under its own
name, and the key's tool globs applied to both (a tool outside them is neither listed nor called: the call ends
here, and nothing reaches the server).

A key narrowed by tool globs reaches a server's prompts, resources and completions only where its globs allow at
least one of that server's tools (`reaches`; its notifications likewise, listening.py). Every method a client's
request carries to a server is held so, at both paths:
- tools/call: its tool by the globs; tools/list: the tools they allow;
- prompts/list, resources/list, resources/templates/list: only the servers the key reaches (none: an empty list);
- prompts/get, resources/read, resources/subscribe, resources/unsubscribe: the server of the prompt or URI;
- completion/complete and logging/setLevel at /mcp/<server>: that server; logging/setLevel at /mcp: the servers
  the key reaches alone (listening.py);
- any other method at /mcp/<server> (not known to be safe: a server's own, a later revision's) is refused.
ping, initialize and cot_proxy/servers are the proxy's own (the last shows only the servers the key reaches);
a client's notifications reach no server but its own calls' cancellation."""

from __future__ import annotations

import fnmatch
import logging
from typing import Any, Callable

from argoproxy.mcp import jsonrpc
from argoproxy.mcp.names import MAX_NAME, Names, prefixed, proxied_uri, server_uri, split_name

log = logging.getLogger("cot_proxy")

MAX_PAGES = 50  # pages read of one server's listing for the one `/mcp` answers
Call = Callable[[str, dict[str, Any]], dict[str, Any]]  # (server, message) -> the server's answer

# list method -> (the answer's member, the name or URI field, how it is renamed)
LISTINGS = {"tools/list": ("tools", "name"), "prompts/list": ("prompts", "name"),
            "resources/list": ("resources", "uri"), "resources/templates/list": ("resourceTemplates", "uriTemplate")}
# The methods passed to one server alone (/mcp/<server>) for a key narrowed by tool globs where it reaches that
# server; tools/* and the listings are held apart (above); any other method is refused.
REACHED = frozenset({"prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe",
                     "completion/complete", "logging/setLevel"})
# The requests the proxy answers itself, which reach no server as they are (subscriptions/listen's stream hears the
# servers the key reaches: listening.py).
OWN = frozenset({"initialize", "ping", "server/discover", "subscriptions/listen", "cot_proxy/servers"})


Globs = tuple[tuple[str, ...], ...]  # groups (the key's, its team's): a tool must match one glob of each


def tool_allowed(shown: str, globs: Globs) -> bool:
    """The key's and its team's tool globs, matched against the prefixed name (`git__status`); none: every tool."""
    return all(any(fnmatch.fnmatchcase(shown, glob) for glob in group) for group in globs)


class Catalog:
    def __init__(self, servers: tuple[str, ...], call: Call, personal: frozenset[str] = frozenset()) -> None:
        self.servers = servers
        self.call = call
        self.personal = personal  # per-person servers: a listing they refuse is the caller's state, not a failure
        self.reached: dict[str, bool] = {}  # this request's answers of `reaches`

    def reaches(self, server: str, globs: Globs) -> bool:
        """Whether the key reaches the server's prompts, resources, completions and notifications: every server
        without globs; with them, one where they allow at least one of its tools (its listing read once a request)."""
        if not globs:
            return True
        if server not in self.reached:
            self.reached[server] = server in self.servers and any(
                tool_allowed(prefixed(server, name), globs) for name in self.tool_names(server))
        return self.reached[server]

    # ------------------------------------------------------------ one server alone (/mcp/<server>)
    def alone(self, server: str, message: dict[str, Any], globs: Globs) -> dict[str, Any]:
        method = message["method"]
        if method == "tools/call":
            routed = self.target(server, message, globs)
            return routed if isinstance(routed, dict) else self.call(*routed)
        refused = self.held(server, message, globs) if method != "tools/list" else None
        if refused is not None:
            return refused
        answer = self.call(server, message)
        if method == "tools/list" and globs and isinstance(answer.get("result"), dict):
            tools = answer["result"].get("tools")
            if isinstance(tools, list):
                answer["result"]["tools"] = [t for t in tools if isinstance(t, dict)
                                             and tool_allowed(prefixed(server, str(t.get("name", ""))), globs)]
        return answer

    def held(self, server: str, message: dict[str, Any], globs: Globs) -> dict[str, Any] | None:
        """What answers a request to one server alone that the key may not send it (None: it may): an empty listing
        of a server it does not reach, an error for its other methods there, and for any method not known."""
        method, id = message["method"], message["id"]
        if not globs or (method in LISTINGS or method in REACHED) and self.reaches(server, globs):
            return None
        if method in LISTINGS:
            return jsonrpc.result(id, {LISTINGS[method][0]: []})
        if method in REACHED:
            return not_allowed(id, f"{server}'s {method}", "")
        return jsonrpc.error(id, jsonrpc.METHOD_NOT_FOUND, f"Method not found for a key limited to some tools: "
                             f"{method[:80]}")

    # ------------------------------------------------------------ all servers as one (/mcp)
    def listing(self, message: dict[str, Any], globs: Globs) -> dict[str, Any]:
        """One page holding every server's entries, renamed (a cursor is not asked for: there is one page)."""
        member, field = LISTINGS[message["method"]]
        entries: list[dict[str, Any]] = []
        names = Names()
        for server in self.servers:
            if member != "tools" and not self.reaches(server, globs):
                continue  # its prompts and resources are not the key's
            for entry in self._pages(server, message["method"], member):
                own = entry.get(field)
                if not isinstance(own, str):
                    continue
                if field == "name":
                    shown = names.add(server, own)
                    if shown is None or (member == "tools" and not tool_allowed(shown, globs)):
                        continue
                else:
                    shown = proxied_uri(server, own)
                entries.append({**entry, field: shown})
        for server, own in names.refused:
            log.warning("mcp: %s's %s %r is left out: its shortened name is another's", server, member, own)
        return jsonrpc.result(message["id"], {member: entries})

    def _pages(self, server: str, method: str, member: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        cursor: Any = None
        for page in range(MAX_PAGES):
            params = {"cursor": cursor} if cursor is not None else {}
            answer = self.call(server, {"jsonrpc": "2.0", "id": page, "method": method, "params": params})
            result = answer.get("result")
            if not isinstance(result, dict):
                # a server that is down is logged as it restarts, not at each listing that leaves it out; a
                # per-person server refused to someone not connected (or to no person) at every listing of theirs
                quiet = server in self.personal or answer.get("error", {}).get("code") in (
                    jsonrpc.METHOD_NOT_FOUND, jsonrpc.SERVER_UNAVAILABLE)
                if not quiet:
                    log.warning("mcp server %s: %s failed: %.200s", server, method, answer.get("error"))
                break
            found = result.get(member)
            entries.extend(e for e in (found if isinstance(found, list) else []) if isinstance(e, dict))
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        return entries

    def tool_names(self, server: str) -> list[str]:
        """The names a server lists its tools under (recording.py's labels are these)."""
        return [t["name"] for t in self._pages(server, "tools/list", "tools") if isinstance(t.get("name"), str)]

    def named_call(self, message: dict[str, Any], globs: Globs) -> dict[str, Any]:
        """tools/call or prompts/get under a prefixed name: to its server, under its own name."""
        routed = self.target(None, message, globs)
        return routed if isinstance(routed, dict) else self.call(*routed)

    def target(self, server: str | None, message: dict[str, Any],
               globs: Globs) -> tuple[str, dict[str, Any]] | dict[str, Any]:
        """(the server, the message as it is sent there) of a tools/call or prompts/get at /mcp (server None) or
        /mcp/<server>; or the error that answers it, when the name is no tool's or the key may not call it."""
        params = message.get("params") or {}
        shown = params.get("name")
        if not isinstance(shown, str):
            return jsonrpc.error(message["id"], jsonrpc.INVALID_PARAMS, "params.name must be a string.")
        refused = arguments_refusal(message)
        if refused is not None:
            return refused
        tool = message["method"] == "tools/call"
        if tool and not tool_allowed(shown if server is None else prefixed(server, shown), globs):
            return not_allowed(message["id"], shown)
        to = server or (split_name(shown, self.servers) or ("",))[0]
        if not tool and to and not self.reaches(to, globs):  # before any listing of its: the key reaches none
            return not_allowed(message["id"], shown, "Prompt")
        if server is not None:
            return server, message
        owner = self._owner(shown, "tools" if tool else "prompts")
        if owner is None:
            what = "tool" if tool else "prompt"
            return jsonrpc.error(message["id"], jsonrpc.INVALID_PARAMS, f"Unknown {what}: {shown[:MAX_NAME]}")
        return owner[0], {**message, "params": {**params, "name": owner[1]}}

    def _owner(self, shown: str, member: str) -> tuple[str, str] | None:
        read = split_name(shown, self.servers)
        if len(shown) < MAX_NAME or read is None:
            return read
        # 64 characters: perhaps a name shortened with a hash; the server's listing says whose it is.
        names = Names()
        for entry in self._pages(read[0], f"{member}/list", member):
            if isinstance(entry.get("name"), str):
                names.add(read[0], entry["name"])
        return names.owners.get(shown, read)

    def read_resource(self, message: dict[str, Any], globs: Globs) -> dict[str, Any]:
        routed = self.reading(None, message, globs)
        return routed if isinstance(routed, dict) else routed.finish(self.call(routed.server, routed.message))

    def reading(self, server: str | None, message: dict[str, Any], globs: Globs) -> Routed | dict[str, Any]:
        """A resources/read at /mcp (server None: its URI under a server's name) or /mcp/<server>: where it goes,
        and its answer's URIs put back under the server's name; or the error that answers it."""
        params = message.get("params") or {}
        uri = params.get("uri")
        if server is not None:
            return Routed(server, message) if self.reaches(server, globs) else \
                not_allowed(message["id"], str(uri), "Resource")
        owner = server_uri(uri) if isinstance(uri, str) else None
        if owner is None or owner[0] not in self.servers:
            return jsonrpc.error(message["id"], jsonrpc.RESOURCE_NOT_FOUND, "Resource not found", {"uri": uri})
        if not self.reaches(owner[0], globs):
            return not_allowed(message["id"], str(uri), "Resource")
        return Routed(owner[0], {**message, "params": {**params, "uri": owner[1]}}, proxied=True)

    def routed(self, server: str | None, message: dict[str, Any], globs: Globs) -> Routed | dict[str, Any]:
        """Where a prompts/get or resources/read goes (a call whose server may ask its client something meanwhile,
        client_requests.py), or the error that answers it."""
        if message["method"] == "resources/read":
            return self.reading(server, message, globs)
        routed = self.target(server, message, globs)
        return routed if isinstance(routed, dict) else Routed(*routed)


class Routed:
    """A call's server, the message as it is sent there, and how its answer is shown (a read's URIs at /mcp)."""

    __slots__ = ("server", "message", "proxied")

    def __init__(self, server: str, message: dict[str, Any], proxied: bool = False) -> None:
        self.server, self.message, self.proxied = server, message, proxied

    def finish(self, answer: dict[str, Any]) -> dict[str, Any]:
        contents = answer.get("result", {}).get("contents") if isinstance(answer.get("result"), dict) else None
        for item in contents if self.proxied and isinstance(contents, list) else []:
            if isinstance(item, dict) and isinstance(item.get("uri"), str):
                item["uri"] = proxied_uri(self.server, item["uri"])
        return answer


def arguments_refusal(message: dict[str, Any]) -> dict[str, Any] | None:
    """The error of a tools/call or prompts/get whose params.arguments is there and no object (a list, a string,
    null, a number): the specification's schema has an object or nothing; no server is handed anything else."""
    params = message.get("params") or {}
    if "arguments" not in params or isinstance(params["arguments"], dict):
        return None
    given = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(params["arguments"]), "a number")  # in JSON's words
    return jsonrpc.error(message["id"], jsonrpc.INVALID_PARAMS,
                         f"params.arguments must be an object (the arguments by name) or left out, not {given}.")


def not_allowed(id: jsonrpc.RequestId, name: str, what: str = "Tool") -> dict[str, Any]:
    """A tool outside the key's globs, or a prompt, resource or method of a server where they allow no tool."""
    named = f"{what} {name[:MAX_NAME * 2]!r}" if what else name[:MAX_NAME * 2]
    why = "" if what == "Tool" else ": it may call none of its server's tools"
    return jsonrpc.error(id, jsonrpc.INVALID_PARAMS, f"{named} is not allowed for this key{why}.")
