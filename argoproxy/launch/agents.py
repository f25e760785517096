"""How each coding agent is pointed at the proxy: the one place that knows it (`cot-proxy run`, `cot-proxy agents`
and tests/agents all read it).

Each agent is told the model's context window and output limit the way it reads them, when the proxy's model
list gives a window (`AgentTarget.window`: vLLM's max_model_len, llama.cpp's per-slot context...); otherwise nothing is
set and the agent keeps its own default.

A set-up is the agent's command line, the environment variables to set and to remove, and files written into a
scratch directory the run owns (a temporary config the agent is told about by an environment variable or a
flag). Nothing is written into the user's own configuration: their ~/.codex, ~/.config/opencode,
~/.gemini and ~/.claude stay as they are, and the agent keeps reading them for everything else.

When the proxy serves MCP servers (`/mcp`, docs/mcp.md), the agent is also given that endpoint with the run's key,
as an MCP server named `cot_proxy` beside the user's own (which each agent still reads from its own files).
Aider speaks no MCP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# The variable that carries the proxy's key to agents that read their key from a variable of our choosing.
KEY_ENV = "COT_PROXY_API_KEY"
PROVIDER = "cot_proxy"  # the provider name given to the proxy in Codex's and OpenCode's configs
MCP_SERVER = "cot_proxy"  # the MCP server name the proxy's /mcp gets in each agent's config
SESSION_HEADER = "X-Session-Id"  # the run's session, where an agent takes headers of ours (edge/agent_sessions.py)


@dataclass(frozen=True)
class AgentTarget:
    """The proxy an agent is pointed at."""
    url: str  # http://127.0.0.1:5000, without /v1
    key: str
    model: str  # a name the proxy serves
    window: int | None = None  # the model's context in tokens, as the proxy lists it; None: not known
    websocket: bool = False  # the proxy serves the Responses API over a WebSocket (launch/websocket_probe.py)
    mcp: bool = False  # the proxy serves MCP servers at /mcp (launch/mcp_gateway.py)
    session: str = ""  # the run's agent session id (launch/run_session.py)

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    @property
    def output(self) -> int | None:
        """The output limit the agent is told: a quarter of the window, at most MAX_OUTPUT. An agent's own default
        (Claude Code's 32,000) in a 32k window leaves no room for the conversation, and vLLM refuses a request
        whose prompt and max_tokens together pass the window."""
        return min(MAX_OUTPUT, self.window // 4) if self.window else None


MAX_OUTPUT = 32_000  # Claude Code's and Codex's own default for large models


@dataclass
class Setup:
    """What running one agent through the proxy takes."""
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # set in the agent's environment
    unset: tuple[str, ...] = ()  # removed from it (the user's own keys and switches that would send it elsewhere)
    files: dict[Path, str] = field(default_factory=dict)  # written (in the scratch directory) before it starts


@dataclass(frozen=True)
class Agent:
    name: str  # what the user types after `cot-proxy run --`
    title: str
    door: str  # the proxy's API it speaks
    prefers: tuple[str, ...]  # model names it is made for, best first (substrings of the proxy's model ids)
    build: Callable[[AgentTarget, list[str], Path], Setup]
    install: str  # how its users install it (the packages agents.txt pins)
    model_options: tuple[str, ...] = ("-m", "--model")  # where its own arguments may name a model
    speaks_mcp: bool = True  # it can be given the proxy's /mcp (Aider cannot)

    def setup(self, target: AgentTarget, args: list[str], scratch: Path, program: str | None = None) -> Setup:
        """The set-up for `<program> <args>` (program: the agent's name, found on PATH, unless given)."""
        made = self.build(target, list(args), scratch)
        made.argv[0] = program or made.argv[0]
        return made


def _has_option(args: list[str], *names: str) -> bool:
    return any(a in names or any(a.startswith(n + "=") for n in names if n.startswith("--")) for a in args)


def claude(target: AgentTarget, args: list[str], scratch: Path) -> Setup:
    # No /v1 in the URL: Claude Code adds /v1/messages. Every model slot gets the served model, so /model and
    # the background (haiku) calls never name one the backend lacks.
    env = {"ANTHROPIC_BASE_URL": target.url, "ANTHROPIC_AUTH_TOKEN": target.key, "ANTHROPIC_MODEL": target.model,
           "ANTHROPIC_DEFAULT_HAIKU_MODEL": target.model, "ANTHROPIC_DEFAULT_SONNET_MODEL": target.model,
           "ANTHROPIC_DEFAULT_OPUS_MODEL": target.model, "ANTHROPIC_SMALL_FAST_MODEL": target.model,
           "CLAUDE_CODE_ATTRIBUTION_HEADER": "0"}  # a per-request first system line defeats prompt caching
    # The user's own Anthropic key would be sent to the proxy beside ours; Bedrock and Vertex switches send
    # the agent past it.
    unset = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")
    if target.window:  # it assumes 200,000 tokens for a model it does not know, and compacts only near 167,000
        env.update(CLAUDE_CODE_AUTO_COMPACT_WINDOW=str(target.window), CLAUDE_CODE_MAX_OUTPUT_TOKENS=str(target.output))
    if target.session and not _has_option(args, "--session-id", "--resume", "-r", "--continue", "-c"):
        args = ["--session-id", target.session, *args]  # sent back by it as X-Claude-Code-Session-Id
    if not target.mcp:
        return Setup(["claude", *args], env, unset)
    # --mcp-config adds its servers to the user's own (unless they pass --strict-mcp-config); the file is the
    # run's, in its private scratch directory, and goes with it. Given with `=`: the option takes many values,
    # and a prompt after `--mcp-config FILE` would be read as another file.
    # Claude Code's own tool search holds tools back with `defer_loading`, which only Anthropic's API honours: a
    # chat upstream is sent every tool anyway. The proxy's search (MCP_TOOL_SEARCH) shortens /mcp's listing itself.
    env["ENABLE_TOOL_SEARCH"] = "false"
    config = scratch / "claude-mcp.json"
    text = json.dumps({"mcpServers": {MCP_SERVER: {
        "type": "http", "url": target.mcp_url, "headers": {"Authorization": f"Bearer {target.key}"}}}}, indent=2)
    return Setup(["claude", f"--mcp-config={config}", *args], env, unset, {config: text})


def codex(target: AgentTarget, args: list[str], scratch: Path) -> Setup:
    # `-c` overrides on top of the user's ~/.codex/config.toml, which is read but not written.
    # supports_websockets: Codex's WebSocket mode (one connection for the session), told only to a proxy that
    # serves it; where it is not served Codex speaks HTTP from the start, never waiting on a refused upgrade.
    websocket = ", supports_websockets = true" if target.websocket else ""
    # Its own session header (session_id) has an underscore, which Gunicorn drops: the run's is sent beside it.
    headers = f', http_headers = {{ "{SESSION_HEADER}" = "{target.session}" }}' if target.session else ""
    provider = (f'{{ name = "{PROVIDER}", base_url = "{target.url}/v1", env_key = "{KEY_ENV}", '
                f'wire_api = "responses"{websocket}{headers} }}')
    overrides = ["-c", f'model_providers.{PROVIDER}={provider}', "-c", f'model_provider="{PROVIDER}"']
    if not _has_option(args, "-m", "--model"):
        overrides += ["-c", f'model="{target.model}"']
    if target.window:  # the window only: Codex 0.171 reports model_max_output_tokens as an unrecognized key
        overrides += ["-c", f"model_context_window={target.window}"]
    if target.mcp:  # one more entry in the user's mcp_servers table, its token read from the variable
        overrides += ["-c", f'mcp_servers.{MCP_SERVER}={{ url = "{target.mcp_url}", '
                            f'bearer_token_env_var = "{KEY_ENV}" }}']
    return Setup(["codex", *overrides, *args], {KEY_ENV: target.key})


def opencode(target: AgentTarget, args: list[str], scratch: Path) -> Setup:
    # OPENCODE_CONFIG: a config file merged over the user's global one (a project's opencode.json still wins).
    config = scratch / "opencode.json"
    model: dict[str, Any] = {"name": target.model}
    if target.window:
        model["limit"] = {"context": target.window, "output": target.output}
    merged: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {PROVIDER: {
            "npm": "@ai-sdk/openai-compatible", "name": PROVIDER,
            "options": {"baseURL": f"{target.url}/v1", "apiKey": "{env:" + KEY_ENV + "}",
                        **({"headers": {SESSION_HEADER: target.session}} if target.session else {})},
            "models": {target.model: model}}},
        "model": f"{PROVIDER}/{target.model}", "small_model": f"{PROVIDER}/{target.model}"}
    if target.mcp:  # merged into the user's `mcp` servers; oauth off: the key is the header, no sign-in is tried
        merged["mcp"] = {MCP_SERVER: {"type": "remote", "url": target.mcp_url, "oauth": False,
                                      "headers": {"Authorization": "Bearer {env:" + KEY_ENV + "}"}}}
    text = json.dumps(merged, indent=2)
    return Setup(["opencode", *args], {"OPENCODE_CONFIG": str(config), KEY_ENV: target.key}, files={config: text})


def aider(target: AgentTarget, args: list[str], scratch: Path) -> Setup:
    # The openai/ prefix tells Aider (litellm) to speak the OpenAI API to OPENAI_API_BASE; a name Aider has no
    # metadata for is the rule behind a proxy, so its warning (a question in --message mode) is off.
    ours = [] if _has_option(args, "--model") else ["--model", f"openai/{target.model}"]
    env = {"OPENAI_API_BASE": f"{target.url}/v1", "OPENAI_API_KEY": target.key}
    # Aider loads the project's .env over its environment, and litellm takes OPENAI_BASE_URL before
    # OPENAI_API_BASE: a project's .env would send it elsewhere. The --env-file it is given is loaded last.
    files = {}
    if not _has_option(args, "--env-file"):
        env_file = scratch / "aider.env"
        files[env_file] = "".join(f"{name}={value}\n" for name, value in
                                  {**env, "OPENAI_BASE_URL": env["OPENAI_API_BASE"]}.items())
        ours += ["--env-file", str(env_file)]
    if target.window and not _has_option(args, "--model-metadata-file"):  # litellm's model_prices file format
        metadata = scratch / "aider-model-metadata.json"
        files[metadata] = json.dumps({f"openai/{target.model}": {
            "max_input_tokens": target.window, "max_output_tokens": target.output, "max_tokens": target.output,
            "litellm_provider": "openai", "mode": "chat"}}, indent=2)
        ours += ["--model-metadata-file", str(metadata)]
    return Setup(["aider", *ours, "--no-show-model-warnings", *args], env, ("OPENAI_BASE_URL",), files)


def gemini(target: AgentTarget, args: list[str], scratch: Path) -> Setup:
    # The API-key sign-in is chosen in a system settings file of our own (it overrides the user's settings,
    # which may choose a Google login); GOOGLE_API_KEY would win over GEMINI_API_KEY, Vertex sends it elsewhere.
    settings = scratch / "gemini-system-settings.json"
    system: dict[str, Any] = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
    if target.mcp:  # Gemini CLI merges mcpServers across its settings files: the user's servers stay
        system["mcpServers"] = {MCP_SERVER: {"httpUrl": target.mcp_url,
                                             "headers": {"Authorization": f"Bearer {target.key}"}}}
    text = json.dumps(system)
    ours = [] if _has_option(args, "-m", "--model") else ["-m", target.model]
    env = {"GOOGLE_GEMINI_BASE_URL": target.url, "GEMINI_API_KEY": target.key,
           "GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(settings)}
    return Setup(["gemini", *ours, *args], env, ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"), {settings: text})


AGENTS: dict[str, Agent] = {a.name: a for a in (
    Agent("claude", "Claude Code", "/v1/messages", ("claude",), claude, "npm install -g @anthropic-ai/claude-code",
          ("--model",)),
    Agent("codex", "Codex CLI", "/v1/responses", ("gpt-5", "codex", "gpt"), codex, "npm install -g @openai/codex"),
    Agent("gemini", "Gemini CLI", "/v1beta/models/...:generateContent", ("gemini",), gemini,
          "npm install -g @google/gemini-cli"),
    Agent("opencode", "OpenCode", "/v1/chat/completions", ("gpt", "claude"), opencode, "npm install -g opencode-ai"),
    Agent("aider", "Aider", "/v1/chat/completions", ("gpt", "claude"), aider, "pip install aider-chat",
          ("--model",), speaks_mcp=False),
)}


def models_named(agent: Agent, args: list[str]) -> list[str]:
    """The models the agent's own arguments name (`codex -m gpt-5`, `aider --model openai/gpt-4o`), as the proxy
    is asked for them: a provider prefix (openai/, cot_proxy/) is the agent's, not the model's."""
    named = []
    for i, arg in enumerate(args):
        value = None
        if arg in agent.model_options and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--") and arg.partition("=")[0] in agent.model_options:
            value = arg.partition("=")[2]
        if value:
            named.append(value.split("/", 1)[1] if value.startswith(("openai/", f"{PROVIDER}/")) else value)
    return named


def model_for(agent: Agent, served: list[str]) -> str | None:
    """The served model an agent gets: the first that names its family (claude for Claude Code), else the first
    served; None when the proxy lists none."""
    for wanted in agent.prefers:
        match = next((m for m in served if wanted in m.lower()), None)
        if match:
            return match
    return served[0] if served else None
