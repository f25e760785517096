"""config.sample.yaml agrees with the Settings and the docs: it loads as it is, its backend is the default
the docs name, and it documents every setting's YAML key."""

from __future__ import annotations

import re
import shutil

from argoproxy.config.settings import SETTING_FIELDS, Settings, load_settings
from tests.proxy_process import ROOT

SAMPLE = ROOT / "config.sample.yaml"


def test_the_sample_loads_as_it_is(tmp_path) -> None:
    copy = tmp_path / SAMPLE.name  # the data directory is the config's: not the checkout, where a user's keys.db is
    shutil.copy(SAMPLE, copy)
    settings = load_settings({"config_path": str(copy)}, environ={})
    assert settings.backend == Settings.backend == "openai"
    assert (ROOT / "docs" / "backends" / "openai.md").read_text().startswith("# openai (default)\n")


def test_the_sample_documents_every_setting() -> None:
    text = SAMPLE.read_text()
    keys = set(re.findall(r"(?m)^(?:# )?([a-z_]+):", text))
    missing = [name for name in SETTING_FIELDS if name != "config_path"
               and not {name, *SETTING_FIELDS[name].metadata["yaml_aliases"]} & keys]
    assert missing == []


def test_the_sample_with_another_backend_serves_that_backend(tmp_path) -> None:
    """The no-terminal instructions: copy the sample, set `backend:` (and ARGO's `user:`)."""
    for backend, extra, url in (("argo", 'user: "alice"\n', None),
                                ("dashscope", "", "https://dashscope.aliyuncs.com/api/v1/")):
        config = tmp_path / f"{backend}.yaml"
        config.write_text(SAMPLE.read_text().replace("backend: openai", f"backend: {backend}") + extra)
        settings = load_settings({"config_path": str(config)}, environ={})
        assert settings.backend == backend
        if url:
            assert settings.target_base_url == url
