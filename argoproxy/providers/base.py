"""The Backend interface every provider implements, as provider packages import it. It is the sequence's own
(argoproxy/pipeline/backend.py): the pipeline calls it and never imports a provider."""

from argoproxy.pipeline.backend import Backend, StreamItem

__all__ = ["Backend", "StreamItem"]
