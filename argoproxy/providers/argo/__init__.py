"""The argo provider: Argonne's ARGO gateway behind an OpenAI API.

Modules:
  backend   - what the two ARGO backends share: users, aliases, images, raw routes, /health
  standard  - ArgoStandardBackend: OpenAI requests translated to ARGO's own JSON (use_native_openai off)
  native    - ArgoNativeBackend: OpenAI (and Claude's Messages) requests sent to ARGO's compatible APIs
  settings  - its settings fragment (ARGO_USER, ARGO_URL, ..., image inlining), start-up rule and line, and
              how a routing entry's base_url reaches its URLs
  firstrun  - its first-run questions (the ANL username) and connectivity checks
  models    - alias tables, name resolution, model families, the /v1/models listing
  normalize - the per-family message normalisations ARGO needs (one place)
  convert   - OpenAI requests -> ARGO JSON, ARGO JSON -> OpenAI objects (chat, completions, embeddings)
  stream    - ARGO's plain-text stream (and whole responses) -> OpenAI chunk dicts
  tools     - tool calls: native per family, or prompt-based
  capabilities.yaml - what ARGO's model families accept (argoproxy/config/model_families.py reads it)

The translation modules do no HTTP and touch no Flask: dicts and iterators in, dicts and iterators out.
"""

from pathlib import Path

from argoproxy.providers import Provider, register
from argoproxy.providers.argo import settings

register(Provider("argo", "argoproxy.providers.argo.backend:ArgoBackend", settings=settings.ArgoSettings,
                  default_target_url="https://apps-dev.inside.anl.gov/argoapi/v1/",
                  check_settings=settings.check_settings, startup_line=settings.startup_line,
                  summary="Argonne's ARGO gateway", key_setting="", entry_urls=settings.entry_urls,
                  own_url=settings.own_url, switch="use_native_openai", used_only_when=settings.USED_ONLY_WHEN,
                  first_run="argoproxy.providers.argo.firstrun:FIRST_RUN", backend_for=settings.backend_for,
                  capabilities=Path(__file__).with_name("capabilities.yaml")))
