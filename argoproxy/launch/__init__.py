"""Starting coding agents pointed at the proxy: `cot-proxy run -- AGENT` and `cot-proxy agents`.

agents.py holds how each agent is set up (the one place: tests/agents uses it too); run.py the two commands.
Imports config/ and serve/ (to read the settings as every entry point does), never the request path.

May import: every folder.
"""
