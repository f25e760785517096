"""The Messages door's batch route in-process: declared through its registry entry, read by the core's batch reader
for the guard (every model) and for a token limit (every request), with nothing of Anthropic's API in the core."""

from __future__ import annotations

import json

import pytest

from argoproxy.errors import ProxyError
from argoproxy.fronts.messages.batches import MessageBatches
from argoproxy.pipeline.batch_models import BatchModels
from argoproxy.pipeline.call import Call
from argoproxy.serve.build import door_batches


def batch_call(body: object, path: str = "v1/messages/batches") -> Call:
    call = Call.of("forward", "POST", path)
    call.plan.raw_body = json.dumps(body).encode()
    return call


def no_fetch(path: str):
    raise AssertionError(f"a message batch's requests are in its body; nothing is read upstream ({path})")


BODY = {"requests": [{"custom_id": "a", "params": {"model": "claude-haiku-4", "max_tokens": 9, "messages": []}},
                     {"custom_id": "b", "params": {"Model": "evil", "max_tokens": 5, "messages": []}}]}


def test_the_door_declares_its_batch_route_and_the_core_reads_every_model():
    batches = BatchModels(1 << 20, 5.0, door_batches())
    named: list[object] = []
    assert batches.read(batch_call(BODY), named.append, no_fetch) is True
    assert named == ["claude-haiku-4", "evil"]  # `Model` as a lenient server reads it too
    assert batches.read(batch_call(BODY, "v1/messages"), named.append, no_fetch) is False


def test_every_request_is_reserved_as_a_messages_create():
    batches = BatchModels(1 << 20, 5.0, door_batches())
    asked = list(batches.requests(batch_call(BODY), no_fetch))
    assert [url for url, _ in asked] == ["/v1/messages", "/v1/messages"]
    assert [params["max_tokens"] for _, params in asked] == [9, 5]


def test_without_the_door_the_route_is_no_batch():
    assert BatchModels(1 << 20, 5.0).read(batch_call(BODY), lambda m: None, no_fetch) is False


@pytest.mark.parametrize("body,param", [({"requests": {}}, "requests"), ({"requests": [{"params": 3}]},
                                                                          "requests[0].params")])
def test_a_malformed_batch_is_the_clients_400(body, param):
    with pytest.raises(ProxyError) as info:
        MessageBatches().models(json.dumps(body).encode(), lambda m: None)
    assert info.value.status == 400 and info.value.param == param
