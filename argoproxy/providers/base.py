"""The Backend interface every provider implements, as provider packages import it. It is the sequence's own
(argoproxy/pipeline/backend.py): the pipeline calls it and never imports a provider."""

from argoproxy.pipeline.backend import Backend, Prepared, Send, StreamItem, set_member

__all__ = ["Backend", "Prepared", "Send", "StreamItem", "set_member"]
