"""A setting given as a YAML value, or as JSON text in its environment variable (PRICES, MODEL_CAPABILITIES)."""

from __future__ import annotations

import json
from typing import Any


def json_setting(value: Any) -> Any:
    """The value as given, JSON text parsed; None when empty. Bad JSON: ValueError saying where."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    return value
