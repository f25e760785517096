"""The edge: what a client's request is, before anything goes upstream. The canonical path, one route per
request, request ids, the proxy's own Request and Answer objects, client keys, the model a request names,
which headers cross, and the body read, parsed and checked.

Rule: the edge decides and refuses; it never talks to an upstream and never runs the pipeline."""
