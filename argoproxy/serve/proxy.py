"""build_proxy: the whole proxy for one Settings object: the core (build.py's build_door) with what the API doors
keep (fronts/kept.py: each door's stored state, the Responses door's and the Interactions door's, over
argoproxy/state/), handed to the core through the interface the core owns (pipeline/collaborators.py's
StoredResponses)."""

from __future__ import annotations

from argoproxy.config.settings import Settings
from argoproxy.serve.build import build_door
from argoproxy.serve.door import Door
from argoproxy.fronts.kept import kept_state
from argoproxy.upstream.client import Upstream


def build_proxy(settings: Settings, upstream: Upstream | None = None) -> Door:
    """The door for these settings; `upstream` replaces the real upstream client (in-process tests)."""
    return build_door(settings, upstream, kept_state)
