"""The toy provider's settings fragment, composed into the one Settings object: its key (YAML toy_api_key,
TOY_API_KEY). Where requests go is the core TARGET_BASE_URL (or a routing entry's base_url). `ToyConfig` is
how the backend reads them typed (for the type checker only), as docs/adding-a-backend.md describes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from argoproxy.config.setting_fields import as_str, setting


@dataclass(frozen=True)
class ToySettings:
    toy_api_key: str = setting("", as_str, "Key the toy upstream is sent (toy backend).", env=("TOY_API_KEY",),
                               secret=True)


if TYPE_CHECKING:
    from argoproxy.config.settings import Settings

    class ToyConfig(Settings, ToySettings):
        """The settings the toy backend reads: the core ones and its own."""
