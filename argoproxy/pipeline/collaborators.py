"""What the sequence asks of the parts it reaches through an interface of its own: routing over several
deployments (`Dispatcher`), key_limits' budgets (`Limiter`). serve/build.py sets the implementations on a
worker's Gateway (argoproxy/routing/dispatch.py's Routing, argoproxy/routing/key_limits.py's KeyLimiter), so the
pipeline never imports routing, which imports the pipeline to run each attempt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Protocol

if TYPE_CHECKING:
    from argoproxy.edge.http_objects import Answer
    from argoproxy.pipeline.call import Call


class Dispatcher(Protocol):
    """Several deployments behind one Gateway (`models`): each call goes to one of them, with fallbacks."""

    def api(self, call: Call) -> Answer:
        """The call answered by a deployment chosen for its model (404 when none serves it)."""

    def chain(self, asked: str) -> list[Any]:
        """The pools to try for a model, in order; a 404 naming it when none serves it."""

    def serves(self, name: str) -> bool:
        """Does any deployment serve this model name (no 404)?"""

    def model_list(self) -> list[dict[str, Any]]:
        """GET /v1/models' data: every deployment's models."""

    def health(self) -> tuple[int, dict[str, Any]]:
        """/health's status and body over every deployment."""


class Limiter(Protocol):
    """key_limits: budgets per client key."""

    def admit_call(self, call: Call, presented: Iterable[str]) -> None:
        """Count the call against the budget of the key it presented (a 429 over it)."""

    def observe(self, call: Call) -> None:
        """Count a finished call's tokens."""
