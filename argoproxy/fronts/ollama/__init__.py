"""The Ollama API door: `POST /api/chat`, `/api/generate` (NDJSON streams by default, whole with `stream: false`),
`/api/embed` and the legacy `/api/embeddings`, `GET /api/tags`, `POST /api/show`, `GET /api/version` and `/api/ps`,
over the one internal request (docs/ollama.md). Built as docs/adding-a-door.md says: this package and one line in
the registry (argoproxy/fronts/__init__.py).

  request.py   Ollama's requests -> the internal chat-completions (or embeddings) request
  answer.py    the internal answer (whole, or its chunks) -> Ollama's objects and NDJSON lines
  models.py    the proxy's model list as Ollama's tags, show, ps
  door.py      the Front: routes, shapes, errors, keys
"""

from argoproxy.fronts.ollama.door import OllamaFront

__all__ = ["OllamaFront"]
