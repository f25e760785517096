"""TRACING and TRACING_CONTENT, and the OTEL_* values checked at start-up: when requests are traced, a bad value
stopping start-up with one line naming it, and the warnings for what tracing will not do."""

from __future__ import annotations

import subprocess
import sys

import pytest

from argoproxy.config.settings import SettingsError, load, load_settings
from argoproxy.config.tracing_settings import endpoint, tracing_on
from tests.proxy_process import ROOT

URL = "http://collector:4318"


@pytest.mark.parametrize("env,on", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": URL}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": URL + "/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
    ({"TRACING": "on"}, True),
    ({"TRACING": "yes"}, True),
    ({"TRACING": "off", "OTEL_EXPORTER_OTLP_ENDPOINT": URL}, False),
    ({"TRACING": "auto", "OTEL_EXPORTER_OTLP_ENDPOINT": URL}, True),
    ({"TRACING": "on", "OTEL_SDK_DISABLED": "TRUE"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": URL, "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": URL, "OTEL_SDK_DISABLED": "false"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": URL, "OTEL_TRACES_EXPORTER": "none"}, False),
])
def test_when_requests_are_traced(env, on):
    s = load_settings({}, environ=env)
    assert tracing_on(s.tracing, env) is on


def test_the_setting_in_yaml_and_as_a_flag(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tracing: on\ntracing_content: true\n")  # YAML reads a bare on as true
    s = load_settings({}, environ={"CONFIG_PATH": str(cfg)})
    assert (s.tracing, s.tracing_content) == ("on", True)
    assert load_settings({"tracing": "off"}, environ={"CONFIG_PATH": str(cfg)}).tracing == "off"
    assert load_settings({}, environ={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}).tracing_content


def test_where_spans_go():
    assert endpoint({}) == "http://localhost:4318/v1/traces"
    assert endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": URL + "/"}) == URL + "/v1/traces"
    assert endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": URL, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}) == "http://t/x"


@pytest.mark.parametrize("env,line", [
    ({"TRACING": "sometimes"}, "TRACING: expected on, off or auto, got 'sometimes'"),
    ({"TRACING_CONTENT": "maybe"}, "TRACING_CONTENT: expected true or false, got 'maybe'"),
    ({"OTEL_TRACES_SAMPLER": "parentbased_alwayson"}, "OTEL_TRACES_SAMPLER: must be one of parentbased_always_on, "
     "parentbased_always_off, parentbased_traceidratio, always_on, always_off, traceidratio, got 'parentbased_alwayson'"),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1%"},
     "OTEL_TRACES_SAMPLER_ARG: the share of traces kept, between 0 and 1, got '1%'"),
    ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "5"},
     "OTEL_TRACES_SAMPLER_ARG: the share of traces kept, between 0 and 1, got '5'"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTEL_EXPORTER_OTLP_PROTOCOL: cot_proxy sends traces over OTLP/HTTP with protobuf (http/protobuf), got 'grpc'"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"},
     "OTEL_TRACES_EXPORTER: cot_proxy sends traces over OTLP only (otlp, or none for no traces), got 'zipkin'"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"},
     "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must be an http(s) URL, got 'collector:4318'"),
    ({"OTEL_BSP_SCHEDULE_DELAY": "5s"}, "OTEL_BSP_SCHEDULE_DELAY: expected a positive whole number, got '5s'"),
    # what the SDK took for its default with a warning in every worker, or stopped every worker on with a traceback
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "99999999999999999999"},
     "OTEL_BSP_MAX_QUEUE_SIZE: expected a positive whole number up to 2147483647, got '99999999999999999999'"),
    ({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8192"},
     "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: at most OTEL_BSP_MAX_QUEUE_SIZE (4096), got 8192"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512"},
     "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: at most OTEL_BSP_MAX_QUEUE_SIZE (100), got 512"),
    # digits int() refuses, though str.isdigit() passes them: a traceback at start-up, or in every worker
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "²"}, "OTEL_BSP_MAX_QUEUE_SIZE: expected a positive whole number, got '²'"),
    ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "①"},
     "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: expected a whole number (0 or more), got '①'"),
    ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "abc"},
     "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: expected a whole number (0 or more), got 'abc'"),
    ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "-1"},
     "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: expected a whole number (0 or more), got '-1'"),
    ({"OTEL_EXPORTER_OTLP_TIMEOUT": "abc"}, "OTEL_EXPORTER_OTLP_TIMEOUT: expected seconds (a positive number), got 'abc'"),
    ({"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "-5"},
     "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: expected seconds (a positive number), got '-5'"),
    ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"},
     "OTEL_EXPORTER_OTLP_COMPRESSION: must be one of none, gzip, deflate, got 'zstd'"),
    ({"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"},
     "OTEL_EXPORTER_OTLP_CERTIFICATE: no file can be read at '/nonexistent/ca.pem'"),
    # the SDK reads only "true" as true: 1 or yes would trace on
    ({"OTEL_SDK_DISABLED": "1"}, "OTEL_SDK_DISABLED: expected true or false, got '1'"),
    ({"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED: expected true or false, got 'yes'"),
    # an entry the SDK drops with a warning in every worker (the service's name with it)
    ({"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name"},
     "OTEL_RESOURCE_ATTRIBUTES: entry 2 is not key=value (entries separated by commas, values URL-encoded); "
     "values are not shown"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "a=1,"},
     "OTEL_RESOURCE_ATTRIBUTES: entry 2 is not key=value (entries separated by commas, values URL-encoded); "
     "values are not shown"),
    ({"OTEL_RESOURCE_ATTRIBUTES": " =prod"},
     "OTEL_RESOURCE_ATTRIBUTES: entry 1 is not key=value (entries separated by commas, values URL-encoded); "
     "values are not shown"),
])
def test_a_bad_value_names_its_key(env, line):
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ={"TRACING": "on", **env} if "TRACING" not in env else env)
    assert str(err.value) == line


