"""The API doors' declarations of how their own bodies are read (Spelled), where the doors import them from while
fronts/ is reorganised: the meter owns them (argoproxy/meter/worst.py)."""

from argoproxy.meter import Spelled

__all__ = ["Spelled"]
