"""Settings from the environment (prefix ``LABELBOT_``) and ``.env``; the README lists them."""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Telegram's rule for setWebhook's secret_token, which comes back in every update's header.
WEBHOOK_SECRET_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")


def is_valid_webhook_secret(secret: str) -> bool:
    return WEBHOOK_SECRET_PATTERN.fullmatch(secret) is not None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABELBOT_", env_file=".env", extra="ignore")

    bot_token: SecretStr | None = None
    database_url: str = "sqlite+aiosqlite:///labelbot.db"
    coordinators: Annotated[frozenset[int], NoDecode] = frozenset()
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    listen: str = "127.0.0.1"
    port: int = 8443
    # HTTP client for the Bot API: labelbot's aiohttp transport, or PTB's own httpx one.
    http: Literal["aiohttp", "httpx"] = "aiohttp"
    # Requests per second to Telegram for the whole bot (PTB's AIORateLimiter); 0 turns it off.
    rate_limit: float = Field(30.0, ge=0)
    lease_seconds: int = Field(600, ge=10)
    db_pool_size: int = Field(10, ge=1)
    # Updates per second one user may keep sending (bursts of 5 pass); 0 turns the guard off.
    flood_rate: float = Field(3.0, ge=0)
    # Key of the HMAC behind leaderboard pseudonyms; generated and kept in the database when
    # unset. Changing it renames every pseudonym.
    pseudonym_secret: SecretStr | None = None
    # Messages per second of a broadcast (new task set); keep it below rate_limit, so taps
    # always find room within Telegram's limits.
    broadcast_rate: float = Field(20.0, gt=0)

    @field_validator("coordinators", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return frozenset(int(part) for part in value.split(",") if part.strip())
            except ValueError:
                raise ValueError(
                    "LABELBOT_COORDINATORS must be comma-separated numeric ids"
                ) from None
        return value

    @field_validator("bot_token", "webhook_secret", "pseudonym_secret")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        # `VAR=` in .env or compose's `${VAR:-}` gives "": no secret, not an empty one.
        return value if value is not None and value.get_secret_value() else None

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_accepts_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not is_valid_webhook_secret(value.get_secret_value()):
            raise ValueError(
                "LABELBOT_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and - "
                "(Telegram's rule), e.g. the output of `openssl rand -hex 32`"
            )
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("LABELBOT_WEBHOOK_SECRET is required when LABELBOT_WEBHOOK_URL is set")
        return self

    def pseudonym_key(self) -> str | None:
        """The key of leaderboard pseudonyms; None: the one kept in the database."""
        return self.pseudonym_secret.get_secret_value() if self.pseudonym_secret else None

    def token(self) -> str:
        if self.bot_token is None:
            raise ValueError("LABELBOT_BOT_TOKEN is not set: get a token from @BotFather")
        return self.bot_token.get_secret_value()
