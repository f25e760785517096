"""An independent conformance bench: Schemathesis (a property-based API tester nobody here wrote, from PyPI) run
against the proxy's Responses and Messages doors, each held to its API's published OpenAPI document
(tests/specs/: Open Responses' and Anthropic's), in front of a fake upstream that answers as a capable model does
(reasoning, text, two parallel tool calls, usage with cached and reasoning tokens: tests/fakes/capable_model.py).

    .venv/bin/python bench/conformance.py                       # every suite, about 10 minutes on 2 cores
    .venv/bin/python bench/conformance.py --suite "messages (Anthropic)" --verbose --failures failures.jsonl
    .venv/bin/python bench/conformance.py --target litellm      # the same against LiteLLM's proxy (a peer)

Schemathesis is installed on first use, pinned (SCHEMATHESIS), into its own virtualenv in the cache
(~/.cache/cot_proxy/conformance, or $COT_PROXY_CACHE/conformance), never into the project's. It makes requests from
each operation's request schema (valid ones, and invalid ones the API must refuse), sends them, and checks every
answer: no 5xx, a status and Content-Type the document lists, the body valid under the document's schema for that
status, valid requests accepted and invalid ones refused. Per suite this prints how many of each check passed and
failed, and the failures grouped by why; docs/conformance.md records a run and reads the failures. The exit status
is 1 when any answer was a 5xx (a server error is never conformant); the other failures are read, not gated.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes import capable_model as capable  # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream  # noqa: E402
from tests.proxy_process import free_port, running_proxy  # noqa: E402

SCHEMATHESIS = "4.32.5"
CACHE = Path(os.environ.get("COT_PROXY_CACHE") or Path.home() / ".cache" / "cot_proxy") / "conformance"
SPECS = ROOT / "tests" / "specs"
KEY = "sk-conformance"
# suite -> (document, the path its document's paths hang under, the operations tested, headers every
# request carries: the client's key, and for Anthropic's API the version header its document requires). The
# Responses door is held to both documents that describe it: Open Responses' and OpenAI's own.
SUITES = {
    "responses (Open Responses)": ("openresponses.json", "/v1", ["/responses", "/responses/compact"],
                                   {"Authorization": f"Bearer {KEY}"}),
    "responses (OpenAI)": ("openai.json", "/v1", ["/responses", "/responses/compact"],
                           {"Authorization": f"Bearer {KEY}"}),
    "messages (Anthropic)": ("anthropic.json", "", ["/v1/messages", "/v1/messages/count_tokens"],
                             {"x-api-key": KEY, "anthropic-version": "2023-06-01"}),
}
# The checks run: every one that applies to a stateless POST operation (the stateful ones, use_after_free and
# the like, need links between operations the documents do not declare)
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
          "positive_data_acceptance", "missing_required_header", "unsupported_method")


class CapableUpstream(FakeOpenAI):
    """An OpenAI-compatible server answering every chat request as a capable model does, whole or streamed."""

    def __init__(self) -> None:
        super().__init__()
        # a capable server (vLLM, OpenAI's own) takes what llama.cpp's refuses
        self.accepts_developer = self.accepts_null_content = self.accepts_json_schema = True
        self.accepts_unparsed_arguments = True

    def default_answer(self, method: str, path: str, body: bytes) -> Reply | Stream:
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                request = {}
            model = request.get("model") if isinstance(request.get("model"), str) else capable.MODEL
            if request.get("stream") is True:
                return Stream(capable.chunks(model=model))
            return Reply(capable.whole(model=model))
        return super().default_answer(method, path, body)


def schemathesis_bin() -> Path:
    """The pinned Schemathesis, installed into its own virtualenv in the cache on first use."""
    venv = CACHE / f"venv-schemathesis-{SCHEMATHESIS}"
    program = venv / "bin" / "schemathesis"
    if not program.exists():
        print(f"installing schemathesis=={SCHEMATHESIS} into {venv}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", f"schemathesis=={SCHEMATHESIS}"],
                       check=True)
    return program


@contextmanager
def cot_proxy(upstream: str) -> Iterator[str]:
    """The proxy (default settings; reasoning passed on in each API's own reasoning fields) in front of the
    upstream; yields its root URL."""
    with running_proxy(TARGET_BASE_URL=upstream, THINK_MODE="reasoning") as proxy:
        yield proxy.url


@contextmanager
def litellm(upstream: str) -> Iterator[str]:
    """LiteLLM's proxy (a peer gateway: the same three APIs over a chat-completions backend), every model name
    sent to the same upstream; from the venv tools/install_real_servers.sh makes for tests/real."""
    from tests.real.servers import _running, server_bin
    program = server_bin("litellm", "litellm")
    home = tempfile.mkdtemp(prefix="conformance_litellm_")
    # hosted_vllm: an OpenAI-compatible server. LiteLLM 1.109 sends a Responses request on to the upstream's own
    # /v1/responses (with this provider as with `openai`), where a chat-only upstream has none: its 500s say so
    models = [{"model_name": "*", "litellm_params": {"model": "hosted_vllm/*", "api_base": upstream.rstrip("/"),
                                                      "api_key": "sk-unused"}}]
    Path(home, "config.yaml").write_text(json.dumps({"model_list": models}))  # JSON is YAML
    port = free_port()
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": KEY}
    command = [str(program), "--config", "config.yaml", "--host", "127.0.0.1", "--port", str(port)]
    with _running(command, home, env, f"http://127.0.0.1:{port}/health/liveliness", timeout=300):
        yield f"http://127.0.0.1:{port}"


TARGETS = {"cot_proxy": cot_proxy, "litellm": litellm}


def run_suite(program: Path, suite: str, root: str, max_examples: int, seed: int, phases: str, out: Path,
              dump: Any = None) -> dict[str, Any]:
    spec, base, paths, headers = SUITES[suite]
    command = [str(program), "run", str(SPECS / spec), "--url", root + base, "--checks", ",".join(CHECKS),
               "--max-examples", str(max_examples), "--seed", str(seed), "--workers", "1",
               "--phases", phases, "--continue-on-failure", "--request-timeout", "30",
               "--suppress-health-check", "all", "--report", "ndjson", "--report-dir", str(out), "--no-color"]
    for path in paths:
        command += ["--include-path", path]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    # in the report directory: the tool keeps a cache of its own where it runs
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, cwd=out)
    return tally(out, done.stdout + done.stderr, dump)


def tally(out: Path, log: str, dump: Any = None) -> dict[str, Any]:
    """Checks passed and failed, by check name, from the run's event report; the failures grouped by why (the
    part of the request the check found invalid, or the answer's error message), each group with one example
    (the report is removed once read)."""
    passed: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    for report in out.glob("*.ndjson"):
        for line in report.read_text().splitlines():
            scenario = json.loads(line).get("ScenarioFinished")
            if not scenario:
                continue
            recorder = scenario["recorder"]
            for case, checks in recorder["checks"].items():
                for check in checks:
                    name = check["name"]
                    if check["status"] == "success":
                        passed[name] += 1
                    elif check["status"] == "failure":
                        failed[name] += 1
                        info = check.get("failure_info", {}).get("failure", {})
                        interaction = recorder["interactions"].get(case) or {}
                        key = (name, _reason(info, interaction))
                        reasons[key] += 1
                        examples.setdefault(key, _example(interaction))
                        if dump is not None:
                            dump.write(json.dumps({"check": name, "reason": key[1], "request": interaction.get(
                                "request"), "response": interaction.get("response")}) + "\n")
        report.unlink()
    return {"passed": dict(passed), "failed": dict(failed), "reasons": reasons, "examples": examples, "log": log}


def _reason(info: dict[str, Any], interaction: dict[str, Any]) -> str:
    """Why a check failed, in words that group alike failures: the invalid part of a refused-or-not request, the
    answer's error message (ids and numbers blanked), else the check's own first line."""
    message = str(info.get("message", ""))
    invalid = re.search(r"Invalid component: (.*)", message)
    if invalid:
        return f"{info.get('title')}: {invalid.group(1)}"
    response = interaction.get("response") or {}
    if info.get("type") in ("RejectedPositiveData", "UndefinedStatusCode"):
        try:
            error = json.loads(_text(response.get("content"))).get("error")
            said = error.get("message") if isinstance(error, dict) else str(error)
        except (ValueError, AttributeError):
            said = _text(response.get("content"))[:100]
        said = re.sub(r"'[^']*'|\d+", "_", str(said))[:140]
        return f"{info.get('title')} ({response.get('status_code')}): {said}"
    return f"{info.get('title')}: {re.sub(r'[0-9a-f]{8,}', '_', ' '.join(message.split()))[:140]}"


def _example(interaction: dict[str, Any]) -> str:
    """One failing exchange in a line: the request's body, the answer's status and first bytes."""
    request, response = interaction.get("request") or {}, interaction.get("response") or {}
    return (f"{request.get('method')} {_text(request.get('body'))[:300]} -> {response.get('status_code')} "
            f"{_text(response.get('content'))[:200]}")


def _text(body: Any) -> str:
    if isinstance(body, dict) and "$base64" in body:
        return base64.b64decode(body["$base64"]).decode("utf-8", "replace")
    return "" if body is None else str(body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", choices=sorted(SUITES), action="append", help="a suite to run (default: all)")
    ap.add_argument("--target", choices=sorted(TARGETS), action="append",
                    help="a gateway to test (default: cot_proxy; litellm: the peer, when tests/real's venv is there)")
    ap.add_argument("--max-examples", type=int, default=30, help="requests generated per operation and phase")
    ap.add_argument("--seed", type=int, default=43, help="the generator's seed (the same seed, the same requests)")
    ap.add_argument("--verbose", action="store_true", help="an example of each kind of failure")
    ap.add_argument("--failures", type=Path, help="write every failing exchange to this file (JSON lines)")
    ap.add_argument("--phases", default="examples,coverage,fuzzing", help="Schemathesis' phases to run")
    args = ap.parse_args(argv)
    program = schemathesis_bin()
    version = subprocess.run([str(program), "--version"], capture_output=True, text=True, cwd=CACHE).stdout.strip()
    print(f"{version}; max examples {args.max_examples}, seed {args.seed}")
    server_errors = 0
    dump = open(args.failures, "w") if args.failures else None
    with CapableUpstream() as upstream:
        for target in args.target or ["cot_proxy"]:
            with TARGETS[target](upstream.base_url) as root, tempfile.TemporaryDirectory() as tmp:
                for suite in args.suite or list(SUITES):
                    result = run_suite(program, suite, root, args.max_examples, args.seed, args.phases, Path(tmp), dump)
                    passed, failed = sum(result["passed"].values()), sum(result["failed"].values())
                    server_errors += result["failed"].get("not_a_server_error", 0)
                    print(f"\n{target}, {suite}: {passed} passed, {failed} failed")
                    for name in CHECKS:
                        if name in result["passed"] or name in result["failed"]:
                            print(f"  {name}: {result['passed'].get(name, 0)} passed, "
                                  f"{result['failed'].get(name, 0)} failed")
                    for (name, reason), count in result["reasons"].most_common():
                        print(f"  - {count} x {name}: {reason}")
                        if args.verbose:
                            print(f"      e.g. {result['examples'][(name, reason)]}")
    if dump is not None:
        dump.close()
    return 1 if server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
