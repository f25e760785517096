"""Issue 72, item 3, in-process: an ARGO username's shape (people/argo_user.py) wherever one comes in (the command
line, the console, the OIDC_ARGO_USER_CLAIM claim, the setting itself); a person's and a key's kept in both stores
(SQLite and Redis), a store made before them opened in place, a sign-in's claim replacing what was kept and a
sign-in without one keeping it; the key's own before its owner's."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from types import SimpleNamespace

import pytest

from argoproxy.config.settings import SettingsError, load_settings
from argoproxy.people import Person, person_id
from argoproxy.people.argo_user import claimed, parse_argo_user
from argoproxy.teamkeys import people_cli
from argoproxy.teamkeys.records import KeyRecord, digest
from argoproxy.teamkeys.store import SQLiteKeyStore
from tests.key_store_places import store_of, store_place
from tests.keys_cli import run_keys

ISSUER = "https://login.example.com"


@pytest.mark.parametrize("name", ["jdoe", "j.doe-2", "svc_build", "A1", "x" * 64])
def test_an_argo_username_of_argo_s_shape_is_taken(name):
    assert parse_argo_user(f" {name} ") == name


@pytest.mark.parametrize("name", ["j doe", "ann@example.com", "cels", "CELS", "x" * 65, "-lead", ".dot", "é",
                                  "a\nb", "a\x00", "a/b", "a;b", "a%20b", "ａbc"])
def test_anything_else_is_refused_with_a_line_naming_where(name):
    with pytest.raises(ValueError, match=r"^--argo-user: ") as refused:
        parse_argo_user(name)
    assert "\n" not in str(refused.value)


def test_none_or_nothing_clears_it():
    assert parse_argo_user("none") == parse_argo_user("NONE") == parse_argo_user("") == ""


def test_the_claim_is_read_when_given_and_of_argo_s_shape():
    assert claimed({"argo": "jdoe"}, "argo") == "jdoe"
    assert claimed({"argo": ""}, "argo") == claimed({}, "argo") == claimed({"argo": "jdoe"}, "") == ""
    with pytest.raises(ValueError, match=r"^OIDC_ARGO_USER_CLAIM \(argo\): 'ann@example.com' is not an ARGO"):
        claimed({"argo": "ann@example.com"}, "argo")
    with pytest.raises(ValueError, match="is a list, not a string"):
        claimed({"argo": ["jdoe"]}, "argo")


def test_the_setting_is_one_claim_s_name_and_needs_sign_in():
    assert load_settings({}, environ={}).oidc_argo_user_claim == ""
    with pytest.raises(SettingsError, match=r"OIDC_ARGO_USER_CLAIM.*without spaces"):
        load_settings({}, environ={"OIDC_ARGO_USER_CLAIM": "argo user"})
    with pytest.raises(SettingsError, match=r"^OIDC_ISSUER: not set, but OIDC_ARGO_USER_CLAIM is"):
        load_settings({}, environ={"OIDC_ARGO_USER_CLAIM": "argo_user"})


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    return store_of(store_place(request, tmp_path))


def person(login: str, argo_user: str = "") -> Person:
    return Person(person_id(ISSUER, login), login, ISSUER, email=f"{login}@example.com", argo_user=argo_user)


def test_a_person_s_and_a_key_s_names_are_kept_and_read_with_the_key(store):
    ann = store.signed_in(person("ann"), rule_admin=False)
    assert ann.argo_user == ""
    assert store.set_person_argo_user(ann.id, "ann.argo") and not store.set_person_argo_user("p-nobody", "x")
    store.create(KeyRecord("anns", digest("sk-ann"), "sk-", owner=ann.id))
    store.create(KeyRecord("svc", digest("sk-svc"), "sk-", owner=ann.id, argo_user="svc.argo"))
    store.create(KeyRecord("plain", digest("sk-plain"), "sk-"))
    found = store.find(digest("sk-ann"))
    assert (found.argo_user, found.owner_argo_user, found.argo_name) == ("", "ann.argo", "ann.argo")
    assert store.find(digest("sk-svc")).argo_name == "svc.argo"  # its own, before its owner's
    assert store.find(digest("sk-plain")).argo_name == ""
    assert store.update("anns", {"argo_user": "ann.key"}) and store.find(digest("sk-ann")).argo_name == "ann.key"
    assert {r.name: r.argo_user for r in store.records()} == {"anns": "ann.key", "plain": "", "svc": "svc.argo"}
    if hasattr(store, "redis"):  # a record and a person written before issue 72 lack the field: none
        store.redis.hdel(f"cot_proxy:key:{digest('sk-ann')}", "argo_user")
        store.redis.hdel(f"cot_proxy:person:{ann.id}", "argo_user")
        assert store.find(digest("sk-ann")).argo_name == "" and store.person(ann.id).argo_user == ""


def test_a_sign_in_s_claim_replaces_the_name_and_one_without_keeps_it(store):
    ann = store.signed_in(person("ann"), rule_admin=False)
    store.set_person_argo_user(ann.id, "by.admin")
    assert store.signed_in(person("ann"), rule_admin=False).argo_user == "by.admin"  # no claim: kept
    assert store.signed_in(person("ann", "by.claim"), rule_admin=False).argo_user == "by.claim"
    assert store.person(ann.id).argo_user == "by.claim"


def test_a_store_made_before_argo_user_is_opened_in_place(tmp_path):
    made = SQLiteKeyStore(tmp_path / "keys.db")
    ann = made.signed_in(person("ann"), rule_admin=False)
    made.create(KeyRecord("anns", digest("sk-ann"), "sk-", owner=ann.id))
    with sqlite3.connect(made.path) as db:  # as the release before issue 72 left it
        db.execute("ALTER TABLE keys DROP COLUMN argo_user")
        db.execute("ALTER TABLE people DROP COLUMN argo_user")
    store = SQLiteKeyStore(made.path)
    assert store.find(digest("sk-ann")).argo_name == "" and store.person(ann.id).argo_user == ""
    store.set_person_argo_user(ann.id, "ann.argo")
    assert store.find(digest("sk-ann")).argo_name == "ann.argo"


def test_keys_create_and_update_take_argo_user_and_refuse_a_bad_one(tmp_path):
    db = tmp_path / "keys.db"
    assert run_keys("create", "k1", "--argo-user", "jdoe", keys_db=db).returncode == 0
    assert [r.argo_user for r in SQLiteKeyStore(db).records()] == ["jdoe"]
    refused = run_keys("create", "k2", "--argo-user", "j doe", keys_db=db)
    assert refused.returncode == 2 and refused.stderr.startswith("cot_proxy keys: --argo-user: 'j doe' is not")
    assert run_keys("update", "k1", "--argo-user", "none", keys_db=db).returncode == 0
    assert [r.argo_user for r in SQLiteKeyStore(db).records()] == [""]
    assert SQLiteKeyStore(db).audit()[0].fields == {"argo_user": "none"}


def test_people_update_sets_a_person_s_name_and_refuses_a_bad_one_or_nobody(tmp_path):
    store = SQLiteKeyStore(tmp_path / "keys.db")
    ann = store.signed_in(person("ann"), rule_admin=False)

    def people(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        settings = SimpleNamespace(redis_url="", keys_db=str(store.path), enable_auth=True, oidc_inactive_days=90.0)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = people_cli.main(list(args), lambda flags: settings)
        return status, out.getvalue(), err.getvalue()
    assert people("update", "ann@example.com", "--argo-user", "ann.argo")[0] == 0
    assert store.person(ann.id).argo_user == "ann.argo"
    assert people("list")[1].splitlines()[1].split()[-1] == "ann.argo"
    status, _, err = people("update", ann.id, "--argo-user", "ann@example.com")
    assert status == 2 and err.startswith("cot_proxy people: --argo-user: 'ann@example.com' is not an ARGO username")
    assert people("update", "nobody@example.com", "--argo-user", "x")[0] == 2
    assert people("update", ann.id, "--argo-user", "none")[0] == 0 and store.person(ann.id).argo_user == ""
