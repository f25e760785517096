"""The toy provider's settings fragment, composed into the one Settings object: its key (YAML toy_api_key,
TOY_API_KEY). Where requests go is the core TARGET_BASE_URL (or a routing entry's base_url)."""

from __future__ import annotations

from dataclasses import dataclass

from argoproxy.config.setting_fields import as_str, setting


@dataclass(frozen=True)
class ToySettings:
    toy_api_key: str = setting("", as_str, "Key the toy upstream is sent (toy backend).", env=("TOY_API_KEY",),
                               secret=True)
