"""Settings: one typed Settings object (defaults < config.yaml < environment < flags), how a setting is declared
and parsed, which backend runs and why, LLM_PARAMS rules, and where the proxy listens (loopback, Unix socket,
key file).

Rule: parsed once at start-up, read-only afterwards; nothing here serves a request or sends one.

May import: the shared modules.
"""
