"""Many upstreams behind one endpoint (issue 15): the `models` list, pools, failover, fallbacks, key limits.

- entries.py: the typed `models`, `fallbacks` and `key_limits` settings (parsed and checked at start-up).
- router.py: model name -> pool of deployments -> the deployment to try next (least in flight, weighted,
  cooled-down deployments last), and the fallback chain.
- shared.py: int64 cells shared by the workers of one instance (a mmap'd file the Gunicorn master provides).
- key_limits.py: per-client-key requests and tokens per minute, counted across workers in shared cells.
"""
