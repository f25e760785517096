"""Many upstreams behind one endpoint (issue 15): the `models` list, pools, failover, fallbacks, key limits.

- dispatch.py: Routing, the sequence's Dispatcher (pipeline/collaborators.py): each call to a deployment,
  with fallbacks and retries before the first byte. (The typed `models`, `fallbacks` and `key_limits`
  settings are configuration's: config/routing_settings.py.)
- router.py: model name -> pool of deployments -> the deployment to try next (least in flight, weighted,
  cooled-down deployments last), and the fallback chain.
- shared_cooldowns.py: cooldowns shared across replicas through Redis. (The int64 cells the workers share
  are argoproxy/shared_cells.py.)
- key_limits.py: per-client-key requests and tokens per minute, counted across workers in shared cells.
- admission.py: each deployment's concurrency limit and the fair queue in front of it; admission_cells.py: where
  its state sits in the shared cells, and a killed worker's slots given back; admission_wakeups.py: a waiting
  request woken when its row changes, on any worker; seating.py: routing's use of it
  (a request's key, cost, bound and client); affinity.py: cache-aware routing's choice and its notes, each key's
  conversations its own; slots.py: a limit asked of the server.

May import: the shared modules, config, meter, upstream, edge, pipeline, providers, teamkeys.
"""
