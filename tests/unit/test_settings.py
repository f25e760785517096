"""Settings: precedence defaults < config.yaml < environment < flags; one-line errors naming the key."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from argoproxy.cli import parse_flags
from argoproxy.config import setting_fields
from argoproxy.config.listener import is_loopback
from argoproxy.config.settings import SettingsError, load, load_settings
from tests.proxy_process import ROOT


def test_defaults():
    s = load_settings({}, environ={"HOME": "/nonexistent"})
    assert s.target_base_url == "https://api.openai.com/v1/"
    assert (s.host, s.port, s.timeout, s.gunicorn_timeout, s.think_mode) == ("127.0.0.1", 5000, 600.0, 3000, "strip")


def test_precedence(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 7000\ntimeout: 30\nthink_mode: keep\nnum_workers: 3\n")
    env = {"CONFIG_PATH": str(cfg), "PORT": "7100", "TIMEOUT": "40"}
    s = load_settings({"port": "7200"}, environ=env)
    assert (s.port, s.timeout, s.think_mode, s.workers) == (7200, 40.0, "keep", 3)


def test_aliases_and_url_forms():
    s = load_settings({}, environ={"OPENAI_BASE_URL": "http://h:1/v1", "API_REQUEST_TIMEOUT": "5"})
    assert s.target_base_url == "http://h:1/v1/" and s.timeout == 5.0
    s = load_settings({"target_base_url": "https://x.example/compatible-mode/v1/chat/completions"}, environ={})
    assert s.target_base_url == "https://x.example/compatible-mode/v1/"


def test_backend_default_url():
    assert load_settings({}, environ={"BACKEND": "dashscope"}).target_base_url == "https://dashscope.aliyuncs.com/api/v1/"


@pytest.mark.parametrize("env,key", [
    ({"PORT": "99999"}, "PORT"), ({"TIMEOUT": "abc"}, "TIMEOUT"), ({"THINK_MODE": "nope"}, "THINK_MODE"),
    ({"TARGET_BASE_URL": "ftp://x"}, "TARGET_BASE_URL"), ({"LLM_PARAMS": "temperature=1"}, "LLM_PARAMS"),
    ({"DEBUG": "maybe"}, "DEBUG"), ({"CONFIG_PATH": "/nonexistent.yaml"}, "CONFIG_PATH"),
    ({"TIMEOUT": "nan"}, "TIMEOUT"), ({"CONNECT_TIMEOUT": "inf"}, "CONNECT_TIMEOUT"),  # NaN passed every bound
    ({"LOG_DIR": "/etc/hostname"}, "LOG_DIR"),  # a file
    # admission (a limit past 64 bits passed, then every worker died writing it to the shared cells)
    ({"MAX_CONCURRENCY": "99999999999999999999"}, "MAX_CONCURRENCY"), ({"MAX_CONCURRENCY": "\u00b2"}, "MAX_CONCURRENCY"),
    ({"MAX_CONCURRENCY": "-1"}, "MAX_CONCURRENCY"), ({"ADMISSION_MAX_WAIT": "-1"}, "ADMISSION_MAX_WAIT"),
    ({"ADMISSION_KEY_SHARE": "0"}, "ADMISSION_KEY_SHARE"), ({"ADMISSION_WEIGHTS": '{"A": 0}'}, "ADMISSION_WEIGHTS.A"),
    ({"MODELS": '[{"name": "m", "backend": "openai", "base_url": "http://h:1/v1/", "max_concurrency": 1e3}]'},
     "MODELS[0].max_concurrency"),
])
def test_bad_values_name_the_key(env, key):
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ=env)
    assert str(err.value).startswith(key + ":") and "\n" not in str(err.value)


def test_unknown_yaml_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prot: 1\n")
    with pytest.raises(SettingsError, match="^prot: unknown key"):
        load_settings({}, environ={"CONFIG_PATH": str(cfg)})


@pytest.mark.parametrize("written, meant", [("prot", "port"), ("enable_authentication", "enable_auth"),
                                            ("think_mod", "think_mode"), ("Port", "port"), ("num_worker", "num_workers")])
def test_an_unknown_yaml_key_names_the_setting_it_resembles(tmp_path, written, meant):
    """As a mistyped environment variable does: the typo and the key meant, in one line."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"{written}: 1\n")
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ={"CONFIG_PATH": str(cfg)})
    assert str(err.value) == f"{written}: unknown key in {cfg} (did you mean {meant}?)"


