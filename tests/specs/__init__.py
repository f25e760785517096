"""The APIs' published documents (README.md here says which, of when, from where) and a validator over them:
`spec("anthropic").problems("Message", body)` lists, one line each, where body departs from the document's
`Message` schema (empty: it conforms). OpenAPI 3.1 schemas are JSON Schema 2020-12; OpenAPI 3.0's `nullable` was
made so when the documents were vendored (build.py). A `$ref` resolves inside its own document only.

One reading differs from plain JSON Schema: `oneOf` is held as "matches at least one branch". The documents use it
for unions whose branches overlap (OpenAI's input messages: a user message with a list of parts is both an
EasyInputMessage and an InputMessage), where the APIs themselves take the value; an exact-one reading would reject
every such request and answer."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Iterator

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import extend
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = Path(__file__).resolve().parent
NAMES = ("openai", "openresponses", "anthropic", "gemini", "ollama")


def any_branch(validator: Any, branches: list[Any], instance: Any, schema: Any) -> Iterator[ValidationError]:
    """`oneOf` read as "at least one branch" (the module's docstring says why)."""
    errors: list[ValidationError] = []
    for index, branch in enumerate(branches):
        found = list(validator.descend(instance, branch, schema_path=index))
        if not found:
            return
        errors.extend(found)
    yield ValidationError(f"{instance!r:.200} matches none of the given shapes", context=errors)


OpenAPIValidator = extend(Draft202012Validator, {"oneOf": any_branch})


class Spec:
    def __init__(self, name: str) -> None:
        self.name = name
        self.doc = json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))
        self.uri = f"urn:spec:{name}"
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry = Registry().with_resource(self.uri, resource)
        self._validators: dict[str, Any] = {}

    @property
    def version(self) -> str:
        info = self.doc.get("info", {})
        return str(info.get("version") or info.get("x-google-revision") or "")

    def has(self, schema: str) -> bool:
        return schema in self.doc["components"]["schemas"]

    def validator(self, schema: str) -> Any:
        if schema not in self._validators:
            if not self.has(schema):
                raise KeyError(f"{self.name} has no schema {schema}")
            self._validators[schema] = OpenAPIValidator(
                {"$ref": f"{self.uri}#/components/schemas/{schema}"}, registry=self.registry)
        return self._validators[schema]

    def problems(self, schema: str, instance: Any) -> list[str]:
        """Where instance departs from schema: one line per top-level failure, naming the place, the deepest
        reason found and, for a value matching none of a union's shapes, the shape its `type` names."""
        return [describe(error) for error in self.validator(schema).iter_errors(instance)]


def describe(error: ValidationError) -> str:
    chosen = _discriminated(error) or best_match([error])
    where = "/".join(str(p) for p in chosen.absolute_path) or "(top)"
    return f"{where}: {chosen.message[:300]}"


def _discriminated(error: ValidationError) -> ValidationError | None:
    """For a oneOf/anyOf miss on an object with a `type`: the errors of the branch whose `type` const or enum is
    that value (the branch the API's own discriminator picks), deepest first. None when no branch claims it."""
    if error.validator not in ("oneOf", "anyOf") or not isinstance(error.instance, dict):
        return None
    tag = error.instance.get("type")
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    for subs in by_branch.values():
        claims = not any(s.validator in ("const", "enum") and list(s.relative_path) == ["type"] for s in subs)
        if claims and tag is not None:
            deepest = best_match(subs)
            nested = _discriminated(deepest)
            return nested or deepest
    return None


@cache
def spec(name: str) -> Spec:
    return Spec(name)
