"""The environments `cot-proxy run` starts processes with.

The proxy's: the user's environment, with the variables of the env file the user named or trusted where the
environment has none (as the proxy reads `.env`), never one that loads code (argoproxy/launch/sources.py).

The agent's: the user's environment without any key of the proxy's: the admin key (API_KEY_SECRET, the
generated one), the upstream keys (OPENAI_API_KEY, DASHSCOPE_API_KEY, a routing entry's api_key_env, ...), the
client keys key_limits names, COT_PROXY_KEY, the key store's address (REDIS_URL), and any other variable that
holds one of those values. Every command an agent runs sees its environment, and agents put what their commands
print into the conversation they send; the agent gets only the run's own key, in its set-up's variables.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from argoproxy.config.listener import GENERATED_KEY_ENV
from argoproxy.config.settings import SETTING_FIELDS, Settings
from argoproxy.launch.agents import Setup
from argoproxy.redaction import configured_secrets

USER_KEY_ENV = "COT_PROXY_KEY"  # the key the user gives clients of the proxy
SECRET_SETTING_VARS = frozenset(env for f in SETTING_FIELDS.values() if f.metadata.get("secret")
                                for env in f.metadata["env"])
MIN_SECRET = 8  # shorter values are not looked for inside other variables (they would match by chance)


def proxy_environment(user: Mapping[str, str], from_file: Mapping[str, str],
                      extra: Mapping[str, str]) -> dict[str, str]:
    """The user's environment wins over the file, as for `.env`; `extra`: what run itself sets."""
    return {**from_file, **user, **extra}


def secret_variables(settings: Settings) -> set[str]:
    """The names of the variables that hold a key of the proxy's, whatever their values."""
    names = set(SECRET_SETTING_VARS) | {GENERATED_KEY_ENV, USER_KEY_ENV, "REDIS_URL"}
    names |= {entry.api_key_env for entry in settings.models if entry.api_key_env}
    names |= {limit.key_env for limit in settings.key_limits}
    return names


def agent_environment(setup: Setup, user: Mapping[str, str], settings: Settings,
                      keys: Iterable[str] = ()) -> dict[str, str]:
    """The agent's environment: the user's, without the proxy's keys (by name, and any variable holding one of
    their values or of `keys`), without what the set-up removes, with what it sets."""
    dropped = secret_variables(settings) | set(setup.unset)
    values = [v for v in (*configured_secrets(settings), *keys, user.get(USER_KEY_ENV, "")) if len(v) >= MIN_SECRET]
    env = {name: value for name, value in user.items()
           if name not in dropped and not any(secret in value for secret in values)}
    env.update(setup.env)
    return env


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def direct_to(env: dict[str, str], host: str) -> dict[str, str]:
    """The agent's environment with the proxy's host in no_proxy and NO_PROXY when an HTTP proxy is set: agents
    follow those variables, and one that does not name loopback would get the agent's key and prompts (and
    could not reach the user's loopback anyway)."""
    if not any(env.get(name) for name in PROXY_VARIABLES):
        return env
    lists = {name: env.get(name, env.get(other, "")) for name, other in (("no_proxy", "NO_PROXY"),
                                                                         ("NO_PROXY", "no_proxy"))}
    for name, value in lists.items():
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        env[name] = ",".join(hosts if host in hosts else [*hosts, host])
    return env
