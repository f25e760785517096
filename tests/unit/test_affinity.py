"""Cache-aware routing's choice, in-process (routing/affinity.py): conversations named by their leading
messages and their tenant, their hash order, and the prefix table where each tenant's notes are its own."""

from __future__ import annotations

from types import SimpleNamespace

from argoproxy.admission.queue import Admission
from argoproxy.routing.affinity import (BUCKETS, FORGET_SECONDS, ONE_TENANT, OWN_WAYS, WAYS, CacheAware,
                                        PrefixTable, hash_order, owner_of, prefix_tag, preferred, tenant)
from argoproxy.shared_cells import SharedCells

SYSTEM = {"role": "system", "content": "long shared prompt"}
FIRST = [SYSTEM, {"role": "user", "content": "task A"}]
LATER = [*FIRST, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]


def admission(limits) -> Admission:
    return Admission([list(range(len(limits)))], len(limits), limits, cells=SharedCells("t", 200_000, ""))


def table(clock=None) -> PrefixTable:
    return PrefixTable("t", cells=SharedCells("a", BUCKETS * WAYS * 5, ""), **({"clock": clock} if clock else {}))


def call(key: str = "", team: str | None = None, messages=LATER):
    team_key = None if team is None else SimpleNamespace(team=team)  # a KeyRecord as far as tenant() reads it
    request = SimpleNamespace(presented_keys=[key] if key else [])
    return SimpleNamespace(plan=SimpleNamespace(team_key=team_key, body={"messages": messages}),
                           client=SimpleNamespace(request=request))


KEY_A, KEY_B = tenant(call("sk-a"), True), tenant(call("sk-b"), True)


def test_a_conversation_is_named_by_its_leading_messages_and_its_tenant():
    other = [SYSTEM, {"role": "user", "content": "task B"}]
    assert prefix_tag({"messages": FIRST}, KEY_A) == prefix_tag({"messages": LATER}, KEY_A)
    assert prefix_tag({"messages": other}, KEY_A) != prefix_tag({"messages": FIRST}, KEY_A)
    assert prefix_tag({"messages": FIRST}, KEY_A) != prefix_tag({"messages": FIRST}, KEY_B), "keys share nothing"
    assert prefix_tag({}, KEY_A) == 0
    # a lone surrogate (JSON allows one) in a legacy prompt or a message: a tag, not an encoding error (a 500)
    assert prefix_tag({"prompt": "a\ud800"}, KEY_A) != prefix_tag({"prompt": "a"}, KEY_A)
    assert prefix_tag({"messages": [{"role": "user", "content": "a\ud800"}]}, KEY_A) > 0


def test_the_tenant_is_the_key_or_its_team_and_everyone_with_auth_off():
    assert tenant(call("sk-a"), False) == tenant(call("sk-b"), False) == tenant(call(), False) == ONE_TENANT
    assert KEY_A != KEY_B and KEY_A == tenant(call("sk-a"), True), "the same on every worker and replica"
    assert tenant(call("sk-a", team="lab"), True) == tenant(call("sk-b", team="lab"), True)
    assert tenant(call("sk-a", team="lab"), True) not in (KEY_A, tenant(call("sk-a", team="other"), True))
    assert tenant(call("sk-a", team=""), True) == KEY_A  # a key without a team is its own tenant


def test_a_conversation_goes_home_and_is_noted_only_away_from_it():
    a, t = admission([1, 1]), table()
    tag, owner = prefix_tag({"messages": LATER}, KEY_A), owner_of(KEY_A)
    home, away = hash_order([0, 1], tag)
    assert preferred(a, t, [0, 1], frozenset(), tag, owner) == (home, home)
    t.note(tag, owner, home, home)
    assert t.find(tag, owner) == -1, "at home: nothing to note"
    held = a.enter(0, "other", 1, prefer=home)  # its home is full: the turn goes away, and is noted there
    assert preferred(a, t, [0, 1], frozenset(), tag, owner) == (home, home)  # (a limit: admission finds no room)
    seat = a.enter(0, "k", 1, prefer=home)
    assert seat.dep == away
    t.note(tag, owner, seat.dep, home)
    a.release(held)
    assert preferred(a, t, [0, 1], frozenset(), tag, owner) == (away, home), "it stays where its cache is"
    a.release(seat)
    assert preferred(a, t, [0, 1], frozenset(), tag, owner)[0] == away
    t.note(tag, owner, home, home)  # back home (its second server was full): the note goes
    assert t.find(tag, owner) == -1


