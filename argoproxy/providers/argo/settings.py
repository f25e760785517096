"""The argo provider's settings fragment (ARGO endpoints, user, streaming, model fallback, native OpenAI mode,
tool prompting, image inlining), composed into the one Settings object (argoproxy/config/settings.py), with its
start-up rule and start-up line.

`ArgoConfig` is how the provider's code reads them, typed: the core settings and this fragment. It exists for
the type checker only (the loader's object carries both), so that a misspelt setting is an error here too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from argoproxy.config.setting_fields import as_base_url, as_bool, as_str, as_url, number, positive, setting


def as_argo_user(value: Any) -> str:
    user = as_str(value)
    if user.lower() == "cels":
        raise ValueError("'cels' is not allowed as a username: use your own ANL username")
    if any(ch.isspace() for ch in user):
        raise ValueError(f"must not contain spaces, got {value!r}")
    return user


@dataclass(frozen=True)
class ArgoSettings:
    user: str = setting("", as_argo_user, "ARGO username sent as `user` upstream (argo backend).",
                        env=("ARGO_USER",), flags=("--user",))
    argo_url: str = setting("https://apps-dev.inside.anl.gov/argoapi/api/v1/resource/chat/", as_url,
                            "ARGO chat endpoint.", env=("ARGO_URL",))
    argo_stream_url: str = setting("https://apps-dev.inside.anl.gov/argoapi/api/v1/resource/streamchat/", as_url,
                                   "ARGO streaming chat endpoint.", env=("ARGO_STREAM_URL",))
    argo_embedding_url: str = setting("https://apps.inside.anl.gov/argoapi/api/v1/resource/embed/", as_url,
                                      "ARGO embedding endpoint.", env=("ARGO_EMBEDDING_URL",))
    real_stream: bool = setting(True, as_bool, "Stream ARGO answers as ARGO writes them; off: ask for the whole answer and "
                                "send it to a streaming client in pieces.",
                                env=("REAL_STREAM",), flags=("--real-stream", "-rs"), negative_flags=("--pseudo-stream", "-ps"))
    model_fallback: str = setting("", as_str, "ARGO model used for unknown model names (empty: 404 instead).",
                                  env=("MODEL_FALLBACK",), flags=("--model-fallback",))
    argo_model_list: bool = setting(True, as_bool, "Read ARGO's own model list (.../api/v1/models/, or "
                                    "{native_openai_base_url}models in native mode) at most hourly, when a name is "
                                    "not in the built-in table and for /v1/models; its models are then served by "
                                    "name. Off: the built-in table only.",
                                    env=("ARGO_MODEL_LIST",), flags=("--argo-model-list",),
                                    negative_flags=("--no-argo-model-list",))
    use_native_openai: bool = setting(False, as_bool, "Send ARGO requests untransformed to its OpenAI-compatible API.",
                                      env=("USE_NATIVE_OPENAI",), flags=("--native-openai",))
    native_openai_base_url: str = setting("https://apps-dev.inside.anl.gov/argoapi/v1/", as_base_url,
                                          "ARGO's OpenAI-compatible base URL (production: https://apps.inside.anl.gov/argoapi/v1/).",
                                          env=("NATIVE_OPENAI_BASE_URL",))
    native_anthropic_base_url: str = setting("", as_url,
                                             "ARGO's native Anthropic Messages endpoint (native mode, Claude models on "
                                             "/v1/messages; /count_tokens under it). Default "
                                             "{native_openai_base_url}messages.",
                                             env=("NATIVE_ANTHROPIC_BASE_URL",),
                                             derived=lambda s: _joined(s.native_openai_base_url, "messages"))
    username_passthrough: bool = setting(False, as_bool, "Use the client's key as the ARGO user.",
                                         env=("USERNAME_PASSTHROUGH",), flags=("--username-passthrough",))
    tool_prompt: bool = setting(False, as_bool, "Tool calls through the prompt (tools described in it, calls read from the "
                                "answer) for every ARGO model, not only those without native tool calls.",
                                env=("TOOL_PROMPT",), flags=("--tool-prompting",))
    # --- image inlining
    enable_payload_control: bool = setting(False, as_bool, "Shrink inlined images to fit max_payload_size.",
                                           env=("ENABLE_PAYLOAD_CONTROL",))
    max_payload_size: float = setting(20.0, positive, "Request size budget in MB for payload control.",
                                      env=("MAX_PAYLOAD_SIZE",))
    image_timeout: float = setting(30.0, positive, "Seconds allowed per image download.", env=("IMAGE_TIMEOUT",))
    concurrent_downloads: int = setting(10, number(int, 1, 256), "Image downloads at once.", env=("CONCURRENT_DOWNLOADS",))
    image_allow_private: bool = setting(False, as_bool, "Allow image URLs on loopback/private/link-local addresses.",
                                        env=("IMAGE_ALLOW_PRIVATE",))
    max_image_bytes: int = setting(20 * 1024 * 1024, number(int, 1), "Largest image downloaded.", env=("MAX_IMAGE_BYTES",))
    max_image_pixels: int = setting(50_000_000, number(int, 1),
                                    "Largest image (width x height, read from its header) decoded; a bigger one is "
                                    "left as its URL.", env=("MAX_IMAGE_PIXELS",))


if TYPE_CHECKING:
    from argoproxy.config.settings import Settings

    class ArgoConfig(Settings, ArgoSettings):
        """The settings an ARGO backend reads."""


def check_settings(settings: ArgoConfig) -> str | None:
    # Native mode with username passthrough sends each client's key as its user: no configured user needed.
    passthrough = settings.use_native_openai and settings.username_passthrough
    if not settings.user and not passthrough:
        return "user: the argo backend needs your ARGO (ANL) username (YAML user, ARGO_USER or --user)"
    return None


def startup_line(settings: ArgoConfig) -> str:
    if settings.use_native_openai:
        from argoproxy.redaction import mask_url
        return f"ARGO native OpenAI mode -> {mask_url(settings.native_openai_base_url)}"
    return f"ARGO standard mode, {'real' if settings.real_stream else 'pseudo'} streaming"


def _joined(base: str, path: str) -> str:
    from argoproxy.upstream.url import join_url  # imported late: settings load before the request modules
    return join_url(base, path)


def entry_urls(base_url: str) -> dict[str, str]:
    """The settings a routing entry's base_url sets: the base of ARGO's resource URLs, and with
    USE_NATIVE_OPENAI its OpenAI-compatible base."""
    return {"native_openai_base_url": base_url, "argo_url": _joined(base_url, "chat/"),
            "argo_stream_url": _joined(base_url, "streamchat/"), "argo_embedding_url": _joined(base_url, "embed/")}


def backend_for(settings: ArgoConfig) -> str:
    """Standard and native mode are two backends (standard.py, native.py), sharing backend.py."""
    mode = "native:ArgoNativeBackend" if settings.use_native_openai else "standard:ArgoStandardBackend"
    return "argoproxy.providers.argo." + mode


def model_list_url(settings: ArgoConfig) -> str:
    """Where ARGO lists its models: beside its resource URLs (.../api/v1/models/), or under its OpenAI-compatible
    base in native mode (.../v1/models); "" when the chat URL is not under a resource path or the list is off."""
    if not settings.argo_model_list:
        return ""
    if settings.use_native_openai:
        return _joined(settings.native_openai_base_url, "models")
    head, found, _ = settings.argo_url.partition("/resource/")
    return f"{head}/models/" if found else ""


def own_url(settings: ArgoConfig) -> str:
    """Where ARGO requests go: its chat endpoint, or its OpenAI-compatible base in native mode."""
    return settings.native_openai_base_url if settings.use_native_openai else settings.argo_url


def _native_urls_read(settings: ArgoConfig) -> bool:
    return settings.backend != "argo" or settings.use_native_openai or bool(settings.models)


# Seed 000's native URL without use_native_openai: ARGO's standard endpoints get the requests instead.
USED_ONLY_WHEN = {"native_openai_base_url": (_native_urls_read, "use_native_openai is off (ARGO standard mode)"),
                  "native_anthropic_base_url": (_native_urls_read, "use_native_openai is off (ARGO standard mode)")}
