"""The openai provider: any OpenAI-compatible server, passed through (backend.py); its first-run question
(firstrun.py). Its settings (TARGET_BASE_URL, OPENAI_API_KEY) are core settings, shared with other providers."""

from argoproxy.providers import Provider, register

register(Provider("openai", "argoproxy.providers.openai.backend:OpenAIBackend",
                  default_target_url="https://api.openai.com/v1/", summary="any OpenAI-compatible API; the default",
                  base_url_required=True, local_servers=True,
                  first_run="argoproxy.providers.openai.firstrun:FIRST_RUN"))
