"""The environment variables no file may set (`.env`, an env file, config): each makes a process load code or
start-up files, so a file in a cloned repository that set one would run that repository's code in the proxy or
in an agent (docs/agents.md, "What run trusts")."""

from __future__ import annotations

# Never taken from a file: what the dynamic loader, interpreters, shells, Git, Gunicorn and gevent read to load
# code or start-up files, and where programs look for their own configuration.
CODE_LOADERS = frozenset({
    "PATH", "HOME", "SHELL", "BASH_ENV", "ENV", "ZDOTDIR", "PROMPT_COMMAND", "SHELLOPTS", "BASHOPTS", "IFS",
    "EDITOR", "VISUAL", "PAGER", "BROWSER", "GCONV_PATH", "HOSTALIASES", "SSLKEYLOGFILE", "GUNICORN_CMD_ARGS",
    "TMPDIR"})
CODE_LOADER_PREFIXES = ("LD_", "DYLD_", "PYTHON", "NODE_", "NPM_CONFIG_", "BUN_", "DENO_", "PERL", "RUBY", "GEM_",
                        "JAVA_", "_JAVA_", "JDK_JAVA_", "GIT_", "GEVENT", "OPENSSL_", "XDG_", "PIP_")


def loads_code(name: str) -> bool:
    upper = name.upper()
    return upper in CODE_LOADERS or upper.startswith(CODE_LOADER_PREFIXES)