def test_an_unknown_yaml_key_like_no_setting_gets_no_guess(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("colour: blue\n")
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ={"CONFIG_PATH": str(cfg)})
    assert str(err.value) == f"colour: unknown key in {cfg}"


def test_openai_forward_command_line():
    flags, _ = parse_flags(["--output_path", "./logs", "--expose_host", "0.0.0.0", "--expose_port", "58080",
                            "--url", "https://h.example/v1/chat/completions", "--timeout", "60000"])
    s = load_settings(flags, environ={})
    assert (s.log_dir, s.host, s.port, s.target_base_url, s.timeout) == (
        "./logs", "0.0.0.0", 58080, "https://h.example/v1/", 60.0)


def test_bad_setting_stops_startup_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "PORT": "0x"}
    for cmd in ([sys.executable, str(ROOT / "cot_proxy.py")],
                [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"]):
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert lines == ["cot_proxy: bad setting PORT: expected an integer, got '0x'"], out.stderr


def test_a_concurrency_limit_past_what_the_cells_hold_stops_startup_with_one_line(tmp_path):
    """It used to pass the check, print 'listening', then fail every worker with a traceback."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "MODELS": '[{"name": "m", "backend": "openai", "base_url": "http://127.0.0.1:9/v1/"}]',
           "MAX_CONCURRENCY": "99999999999999999999"}
    out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if line.strip()] == [
        "cot_proxy: bad setting MAX_CONCURRENCY: max_concurrency is at most 100000, got '99999999999999999999'"
    ], out.stderr


@pytest.mark.parametrize("yaml_text,key", [
    ("backend: argo\nport: 44497\n", "user"),
    ("backend: argo\nuser: cels\n", "user"),
    ("backend: argo\nuser: alice\nargo_url: not a url\n", "argo_url"),
    ("backend: argo\nuser: alice\nport: 70000\n", "port"),
])
def test_invalid_argo_config_names_the_key(tmp_path, yaml_text, key):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ={"CONFIG_PATH": str(cfg)})
    assert str(err.value).startswith(key + ":")


def test_config_search_path(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".config" / "argoproxy").mkdir(parents=True)
    (home / ".config" / "argoproxy" / "config.yaml").write_text("port: 6001\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert load_settings({}, environ={}).port == 6001
    (tmp_path / "config.yaml").write_text("port: 6002\n")
    assert load_settings({}, environ={}).port == 6002


def test_health_never_shows_url_credentials():
    from argoproxy.observe.health import without_credentials
    assert without_credentials("https://user:secret@host.example/v1/") == "https://host.example/v1/"
    assert without_credentials("http://host:8000/v1/") == "http://host:8000/v1/"


def test_client_request_ids_are_kept_when_sane():
    from argoproxy.edge.request_ids import client_request_id, new_request_id
    assert client_request_id("abc-123") == "abc-123"
    assert client_request_id("x" * 500) == "" and client_request_id(None) == ""
    assert client_request_id("bad\nid") == "" and len(new_request_id()) == 32
    # bytes past ASCII (a header read as latin-1) came back as mojibake in journals and error objects
    assert client_request_id("\xff\xfe") == "" and client_request_id("caf\xc3\xa9") == ""


def test_native_anthropic_url_defaults_to_the_native_openai_one_and_shows_it():
    derived = load_settings(environ={"BACKEND": "argo", "ARGO_USER": "a", "NATIVE_OPENAI_BASE_URL": "http://argo.test/v1/"})
    assert derived.native_anthropic_base_url == "http://argo.test/v1/messages"
    assert ("native_anthropic_base_url", "http://argo.test/v1/messages") in derived.public_items()
    own = load_settings(environ={"BACKEND": "argo", "ARGO_USER": "a",
                                 "NATIVE_ANTHROPIC_BASE_URL": "http://claude.test/v1/messages"})
    assert own.native_anthropic_base_url == "http://claude.test/v1/messages"


@pytest.mark.parametrize("url", ["http://localhost:5000/v1", "http://127.0.0.1:5000/v1/", "http://[::1]:5000/",
                                 "http://0.0.0.0:5000/v1"])
def test_an_upstream_that_is_the_proxy_itself_stops_start_up(url: str) -> None:
    """OPENAI_BASE_URL is where the openai SDK sends requests, and seed 003 reads it as the upstream: exported to
    point clients at the proxy, it made the proxy forward to itself until its connections ran out."""
    with pytest.raises(SettingsError) as error:
        load_settings({}, environ={"OPENAI_BASE_URL": url, "PORT": "5000"})
    message = str(error.value)
    assert message.startswith("OPENAI_BASE_URL: ") and "this proxy itself" in message and "\n" not in message


def test_an_upstream_on_another_port_of_this_host_is_fine() -> None:
    assert load_settings({}, environ={"TARGET_BASE_URL": "http://localhost:8000/v1", "PORT": "5000"}).port == 5000
    assert load_settings({"backend": "argo", "user": "u"},
                         environ={"TARGET_BASE_URL": "http://localhost:5000/v1", "PORT": "5000"}).backend == "argo"


def test_seed_004_stream_mode_flags_and_help() -> None:
    """openai-forward's --NON_STREAM_SERVER_MODE and --STREAM_SERVER_MODE are its names for --mode; --help's
    precedence order names .env."""
    from argoproxy.cli import build_parser
    assert parse_flags(["--NON_STREAM_SERVER_MODE"])[0]["upstream_mode"] == "non_stream"
    assert parse_flags(["--STREAM_SERVER_MODE"])[0]["upstream_mode"] == "stream"
    assert load_settings(parse_flags(["--STREAM_SERVER_MODE"])[0], environ={}).upstream_mode == "stream"
    assert "config.yaml < .env < environment" in build_parser().format_help()


@pytest.mark.parametrize("argv, said", [
    (["--redis-url", "redis://:hunter2@redis:6379/0"], "bad setting --redis-url: "),
    (["--url", "https://user:hunter2@llm.internal/v1"], "bad setting --target-base-url: "),
    (["--target-base-url=https://llm.internal/v1?api_key=hunter2"], "set TARGET_BASE_URL in the environment"),
])
def test_a_credential_in_a_flag_stops_start_up_every_process_can_read_argv(argv, said, capsys):
    """/proc/PID/cmdline is readable by every process, an MCP server's too, however undumpable the proxy is."""
    with pytest.raises(SystemExit) as stopped:
        parse_flags(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and said in err and "hunter2" not in err and len(err.splitlines()) == 1
    assert parse_flags(["--redis-url", "redis://redis:6379/0"])[0]["redis_url"] == "redis://redis:6379/0"


def test_a_config_path_is_named_as_it_was_given(tmp_path) -> None:
    """A positional (or --config) path is the command line's, not CONFIG_PATH, in the one-line error."""
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(SettingsError, match=r"^config \(the command line's config file\): config file .*nope.yaml"):
        load_settings(parse_flags([missing])[0], environ={})
    with pytest.raises(SettingsError, match=r"^CONFIG_PATH: config file .*nope.yaml"):
        load_settings({}, environ={"CONFIG_PATH": missing})


def test_config_path_is_a_file_or_reads_as_one(tmp_path):
    """CONFIG_PATH=/dev/null is an empty config (it said the file did not exist); a directory is named as one."""
    assert load_settings({}, environ={"CONFIG_PATH": "/dev/null", "HOME": str(tmp_path)}).port == 5000
    with pytest.raises(SettingsError, match=r"^CONFIG_PATH: .* is a directory, not a config file$"):
        load_settings({}, environ={"CONFIG_PATH": str(tmp_path), "HOME": str(tmp_path)})
    with pytest.raises(SettingsError, match=r"^CONFIG_PATH: config file .* does not exist$"):
        load_settings({}, environ={"CONFIG_PATH": str(tmp_path / "none.yaml"), "HOME": str(tmp_path)})
    with pytest.raises(SettingsError, match=r"^CONFIG_PATH: /dev/zero is larger than 8 MiB: not a config file$"):
        load_settings({}, environ={"CONFIG_PATH": "/dev/zero", "HOME": str(tmp_path)})  # read whole, it had no end
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SettingsError, match=r"^CONFIG_PATH: .* is not UTF-8 text$"):
        load_settings({}, environ={"CONFIG_PATH": str(binary), "HOME": str(tmp_path)})


@pytest.mark.parametrize("host", ["", "[]", "[::1", "[[::1]]", "::1]", "[localhost]", "[127.0.0.1]", "127.0.0.1:8000",
                                  "-bad.example", "a..b", "0", "1.2.3", "256.1.1.1",  # the resolver: 0.0.0.0, 1.2.0.3
                                  "fe80::1", "[fe80::1]", "fe80::1%eth0", "fe80::1%lo"])  # Gunicorn cannot bind these
def test_host_is_an_address_or_a_host_name(tmp_path, host):
    """Gunicorn's bind reads `[]` and an empty host as every interface: a HOST that is neither an address (an
    IPv6 one bare or in one pair of brackets) nor a host name stops start-up naming it."""
    with pytest.raises(SettingsError, match=r"^HOST: "):
        load_settings({}, environ={"HOST": host, "HOME": str(tmp_path)})


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::1", "[::1]", "::", "localhost", "node-7.cluster.example.",
                                  "::ffff:127.0.0.1"])
