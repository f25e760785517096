"""The dashscope provider: Alibaba DashScope's native API behind an OpenAI API.

Modules:
  backend   - the DashScopeBackend
  translate - pure functions between OpenAI's wire format and DashScope's
  settings  - its settings fragment (DASHSCOPE_API_KEY)
  firstrun  - what ./run_app.sh's first run says about it
"""

from argoproxy.providers import Provider, register
from argoproxy.providers.dashscope.settings import DashScopeSettings

register(Provider("dashscope", "argoproxy.providers.dashscope.backend:DashScopeBackend", settings=DashScopeSettings,
                  default_target_url="https://dashscope.aliyuncs.com/api/v1/", summary="Alibaba DashScope's own API",
                  key_setting="dashscope_api_key", first_run="argoproxy.providers.dashscope.firstrun:FIRST_RUN"))
