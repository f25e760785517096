"""The console: the `/admin/v1/` JSON API (api.py, one module per resource: me_api.py, keys_api.py, teams_api.py,
usage_api.py, people_api.py, requests_api.py, mcp_api.py, audit_api.py; connections_api.py, people's MCP
connections), who may call it (authorize.py, over
signin.principal_of), what each role may see and change (roles.py: an admin everything, a lead their team's, a person
their own; key_owner.py and within_team.py for the keys people make), and the console page's script served at /ui
(assets.py, console.js; the page itself is the status page's, observe/status_page.html, whose live views it keeps).
A change goes through the same key store methods and option parsers as the `keys` and `teams` commands
(teamkeys/cli.py), so the two cannot disagree, and each is written to the audit log (teamkeys/audit.py).
The door routes the `console` family here (edge/classify.py, serve/build.py) ([console.md](../../docs/console.md)).

May import: the shared modules, config, spend, edge, teamkeys, people, signin, requestlog.
"""

from argoproxy.console.serving import Console

__all__ = ["Console"]