def test_host_takes_addresses_and_names(tmp_path, host):
    assert load_settings({}, environ={"HOST": host, "HOME": str(tmp_path)}).host == host


@pytest.mark.parametrize("host, loopback", [("127.0.0.2", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
                                            ("localhost", True), ("::ffff:10.0.0.1", False), ("0.0.0.0", False),
                                            ("node-7.example", False)])
def test_a_loopback_host_is_known_in_every_spelling(host, loopback):
    """A loopback listener keeps the Host check against DNS rebinding and no public-listener warning: an
    IPv4-mapped IPv6 loopback address listens on 127.0.0.1 too."""
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("setting, extra", [("CONFIG_PATH", {}), ("API_KEY_FILE", {"ENABLE_AUTH": "true"})])
def test_a_named_pipe_nothing_writes_to_stops_start_up_instead_of_hanging(tmp_path, monkeypatch, setting, extra):
    """Opening a named pipe waits for a writer; none may ever come. A pipe with its writer is read as a file is."""
    monkeypatch.setattr(setting_fields, "PIPE_WAIT", 0.2)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SettingsError, match=rf"^{setting}: .* is a named pipe that nothing was written to$"):
        load_settings({}, environ={"HOME": str(tmp_path), setting: str(fifo), **extra})
    writer = subprocess.Popen(["sh", "-c", f"printf 'sk-from-a-pipe\\n' > {fifo}"])
    try:
        assert load_settings({}, environ={"HOME": str(tmp_path), "API_KEY_FILE": str(fifo), "ENABLE_AUTH": "true"})
    finally:
        writer.wait(10)


