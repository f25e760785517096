"""Team keys: one key per person or service, each with its own model globs, rate limits, token budget,
expiry and usage, managed while the proxy runs (`cot-proxy keys ...`) and stored hashed.

- records.py: what a key is (KeyRecord) and how its limits are written (GLOBS, N, TOKENS/PERIOD, DATE).
- windows.py: the sliding-window arithmetic shared with key_limits (rpm, tpm) and budget periods.
- store.py: the SQLite store (the embedded default, a file next to the config), its tables and queries.
- service.py: what the proxy does with them per request (look a key up, admit, count usage).
- cli.py: the `keys` subcommand (create, list, revoke, usage).

May import: the shared modules, config.
Known exceptions: service.py, what the proxy does with a key per request, reads the call (pipeline/call.py,
its usage in pipeline/stream_usage.py); cli.py, the `keys` command line, imports
serve/gunicorn_app.py (the settings read as every entry point reads them).
"""
