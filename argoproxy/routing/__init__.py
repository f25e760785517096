"""Many upstreams behind one endpoint (issue 15): the `models` list, pools, failover, fallbacks, cache-aware routing.

- dispatch.py: Routing, the sequence's Dispatcher (pipeline/collaborators.py): each call to a deployment,
  with fallbacks and retries before the first byte. (The typed `models`, `fallbacks` and `key_limits`
  settings are configuration's: config/routing_settings.py.)
- router.py: model name -> pool of deployments -> the deployment to try next (least in flight, weighted,
  cooled-down deployments last), and the fallback chain.
- shared_cooldowns.py: cooldowns shared across replicas through Redis. (The int64 cells the workers share
  are argoproxy/shared_cells.py.)
- seating.py: a request seated through admission (argoproxy/admission/: the concurrency limits, the fair queue,
  key limits) with its key, its cost by the meter, its bound and its client; affinity.py: cache-aware routing's
  choice and its notes, each key's conversations its own; slots.py: a limit asked of the server.

May import: the shared modules, config, meter, upstream, edge, pipeline, providers, teamkeys, admission.
"""