def test_a_key_file_is_read_up_to_a_bound(tmp_path):
    """API_KEY_FILE is read whole: /dev/zero stops start-up naming it, as a file of no key does."""
    env = {"HOME": str(tmp_path), "ENABLE_AUTH": "true"}
    with pytest.raises(SettingsError, match=r"^API_KEY_FILE: /dev/zero is larger than 1 MiB: not a key file$"):
        load_settings({}, environ={**env, "API_KEY_FILE": "/dev/zero"})
    keys = tmp_path / "keys"
    keys.write_text("# the team's keys\nsk-one\n\n  sk-two  \n")
    assert load_settings({}, environ={**env, "API_KEY_FILE": str(keys)}).api_key_file == str(keys)
    keys.write_bytes(b"\xff\xfe")
    with pytest.raises(SettingsError, match=r"^API_KEY_FILE: .* is not UTF-8 text$"):
        load_settings({}, environ={**env, "API_KEY_FILE": str(keys)})


def test_a_keys_db_that_is_not_an_sqlite_file_stops_start_up(tmp_path):
    """KEYS_DB a directory or another file made every team-key request a 500 once serving."""
    env = {"HOME": str(tmp_path), "ENABLE_AUTH": "true", "API_KEY_SECRET": "admin"}
    with pytest.raises(SettingsError, match=r"^KEYS_DB: .* is not a file"):
        load_settings({}, environ={**env, "KEYS_DB": str(tmp_path)})
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    with pytest.raises(SettingsError, match=r"^KEYS_DB: .* is not an SQLite database"):
        load_settings({}, environ={**env, "KEYS_DB": str(text)})
    assert load_settings({}, environ={**env, "KEYS_DB": str(tmp_path / "new.db")})  # made by `keys create`


