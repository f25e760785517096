"""The proxy's request (edge/http_objects.py: Request) as Authlib's OAuth2Request and JsonRequest, and Authlib's
answers as the proxy's Answer: the adapter Authlib's framework integrations are (its Flask one reads Flask's
request; the proxy's own routes run behind the one door, without Flask)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qs

from authlib.oauth2.rfc6749 import JsonPayload, JsonRequest, OAuth2Payload, OAuth2Request

from argoproxy.edge.http_objects import Answer

MOST_FORM = 16 * 1024  # a token request or an approval is a few hundred bytes


class Values(OAuth2Payload):  # type: ignore[misc]
    """Parameters as Authlib reads them: the first of each name (`data`), and every one (`datalist`: Authlib
    refuses a parameter sent twice)."""

    def __init__(self, values: Mapping[str, list[str]]) -> None:
        self._values = defaultdict(list, {k: list(v) for k, v in values.items()})

    @property
    def data(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._values.items() if v}

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._values


class FormRequest(OAuth2Request):  # type: ignore[misc]
    """A GET's query, or a POST's form (with the query beside it, as Flask's `request.values`)."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], query: str, body: bytes = b"") -> None:
        super().__init__(method, uri, headers=dict(headers))
        self._query = parse_qs(query, keep_blank_values=True)
        self._form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if body else {}
        merged = {k: [*self._query.get(k, []), *self._form.get(k, [])] for k in {*self._query, *self._form}}
        self.payload = Values(merged)

    @property
    def args(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._query.items()}

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._form.items()}


class Json(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: Any) -> None:
        self._data = data

    @property
    def data(self) -> Any:
        return self._data


def json_request(method: str, uri: str, headers: Mapping[str, str], data: Any) -> JsonRequest:
    request = JsonRequest(method, uri, dict(headers))
    request.payload = Json(data)
    return request


@dataclass
class Reply:
    """Authlib's (status, body, headers), with the `location` its RFC 9207 extension rewrites."""
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]

    def answer(self) -> Answer:
        body = self.body if isinstance(self.body, (bytes, str)) else json.dumps(self.body)
        data = body.encode() if isinstance(body, str) else body
        headers = [(k, v) for k, v in self.headers if k.lower() not in ("cache-control", "pragma")]
        headers += [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        if data and not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
        return Answer(data, 303 if self.status == 302 else self.status, headers)
