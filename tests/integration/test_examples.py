"""The examples run as written: the seed's Python examples (examples/) against the proxy in front of a fake ARGO
gateway, and the README's team example, command by command, in front of a local server."""

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.fakes.fake_argo import FakeArgo
from tests.fakes.fake_openai import FakeOpenAI
from tests.integration.test_argo import argo_env
from tests.integration.test_run_app import SCRIPT, script_env, spawn, transcript
from tests.polling import poll
from tests.proxy_process import ROOT, free_port, running_proxy

EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def argo_proxy():
    with FakeArgo() as argo:
        argo.reply = "Paris, of course."
        with running_proxy(**argo_env(argo)) as p:
            yield p


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(argo_proxy, example: Path):
    out = subprocess.run([sys.executable, str(example)], cwd=example.parent, capture_output=True, text=True,
                         timeout=60, env={"BASE_URL": argo_proxy.base_url, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    if "embedding" in example.name:
        assert out.stdout.splitlines()[1].startswith("1 ")
    else:
        assert "Paris, of course." in out.stdout


def readme_commands(heading: str) -> list[str]:
    """The commands of the first bash block under this README heading, without their comments."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no bash block under {heading!r}"
    return [re.split(r"\s+#", line)[0].strip() for line in block.group(1).splitlines() if line.strip()]


class Shell:
    """The commands as a user's shell runs them, one after the other: exports carry over, ./run_app.sh is this
    checkout's, the working directory is the user's (where config.yaml and keys.db are)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env

    def run(self, command: str) -> subprocess.CompletedProcess:
        command = command.replace("./run_app.sh", str(SCRIPT))
        done = subprocess.run(["bash", "-c", f"set -e\n{command}\nprintf '\\0ENV\\0'\nenv -0"], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        out, _, env = done.stdout.partition("\0ENV\0")
        self.env = dict(item.split("=", 1) for item in env.split("\0") if "=" in item)
        return subprocess.CompletedProcess(done.args, 0, out, done.stderr)


def test_the_readmes_team_example_runs_in_front_of_a_local_server(tmp_path: Path):
    """In front of a local server (which serves one model of its own name), the README's team commands as
    written: the key create prints works with the request the first run prints (it was a 403: the example's
    globs named gpt-4o and claude, and the key's model list was empty), then list, revoke and usage."""
    commands = readme_commands("### A team behind keys")
    assert commands[0].startswith("export ENABLE_AUTH=true API_KEY_SECRET=")
    assert "./run_app.sh" in commands and any(c.startswith("export COT_PROXY_KEY=") for c in commands)
    with FakeOpenAI() as server:
        port = free_port()
        (tmp_path / "config.yaml").write_text(  # what the first run wrote for a local server
            f'backend: "openai"\ntarget_base_url: "{server.base_url}"\nport: {port}\n')
        shell = Shell(tmp_path, script_env(tmp_path))
        key = None
        for command in commands[:commands.index("./run_app.sh")]:
            done = shell.run(command)
            if " keys create " in command:
                key = done.stdout.strip()
        assert key and key.startswith("sk-proxy-"), "keys create printed no key"
        with spawn(None, shell.env, tmp_path) as child:  # ./run_app.sh: serves, its last lines a request to paste
            child.expect_exact("Try it (in another terminal):")
            child.expect(r"  (curl [^\r\n]+)\r\n")
            curl = child.match.group(1)
            for command in commands[commands.index("./run_app.sh") + 1:]:
                if command.startswith("export COT_PROXY_KEY="):
                    shell.run(f"export COT_PROXY_KEY={key}")  # as create printed it
                    printed = shell.run(curl)  # the first request's curl, with her key
                    answer = json.loads(printed.stdout)
                    assert answer["choices"][0]["message"]["content"] == server.default_content, printed.stdout
                    listed = json.loads(shell.run(f"curl -s http://127.0.0.1:{port}/v1/models "
                                                  '-H "Authorization: Bearer $COT_PROXY_KEY"').stdout)
                    assert [m["id"] for m in listed["data"]] == ["fake-model"], listed
                    continue
                if " keys usage " in command:  # rows are written in batches, within a second of the answer
                    def alices_row(command: str = command) -> subprocess.CompletedProcess | None:
                        usage = shell.run(command)
                        return usage if "\nalice," in usage.stdout else None
                    done = poll(alices_row, timeout=5)
                    assert done, shell.run(command).stdout
                    assert list(csv.reader(io.StringIO(done.stdout)))[0][:2] == ["key", "model"], done.stdout
                    continue
                done = shell.run(command)
                if " keys list" in command:
                    assert "alice" in done.stdout and key not in done.stdout + done.stderr
                if " keys revoke " in command:  # refused within a second, on every worker
                    refused = poll(lambda: "401" in shell.run(curl.replace("curl ", "curl -s -o /dev/null "
                                                                            "-w '%{http_code}' ", 1)).stdout,
                                   timeout=5)
                    assert refused, "the revoked key still answered"
            assert "Traceback" not in transcript(child) and key not in transcript(child)