@pytest.mark.parametrize("url", ["redis://127.0.0.1:notaport/0", "redis://127.0.0.1:6379/0?socket_timeout=abc"])
def test_a_redis_url_redis_cannot_use_stops_start_up(tmp_path, url):
    with pytest.raises(SettingsError, match=r"^REDIS_URL: ") as err:
        load_settings({}, environ={"HOME": str(tmp_path), "ENABLE_AUTH": "true", "API_KEY_SECRET": "a",
                                   "REDIS_URL": url})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("env, named", [({"KEYS_DB": "k.db"}, "KEYS_DB"), ({"REDIS_OUTAGE": "refuse"}, "REDIS_OUTAGE"),
                                        ({"REDIS_URL": "redis://127.0.0.1:6379/0", "RESPONSES_STORE": "off"},
                                         "REDIS_URL"),
                                        ({"REDIS_URL": "redis://127.0.0.1:6379/0", "RESPONSES_DB": "r.db"},
                                         "RESPONSES_DB"),
                                        ({"RESPONSES_ADMIN_READS": "true"}, "RESPONSES_ADMIN_READS"),
                                        ({"RESPONSES_STORE": "off", "RESPONSES_RETENTION": "7d"},
                                         "RESPONSES_RETENTION"),
                                        ({"MCP_OAUTH_SERVER": "proxy"}, "MCP_OAUTH_SERVER"),
                                        ({"MCP_OAUTH_SCOPES": "mcp tools"}, "MCP_OAUTH_SCOPES"),
                                        ({"MCP_USER_SESSIONS_PER_SERVER": "8"}, "MCP_USER_SESSIONS_PER_SERVER"),
                                        ({"CREDENTIALS_KEY_FILE": "/tmp/k"}, "CREDENTIALS_KEY_FILE")])
def test_team_and_listener_settings_that_go_unused_are_warnings(tmp_path, env, named):
    from argoproxy.config.settings import load
    loaded = load({}, environ={"HOME": str(tmp_path), **env})
    assert any(w.startswith(f"{named} is set, but") for w in loaded.warnings), loaded.warnings


