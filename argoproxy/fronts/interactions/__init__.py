"""Google's Interactions API door (`/v1beta/interactions`, its stateful API): create an interaction, whole or
streamed as Google streams it (SSE events `interaction.created`, `step.start`, `step.delta`, `step.stop`,
`interaction.completed`), get, delete and cancel a stored one, `previous_interaction_id` chains and `background`
runs, over the one internal request and the state package the Responses door uses (docs/interactions.md). Built
as docs/adding-a-door.md says: this package and one line in the registry (argoproxy/fronts/__init__.py).

  request.py   a create request (its input steps or contents, tools, generation_config) -> the internal chat
               request
  answer.py    the internal answer (whole, or its chunks) -> an Interaction, or the stream's events; the errors
  kept.py      stored interactions over argoproxy/state/: chains, background runs, the get/delete/cancel routes
  door.py      the Front: routes, keys, errors, events, what it keeps
"""

from argoproxy.fronts.interactions.door import InteractionsFront

__all__ = ["InteractionsFront"]
