"""The Responses WebSocket's places, in-process (argoproxy/fronts/responses/websocket/places.py): a key's share
and the instance's, counted in one file that two workers' Places share; given back however a connection ends, and
by the master for a killed worker (its ledger); a key counted as one whatever its spelling. The wire (426 through
the running app, 1024 open files) is tests/integration/test_websocket_places.py."""

from __future__ import annotations

import os
import resource

import pytest

from argoproxy.config.settings import load_settings
from argoproxy.edge.http_objects import Request
from argoproxy.edge.paths import canonical
from argoproxy.fronts.responses.websocket.places import Places, ledger_name, release_dead_worker, slots_for
from argoproxy.serve.websocket_upgrade import worker_holds
from argoproxy.state.records import ANONYMOUS


def test_a_key_holds_its_share_and_the_instance_its_whole(tmp_path):
    places = Places(most=5, per_key=3, directory=str(tmp_path))
    rows = [places.take("key:a") for _ in range(3)]
    assert all(isinstance(row, int) for row in rows)
    refused = places.take("key:a")
    assert refused == "this key holds 3 WebSocket connections already (WEBSOCKET_CONNECTIONS_PER_KEY)"
    assert isinstance(places.take("key:b"), int) and isinstance(places.take(ANONYMOUS), int)
    assert places.take("key:c") == "the proxy holds 5 WebSocket connections already (WEBSOCKET_CONNECTIONS)"
    assert places.count() == 5 and places.count("key:a") == 3 and places.count("key:c") == 0
    places.give_back(rows[0])
    assert places.count("key:a") == 2 and isinstance(places.take("key:c"), int)


def test_two_workers_count_in_the_same_cells(tmp_path):
    one, two = Places(8, 2, str(tmp_path)), Places(8, 2, str(tmp_path))  # as two workers map the file
    held = one.take("key:a")
    assert isinstance(held, int) and isinstance(two.take("key:a"), int)
    assert isinstance(one.take("key:a"), str) and isinstance(two.take("key:a"), str)  # the share holds on both
    one.give_back(held)
    assert isinstance(two.take("key:a"), int) and one.count() == 2


def test_places_given_back_free_rows_for_other_keys(tmp_path):
    places = Places(most=100, per_key=1, directory=str(tmp_path))
    for round_ in range(5):  # 500 keys through 256 rows: a row at 0 connections is taken by the next key
        rows = [places.take(f"key:{round_}-{i}") for i in range(100)]
        assert all(isinstance(row, int) for row in rows) and places.count() == 100
        for row in rows:
            places.give_back(row)
    assert places.count() == 0 and places.slots == slots_for(100) == 256


def test_a_key_counts_as_one_whatever_its_spelling(make, tmp_path):
    door, _, _ = make(ENABLE_AUTH="true", API_KEY_SECRET="sk-one,sk-two")
    route = door.table.classify(canonical("/v1/responses"))
    places = Places(most=8, per_key=2, directory=str(tmp_path))

    def take(headers: dict[str, str]) -> int | str:
        req = Request.of("GET", "/v1/responses", headers=headers)
        door.auth.check(req, route)
        return places.take_for(req, auth_on=True)
    assert isinstance(take({"Authorization": "Bearer sk-one"}), int)
    assert isinstance(take({"Api-Key": "sk-one", "Authorization": "Bearer not-a-key"}), int)
    assert isinstance(take({"Authorization": "bearer   sk-one "}), str)  # its third: over its share of 2
    assert isinstance(take({"Authorization": "Bearer sk-two"}), int)  # another key


def test_with_auth_off_every_connection_is_the_anonymous_keys(tmp_path):
    places = Places(most=8, per_key=2, directory=str(tmp_path))
    for key in ("sk-one", "sk-two"):
        req = Request.of("GET", "/v1/responses", headers={"Authorization": f"Bearer {key}"})
        assert isinstance(places.take_for(req, False), int)
    assert isinstance(places.take_for(Request.of("GET", "/v1/responses"), False), str)
    assert places.count(ANONYMOUS) == 2


def test_a_killed_workers_places_are_given_back_by_the_master(tmp_path):
    places = Places(most=4, per_key=4, directory=str(tmp_path))
    for _ in range(3):
        assert isinstance(places.take("key:a"), int)
    assert (tmp_path / ledger_name(places.slots, os.getpid())).exists()
    assert release_dead_worker(os.getpid(), str(tmp_path)) == 3  # the master, once this "worker" is gone
    assert places.count() == 0 and not (tmp_path / ledger_name(places.slots, os.getpid())).exists()
    assert release_dead_worker(os.getpid(), str(tmp_path)) == 0
    assert release_dead_worker(12, str(tmp_path)) == 0 and release_dead_worker(12, "") == 0


def test_without_the_shared_directory_there_is_no_ledger(tmp_path):
    places = Places(most=2, per_key=2, directory="")
    assert isinstance(places.take(ANONYMOUS), int) and places.count() == 1 and not list(tmp_path.iterdir())


@pytest.mark.parametrize("worker_class, threads, expected", [
    ("gevent", "1", (512, "half its open-file limit, ulimit -n")),
    ("gthread", "4", (3, "WEBSOCKET_THREADS")),
    ("sync", "1", None)])
def test_a_worker_holds_half_its_open_files_at_most(monkeypatch, worker_class, threads, expected):
    monkeypatch.setattr(resource, "getrlimit", lambda what: (1024, 4096))
    settings = load_settings({}, environ={"WORKER_CLASS": worker_class, "THREADS": threads, "TARGET_BASE_URL":
                                          "http://upstream.test/v1/"})
    holds = worker_holds(settings)
    assert (holds.limit, holds.why) == expected if expected else holds is None


@pytest.mark.parametrize("name, value", [("WEBSOCKET_CONNECTIONS", "0"), ("WEBSOCKET_CONNECTIONS_PER_KEY", "-1"),
                                         ("WEBSOCKET_CONNECTIONS_PER_KEY", "many")])
def test_a_bad_value_stops_start_up_naming_the_key(name, value):
    with pytest.raises(ValueError) as bad:
        load_settings({}, environ={name: value, "TARGET_BASE_URL": "http://upstream.test/v1/"})
    assert str(bad.value).startswith(f"{name}: ") and "\n" not in str(bad.value)