@pytest.mark.parametrize("env,line", [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "ht!tp://ops:pw12345secret@collector?token=tok98765"},
     "OTEL_EXPORTER_OTLP_ENDPOINT: must be an http(s) URL, got 'ht!tp://***@collector?token=***'"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector//ops:pw12345secret@x"},
     "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must be an http(s) URL, got 'collector//***@x'"),
    ({"TARGET_BASE_URL": "ftp://ops:pw12345secret@host/v1?api_key=tok98765"},
     "TARGET_BASE_URL: must be an http(s) URL, got 'ftp://***@host/v1?api_key=***'"),
    # OpenTelemetry logs an entry it cannot read as it is, in every worker: there, a key written with ':'
    ({"OTEL_EXPORTER_OTLP_HEADERS": "x-team=a,Authorization: Bearer pw12345secret"},
     "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not name=value (entries separated by commas, values URL-encoded); "
     "values are not shown"),
    ({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "=pw12345secret"},
     "OTEL_EXPORTER_OTLP_TRACES_HEADERS: entry 1 is not name=value (entries separated by commas, values "
     "URL-encoded); values are not shown"),
])
def test_a_bad_value_holding_a_credential_is_named_without_it(env, line):
    with pytest.raises(SettingsError) as err:
        load_settings({}, environ={"TRACING": "on", **env})
    assert str(err.value) == line
    assert "pw12345secret" not in str(err.value) and "tok98765" not in str(err.value)


def test_headers_opentelemetry_reads_pass():
    load_settings({}, environ={"TRACING": "on", "OTEL_EXPORTER_OTLP_HEADERS":
                               " x-api-key = k1 ,Authorization=Basic%20dXNlcg==, ,api-key=a b"})


