"""ARGO translation layer: pure functions between OpenAI's wire format and the ARGO gateway's.

Modules:
  models    - alias tables, name resolution, model families, the /v1/models listing
  normalize - the per-family message normalisations ARGO needs (one place)
  convert   - OpenAI requests -> ARGO JSON, ARGO JSON -> OpenAI objects (chat, completions, embeddings)
  stream    - ARGO's plain-text stream (and whole responses) -> OpenAI chunk dicts
  tokens    - offline token counting for usage

Nothing here does HTTP or touches Flask: dicts and iterators in, dicts and iterators out.
"""
