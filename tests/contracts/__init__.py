"""Contract suites: what each seam that FAST_PATH switches must do, run against both of its implementations in
one pytest run (tests/contracts/MUTATIONS.md names the mutations each must catch). The upstream client's policy
over the test fake (test_upstream_policy.py), the upstream transports, stock and fast, over a scripted loopback
server (test_upstream_transport.py), and the server side, the real app under Gunicorn with FAST_PATH=on and
=off (test_server.py). The rest of the suite runs once, with the default (docs/workers.md)."""
