"""The seed's examples (examples/) run against the proxy in front of a fake ARGO gateway."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.fake_argo import FakeArgo
from tests.integration.test_argo import argo_env
from tests.proxy_process import ROOT, running_proxy

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
