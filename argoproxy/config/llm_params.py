"""LLM_PARAMS: per-model request overrides, parsed once at start-up (the sequence applies them to request bodies:
argoproxy/pipeline/param_rules.py).

Grammar (cot_proxy's): groups separated by ';', each `model=NAME,key=value,...`. `model=default` applies to
requests that name no model, `model=*` to every request; a model's own group is applied on top of `*`.
Values are typed: numbers, true/false, null, JSON arrays/objects; known float parameters stay floats.
The keys in CONTROL_KEYS steer the proxy and are never sent upstream.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

FLOAT_PARAMS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty",
                          "min_p", "typical_p", "top_a"})
INT_PARAMS = frozenset({"top_k", "max_tokens", "max_completion_tokens", "n", "seed", "num_ctx", "num_predict",
                        "repeat_last_n", "batch_size"})
CONTROL_KEYS = frozenset({"think_tag_start", "think_tag_end", "enable_think_tag_filtering", "think_mode",
                          "think_starts_inside", "upstream_model_name", "append_to_last_user_message"})
THINK_MODES = ("strip", "reasoning", "keep")

# Models whose chat template opens the reasoning block itself, so their output starts inside it and only
# `</think>` appears: DeepSeek-R1 and its distills, QwQ, Qwen3 thinking models.
STARTS_INSIDE_PATTERN = re.compile(r"deepseek[-_ ]?r1|r1[-_]distill|qwq|qwen3.*think", re.IGNORECASE)
MODEL_NAME_CHARS = 256  # longer is no real model name (and `qwen3.*think` is quadratic on "qwen3qwen3...")


def starts_inside(name: str | None) -> bool:
    """Does this model's output start inside its reasoning block (STARTS_INSIDE_PATTERN)? A client's model
    name is looked at only up to MODEL_NAME_CHARS: a 200 KB name took the pattern 55 s."""
    return name is not None and 0 < len(name) <= MODEL_NAME_CHARS and STARTS_INSIDE_PATTERN.search(name) is not None


@dataclass(frozen=True)
class ModelRule:
    """What LLM_PARAMS says about one model (or `default` / `*`)."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    think_tag_start: str | None = None
    think_tag_end: str | None = None
    think_mode: str | None = None
    think_starts_inside: bool | None = None
    upstream_model_name: str | None = None
    append_to_last_user_message: str | None = None


@dataclass(frozen=True)
class LlmParams:
    rules: dict[str, ModelRule] = field(default_factory=dict)

    def rule_for(self, model: str | None) -> ModelRule | None:
        """The rule for a request's model: `*` merged under the model's own (or `default` when no model)."""
        own = self.rules.get(model) if model else self.rules.get("default")
        star = self.rules.get("*")
        if star is None or own is None:
            return own or star
        return merge_rules(star, own)

    @property
    def pseudo_models(self) -> list[str]:
        return [name for name in self.rules if name not in ("*", "default")]

    def __bool__(self) -> bool:
        return bool(self.rules)

    def as_written(self) -> str:
        """LLM_PARAMS as a user writes it (`--show` prints this, not the dataclass): parsing it gives these rules."""
        return ";".join(_written_rule(rule) for rule in self.rules.values())


class DeploymentParams(LlmParams):
    """LLM_PARAMS as one deployment sees them: the global rule for a model, with the entry's `params` on top."""

    own: ModelRule | None

    def __init__(self, base: LlmParams, own: ModelRule | None) -> None:
        super().__init__(base.rules)
        object.__setattr__(self, "own", own)

    def rule_for(self, model: str | None) -> ModelRule | None:
        base = super().rule_for(model)
        if self.own is None or base is None:
            return base or self.own
        return merge_rules(base, self.own)

    def __bool__(self) -> bool:
        return bool(self.rules) or self.own is not None


