"""The routed call's pure pieces: per-deployment params, context-length errors, renaming, header values."""


from argoproxy.errors import ProxyError
from argoproxy.config.llm_params import parse_llm_params
from argoproxy.pipeline.call import Call
from argoproxy.pipeline.filters import ModelName
from argoproxy.config.llm_params import DeploymentParams
from argoproxy.routing.dispatch import header_safe, is_context_exceeded
from argoproxy.config.routing_settings import parse_models


def test_deployment_params_go_on_top_of_llm_params():
    base = parse_llm_params("model=*,max_tokens=100;model=qwen3,temperature=0.2,think_mode=strip")
    entry = parse_models([{"name": "qwen3", "backend": "argo", "params": {"temperature": 0.6, "think_mode": "reasoning"}}])[0]
    rule = DeploymentParams(base, entry.params).rule_for("qwen3")
    assert rule.params == {"max_tokens": 100, "temperature": 0.6} and rule.think_mode == "reasoning"
    assert DeploymentParams(parse_llm_params(""), entry.params).rule_for("other").params == {"temperature": 0.6}
    assert DeploymentParams(base, None).rule_for("qwen3").params == {"max_tokens": 100, "temperature": 0.2}


def test_context_length_errors_are_recognised():
    assert is_context_exceeded(ProxyError(400, "too long", code="context_length_exceeded"))
    assert is_context_exceeded(ProxyError(400, "This model's maximum context length is 8192 tokens."))
    assert not is_context_exceeded(ProxyError(400, "temperature must be at most 2"))
    assert not is_context_exceeded(ProxyError(500, "maximum context length", code="context_length_exceeded"))


def test_a_fallbacks_answer_names_the_model_asked_for_whole_and_streamed():
    call = Call.of("chat", "POST", "v1/chat/completions")
    whole = b'{"id":"x","model":"gpt-4o-2024","choices":[{"message":{"content":"\\"model\\": \\"keep\\""}}]}'
    assert ModelName().whole(call, whole) == whole  # not routed to a fallback: as it is
    call.outcome.renamed_to = "qwen3"
    assert ModelName().whole(call, whole) == \
        b'{"id":"x","model":"qwen3","choices":[{"message":{"content":"\\"model\\": \\"keep\\""}}]}'
    closed = []

    def events():
        try:
            yield b'data: {"model": "gpt-4o", "choices": []}\n\n'
            yield b"data: [DONE]\n\n"
        finally:
            closed.append(True)

    call.outcome.renamed_to = 'a"b'
    body = list(ModelName().stream(call, events()))
    assert body[0] == b'data: {"model": "a\\"b", "choices": []}\n\n' and body[1] == b"data: [DONE]\n\n"
    assert closed == [True]


def test_header_values_never_carry_control_characters():
    assert header_safe("argo:gpt-4o") == "argo:gpt-4o"
    assert "\n" not in header_safe("x\r\nSet-Cookie: a=b") and header_safe("é") == "%C3%A9"