def test_another_keys_placement_does_not_depend_on_a_keys_history():
    a, t = admission([2, 2]), table()
    tag_b = prefix_tag({"messages": LATER}, KEY_B)
    before = preferred(a, t, [0, 1], frozenset(), tag_b, owner_of(KEY_B))
    tag_a = prefix_tag({"messages": LATER}, KEY_A)
    home_a = hash_order([0, 1], tag_a)[0]
    t.note(tag_a, owner_of(KEY_A), 1 - home_a, home_a)  # A's conversation, away from its home
    assert t.find(tag_b, owner_of(KEY_B)) == -1
    assert preferred(a, t, [0, 1], frozenset(), tag_b, owner_of(KEY_B)) == before


def test_another_keys_notes_never_take_the_place_of_a_keys():
    t = table()
    tag_a, owner_a = prefix_tag({"messages": LATER}, KEY_A), owner_of(KEY_A)
    t.note(tag_a, owner_a, 1, 0)
    owner_b = owner_of(KEY_B)
    for i in range(BUCKETS * WAYS * 2):  # every way of every bucket, twice over
        t.note(prefix_tag({"messages": [{"role": "user", "content": f"b {i}"}]}, KEY_B), owner_b, 1, 0)
    assert t.find(tag_a, owner_a) == 1
    assert t.find(tag_a, owner_b) == -1


def test_a_tenant_keeps_at_most_its_share_of_a_bucket_and_its_newest_notes():
    t = table()
    owner = owner_of(KEY_A)
    same_bucket = [7 + BUCKETS * i for i in range(1, OWN_WAYS + 2)]
    for tag in same_bucket:
        t.note(tag, owner, 1, 0)
    assert t.find(same_bucket[0], owner) == -1, "its oldest gave way to its newest"
    assert all(t.find(tag, owner) == 1 for tag in same_bucket[1:])
    others = [7 + BUCKETS * i for i in range(100, 100 + WAYS - OWN_WAYS)]
    for tag in others:  # the rest of the bucket is another tenant's
        t.note(tag, owner_of(KEY_B), 1, 0)
    assert all(t.find(tag, owner_of(KEY_B)) == 1 for tag in others)


def test_a_note_unused_for_an_hour_is_free_for_anyone():
    now = [1000.0]
    t = table(clock=lambda: now[0])
    owner_b = owner_of(KEY_B)
    bucket = [9 + BUCKETS * i for i in range(1, WAYS * 4)]
    for i, tag in enumerate(bucket[:WAYS]):
        t.note(tag, owner_of(tenant(call(f"sk-{i}"), True)), 1, 0)
    t.note(bucket[WAYS], owner_b, 1, 0)
    assert t.find(bucket[WAYS], owner_b) == -1, "a full bucket of others' live notes: not kept"
    now[0] += FORGET_SECONDS + 1
    t.note(bucket[WAYS], owner_b, 1, 0)
    assert t.find(bucket[WAYS], owner_b) == 1


def test_without_limits_a_conversation_stays_within_a_bounded_load():
    a, t = admission([0, 0]), table()
    tag, owner = prefix_tag({"messages": LATER}, KEY_A), owner_of(KEY_A)
    home, away = hash_order([0, 1], tag)
    a.enter(0, "k", 1, prefer=home)
    a.enter(0, "k", 1, prefer=home)
    assert preferred(a, t, [0, 1], frozenset(), tag, owner)[0] == home  # 2 + 1 <= max(1.25 x 3 / 2, 1.5 + 1): 3
    a.enter(0, "k", 1, prefer=home)
    assert preferred(a, t, [0, 1], frozenset(), tag, owner)[0] == away  # 3 + 1 > 3: past its bound
    assert preferred(a, t, [0, 1], {away}, tag, owner)[0] == -1  # one left to try: admission's choice


def test_one_deployment_or_nothing_to_go_by_is_no_turn():
    aware = CacheAware("t", True, cells=SharedCells("c", BUCKETS * WAYS * 5, ""))
    a = admission([0, 0])
    assert aware.turn(call("sk-a"), a, [0], frozenset()) is None
    assert aware.turn(call("sk-a", messages=[]), a, [0, 1], frozenset()) is None
    turn = aware.turn(call("sk-a"), a, [0, 1], frozenset())
    assert turn is not None and turn.prefer == turn.home
