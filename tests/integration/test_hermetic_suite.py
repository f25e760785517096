"""The suite ignores what a user's run leaves in the checkout: `./run_app.sh` writes config.yaml there (and .env,
keys.db, responses.db may sit beside it), and `./run_tests.sh` after it must pass as on a fresh clone.

Checked on a copy of the checkout holding such files, by running there tests that read the working directory
before the suite ran in a directory of its own (tests/conftest.py): a settings load in-process and at a module's
import, `python -c` and `cot_proxy.py --show` started by a test, and Gunicorn started in the project directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.proxy_process import ROOT, clean_environ

# What the copy leaves out: the VCS, virtual environments, caches and results, and the user's own files.
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis",
                                    "logs", "results", "build", "*.egg-info", "config.yaml", ".env", "keys.db*",
                                    "responses.db*")

TESTS = ["tests/unit/test_settings.py::test_defaults",
         "tests/unit/test_config_sample.py::test_the_sample_loads_as_it_is",  # its data directory is the config's
         "tests/unit/test_listener.py",  # loads its settings at import
         "tests/unit/test_redis_url.py::test_reading_the_setting_imports_neither_redis_nor_ssl",
         "tests/unit/test_routing_entries.py::test_keys_never_appear_in_show",
         "tests/integration/test_private_listener.py::test_gunicorn_binding_every_interface_itself_is_a_warning"]


def plant_a_users_files(checkout: Path) -> None:
    """What `./run_app.sh` writes on a shared machine (an upstream that is not running, a key required), a .env
    with the upstream's key and a client key, and two stores that are not SQLite: read, any of them changes
    what a test sees or stops the proxy's start."""
    key_file = checkout / "user.key"
    key_file.write_text("sk-user-key-of-the-first-run-0123456789\n")
    key_file.chmod(0o600)
    (checkout / "config.yaml").write_text(
        "# cot_proxy configuration, written by ./run_app.sh's first-time setup.\n"
        'backend: "openai"\ntarget_base_url: "http://127.0.0.1:9/v1"\nport: 5000\nverbose: true\n'
        f'enable_auth: true\napi_key_file: "{key_file}"\n')
    (checkout / ".env").write_text("OPENAI_API_KEY=sk-upstream-from-dotenv\nENABLE_AUTH=true\n"
                                   "API_KEY_SECRET=sk-client-key-from-dotenv-0123456789\n")
    for store in ("keys.db", "responses.db"):
        (checkout / store).write_bytes(b"not an SQLite database\n")


def test_a_users_config_env_and_stores_in_the_checkout_change_no_test(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, ignore=NOT_COPIED, symlinks=True)
    plant_a_users_files(checkout)
    env = clean_environ(("PYTEST_", "COT_PROXY_"), {"PYTHONPATH"})  # the copy's code, pytest's own settings
    command = [sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", "-q", "-rf", *TESTS]
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1] and "skipped" not in done.stdout.splitlines()[-1], done.stdout
    for store in ("keys.db", "responses.db"):  # the user's files are left as they were
        assert (checkout / store).read_bytes() == b"not an SQLite database\n"
    assert "API_KEY_SECRET=" in (checkout / ".env").read_text() and "enable_auth" in (checkout / "config.yaml").read_text()


def test_ignore_paths_are_read_from_where_the_suite_was_started() -> None:
    """`--ignore tests/x` names a path from the directory pytest was started in: read after the suite moved to its
    own directory, it named nothing there and nothing was left out (CI's second pass ran every test)."""
    env = clean_environ(("PYTEST_", "COT_PROXY_"), {"PYTHONPATH"})
    for workers in ("0", "2"):
        command = [sys.executable, "-m", "pytest", "-n", workers, "-p", "no:cacheprovider", "--co", "-q",
                   "tests/real", "--ignore=tests/real/test_counts.py"]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert "test_llama_cpp_server.py::" in done.stdout and "test_counts.py::" not in done.stdout, done.stdout[-3000:]
