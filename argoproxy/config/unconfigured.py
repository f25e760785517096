"""Nothing configured: the refusal to serve OpenAI's public API when nobody chose it and the proxy has no key.

The openai backend stands for any OpenAI-compatible server, so its default URL (https://api.openai.com/v1/) is
a guess, not a choice. Started with nothing that names an upstream, the proxy used to serve that guess, sending
every prompt to OpenAI with the client's key or none. Now serving refuses it, by every entry point, with one
line saying how to configure it; `cot-proxy` in a terminal asks the first-run questions instead (argoproxy/cli.py).

Configured means any of these, in the config file, .env, the environment or the flags (docs/install.md):
the upstream's URL (TARGET_BASE_URL / OPENAI_BASE_URL), a routing list (MODELS), the upstream's key
(OPENAI_API_KEY: the public API with a key of the user's own), or a backend whose default URL is its one real
address (BACKEND=dashscope, or ARGO's settings). BACKEND=openai alone names no server.
"""

from __future__ import annotations

from argoproxy.config import provider_registry as providers
from argoproxy.config.settings import Loaded, SettingsError

# The setting the one line names: what the user sets to fix it.
KEY = "TARGET_BASE_URL"


class Unconfigured(SettingsError):
    """Nothing names the upstream: the message is the one line (after "bad setting ")."""


def nothing_configured(loaded: Loaded) -> bool:
    """Would these settings serve the default backend's guessed URL, with no key, nobody having named it?"""
    settings = loaded.settings
    provider = providers.get(settings.backend)
    if settings.models or not provider.base_url_required or not provider.uses_target_url:
        return False
    if "target_base_url" in loaded.given:
        return False  # named, even as OpenAI's own URL: clients then send their own keys there, as chosen
    return not (provider.key_setting and getattr(settings, provider.key_setting, ""))


def refusal(loaded: Loaded) -> Unconfigured | None:
    """The one line stopping a start that would serve the guess, or None."""
    if not nothing_configured(loaded):
        return None
    settings = loaded.settings
    where = f"{settings.config_path} names no upstream" if settings.config_path else "no config file"
    return Unconfigured(
        f"{KEY}: nothing is configured ({where}, no {KEY}, no OPENAI_API_KEY), and the proxy will not send "
        f"prompts to {settings.target_base_url} without a key: run cot-proxy (or ./run_app.sh) in a terminal to "
        f"answer the setup questions, or set {KEY} to your server's base URL (OPENAI_API_KEY too for OpenAI's "
        "own API)")
