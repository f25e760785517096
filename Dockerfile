# cot_proxy: OpenAI-compatible LLM gateway under Gunicorn (docs/docker.md).
#   docker build -t cot_proxy .
#   docker run -p 8080:5000 --add-host=host.docker.internal:host-gateway \
#     -e TARGET_BASE_URL=http://host.docker.internal:8000/v1 cot_proxy     # a server on the Docker host
# (--add-host: Linux has no host.docker.internal of its own; Docker Desktop does, and accepts it too.)
# Every setting is an environment variable (docs/settings.md; each one: docs/reference/settings.md); a
# config.yaml can be mounted at /app/config.yaml (e.g. -v "$PWD/config.yaml:/app/config.yaml:ro"). With no
# upstream configured the container stops at once, with one line naming TARGET_BASE_URL. The port inside stays 5000.
# Wheels are built in the full image (gunicorn-h1c, Gunicorn's C HTTP parser, compiles from source), so the
# final slim image needs no compiler.
FROM python:3.11-bookworm AS wheels
COPY requirements.txt /tmp/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=5000 \
    HOST=0.0.0.0 \
    COT_PROXY_CONTAINER=1

WORKDIR /app

# Dependencies first (pinned in requirements.txt), so code changes reuse this layer.
COPY requirements.txt .
COPY --from=wheels /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels -r requirements.txt && rm -rf /wheels

RUN groupadd --system --gid 10001 cotproxy \
    && useradd --system --uid 10001 --gid cotproxy --no-create-home --home-dir /app --shell /usr/sbin/nologin cotproxy

COPY cot_proxy.py gunicorn.conf.py ./
COPY argoproxy/ ./argoproxy/

USER 10001:10001

EXPOSE 5000

# Asked directly (no proxy handler): a container given HTTP_PROXY and a NO_PROXY without 127.0.0.1 would send it
# to the corporate proxy instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=4)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "cot_proxy:app"]
