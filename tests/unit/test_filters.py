"""The answer transforms as ordered filters (argoproxy/pipeline/filters.py): the byte filters run in their
order on streamed and whole answers alike, and a filter that does not apply adds nothing."""

from __future__ import annotations

from argoproxy.config.settings import load_settings
from argoproxy.pipeline.answers import Answers
from argoproxy.pipeline.call import Call, Planned
from argoproxy.pipeline.answers import OutputTap
from argoproxy.pipeline.filters import ModelName, ScrubSecrets, item_filters, think_tags
from argoproxy.pipeline.think import ThinkConfig

SECRET = "sk-upstream-0123456789abcdef"


class Closing:
    """What relay needs of an upstream response."""
    closed = False

    def close(self) -> None:
        self.closed = True


def answers(tmp_path) -> Answers:
    settings = load_settings(environ={"HOME": str(tmp_path), "OPENAI_API_KEY": SECRET, "LOG_DIR": str(tmp_path),
                                      "JOURNAL_BODY_BYTES": "1000"})
    return Answers(settings)


def test_byte_filters_run_in_order_renamed_then_scrubbed_then_tapped(tmp_path):
    ans = answers(tmp_path)
    assert [type(f) for f in ans.byte_filters] == [ModelName, ScrubSecrets, OutputTap]
    call = Call.of("chat", "POST", "v1/chat/completions")
    call.outcome.renamed_to = "asked"
    pieces = [b'data: {"model": "fallback", "content": "key sk-upstream-0123', b'456789abcdef"}\n\n']
    resp = Closing()
    sent = b"".join(ans.relay(call, resp, iter(pieces)))  # type: ignore[arg-type]
    assert sent.count(b'"model": "asked"') == 1 and SECRET.encode() not in sent and resp.closed
    tap = call.outcome.output_tap
    assert tap is not None and tap.size == len(sent) and call.outcome.bytes_out == len(sent)  # what the client got


def test_whole_answers_take_the_same_filters(tmp_path):
    ans = answers(tmp_path)
    call = Call.of("chat", "POST", "v1/chat/completions")
    call.outcome.renamed_to = "asked"
    data = ans.finished(call, b'{"model":"fallback","x":"' + SECRET.encode() + b'"}')
    assert b'"model":"asked"' in data and SECRET.encode() not in data and call.outcome.bytes_out == len(data)
    big = ans.finished(call, b'{"x":"' + b"a" * 2000 + b'"}')
    assert call.outcome.output == big  # longer than JOURNAL_BODY_BYTES: the journal records the bytes


def test_filters_that_do_not_apply_return_their_input():
    call = Call.of("chat", "POST", "v1/chat/completions")
    chunks = iter([b"x"])
    assert ModelName().stream(call, chunks) is chunks
    assert OutputTap(0).stream(call, chunks) is chunks
    items = iter([{"choices": []}])
    assert all(f(call, items) is items for f in item_filters(0))  # no journal, no think configuration
    call.planned = Planned(think=ThinkConfig("strip"))
    assert think_tags(call, items) is not items
