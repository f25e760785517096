// The official MCP TypeScript SDK (@modelcontextprotocol/sdk) as a client of the proxy's /mcp, for
// tests/integration/test_mcp_ts_sdk.py: connects with StreamableHTTPClientTransport to the first URL (initialize,
// a session), lists the tools, then calls one tool in that same session through the second URL (another replica,
// or the same URL again), and ends the session there. Prints one JSON object: {session, tools, result}.
// Usage: node mcp_ts_client.mjs SDK-DIR LIST-URL CALL-URL TOOL JSON-ARGUMENTS
//   SDK-DIR: the installed package's directory (tools/build_mcp_servers.sh puts it in the cache).
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [sdk, listUrl, callUrl, tool, args] = process.argv.slice(2);
const load = (path) => import(pathToFileURL(join(sdk, "dist/esm", path)).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");

const client = new Client({ name: "cot-proxy-tests", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(listUrl)));
const session = client.transport.sessionId;
const tools = (await client.listTools()).tools.map((t) => t.name);
await client.close(); // closes the connection, not the session

// A client given a session id resumes it: no second initialize.
const again = new Client({ name: "cot-proxy-tests", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(callUrl), { sessionId: session });
await again.connect(transport);
const result = await again.callTool({ name: tool, arguments: JSON.parse(args) });
await transport.terminateSession();
await again.close();
console.log(JSON.stringify({ session, tools, result }));
