"""Settings: one typed Settings object (defaults < config.yaml < environment < flags), how a setting is declared
and parsed, the provider registry the settings read (providers found by name, none imported here), which
backend runs and why, the routing settings, the model families' table and overrides, LLM_PARAMS rules, a
provider's part of the first run, where the proxy listens (loopback, Unix socket, key file), the command line's
flags and help, and the refusal to serve with nothing configured.

Rule: parsed once at start-up, read-only afterwards; nothing here serves a request or sends one.

May import: the shared modules.
"""
