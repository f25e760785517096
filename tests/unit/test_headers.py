"""Which client headers go upstream (argoproxy.edge.header_policy.request_headers)."""

from argoproxy.edge.header_policy import request_headers


def test_client_request_id_goes_upstream_only_as_a_uuid():
    uuid_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert request_headers({"HTTP_X_REQUEST_ID": uuid_id})["X-Request-Id"] == uuid_id
    assert request_headers({"HTTP_X_REQUEST_ID": uuid_id.replace("-", "")})["X-Request-Id"]
    for other in ("trace-42", "my request", "0f8fad5b"):
        assert "X-Request-Id" not in request_headers({"HTTP_X_REQUEST_ID": other, "HTTP_X_OTHER": "kept"})
    assert request_headers({"HTTP_X_REQUEST_ID": "trace-42", "HTTP_X_OTHER": "kept"}) == {"X-Other": "kept"}
