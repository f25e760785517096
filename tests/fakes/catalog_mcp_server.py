"""A stdio MCP server with a large catalog (CATALOG: 120 tools over 12 kinds of work, as three real servers'
would be), for the tool search's tests. Every call answers `ran <tool> <arguments as JSON>`.

Run as a program it speaks 2025-11-25 over stdio (one JSON-RPC message per line); imported, CATALOG is the data.
`--record FILE`: each call is also appended to FILE as a JSON line, {"name", "arguments"} (what
bench/tool_search_agents.py reads to tell whether an agent's task was done)."""

from __future__ import annotations

import argparse
import json
import sys

# kind of work -> (what it acts on, its parameters); each gets the same ten actions below
KINDS = {
    "issue": ("a tracker issue (bug or task) in the project's issue tracker", ["project", "issue_id", "summary"]),
    "pull_request": ("a code review pull request on the git hosting site", ["repository", "pr_number", "branch"]),
    "file": ("a file on the local disk of the workspace", ["path", "encoding"]),
    "calendar_event": ("a meeting or appointment in the person's calendar", ["calendar", "start_time", "attendees"]),
    "email": ("an email message in the mailbox", ["mailbox", "recipient", "subject"]),
    "chat_message": ("a message in a team chat channel", ["channel", "thread"]),
    "database_table": ("a table of the SQL database", ["database", "table", "sql"]),
    "pod": ("a Kubernetes pod of the cluster", ["namespace", "pod_name", "container"]),
    "invoice": ("a customer invoice in the accounting ledger", ["customer", "amount", "currency"]),
    "spreadsheet": ("a spreadsheet document with rows and cells", ["sheet", "cell_range"]),
    "wiki_page": ("a page of the documentation wiki", ["space", "title"]),
    "container_image": ("a Docker container image in the registry", ["image", "tag"]),
}
ACTIONS = {
    "create": "Create", "get": "Read one", "list": "List every", "update": "Change", "delete": "Delete",
    "search": "Search for", "archive": "Archive", "export": "Export to a download", "comment": "Add a note to",
    "assign": "Give to someone",
}
CATALOG = [
    {"name": f"{kind}_{action}", "description": f"{verb} {what}.",
     "inputSchema": {"type": "object", "properties": {p: {"type": "string"} for p in params}}}
    for kind, (what, params) in KINDS.items() for action, verb in ACTIONS.items()
]


def answer(message: dict, record: str | None = None) -> dict:
    method, params = message["method"], message.get("params") or {}
    if method == "initialize":
        return {"protocolVersion": "2025-11-25", "serverInfo": {"name": "catalog", "version": "1.0"},
                "capabilities": {"tools": {}}}
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": CATALOG}
    if method == "tools/call":
        if record:
            with open(record, "a") as calls:
                calls.write(json.dumps({"name": params["name"], "arguments": params.get("arguments")}) + "\n")
        return {"content": [{"type": "text", "text": f"ran {params['name']} "
                                                     f"{json.dumps(params.get('arguments') or {}, sort_keys=True)}"}]}
    raise LookupError(method)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", help="append each call to this file as a JSON line")
    record = parser.parse_args().record
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue  # notifications and responses
        try:
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": answer(message, record)}
        except LookupError:
            reply = {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "Method not found"}}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
