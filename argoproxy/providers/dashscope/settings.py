"""The dashscope provider's settings fragment, composed into the one Settings object (argoproxy/config/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

from argoproxy.config.setting_fields import as_str, setting


@dataclass(frozen=True)
class DashScopeSettings:
    dashscope_api_key: str = setting("", as_str, "DashScope API key (dashscope backend); else the client's Authorization is used.",
                                     env=("DASHSCOPE_API_KEY",), secret=True)
