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
COPY deploy/healthcheck.py /usr/local/lib/labelbot/healthcheck.py
# The bot runs as an unprivileged user that owns /data and nothing else: the image's code stays
# read-only to it, and the SQLite file, exports and the demo's output go to /data.
RUN pip install ".[postgres]" \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin labelbot \
    && install -d -o labelbot -g labelbot -m 0750 /data

USER labelbot
WORKDIR /data
# SQLite by default, in the volume; compose.yaml points it at PostgreSQL instead.
ENV LABELBOT_DATABASE_URL=sqlite+aiosqlite:////data/labelbot.db
VOLUME /data

# The webhook server (LABELBOT_LISTEN must be 0.0.0.0 inside a container).
EXPOSE 8443
# Webhook mode: GET /healthz (server up, database reachable). Long polling has no HTTP server:
# the check then connects to the database (a polling bot that dies ends the container anyway).
# deploy/healthcheck.py says more.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/labelbot/healthcheck.py"]
# `labelbot run` applies migrations first; SIGTERM (docker stop) stops it cleanly.
ENTRYPOINT ["labelbot"]
CMD ["run"]
