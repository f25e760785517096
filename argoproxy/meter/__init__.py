"""The meter: what a request may cost at most and what an answer cost, in tokens and dollars, for every door and
backend, read once per call; every record of a call reads it and nothing else (docs/reservations.md).

- the worst case (worst.py: `Asked`, read lazily, once): the request's text (tokens.py, and the chat template
  around it, template_overhead.py), its images, audio and files (media.py) by the rules of the model's family
  (families.py: each maker's published rule, with its source), each inline part measured as its format's decoder
  finds it, never by its header (sizes.py: Pillow's pictures.py, pypdf's pdfs.py, sounds.py, zipfile's zips.py;
  their CPU bounded, deadline.py), and the most each of its answers may generate, times the answers it asks
  for. Key limits and team keys reserve it, the fair queue weighs a request by it, a trace records it; in
  dollars (dollars.py) at the prices of the deployments that may serve it (argoproxy/spend/ finds them);
- the answer's reading (used.py: `Used`): its tokens and its cost, read once as the call ends (the answer side,
  pipeline/answers.py); the usage rows, /metrics, the status page and the trace take it as it is.

Nothing here reads a request that no limit, budget, queue or trace needs: an unread `Asked` costs one object.

May import: the shared modules, config, spend.
"""
