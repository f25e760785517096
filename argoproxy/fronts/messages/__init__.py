"""The Anthropic Messages API front door (POST /v1/messages, /v1/messages/count_tokens): request -> chat
completions, and a chat.completion (or its chunks) -> a `message` object (or the Messages stream events).

Fields a chat upstream cannot use (cache_control, citations, server tools, context_management, anthropic-beta...)
are accepted and dropped, the shapes the API's document gives them checked first (shapes.py). Thinking blocks in the
history are accepted and dropped: chat servers differ on taking reasoning back (OpenAI's API refuses a message field
it does not know, DeepSeek's reasoner a reasoning_content in its input). Reasoning in answers becomes `thinking`
blocks only when the client asked for thinking, and is left out otherwise. A proxy cannot make Anthropic's
signature, so each block carries one of its own (`signature`): opaque to clients, as Anthropic's is, and the same
for the same text.

  request.py   a Messages create or count_tokens request -> the internal chat-completions request
  content.py   one turn's blocks (text, images, documents, search and tool results) -> chat messages
  tools.py     the tools and tool_choice -> chat's
  shapes.py    the shapes of what the door accepts and leaves out, checked as Anthropic's document gives them
  errors.py    Anthropic's error types; a bad request's 400
  answer.py    the internal answer -> a `message` object
  stream.py    the internal chunks -> the Messages stream's events
  models.py    the proxy's model list in Anthropic's shape
  batches.py   a message batch's models and requests, for the guard and a token limit
  versions.py  API versions as dates; what a version refuses that LLM_PARAMS must not add (a relayed request)
  door.py      the Front: routes, keys, errors, headers

Built as docs/adding-a-door.md says: this package and one line in the registry (argoproxy/fronts/__init__.py).
"""

from argoproxy.fronts.messages.door import MessagesFront

__all__ = ["MessagesFront"]
