"""Settings from the environment (prefix ``LABELBOT_``) and ``.env``; the README lists them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("LABELBOT_WEBHOOK_SECRET is required when LABELBOT_WEBHOOK_URL is set")
        return self

    def token(self) -> str:
        if self.bot_token is None:
            raise ValueError("LABELBOT_BOT_TOKEN is not set: get a token from @BotFather")
        return self.bot_token.get_secret_value()
