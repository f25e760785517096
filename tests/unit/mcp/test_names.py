"""Tools and prompts of every server as one server's: `server__tool`, at most 64 characters (a stable hash
when longer), read back to (server, own name); resources' URIs under their server's name."""

from argoproxy.mcp.names import MAX_NAME, Names, prefixed, proxied_uri, server_uri, split_name


def test_a_short_name_is_prefixed_and_read_back():
    assert prefixed("git", "status") == "git__status"
    assert split_name("git__status", ["git", "time"]) == ("git", "status")
    assert split_name("git__log__all", ["git"]) == ("git", "log__all")  # the first separator is the server's


def test_a_name_of_no_server_or_without_the_separator_is_none():
    assert split_name("svn__status", ["git"]) is None
    assert split_name("status", ["git"]) is None
    assert split_name("git__", ["git"]) is None


def test_a_long_name_is_cut_to_64_with_a_stable_hash():
    long = "x" * 100
    shown = prefixed("docs", long)
    assert len(shown) == MAX_NAME and shown.startswith("docs__xxx")
    assert shown == prefixed("docs", long)  # stable across processes: a hash of the whole, not a counter
    assert prefixed("docs", long + "y") != shown
    assert split_name("svn__" + "x" * 59, ["docs"]) is None
    # A cut name reads as a name of its server too: the endpoint asks the server's listing for one of 64 characters.
    assert split_name(shown, ["docs"]) == ("docs", shown[len("docs__"):])


def test_a_listing_maps_cut_names_back_and_refuses_a_collision():
    names = Names()
    shown = names.add("docs", "y" * 80)
    assert shown is not None and names.owners[shown] == ("docs", "y" * 80)
    names.owners["docs__taken"] = ("other", "taken")
    assert names.add("docs", "taken") is None and names.refused == [("docs", "taken")]


def test_resource_uris_go_under_the_server_and_back_templates_included():
    uri = proxied_uri("git", "file:///repo/README.md")
    assert uri == "mcp-proxy://git/file:///repo/README.md"
    assert server_uri(uri) == ("git", "file:///repo/README.md")
    assert server_uri(proxied_uri("notes", "fake://notes/{id}")) == ("notes", "fake://notes/{id}")
    assert server_uri("file:///etc/passwd") is None
    assert server_uri("mcp-proxy://git") is None
