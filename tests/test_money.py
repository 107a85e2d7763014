"""Money is integer minor units: exact conversion from what coordinators write, and display."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasksets.money import MAX_MINOR, format_money, minor_units, to_minor


@pytest.mark.parametrize(
    ("currency", "places"),
    [("USD", 2), ("EUR", 2), ("GBP", 2), ("RUB", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3),
     ("KWD", 3), ("CLF", 4), ("ZZZ", 2)],
)  # fmt: skip
def test_minor_units_follow_iso_4217(currency: str, places: int) -> None:
    assert minor_units(currency) == places


@pytest.mark.parametrize("code", ["usd", "US", "USDT", "", "U$D"])
def test_malformed_currency_code_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="not a currency code"):
        minor_units(code)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("0.02", "USD", 2),
        (" 0.02 ", "USD", 2),
        ("0.020", "USD", 2),
        ("12", "USD", 1200),
        ("1e-2", "USD", 1),
        (Decimal("0.1"), "USD", 10),
        ("0", "USD", 0),
        ("0E-999999999", "USD", 0),
        ("150", "JPY", 150),
        ("1.234", "KWD", 1234),
    ],
)
def test_to_minor_converts_exactly(amount: str | Decimal, currency: str, minor: int) -> None:
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("0.025", "USD", "more decimals than USD allows"),
        ("0.5", "JPY", "more decimals than JPY allows"),
        ("1e-999999999", "USD", "more decimals than USD allows"),
        ("-0.01", "USD", "negative"),
        ("abc", "USD", "not a decimal amount"),
        ("NaN", "USD", "not a decimal amount"),
        ("Infinity", "USD", "not a decimal amount"),
        ("1e999999999", "USD", "too large"),
        (str(MAX_MINOR), "USD", "too large"),
    ],
)
def test_to_minor_refuses_what_it_cannot_store_exactly(
    amount: str, currency: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        to_minor(amount, currency)


def test_largest_storable_amount_is_accepted() -> None:
    assert to_minor(f"{MAX_MINOR // 100}.{MAX_MINOR % 100:02d}", "USD") == MAX_MINOR


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (2, "USD", "0.02 USD"),
        (1234567, "USD", "12,345.67 USD"),
        (0, "EUR", "0.00 EUR"),
        (-150, "USD", "-1.50 USD"),
        (1500, "JPY", "1,500 JPY"),
        (1234, "KWD", "1.234 KWD"),
    ],
)
def test_format_money(minor: int, currency: str, shown: str) -> None:
    assert format_money(minor, currency) == shown


@given(
    minor=st.integers(min_value=0, max_value=MAX_MINOR),
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_formatted_amount_converts_back_to_the_same_minor_units(minor: int, currency: str) -> None:
    number = format_money(minor, currency).removesuffix(f" {currency}").replace(",", "")

    assert to_minor(number, currency) == minor