def _written_rule(rule: ModelRule) -> str:
    pairs = [("model", rule.model)]
    pairs += [(key, _written_value(key, value)) for key, value in rule.params.items()]
    for key in ("think_tag_start", "think_tag_end", "think_mode", "think_starts_inside", "upstream_model_name",
                "append_to_last_user_message"):
        value = getattr(rule, key)
        if value is not None:
            text = json.dumps(value) if isinstance(value, bool) else value
            pairs.append((key, text.replace("\n", "\\n").replace("\t", "\\t") if key == "append_to_last_user_message"
                          else text))
    return ",".join(f"{key}={value}" for key, value in pairs)


def _written_value(key: str, value: Any) -> str:
    """A parameter's value as text that reads back as the same value (a string that would read as a number, or
    holds a separator, goes in JSON quotes)."""
    if isinstance(value, str) and not any(c in value for c in ",;") and convert_value(key, value) == value:
        return value
    return json.dumps(value)


def merge_rules(base: ModelRule, top: ModelRule) -> ModelRule:
    """`top` over `base`: its set fields win, its params are applied after base's."""
    merged = {k: v for k, v in vars(base).items() if v is not None}
    merged.update({k: v for k, v in vars(top).items() if v is not None})
    merged["params"] = {**base.params, **top.params}
    return ModelRule(**merged)


def parse_llm_params(text: str) -> LlmParams:
    """Parse LLM_PARAMS; a malformed group raises ValueError naming it."""
    rules: dict[str, ModelRule] = {}
    for group in (g.strip() for g in text.split(";")):
        if group:
            rule = _parse_group(group)
            rules[rule.model] = rule
    return LlmParams(rules)


def _parse_group(group: str) -> ModelRule:
    pairs = []
    for part in (p.strip() for p in _split_top_level(group)):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"group {group!r}: {part!r} is not key=value")
        pairs.append((key.strip(), value.strip()))
    if not pairs or pairs[0][0] != "model" or not pairs[0][1]:
        raise ValueError(f"group {group!r} must start with model=NAME")
    control: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, value in pairs[1:]:
        if key in CONTROL_KEYS:
            control[key] = value
        else:
            params[key] = convert_value(key, value)
    return _rule(pairs[0][1], params, control, group)


def _rule(model: str, params: dict[str, Any], control: dict[str, str], group: str) -> ModelRule:
    mode = control.get("think_mode")
    if mode is not None and mode not in THINK_MODES:
        raise ValueError(f"group {group!r}: think_mode must be one of {', '.join(THINK_MODES)}")
    if mode is None and "enable_think_tag_filtering" in control:
        mode = "strip" if control["enable_think_tag_filtering"].lower() == "true" else "keep"
    inside = control.get("think_starts_inside")
    return ModelRule(
        model=model,
        params=params,
        think_tag_start=control.get("think_tag_start") or None,
        think_tag_end=control.get("think_tag_end") or None,
        think_mode=mode,
        think_starts_inside=None if inside is None else inside.lower() == "true",
        upstream_model_name=control.get("upstream_model_name") or None,
        append_to_last_user_message=_unescape(control["append_to_last_user_message"])
        if control.get("append_to_last_user_message") else None,
    )


def _split_top_level(group: str) -> list[str]:
    """Split on commas that are not inside a JSON array or object value."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(group):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(group[start:i])
            start = i + 1
    parts.append(group[start:])
    return parts


def _unescape(text: str) -> str:
    # `\n\n/no_think` in an environment variable means two newlines, not backslashes.
    return text.replace("\\n", "\n").replace("\\t", "\t")


def convert_value(key: str, value: str) -> Any:
    """Type a raw LLM_PARAMS value: known float params stay floats; JSON literals otherwise; else the string."""
    lowered = value.lower()
    if lowered in ("", "null", "none"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if key in FLOAT_PARAMS:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key}={value!r} is not a number") from None
    if key in INT_PARAMS:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{key}={value!r} is not an integer") from None
    try:
        return json.loads(value)
    except ValueError:
        if value.lstrip()[:1] in ("[", "{"):  # meant as an array or object: a typo must not pass as a string
            raise ValueError(f"{key}={value!r} is not valid JSON (a text that starts so goes in quotes: "
                             f"{key}={json.dumps(value)})") from None
        return value
