"""`cot-proxy signin setup` where it cannot ask: no config yet, or no terminal (exit 2, one message, nothing
written). The questions themselves: tests/integration/test_signin_setup.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from argoproxy.signin import setup


def test_without_a_config_it_says_to_run_the_first_run_first(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert setup.main(["setup", str(tmp_path / "config.yaml")], "cot-proxy") == 2
    assert "not found: run cot-proxy once first" in capsys.readouterr().out


def test_without_a_terminal_it_names_the_settings_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('backend: "openai"\n')
    monkeypatch.setattr(setup, "interactive", lambda: False)
    assert setup.main(["setup", str(config)], "cot-proxy") == 2
    said = capsys.readouterr().out
    assert "OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET_FILE, PUBLIC_URL and ADMIN_EMAILS" in said
    assert config.read_text() == 'backend: "openai"\n'
