"""The Google GenAI (Gemini API) front door: `POST /v1beta/models/{model}:generateContent`,
`:streamGenerateContent` (`?alt=sse`, or a JSON array streamed without it) and `:countTokens`, translated to the
one internal chat-completions request; a chat.completion (or its chunks) back as a GenerateContentResponse (or
its stream). `:embedContent` and `:batchEmbedContents` become one embeddings request (their texts in order).
The model list routes (`GET /v1beta/models[/{model}]`) are answered by the door from the proxy's own
list (argoproxy/serve/door.py answers a door's `models` routes in the door's shape: `model_list`, `model_entry`).
Every path under /v1beta/ and /v1alpha/ (google-genai's `api_version="v1alpha"`), and google-genai's uploads
(/upload/v1beta/...), is this door's (errors in Google's shape) and never forwarded: a Gemini client's key may
ride in its query (`?key=`). So is /v1/models/{model}:{method} for a Google method (google-genai 3 defaults to API
version v1); GET /v1/models[/{id}] is this door's when the client is a Google one (`claims_client`). The model
segment is decoded once like any segment (so `%3A` is `:`); the method is what follows its last ':'
(`argo:gpt-4o:generateContent` is the model `argo:gpt-4o`), matched whatever its case; a model name may hold '/'
as /v1/models/{id} does.

Google has no tool-call ids on the wire by default: a `functionCall` in the history gets the id it carries, else
one made from its turn and place, and each `functionResponse` of the next user turn is matched back to a call of
the previous model turn by its id when it has one, else by name, in order. Thought parts (`thought: true`) in the
history are dropped (a chat upstream cannot take them back); reasoning in answers becomes thought parts only when
`generationConfig.thinkingConfig.includeThoughts` is true, as Gemini does. Every field read is type-checked, and
a bad one is a 400 naming it (`contents[2].parts[0].inlineData.mimeType: ...`).

  fields.py      a field read under either of its names, type-checked (a 400 naming it)
  request.py     generateContent and countTokens requests -> the internal chat-completions request
  tools.py       function declarations, Google's Schema, toolConfig, a response schema -> chat's
  embeddings.py  embedContent and batchEmbedContents -> one embeddings request, and its answer back
  answer.py      the internal answer -> a GenerateContentResponse; Google's error shape
  stream.py      the internal chunks -> its stream (SSE, or one JSON array)
  routes.py      the paths the door owns, as routes
  models.py      the proxy's model list as Google Models
  door.py        the Front: routes, keys, errors, stream framing

Built as docs/adding-a-door.md says: this package and one line in the registry (argoproxy/fronts/__init__.py).
"""

from argoproxy.fronts.google.door import GoogleFront

__all__ = ["GoogleFront"]
