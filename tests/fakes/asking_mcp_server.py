"""A stdio MCP server built with the official Python SDK (`mcp`'s MCPServer, as most Python servers are) whose
tools ask their client something while they run, for the relay tests (tests/integration/test_mcp_client_requests.py):

- sample {prompt}: sampling/createMessage, and says what the client's model answered (`sampled: TEXT`);
- confirm: elicitation/create (a form asking for `ok`), and says the client's action and data;
- roots: roots/list, and says the URIs the client gave;
- plain: asks nothing (a call in flight beside an asking one).

Prompt: verse {topic}: asks sampling/createMessage, and its message says what the client's model answered.
Resource template: asking://sampled/{topic}: asks the same, and its text says it (`read: TEXT`).

An error from the client comes back as the tool's error text (`refused: CODE MESSAGE`)."""

from __future__ import annotations

import json
import warnings

from pydantic import BaseModel

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import SamplingMessage, TextContent

warnings.simplefilter("ignore")  # sampling and roots are deprecated at 2026-07-28; this server speaks 2025-11-25

server = MCPServer("asking")


class Confirm(BaseModel):
    ok: bool


def refused(exc: MCPError) -> str:
    return f"refused: {exc.error.code} {exc.error.message}"


@server.tool()
async def sample(prompt: str, ctx: Context) -> str:
    try:
        result = await ctx.session.create_message(
            [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=16)
    except MCPError as exc:
        return refused(exc)
    return f"sampled: {result.content.text}"


@server.tool()
async def confirm(ctx: Context) -> str:
    try:
        result = await ctx.elicit("Proceed?", Confirm)
    except MCPError as exc:
        return refused(exc)
    return json.dumps({"action": result.action, "data": result.data.model_dump() if result.data else None})


@server.tool()
async def roots(ctx: Context) -> str:
    try:
        result = await ctx.session.list_roots()
    except MCPError as exc:
        return refused(exc)
    return " ".join(str(root.uri) for root in result.roots)


@server.tool()
async def plain(text: str) -> str:
    return text


async def asked(prompt: str, ctx: Context) -> str:
    try:
        result = await ctx.session.create_message(
            [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=16)
    except MCPError as exc:
        return refused(exc)
    return result.content.text


@server.prompt()
async def verse(topic: str, ctx: Context) -> str:
    return f"verse: {await asked(topic, ctx)}"


@server.resource("asking://sampled/{topic}")
async def sampled(topic: str, ctx: Context) -> str:
    return f"read: {await asked(topic, ctx)}"


if __name__ == "__main__":
    server.run("stdio")