def test_otel_values_are_not_ours_to_check_while_tracing_is_off():
    """Another program's OTEL_* variables in the same environment do not stop a proxy that does not trace."""
    s = load_settings({}, environ={"OTEL_TRACES_SAMPLER": "jaeger_remote", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert s.tracing == "auto"


def test_good_values_pass():
    load_settings({}, environ={"TRACING": "on", "OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio",
                               "OTEL_TRACES_SAMPLER_ARG": "0.01", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                               "OTEL_BSP_SCHEDULE_DELAY": "1000", "OTEL_TRACES_EXPORTER": "otlp",
                               "OTEL_BSP_MAX_QUEUE_SIZE": "4096", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1024",
                               "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "0", "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
                               "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "GZIP",
                               "OTEL_EXPORTER_OTLP_CERTIFICATE": str(ROOT / "README.md"), "OTEL_SDK_DISABLED": "False",
                               "OTEL_RESOURCE_ATTRIBUTES": " service.name = gw , team=a%20b=c"})


@pytest.mark.parametrize("env,warning", [
    ({"TRACING": "on", "OTEL_SDK_DISABLED": "true"},
     "TRACING is on, but OTEL_SDK_DISABLED=true turns OpenTelemetry off, so no request is traced"),
    ({"TRACING": "on"}, "TRACING is on and no OTEL_EXPORTER_OTLP_ENDPOINT is set: spans go to "
                        "http://localhost:4318/v1/traces"),
    ({"TRACING_CONTENT": "true"}, "TRACING_CONTENT is set, but no request is traced (TRACING is off, or auto with no "
                                  "OTEL_EXPORTER_OTLP_ENDPOINT), so it is not used"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:pw@otel.example:4318/v1/traces/"},  # a collector's full URL
     "OTEL_EXPORTER_OTLP_ENDPOINT ends in /v1/traces, and the exporter adds /v1/traces to it: spans go to "
     ".../v1/traces/v1/traces. Give the collector's base URL, or this URL as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    # the traces endpoint is used as written: a collector's base URL there sends every span to its / (a 404)
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://user:pw@otel.example:4318/"},
     "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is written, and it has no path: spans go to the collector's "
     "/ (where it answers 404). Give its whole URL (.../v1/traces), or this base URL as OTEL_EXPORTER_OTLP_ENDPOINT"),
    # a share asked for without the sampler that takes it: every trace would be kept
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": URL, "OTEL_TRACES_SAMPLER_ARG": "0.01"},
     "OTEL_TRACES_SAMPLER_ARG is set, but OTEL_TRACES_SAMPLER is parentbased_always_on (the default), which takes "
     "no share, so it is not used: set OTEL_TRACES_SAMPLER=parentbased_traceidratio to keep that share of traces"),
    ({"TRACING": "on", "OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
     "OTEL_TRACES_SAMPLER_ARG is set, but OTEL_TRACES_SAMPLER is always_on, which takes no share, so it is not used: "
     "set OTEL_TRACES_SAMPLER=parentbased_traceidratio to keep that share of traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": URL, "OTEL_PROPAGATORS": "tracecontext,b3, jaeger"},
     "OTEL_PROPAGATORS names b3, jaeger, but cot_proxy continues and passes on W3C trace context (traceparent, "
     "tracestate) only, so it is not used"),
])
def test_warnings(env, warning):
    assert warning in load({}, environ=env).warnings


def test_a_whole_url_where_it_is_one_is_no_warning():
    for env in ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://otel.example:4318/v1/traces"},
                {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://otel.example:4318/v1/traces",
                 "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel.example:4318/v1/traces"},  # the traces one is used
                {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel.example:4318/v1/traces", "TRACING": "off"},
                {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://cloud.langfuse.com/api/public/otel/v1/traces"}):
        assert load({}, environ=env).warnings == ()


def test_no_warning_when_tracing_as_configured():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": URL, "TRACING_CONTENT": "true", "OTEL_SERVICE_NAME": "gw",
           "OTEL_TRACES_SAMPLER": "always_on", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
           "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "256", "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=k",
           "OTEL_PROPAGATORS": "tracecontext,baggage"}
    assert load({}, environ=env).warnings == ()
    ratio = {"OTEL_EXPORTER_OTLP_ENDPOINT": URL, "OTEL_TRACES_SAMPLER": "traceidratio",
             "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    assert load({}, environ=ratio).warnings == ()
    # while tracing is off another program's OTEL_* variables are not ours to judge
    assert load({}, environ={"OTEL_TRACES_SAMPLER_ARG": "0.1", "OTEL_PROPAGATORS": "b3"}).warnings == ()


def test_a_bad_otel_value_stops_startup_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "OTEL_EXPORTER_OTLP_ENDPOINT": URL, "OTEL_TRACES_SAMPLER": "sometimes"}
    out = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "cot_proxy:app"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert [line for line in out.stderr.splitlines() if line.strip()] == [
        "cot_proxy: bad setting OTEL_TRACES_SAMPLER: must be one of parentbased_always_on, parentbased_always_off, "
        "parentbased_traceidratio, always_on, always_off, traceidratio, got 'sometimes'"], out.stderr


def test_the_startup_line_says_where_spans_go_without_credentials(monkeypatch):
    from argoproxy.serve.gunicorn_app import startup_line
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:secret@otel.example:4318")
    line = startup_line(load_settings({}, environ={"TARGET_BASE_URL": "http://127.0.0.1:9/v1"}))
    assert line.endswith(", spans to https://***@otel.example:4318/v1/traces)") and "secret" not in line
    monkeypatch.setenv("TRACING", "off")
    assert "spans" not in startup_line(load_settings({}, environ={"TARGET_BASE_URL": "http://127.0.0.1:9/v1",
                                                                  "TRACING": "off"}))
