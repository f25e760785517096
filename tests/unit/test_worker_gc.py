"""A worker that has loaded the app freezes what it built and collects young objects less often
(argoproxy.processes.post_worker_init)."""

from __future__ import annotations

import gc

from argoproxy import processes


def test_post_worker_init_freezes_the_app_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    app_object = [["built at start-up"]]  # a container of containers: tracked by the collector
    assert gc.is_tracked(app_object)
    try:
        processes.post_worker_init(None)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == processes.GC_YOUNG_THRESHOLD
        assert all(o is not app_object for o in gc.get_objects())  # frozen: out of the collector's sight
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_gunicorn_hooks_include_it(monkeypatch) -> None:
    for setup in ("prepare_metrics_dir", "share_generated_key", "install_gunicorn_response"):
        monkeypatch.setattr(processes, setup, lambda *args: None)  # master-only side effects
    assert processes.gunicorn_hooks(None)["post_worker_init"] is processes.post_worker_init
