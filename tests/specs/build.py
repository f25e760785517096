"""Rebuild the vendored API documents in this folder from the originals (README.md says where each comes from).

    python -m tests.specs.build DIR

DIR holds the originals under the names in SOURCES. Two documents are kept whole (Open Responses, Ollama); the
OpenAI, Anthropic and Gemini documents are trimmed to the paths the proxy's doors serve and every component those
paths, and the named extra schemas, reach by `$ref`: the rest (audio, files, fine-tuning, admin...) is a few
megabytes no test reads. OpenAPI 3.0's `nullable: true`, which JSON Schema 2020-12 does not know, becomes a `null`
alternative, so one validator reads every document: the Gemini document is 3.0, and OpenAI's, though it says 3.1,
still marks 35 fields so (a chunk's `finish_reason` among them). Anthropic's copy comes from a repository
that added a `ping` event to `MessageStreamEvent`; that addition is taken out again, so what is kept is the
published document. The output is sorted, indented JSON, so a rebuild from the same originals is byte-identical."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

# output name -> (original file name, paths kept (None: the whole document), extra schemas kept)
SOURCES: dict[str, tuple[str, list[str] | None, list[str]]] = {
    "openai.json": ("openai-openapi.json", [
        "/chat/completions", "/completions", "/embeddings", "/models", "/models/{model}",
        "/responses", "/responses/{response_id}", "/responses/{response_id}/cancel",
        "/responses/{response_id}/input_items", "/responses/input_tokens", "/responses/compact",
        "/conversations", "/conversations/{conversation_id}", "/conversations/{conversation_id}/items",
        "/conversations/{conversation_id}/items/{item_id}"], ["ErrorResponse"]),
    "openresponses.json": ("openresponses-openapi.json", None, []),
    "anthropic.json": ("anthropic-openapi.json", [
        "/v1/messages", "/v1/messages/count_tokens", "/v1/models", "/v1/models/{model_id}"],
        ["MessageStreamEvent", "ErrorResponse"]),
    "gemini.json": ("gemini-openapi3_0.json", [
        "/v1beta/models", "/v1beta/models/{model}", "/v1beta/models/{model}:generateContent",
        "/v1beta/models/{model}:streamGenerateContent", "/v1beta/models/{model}:countTokens",
        "/v1beta/models/{model}:embedContent", "/v1beta/models/{model}:batchEmbedContents"], []),
    "ollama.json": ("ollama-openapi.yaml", None, []),
}


def refs(node: Any) -> set[str]:
    """Every local `$ref` under node."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def trim(doc: dict, paths: list[str], schemas: list[str]) -> dict:
    """doc with only these paths, and the components they and these schemas reach."""
    missing = [p for p in paths if p not in doc["paths"]]
    missing += [s for s in schemas if s not in doc["components"]["schemas"]]
    if missing:
        raise SystemExit(f"not in the original: {missing}")
    kept = {k: v for k, v in doc.items() if k not in ("paths", "components", "webhooks", "x-oaiMeta", "tags")}
    kept["paths"] = {p: doc["paths"][p] for p in paths}
    components: dict[str, dict] = {}
    todo = refs(kept["paths"]) | {f"#/components/schemas/{s}" for s in schemas}
    done: set[str] = set()
    while todo:
        ref = todo.pop()
        done.add(ref)
        section, name = ref.split("/")[2:4]
        value = doc["components"][section][name]
        components.setdefault(section, {})[name] = value
        todo |= refs(value) - done
    kept["components"] = components
    return kept


def nullable_to_null(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema 2020-12 says it: the schema, or null."""
    if isinstance(node, list):
        return [nullable_to_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: nullable_to_null(v) for k, v in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def without_ping(doc: dict) -> dict:
    """Undo the copy's own addition of a `ping` event (not in the document Anthropic publishes)."""
    schemas = doc["components"]["schemas"]
    schemas.pop("Ping", None)
    event = schemas["MessageStreamEvent"]
    event["oneOf"] = [o for o in event["oneOf"] if o != {"$ref": "#/components/schemas/Ping"}]
    event["discriminator"]["mapping"].pop("ping", None)
    return doc


def load(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def build(source_dir: Path) -> None:
    for out, (original, paths, schemas) in SOURCES.items():
        doc = load(source_dir / original)
        if out == "anthropic.json":
            doc = without_ping(doc)
        if paths is not None:
            doc = trim(doc, paths, schemas)
        doc = nullable_to_null(doc)
        (HERE / out).write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{out}: {len(doc['paths'])} paths, {len(doc['components'].get('schemas', {}))} schemas")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    build(Path(sys.argv[1]))
