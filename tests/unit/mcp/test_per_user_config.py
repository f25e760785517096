"""`auth: per_user` and `auth: token_exchange` on a remote server's entry (docs/mcp-credentials.md): read, written
back without a secret, and every bad combination stops start-up with one line naming the key."""

import json

import pytest

from argoproxy.config.mcp_servers import parse_mcp_servers
from argoproxy.config.settings import SettingsError, load

URL = "https://mcp.example.com/mcp"
SIGNIN = {"OIDC_ISSUER": "http://127.0.0.1:9/", "OIDC_CLIENT_ID": "proxy", "PUBLIC_URL": "https://llm.example.com",
          "ENABLE_AUTH": "true"}


def test_a_per_user_entry_is_read_and_written_back():
    gh, = parse_mcp_servers({"gh": {"url": URL, "auth": "per_user", "client_id": "cot", "client_secret_env": "GH_SECRET",
                                    "scopes": "repo read:org"}})
    assert (gh.auth, gh.client_id, gh.client_secret_env, gh.scopes) == ("per_user", "cot", "GH_SECRET",
                                                                        ("repo", "read:org"))
    assert gh.per_person and gh.as_written()["auth"] == "per_user" and gh.as_written()["scopes"] == ["repo", "read:org"]
    ex, = parse_mcp_servers({"jira": {"url": URL, "auth": "token_exchange"}})
    assert ex.per_person and not ex.client_id
    plain, = parse_mcp_servers({"docs": {"url": URL}})
    assert not plain.per_person and "auth" not in plain.as_written()


@pytest.mark.parametrize("entry, named", [
    ({"auth": "per_person"}, "mcp_servers.s.auth: expected per_user or token_exchange"),
    ({"auth": "per_user", "bearer_token_env": "T"}, "mcp_servers.s.bearer_token_env: a server with `auth: per_user`"),
    ({"auth": "token_exchange", "headers": {"authorization": "Bearer x"}}, "mcp_servers.s.headers: a server with"),
    ({"auth": "token_exchange", "client_id": "c"}, "mcp_servers.s.client_id: only a server with `auth: per_user`"),
    ({"client_id": "c"}, "mcp_servers.s.client_id: only"),
    ({"auth": "per_user", "client_secret_env": "S"}, "mcp_servers.s.client_secret_env: give the client's `client_id`"),
    ({"auth": "per_user", "client_secret_env": "1x", "client_id": "c"}, "mcp_servers.s.client_secret_env: expected"),
    ({"scopes": ["repo"]}, "mcp_servers.s.scopes: only a server with"),
    ({"auth": "per_user", "scopes": ["a\"b"]}, "mcp_servers.s.scopes: expected a list of OAuth scopes"),
    ({"auth": "per_user", "scopes": 3}, "mcp_servers.s.scopes: expected"),
    ({"auth": "per_user", "client_id": "a\nb"}, "mcp_servers.s.client_id: expected"),
])
def test_a_bad_combination_stops_start_up_naming_its_key(tmp_path, entry, named):
    (tmp_path / "config.yaml").write_text(json.dumps({"mcp_servers": {"s": {"url": URL, **entry}}}))
    with pytest.raises(SettingsError) as caught:
        load({"config_path": str(tmp_path / "config.yaml")}, SIGNIN)
    assert named in str(caught.value) and "\n" not in str(caught.value)


def test_a_per_person_server_needs_sign_in_and_its_client_secret(tmp_path):
    (tmp_path / "config.yaml").write_text(json.dumps({"mcp_servers": {"gh": {
        "url": URL, "auth": "per_user", "client_id": "c", "client_secret_env": "GH_SECRET"}}}))
    config = {"config_path": str(tmp_path / "config.yaml")}
    with pytest.raises(SettingsError, match=r"^mcp_servers\.gh\.auth: per_user needs sign-in"):
        load(config, {"GH_SECRET": "s3cret"})
    with pytest.raises(SettingsError, match=r"^mcp_servers\.gh\.client_secret_env: GH_SECRET is not set"):
        load(config, SIGNIN)
    settings = load(config, {**SIGNIN, "GH_SECRET": "s3cret", "MCP_USER_SESSIONS_PER_SERVER": "8",
                             "KEYS_DB": str(tmp_path / "k" / "keys.db")}).settings
    assert settings.mcp_user_sessions_per_server == 8
    assert settings.credentials_key_file == str(tmp_path / "k" / "credentials.key")
    with pytest.raises(SettingsError, match=r"MCP_USER_SESSIONS_PER_SERVER"):
        load(config, {**SIGNIN, "GH_SECRET": "s", "MCP_USER_SESSIONS_PER_SERVER": "0"})
