# labelbot: the bot in webhook or polling mode; configuration comes from LABELBOT_* variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY tasksets ./tasksets
RUN pip install ".[postgres]" \
    && useradd --create-home --uid 10001 labelbot

USER labelbot
# The webhook server (LABELBOT_LISTEN must be 0.0.0.0 inside a container). /healthz exists in
# webhook mode only; in polling mode the health check reports the container unhealthy.
EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"LABELBOT_PORT\", \"8443\")}/healthz', timeout=4)"
# `labelbot run` applies migrations first; SIGTERM (docker stop) stops it cleanly.
ENTRYPOINT ["labelbot"]
CMD ["run"]
