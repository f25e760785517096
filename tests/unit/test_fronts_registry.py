"""The API doors' registry (argoproxy/fronts/__init__.py): FRONTS_PASSTHROUGH names doors that can be passed through,
checked against the registry where the doors are known (start-up: serve/gunicorn_app.py `checked`)."""

from __future__ import annotations

import pytest

from argoproxy.config.settings import SettingsError
from argoproxy.fronts import FRONTS, Front, passthrough_refused
from argoproxy.serve.gunicorn_app import checked


def test_passthrough_names_doors_that_pass_through():
    assert passthrough_refused(("responses", "messages")) is None
    assert "got 'google'" in passthrough_refused(("google",))  # no backend serves Google's API
    assert "got 'nope'" in passthrough_refused(("nope",))


def test_a_bad_door_name_stops_start_up_naming_the_setting(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TARGET_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("FRONTS_PASSTHROUGH", "responses,nope")
    with pytest.raises(SettingsError, match=r"^FRONTS_PASSTHROUGH: must list front doors among .*got 'nope'$"):
        checked(serving=False)


def test_every_door_has_a_name_and_routes_or_claims():
    for name, front in FRONTS.items():
        assert name == front.name
        assert front.routes or type(front).route is not Front.route  # it serves something