def test_redis_url_alone_is_used_by_the_response_store(tmp_path):
    from argoproxy.config.settings import load
    loaded = load({}, environ={"HOME": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert not any(w.startswith("REDIS_URL") for w in loaded.warnings), loaded.warnings


@pytest.mark.parametrize("value, seconds", [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45", 45)])
def test_responses_retention_takes_durations(tmp_path, value, seconds):
    settings = load_settings({}, environ={"HOME": str(tmp_path), "RESPONSES_RETENTION": value})
    assert settings.responses_retention == seconds


def test_a_bad_responses_setting_stops_start_up(tmp_path):
    with pytest.raises(SettingsError, match=r"^RESPONSES_RETENTION: "):
        load_settings({}, environ={"HOME": str(tmp_path), "RESPONSES_RETENTION": "soon"})
    with pytest.raises(SettingsError, match=r"^RESPONSES_DB: .* is not a file"):
        load_settings({}, environ={"HOME": str(tmp_path), "RESPONSES_DB": str(tmp_path)})


def test_a_key_file_other_users_can_read_is_a_warning(tmp_path):
    from argoproxy.config.settings import load
    keys = tmp_path / "keys"
    keys.write_text("sk-one\n")
    env = {"HOME": str(tmp_path), "ENABLE_AUTH": "true", "API_KEY_FILE": str(keys)}
    keys.chmod(0o644)
    assert any("can be read by other users (mode 644)" in w and w.startswith("API_KEY_FILE")
               for w in load({}, environ=env).warnings)
    keys.chmod(0o600)
    assert not any("API_KEY_FILE" in w for w in load({}, environ=env).warnings)


def test_a_yaml_key_given_twice_is_refused_naming_it(tmp_path):
    """PyYAML keeps the last of two equal keys silently; a config must not hide a second `port:`."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 18903\ntimeout: 30\nport: 18904\n")
    with pytest.raises(SettingsError, match=r"^port: given twice in .*c\.yaml \(again on line 3\)$"):
        load_settings({}, environ={"CONFIG_PATH": str(cfg)})
    cfg.write_text("models:\n  - name: a\n    backend: openai\n    base_url: http://127.0.0.1:9/v1\n"
                   "    base_url: http://127.0.0.1:8/v1\n")
    with pytest.raises(SettingsError, match="^base_url: given twice"):
        load_settings({}, environ={"CONFIG_PATH": str(cfg)})
    cfg.write_text("models:\n  - &a {name: a, backend: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
                   "  - <<: *a\n    name: b\n")  # a merge overridden is no repetition
    assert [m.name for m in load_settings({}, environ={"CONFIG_PATH": str(cfg)}).models] == ["a", "b"]
    from argoproxy.config.yaml_text import UniqueKeyLoader
    nested = ("templates:\n  fam: &fam {like: claude-4.5+}\n  mine: &mine\n    <<: *fam\n    like: gpt-5\n"
              "my-model:\n  <<: *mine\n")  # a merge of a node that merges and overrides, met first from above
    assert yaml.load(nested, Loader=UniqueKeyLoader)["my-model"] == {"like": "gpt-5"}
    assert yaml.load("1: a\n1.0: b\ntrue: c\n'1': d\n", Loader=UniqueKeyLoader) == {1: "c", "1": "d"}  # 4 YAML keys


def test_an_unreadable_dotenv_line_stops_start_up_with_one_line(tmp_path):
    """python-dotenv logs such a line (in the master and again in every worker) and leaves its setting out."""
    (tmp_path / ".env").write_text("TARGET_BASE_URL=http://127.0.0.1:9/v1\nENABLE_AUTH true\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for cmd in ([sys.executable, str(ROOT / "cot_proxy.py")],
                [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"]):
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert [line for line in out.stderr.splitlines() if line.strip()] == [
            f"cot_proxy: bad setting .env: line 2 of {tmp_path / '.env'} is not NAME=value (its setting would be "
            "left out)"], out.stderr


def test_a_mistyped_setting_in_the_environment_is_a_warning():
    """ENABLE_AUTHENTICATION=true leaves auth off: the user believes the proxy is guarded."""
    loaded = load({}, environ={"ENABLE_AUTHENTICATION": "true", "THINKMODE": "keep", "HOSTNAME": "box", "PORT0": "1",
                               "OPENAI_API_BASE": "http://x/v1", "PATH": "/bin", "TARGET_BASE_URL": "http://127.0.0.1:9/v1"})
    assert [w for w in loaded.warnings if "not a setting" in w] == [
        "ENABLE_AUTHENTICATION is set, but it is not a setting (did you mean ENABLE_AUTH?), so it is not used",
        "THINKMODE is set, but it is not a setting (did you mean THINK_MODE?), so it is not used"]
    assert not loaded.settings.enable_auth


def test_a_log_dir_this_user_cannot_write_stops_serving_not_the_keys_command(tmp_path):
    """Serving needs to write there (one line, not a traceback per worker); `keys` and `--show`, which an admin
    may run as another user, do not."""
    from argoproxy.config.setting_fields import dir_problem
    assert dir_problem("/proc/cot_proxy_logs") is not None and dir_problem(str(tmp_path / "new" / "logs")) is None
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "logs")
    assert dir_problem(str(tmp_path / "dangling")) == f"{str(tmp_path / 'dangling')!r} is a link to nothing"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "LOG_DIR": "/proc/cot_proxy_logs",
           "TARGET_BASE_URL": "http://127.0.0.1:9/v1"}
    out = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and out.stderr.splitlines() == [
        "cot_proxy: bad setting LOG_DIR: '/proc/cot_proxy_logs' cannot be created: No such file or directory"]
    shown = subprocess.run([sys.executable, str(ROOT / "cot_proxy.py"), "--show"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and "log_dir: '/proc/cot_proxy_logs'" in shown.stdout


@pytest.mark.parametrize("name", ["THINK_TAG", "THINK_END_TAG"])
def test_an_empty_think_tag_is_refused(name):
    """An empty tag matched everywhere: every answer came back empty."""
    with pytest.raises(SettingsError, match=f"^{name}: must not be empty"):
        load_settings({}, environ={name: " "})


def test_the_upstream_key_may_not_be_one_the_proxy_takes_from_clients(tmp_path):
    """A client's key exported as OPENAI_API_KEY (what SDKs read; docs/private.md once advised it) in the shell that
    starts the proxy made the proxy send its own client key to the provider; the line names COT_PROXY_KEY."""
    with pytest.raises(SettingsError, match="^OPENAI_API_KEY: it holds one of the keys this proxy takes.*clients keep "
                                            "theirs in COT_PROXY_KEY"):
        load_settings({}, environ={"ENABLE_AUTH": "true", "API_KEY_SECRET": "sk-a,sk-b", "OPENAI_API_KEY": "sk-b"})
    key_file = tmp_path / "api_key"
    key_file.write_text("sk-proxy-mine\n")
    key_file.chmod(0o600)
    with pytest.raises(SettingsError, match="^OPENAI_API_KEY"):
        load_settings({}, environ={"ENABLE_AUTH": "true", "API_KEY_FILE": str(key_file),
                                   "OPENAI_API_KEY": "sk-proxy-mine"})
    assert load_settings({}, environ={"ENABLE_AUTH": "true", "API_KEY_FILE": str(key_file),
                                      "OPENAI_API_KEY": "sk-upstream"}).openai_api_key == "sk-upstream"
    assert load_settings({}, environ={"API_KEY_SECRET": "sk-b", "OPENAI_API_KEY": "sk-b"})  # auth off: no client keys


@pytest.mark.parametrize("env, named", [
    ({"FALLBACKS": '{"a": ["b"]}'}, "FALLBACKS is set, but MODELS is not set"),
    ({"COOLDOWN_SECONDS": "30"}, "COOLDOWN_SECONDS is set, but MODELS is not set"),
    ({"HEALTH_PROBE_SECONDS": "10"}, "HEALTH_PROBE_SECONDS is set, but MODELS is not set"),
    ({"JOURNAL_BODY_BYTES": "100"}, "JOURNAL_BODY_BYTES is set, but LOG_DIR is not set"),
    ({"METRICS_PUBLIC": "true"}, "METRICS_PUBLIC is set, but enable_auth is off"),
    ({"BACKEND": "dashscope", "DASHSCOPE_API_KEY": "k", "FRONTS_PASSTHROUGH": "responses"},
     "FRONTS_PASSTHROUGH is set, but only the openai backend")])
def test_settings_that_another_one_leaves_unused_are_a_warning(env, named):
    """Fallbacks without MODELS looked configured and did nothing, with no word said."""
    warnings = load(environ={"TARGET_BASE_URL": "http://127.0.0.1:9/v1", **env}).warnings
    assert any(w.startswith(named) for w in warnings), warnings


def test_a_socket_path_that_is_a_directory_says_so(tmp_path):
    (tmp_path / "run").mkdir(mode=0o700)
    with pytest.raises(SettingsError, match=r"^SOCKET: .*/run is a directory: give the socket's own path"):
        load_settings({}, environ={"SOCKET": str(tmp_path / "run")})


def test_a_fallback_chain_longer_than_max_upstream_calls_is_a_warning(tmp_path):
    """Each model of a chain takes at least one call of MAX_UPSTREAM_CALLS: the ones past it are never asked."""
    from argoproxy.config.settings import load
    models = json.dumps([{"name": n, "backend": "openai", "base_url": "http://127.0.0.1:9/v1/"} for n in "abcd"])
    env = {"HOME": str(tmp_path), "MODELS": models, "FALLBACKS": '{"a": ["b", "c", "d"]}'}
    assert [w for w in load({}, environ=env).warnings if "MAX_UPSTREAM_CALLS" in w] == [
        "FALLBACKS: `a` and its fallbacks are 4 models, and MAX_UPSTREAM_CALLS is 3: d never asked"]
    assert not [w for w in load({}, environ={**env, "MAX_UPSTREAM_CALLS": "4"}).warnings if "MAX_UPSTREAM" in w]
    with pytest.raises(SettingsError, match=r"^MAX_UPSTREAM_CALLS"):
        load_settings({}, environ={**env, "MAX_UPSTREAM_CALLS": "0"})
