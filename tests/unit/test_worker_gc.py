"""With FAST_PATH=on, a worker that has loaded the app freezes what it built and collects young objects less
often (argoproxy.fastpath.tune_worker_gc, run by tune_worker, Gunicorn's post_worker_init); with it off, the
hook is absent."""

from __future__ import annotations

import gc

import pytest

from argoproxy import fastpath
from argoproxy.serve import gunicorn_hooks
from argoproxy.config.settings import load_settings


def test_the_worker_hook_freezes_the_app_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    app_object = [["built at start-up"]]  # a container of containers: tracked by the collector
    assert gc.is_tracked(app_object)
    try:
        fastpath.tune_worker_gc(None)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == fastpath.GC_YOUNG_THRESHOLD
        assert all(o is not app_object for o in gc.get_objects())  # frozen: out of the collector's sight
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_the_gunicorn_hooks_include_it_with_the_fast_path_only(monkeypatch, mode) -> None:
    for setup in ("prepare_metrics_dir", "prepare_shared_dir", "share_generated_key"):
        monkeypatch.setattr(gunicorn_hooks, setup, lambda *args: None)  # master-only side effects
    monkeypatch.setattr(fastpath, "install", lambda: None)  # process-wide patches: see test_fastpath_contract
    hooks = gunicorn_hooks.gunicorn_hooks(load_settings({}, environ={"FAST_PATH": mode}))
    assert hooks.get("post_worker_init") is (fastpath.tune_worker if mode == "on" else None)
