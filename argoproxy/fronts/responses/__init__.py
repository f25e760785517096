"""The OpenAI Responses API front door (POST /v1/responses), stateless: request -> chat completions, and a
chat.completion (or its chunks) -> a `response` object (or the Responses stream events).

The translation is stateless: stored responses (`store`, `previous_response_id`, `conversation`,
`item_reference` items, `background`) are argoproxy/state/'s, which hands this door the whole history in `input`
and saves what it answers (Exchange.state and Exchange.keeper); with RESPONSES_STORE off a request that needs
them is a 400 naming the parameter. Reasoning text (reasoning_content or reasoning, or <think> text the think
transform moved there) becomes a `reasoning` item: its `summary` (summary_text) when the request set
`reasoning.summary`, its `content` (reasoning_text) otherwise. A chat upstream makes no summary of its own: the
summary is the reasoning itself. Reasoning items a client replays in `input` are dropped (a chat upstream cannot
take them back).

  request.py      a create request -> the internal chat-completions request
  input_items.py  `input`'s items -> chat messages
  tools.py        the tools and tool_choice -> chat's; the names calls come back under
  shapes.py       the shapes of what the door accepts and leaves out, checked as the API's document gives them
  compact.py      POST /v1/responses/compact, and the content the proxy seals (compaction, reasoning)
  response.py     the response object: the request's settings echoed, status, usage, error
  answer.py       the internal answer -> a whole response's output items
  stream.py       the internal chunks -> the Responses stream's events
  door.py         the Front: routes, the exchange, a stored response's keeper

Built as docs/adding-a-door.md says: this package and one line in the registry (argoproxy/fronts/__init__.py).
"""

from argoproxy.fronts.responses.door import ResponsesFront

__all__ = ["ResponsesFront"]
