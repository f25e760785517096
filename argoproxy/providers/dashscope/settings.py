"""The dashscope provider's settings fragment, composed into the one Settings object (argoproxy/config/settings.py),
and `DashScopeConfig`, how its code reads them typed (the core settings and this fragment; for the type checker
only: the loader's object carries both)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from argoproxy.config.setting_fields import as_str, setting


@dataclass(frozen=True)
class DashScopeSettings:
    dashscope_api_key: str = setting("", as_str, "DashScope API key (dashscope backend); else the client's Authorization is used.",
                                     env=("DASHSCOPE_API_KEY",), secret=True)


if TYPE_CHECKING:
    from argoproxy.config.settings import Settings

    class DashScopeConfig(Settings, DashScopeSettings):
        """The settings the DashScope backend reads."""
