"""Container health check for labelbot: exit 0 when healthy, 1 when not (Docker's HEALTHCHECK).

It reads the same settings as ``labelbot run`` (``LABELBOT_*`` and ``.env``) and picks the check
that fits the mode the bot runs in:

- **Webhook mode** (``LABELBOT_WEBHOOK_URL`` set): ``GET /healthz`` on the bot's own webhook
  server in this container. That answers 200 only while a labelbot process serves the port and
  reaches its database, so a dead or stuck server, or a lost database, is unhealthy.
- **Long polling**: there is no HTTP server to ask. A polling bot that dies ends the container
  (it is PID 1), so what is left to check is the database it needs: the check connects with the
  bot's own engine factory and runs ``SELECT 1``. Unhealthy means the database is unreachable.

Usage: ``python deploy/healthcheck.py`` where labelbot is installed (the Dockerfile copies it to
``/usr/local/lib/labelbot/healthcheck.py``). It prints one line, which ``docker inspect`` shows;
the line never holds the token or the database password.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0


def webhook_health(listen: str, port: int) -> tuple[bool, str]:
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(listen, listen)
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return True, f"{url}: {response.status} {response.read().decode(errors='replace')}"
    except urllib.error.HTTPError as error:  # 503: the server runs but the database is lost
        return False, f"{url}: {error.code} {error.read().decode(errors='replace')}"
    except OSError as error:  # refused, timed out: no webhook server
        return False, f"{url}: {error}"


async def database_health(url: str) -> tuple[bool, str]:
    from sqlalchemy import text

    from storage.engine import create_engine

    engine = create_engine(url)
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        return True, "database: ok"
    except Exception as error:  # any failure is the answer: unhealthy
        first_line = str(error).splitlines()[0][:200] if str(error) else ""
        return False, f"database unreachable: {type(error).__name__}: {first_line}"
    finally:
        await engine.dispose()


def check() -> tuple[bool, str]:
    from pydantic import ValidationError

    from bot.settings import Settings

    try:
        settings = Settings()
    except ValidationError as error:
        # Only the messages: an error's input could hold the token.
        return False, "invalid settings: " + "; ".join(e["msg"] for e in error.errors())
    if settings.webhook_url:
        return webhook_health(settings.listen, settings.port)
    return asyncio.run(database_health(settings.database_url))


def main() -> int:
    healthy, detail = check()
    print(("healthy: " if healthy else "unhealthy: ") + detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
