#!/usr/bin/env bash
# Installs the real MCP servers that tests/integration/test_mcp_servers.py puts behind the proxy's /mcp, and the
# conformance suite, TypeScript SDK and Node.js its neighbours use, pinned in mcp_servers.txt, into
# ~/.cache/cot_proxy/mcp (tools/install_pinned.sh: as their users install them, once per pin).
# Usage: tools/build_mcp_servers.sh [name ...]   (default: every server in mcp_servers.txt)
exec "$(dirname "$0")/install_pinned.sh" mcp_servers.txt mcp "its tests skip" "$@"
