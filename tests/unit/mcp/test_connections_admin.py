"""An admin revokes a person's MCP connections (/admin/v1/people/ID/connections, docs/mcp-credentials.md), in-process
on the console's own world (tests/unit/test_console_roles.py): names only are shown, only an admin revokes, and the
revocation is audited."""

from argoproxy.teamkeys.credential_store import SQLiteCredentials, credentials_of
from tests.unit.test_console_roles import World


def test_an_admin_lists_and_revokes_a_persons_connections(tmp_path):
    world = World(tmp_path)
    held = SQLiteCredentials(str(world.store.path))
    ann, bob = world.people["ann"].id, world.people["bob"].id
    held.put(ann, "gh", b"\x01sealed-ann-gh")
    held.put(ann, "jira", b"\x01sealed-ann-jira")
    held.put(bob, "gh", b"\x01sealed-bob-gh")
    status, body = world.call("GET", "/admin/v1/people/ann@x.org/connections", role="ada")
    assert status == 200 and body == {"data": [{"server": "gh"}, {"server": "jira"}]}
    assert "sealed" not in str(body)
    status, _ = world.call("DELETE", "/admin/v1/people/ann@x.org/connections", role="lea")  # a lead: not theirs
    assert status == 403 and held.servers(ann) == ["gh", "jira"]
    status, body = world.call("DELETE", "/admin/v1/people/ann@x.org/connections", role="ada")
    assert status == 200 and body == {"revoked": 2}
    assert held.servers(ann) == [] and held.servers(bob) == ["gh"]  # Bob's are his
    assert world.store.audit()[0].action == "people.connections.revoke"
    assert isinstance(credentials_of(world.store), SQLiteCredentials)
