"""The proxy's sealed content and compaction's pure parts (argoproxy/fronts/responses/compact.py), its key
(argoproxy/state/seal_key.py), and compaction through the door in-process: the one guard applies to it."""

from __future__ import annotations

import base64
import json
import os
import stat
import zlib

from argoproxy.edge.http_objects import Request
from argoproxy.fronts.responses.compact import COMPACT_KEEP, SEALED, Seal, kept_user_messages
from argoproxy.state.seal_key import file_key
from tests.fakes.fake_upstream import chat_completion


def test_sealed_text_opens_for_its_purpose_only_and_not_once_altered():
    seal = Seal()
    seal.use(lambda: b"k" * 32)
    sealed = seal.seal("compaction", "the summary")
    assert sealed.startswith(SEALED) and "the summary" not in sealed
    assert seal.open("compaction", sealed) == "the summary"
    assert seal.open("reasoning", sealed) is None  # a reasoning item's content cannot pass for a summary
    body, tag = sealed[len(SEALED):].rsplit(".", 1)
    assert seal.open("compaction", SEALED + body[:-1] + "A." + tag) is None
    other = Seal()
    other.use(lambda: b"x" * 32)
    assert other.open("compaction", sealed) is None  # another install's
    for junk in (None, 3, "", SEALED, SEALED + ".", "gAAAAABpM0Yj"):
        assert seal.open("compaction", junk) is None


def test_sealed_content_expands_to_a_bounded_size():
    seal = Seal()
    seal.use(lambda: b"k" * 32)
    bomb = base64.urlsafe_b64encode(zlib.compress(json.dumps({"t": "a" * (17 << 20)}).encode(), 9)).decode()
    assert seal.open("compaction", SEALED + bomb + "." + seal._tag("compaction", bomb)) is None


def test_kept_user_messages_are_the_newest_that_fit_in_order():
    big = "x" * (COMPACT_KEEP - 100)
    items = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"},
             {"role": "user", "content": big}, {"type": "function_call_output", "call_id": "c", "output": "o"},
             {"role": "user", "content": [{"type": "input_text", "text": "last"}], "id": "msg_mine"}]
    kept = kept_user_messages(items, "resp_" + "0" * 24)
    assert [k["content"][0]["text"] for k in kept] == [big, "last"]  # "first" no longer fits
    assert kept[1]["id"] == "msg_mine" and kept[0]["id"].endswith("0" * 24)
    assert all(k["type"] == "message" and k["status"] == "completed" for k in kept)
    assert kept_user_messages("just this", "resp_" + "0" * 24)[0]["content"] == [{"type": "input_text",
                                                                                  "text": "just this"}]


def test_the_seal_key_file_is_made_once_private_and_shared(tmp_path):
    path = tmp_path / "data" / "seal.key"
    key = file_key(path)
    assert len(key) == 32 and file_key(path) == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["seal.key"]  # no temporary file left


def test_the_seal_key_is_made_through_no_link_another_user_left(tmp_path):
    # a data directory others may write to (/tmp): a link where the key is first written went unfollowed, so the
    # proxy truncated and wrote over the file it named
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    path = tmp_path / "seal.key"
    path.with_name(f".seal.key.{os.getpid()}").symlink_to(victim)
    key = file_key(path)
    assert victim.read_bytes() == b"keep me" and len(key) == 32 and path.read_bytes() == key


def test_compaction_passes_the_one_guard(make):
    door, up, calls = make(ALLOWED_MODELS="gpt-4o")
    refused = door.handle(Request.of("POST", "/v1/responses/compact", {"model": "evil", "input": "hi"}))
    assert refused.status_code == 403 and up.sent == []
    up.reply(chat_completion("a summary"))
    done = door.handle(Request.of("POST", "/v1/responses/compact", {"model": "gpt-4o", "input": "hi"}))
    assert done.status_code == 200 and json.loads(done.get_data())["object"] == "response.compaction"
    assert [c.start.kind for c in calls][-1] == "chat" and len(up.sent) == 1


def test_an_upstream_serving_responses_itself_gets_the_compaction_as_it_came(make):
    door, up, _ = make(FRONTS_PASSTHROUGH="responses")
    up.reply({"id": "resp_up", "object": "response.compaction", "created_at": 1, "output": [], "usage": {}})
    answer = door.handle(Request.of("POST", "/v1/responses/compact", {"model": "m", "input": "hi"}))
    assert answer.status_code == 200 and json.loads(answer.get_data())["id"] == "resp_up"
    assert up.sent[-1].url == "http://upstream.test/v1/responses/compact"
    assert json.loads(up.sent[-1].body)["input"] == "hi"
