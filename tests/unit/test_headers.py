"""Which client headers go upstream (argoproxy.edge.header_policy.request_headers)."""

from argoproxy.edge.header_policy import request_headers


def test_client_request_id_goes_upstream_only_as_a_uuid():
    uuid_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert request_headers({"HTTP_X_REQUEST_ID": uuid_id})["X-Request-Id"] == uuid_id
    assert request_headers({"HTTP_X_REQUEST_ID": uuid_id.replace("-", "")})["X-Request-Id"]
    for other in ("trace-42", "my request", "0f8fad5b"):
        assert "X-Request-Id" not in request_headers({"HTTP_X_REQUEST_ID": other, "HTTP_X_OTHER": "kept"})
    assert request_headers({"HTTP_X_REQUEST_ID": "trace-42", "HTTP_X_OTHER": "kept"}) == {"X-Other": "kept"}


def test_upstream_headers_pass_by_the_allow_list_with_values_cleaned():
    from argoproxy.edge.header_policy import response_headers
    from argoproxy.redaction import header_value
    upstream = {"Content-Type": "application/json", "Set-Cookie": "a=1", "Via": "1.1 proxy", "Server": "nginx",
                "X-Backend-Host": "db", "x-ratelimit-limit-requests": "60", "x-ratelimit-10.0.0.1": "1",
                "ratelimit-policy": "60;w=60", "Location": "http://files.svc.cluster.local/x?sig=1",
                "Content-Disposition": 'attachment; filename="a.jsonl"', "Retry-After": "3"}
    assert response_headers(upstream, drop_encoding=False) == [
        ("Content-Type", "application/json"), ("x-ratelimit-limit-requests", "60"), ("ratelimit-policy", "60;w=60"),
        ("Location", "[internal url]"), ("Content-Disposition", 'attachment; filename="a.jsonl"'), ("Retry-After", "3")]
    assert header_value("https://cdn.example.com/f?sig=abc") == "https://cdn.example.com/f?sig=abc"  # public: whole
    assert header_value("host db7.corp.internal at 192.168.1.2:80, 8.8.8.8") == \
        "host [internal host] at [internal host], 8.8.8.8"
    assert header_value("6m0.5s") == "6m0.5s" and header_value("req_abc") == "req_abc"
