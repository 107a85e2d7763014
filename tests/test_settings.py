"""Settings a person gets wrong: an empty or malformed webhook secret is refused, and the message
names the variable without repeating its value."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.cli import main
from bot.settings import Settings

HOOK = "https://bot.example.org/telegram"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LABELBOT_* variables and no .env but what a test sets."""
    monkeypatch.chdir(tmp_path)
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"LABELBOT_{name.upper()}", raising=False)


@pytest.mark.parametrize("secret", ["", "has space", "ünïcode", "x" * 257])
def test_webhook_mode_refuses_an_empty_or_malformed_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("LABELBOT_WEBHOOK_URL", HOOK)
    monkeypatch.setenv("LABELBOT_WEBHOOK_SECRET", secret)
    with pytest.raises(ValidationError, match="LABELBOT_WEBHOOK_SECRET"):
        Settings()


def test_a_secret_of_telegrams_alphabet_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELBOT_WEBHOOK_URL", HOOK)
    monkeypatch.setenv("LABELBOT_WEBHOOK_SECRET", "Az09_-" * 42)  # 252 characters
    settings = Settings()
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "Az09_-" * 42


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # What compose's `${LABELBOT_WEBHOOK_URL:-}` passes when .env leaves them out: polling mode.
    for name in ("LABELBOT_WEBHOOK_URL", "LABELBOT_WEBHOOK_SECRET", "LABELBOT_BOT_TOKEN"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.webhook_secret is None and settings.bot_token is None


def test_run_with_a_malformed_secret_exits_2_naming_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "my secret with spaces"
    monkeypatch.setenv("LABELBOT_BOT_TOKEN", "123:token")
    monkeypatch.setenv("LABELBOT_WEBHOOK_URL", HOOK)
    monkeypatch.setenv("LABELBOT_WEBHOOK_SECRET", secret)

    assert main(["run"]) == 2
    captured = capsys.readouterr()
    assert "LABELBOT_WEBHOOK_SECRET must be 1-256 characters" in captured.err
    assert secret not in captured.out + captured.err


def test_a_value_of_the_wrong_type_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABELBOT_PORT", "eighty")
    assert main(["tasksets"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("labelbot: invalid settings: LABELBOT_PORT: ")
    assert "eighty" not in line
