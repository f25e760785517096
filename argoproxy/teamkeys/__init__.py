"""Team keys: one key per person or service, each with its own model globs, rate limits, token budget,
expiry and usage, managed while the proxy runs (`cot-proxy keys ...`) and stored hashed.

- records.py: what a key is (KeyRecord) and how its limits are written (GLOBS, N, TOKENS/PERIOD, DATE).
- windows.py: the sliding-window arithmetic shared with key_limits (rpm, tpm) and budget periods.
- store.py: the SQLite store (the embedded default, a file next to the config), its tables and queries.
- credential_store.py: people's sealed tokens for per_user MCP servers (mcp/connections.py), in the same SQLite
  file or Redis: rows by person and server, nothing here able to read one.
- service.py: what the proxy does with them per request (look a key up, reserve, settle, count usage), its usage
  rows written behind the requests (usage_rows.py), and by agent session beside them (session_usage.py);
  tool_calls.py: a key's MCP tool calls held to its tool limits, and their price held in its dollar budget while
  they run.
- lookup_cache.py: the bounded LRU caches of known and unknown keys.
- local_windows.py: one instance's windows and holds in the workers' shared cells, with each worker's ledger.
- redis_store.py, redis_deadline.py, failover.py: the Redis store, its round trips' deadline, its outage policy
  (redis_records.py: its key and team records; redis_tool_usage.py: its MCP tool calls' usage rows;
  redis_tool_holds.py: their prices held);
  last_seen.py: what each worker last saw of each key's counts in Redis, which an outage's counting starts from.
- audit.py: the audit log's entries (every change to keys and teams, by the console's API or these commands);
  audit_stores.py: kept in SQLite and Redis; usage_totals.py: usage summed for the console (SQLite);
  redis_usage_totals.py: Redis's usage rows by day, with roll-ups by name and model, and their sums.
- cli.py: the `keys` subcommand (create, list, update, revoke, usage); teams_cli.py: the `teams` subcommand (teams
  of keys: records.py's TeamRecord, whose limits its keys share, counted as a key's under the name team/NAME).
- people_rows.py, redis_people.py: the people who signed in (argoproxy/people/), console sessions and sign-in flows,
  in SQLite and in Redis; people_cli.py: the `people` subcommand (list, disable, enable). A key's owner's state is
  read with the key, so a disabled owner's keys are refused as a revoked key is.

May import: the shared modules, config, spend, meter, people.
service.py, what the proxy does with a key per request, reads a call through protocols of its own (Asking,
Started, Ended), which the sequence's call and its records (pipeline/) fill: this room imports nothing of it.
cli.py and teams_cli.py, the `keys` and `teams` command lines, are handed the settings reader of the entry point
that runs them.
"""
