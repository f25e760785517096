"""Front doors: the client APIs the proxy speaks besides OpenAI chat completions, each a request translator
and an answer encoder over the one internal chat request (the interface: front.py), and everything else about
its API (routes, model list shape, key spellings, errors). This module is the registry: a door's name -> its
Front; adding a door is a package here and one line below (docs/adding-a-door.md). Translation modules here are
pure (no I/O); serve.py encodes answers; a door that keeps state (Responses, Interactions) does so through
argoproxy/state/'s service, and kept.py hands the sequence what the doors keep (and serves their routes);
model_listing.py answers every door's model routes, in the door's shape.

May import: the shared modules, upstream, edge, pipeline, state.
"""

from __future__ import annotations

from argoproxy.fronts.front import DoorArgs, Front
from argoproxy.fronts.google import GoogleFront
from argoproxy.fronts.interactions import InteractionsFront
from argoproxy.fronts.messages import MessagesFront
from argoproxy.fronts.ollama import OllamaFront
from argoproxy.fronts.responses import ResponsesFront

__all__ = ["DoorArgs", "Front", "FRONTS", "front_named", "passthrough_refused"]

# The registry. Its order is the order doors claim a client on a shared route (GET /v1/models): a Google
# client's header wins over an Anthropic one's when a client sends both.
FRONTS: dict[str, Front] = {front.name: front for front in (
    InteractionsFront(),  # before Google's: its paths under /v1beta/ are its own
    GoogleFront(),
    MessagesFront(),
    ResponsesFront(),
    OllamaFront(),
)}


def front_named(name: str) -> Front | None:
    """The front door for a name (responses, messages, google); None for the chat-completions door."""
    return FRONTS.get(name)


def passthrough_refused(names: tuple[str, ...]) -> str | None:
    """FRONTS_PASSTHROUGH's problem, in words, when it names a door that cannot be passed through (or none)."""
    served = [name for name, front in FRONTS.items() if front.passes_through]
    for name in names:
        if name not in served:
            return f"must list front doors among {', '.join(served)}, got {name!r}"
    return None
