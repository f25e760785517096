"""LLM_PARAMS: the seed's grammar, typed values, control keys never forwarded, malformed groups rejected."""

import pytest

from argoproxy.config.llm_params import parse_llm_params
from argoproxy.pipeline.param_rules import append_to_last_user_message, apply_rule


def test_seed_example():
    p = parse_llm_params("model=gemma,temperature=0.5,top_k=40;model=llama2,max_tokens=200")
    assert p.rule_for("gemma").params == {"temperature": 0.5, "top_k": 40}
    assert p.rule_for("llama2").params == {"max_tokens": 200}
    assert p.rule_for("other") is None


def test_typed_values():
    p = parse_llm_params('model=m,temperature=1,stop=["a","b"],extra={"x":1},flag=true,gone=null,name=abc')
    params = p.rule_for("m").params
    assert params == {"temperature": 1.0, "stop": ["a", "b"], "extra": {"x": 1}, "flag": True, "gone": None, "name": "abc"}
    assert isinstance(params["temperature"], float)


def test_default_and_star():
    p = parse_llm_params("model=default,temperature=0.1;model=*,top_p=0.9;model=m,temperature=0.7")
    assert p.rule_for(None).params == {"temperature": 0.1, "top_p": 0.9}
    assert p.rule_for("m").params == {"top_p": 0.9, "temperature": 0.7}
    assert p.rule_for("x").params == {"top_p": 0.9}


def test_control_keys_not_forwarded():
    p = parse_llm_params("model=fast,upstream_model_name=qwen3,append_to_last_user_message=\\n/no_think,"
                         "think_tag_start=<t>,think_tag_end=</t>,enable_think_tag_filtering=true,temperature=0.2")
    rule = p.rule_for("fast")
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    apply_rule(body, rule)
    assert body == {"model": "qwen3", "temperature": 0.2, "messages": [{"role": "user", "content": "hi\n/no_think"}]}
    assert (rule.think_tag_start, rule.think_tag_end, rule.think_mode) == ("<t>", "</t>", "strip")
    assert p.pseudo_models == ["fast"]


@pytest.mark.parametrize("text", ["temperature=0.5", "model=,x=1", "model=m,novalue", "model=m,temperature=hot"])
def test_malformed_group_is_an_error(text):
    with pytest.raises(ValueError, match="group|temperature"):
        parse_llm_params(text)


@pytest.mark.parametrize("text", ["model=m,stop=[1,2", 'model=m,extra={"a":1', "model=m,stop=[END]"])
def test_an_array_or_object_that_does_not_parse_is_an_error_not_a_string(text):
    """A value that opens as JSON but does not parse is a typo, not a text (it was sent as the string "[1,2")."""
    with pytest.raises(ValueError, match="not valid JSON .*in quotes"):
        parse_llm_params(text)
    assert parse_llm_params('model=m,stop="[END]"').rule_for("m").params == {"stop": "[END]"}


def test_append_rules():
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    append_to_last_user_message(body, "/no_think")
    assert body["messages"][0]["content"][-1] == {"type": "text", "text": "/no_think"}
    body = {"messages": [{"role": "assistant", "content": "a"}]}
    append_to_last_user_message(body, "/x")
    assert body["messages"][-1] == {"role": "user", "content": "/x"}


@pytest.mark.parametrize("text", [
    "",
    "model=gemma,temperature=0.5,top_k=40;model=llama2,max_tokens=200",
    "model=qwen-fast,upstream_model_name=Qwen/Qwen3-8B,append_to_last_user_message=\\n/no_think,temperature=0.7",
    'model=*,top_p=0.95;model=default,temperature=0.2;model=r1,think_mode=reasoning,stop=["<|end|>"]',
    'model=x,enable_think_tag_filtering=false,think_starts_inside=true,stop="5",seed=null,think_tag_start=<t>',
])
def test_rules_are_shown_as_written_and_read_back_the_same(text):
    """`--show` prints LLM_PARAMS as a user writes it (it printed `LlmParams(rules={})`)."""
    rules = parse_llm_params(text)
    assert "LlmParams" not in rules.as_written() and parse_llm_params(rules.as_written()) == rules
    assert parse_llm_params("model=gemma,temperature=0.5").as_written() == "model=gemma,temperature=0.5"
