"""The Google door's paths: /v1beta/ (and /v1alpha/, and /v1/models/{model}:{method}) as routes, the method a path
names, `?alt=sse`, and the 404 for a method the door does not serve.
"""

from __future__ import annotations

import re

from argoproxy.edge.classify import Route
from argoproxy.edge.paths import encode_path
from argoproxy.edge.request_models import query_values
from argoproxy.errors import ProxyError


# The methods of /v1beta/models/{model}:{method}, by their lower-cased name -> (route kind, spelling).
METHODS = {"generatecontent": ("generate_content", "generateContent"),
           "streamgeneratecontent": ("stream_generate_content", "streamGenerateContent"),
           "counttokens": ("count_tokens", "countTokens"), "embedcontent": ("embed_content", "embedContent"),
           "batchembedcontents": ("batch_embed_contents", "batchEmbedContents")}
GOOGLE_VERSIONS = ("v1beta", "v1alpha", "v1")
# Paths only Google's API has: the Google door's, whatever follows (a Gemini client's key may ride in the query).
GOOGLE_ONLY = (("v1beta",), ("v1alpha",))
GOOGLE_UPLOADS = (("upload", "v1beta"), ("upload", "v1alpha"))
# A raw target meant for this door (answered in its error shape when its path is refused).
LOOKS_GOOGLE = re.compile(r"(?i)^(?:/upload)?/v1(?:beta|alpha)(?:/|$)|(?::|%3a)(?:streamgeneratecontent|generatecontent|"
                          r"counttokens|embedcontent|batchembedcontents)\b")


def google_route(parts: tuple[str, ...]) -> Route:
    """A path under /v1beta/ (or /v1/models/{model}:{method}): the Google door's model list, one model, or a
    method on a model, under the version the client named."""
    key = tuple(p.lower() for p in parts[:2])
    if key[0] not in GOOGLE_VERSIONS or key[1:] != ("models",):
        return Route("unknown", "unknown", encode_path(parts), front="google")
    models = (key[0], "models")
    if len(parts) == 2:
        return Route("models", "models", encode_path(models), frozenset({"GET", "HEAD"}), front="google")
    name, kind = split_method(parts[-1])
    model = "/".join(parts[2:-1] + (name,))
    if not name or model.startswith("/"):
        return Route("unknown", "unknown", encode_path(parts), front="google")
    if kind is None:
        return Route("model", "models", encode_path(models + parts[2:]), frozenset({"GET", "HEAD"}),
                     model=model, front="google")
    spelling = f"{name}:{METHODS[kind][1]}"
    return Route(METHODS[kind][0], "front", encode_path(models + parts[2:-1] + (spelling,)),
                 frozenset({"POST"}), model=model, front="google")


def sse_asked(query: str) -> bool:
    """`?alt=sse`: a Google stream as SSE; without it (or `alt=json`), one JSON array."""
    values = query_values(query, "alt") if query else []
    if len(values) > 1:
        raise ProxyError(400, "The query parameter `alt` is given more than once.", param="alt",
                         code="duplicate_parameter")
    alt = values[0].lower() if values else "json"
    if alt not in ("sse", "json"):
        raise ProxyError(400, "The query parameter `alt` must be sse or json.", param="alt", code="invalid_value")
    return alt == "sse"


def unserved_method(model: str) -> ProxyError:
    """A POST to /v1beta/models/{model}:{method} for a method the door does not serve (embedContent,
    batchEmbedContents, predict...): a 404 naming those it does, not a 405 for a model named `x:embedContent`."""
    name, _, method = model.rpartition(":")
    served = ", ".join(spelled for _, spelled in METHODS.values())
    named = bool(name) and method.isalpha()  # a method's name (embedContent), not a model's tail (argo:gpt-4o)
    what = f"`{method}`" if named else f"POST on the model `{model}` itself"
    return ProxyError(404, f"The Google door does not serve {what}: it serves {served}.", code="unknown_route")


def split_method(last: str) -> tuple[str, str | None]:
    """The last path segment of /v1beta/models/{model}:{method} as (model part, method kind): the method is
    what follows the last ':' (a model name may hold ':' itself, as `argo:gpt-4o` does), when it names one."""
    name, sep, method = last.rpartition(":")
    if sep and method.lower() in METHODS:
        return name, method.lower()
    return last, None
