"""cot_proxy: an OpenAI-compatible gateway (Flask + requests + Gunicorn) in front of OpenAI-style, ARGO and DashScope backends."""

__version__ = "1.0.0"
