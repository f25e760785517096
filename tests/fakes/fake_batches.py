"""OpenAI's Files and Batches API and Anthropic's Message Batches, as FakeOpenAI serves them: files uploaded
(multipart, `file` and `purpose` required) are kept and served back from /v1/files/{id}/content; a batch
must name an uploaded file of purpose `batch`, a known endpoint and `completion_window: 24h`; a message batch
needs a non-empty `requests` list of {custom_id, params} objects. Refused as the real APIs refuse (400/404
with their error shapes); accepted batches are only recorded, never run."""

from __future__ import annotations

import io
import itertools
import json
import threading
from typing import Any, Mapping

from werkzeug.formparser import parse_form_data

PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
ENDPOINTS = frozenset({"/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions",
                       "/v1/moderations"})


def _openai_error(status: int, message: str, param: str | None = None) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


class FakeBatches:
    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (purpose, content)
        self.batches: list[dict[str, Any]] = []
        self.message_batches: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def answer(self, method: str, path: str, body: bytes,
               headers: Mapping[str, str]) -> tuple[int, Any] | None:
        """(status, JSON or bytes) for a Files/Batches route, or None for any other request."""
        if method == "POST" and path == "/v1/files":
            return self.upload(body, headers.get("Content-Type", ""))
        if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            found = self.files.get(path[len("/v1/files/"):-len("/content")])
            return (200, found[1]) if found else _openai_error(404, "No such File object.", "id")
        if method == "POST" and path == "/v1/batches":
            return self.batch(body)
        if method == "POST" and path == "/v1/messages/batches":
            return self.message_batch(body)
        return None

    def upload(self, body: bytes, content_type: str) -> tuple[int, Any]:
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body)}
        _, form, files = parse_form_data(environ)
        purpose = form.get("purpose")
        if purpose not in PURPOSES:
            return _openai_error(400, f"Invalid value for 'purpose': {purpose!r}.", "purpose")
        if "file" not in files:
            return _openai_error(400, "Missing required parameter: 'file'.", "file")
        content = files["file"].read()
        with self._lock:
            file_id = f"file-{next(self._ids)}"
            self.files[file_id] = (purpose, content)
        return 200, {"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                     "filename": files["file"].filename, "purpose": purpose}

    def batch(self, body: bytes) -> tuple[int, Any]:
        req = json.loads(body or b"{}")
        if req.get("endpoint") not in ENDPOINTS:
            return _openai_error(400, "Invalid value for 'endpoint'.", "endpoint")
        if req.get("completion_window") != "24h":
            return _openai_error(400, "Invalid value for 'completion_window'.", "completion_window")
        found = self.files.get(req.get("input_file_id"))
        if found is None:
            return _openai_error(404, "No such File object.", "input_file_id")
        if found[0] != "batch":
            return _openai_error(400, "The input file must have purpose 'batch'.", "input_file_id")
        batch = {"id": f"batch_{len(self.batches) + 1}", "object": "batch", "status": "validating", **req}
        self.batches.append(batch)
        return 200, batch

    def message_batch(self, body: bytes) -> tuple[int, Any]:
        req = json.loads(body or b"{}")
        requests = req.get("requests")
        if not isinstance(requests, list) or not requests or not all(
                isinstance(r, dict) and isinstance(r.get("custom_id"), str) and isinstance(r.get("params"), dict)
                for r in requests):
            return 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                    "message": "requests: a non-empty list of {custom_id, params}"}}
        batch = {"id": f"msgbatch_{len(self.message_batches) + 1}", "type": "message_batch",
                 "processing_status": "in_progress", "requests": requests}
        self.message_batches.append(batch)
        return 200, {k: v for k, v in batch.items() if k != "requests"}
