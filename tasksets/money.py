"""Money as integer minor units (cents, yen, fils): amounts are exact, never floats."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

DEFAULT_MINOR_UNITS = 2
# ISO 4217 currencies whose minor unit is not a hundredth; every other code has two decimals.
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW",
            "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
# Amounts are stored in signed 64-bit integer columns.
MAX_MINOR = 2**63 - 1


def refuse_float(value: object, how_to_write: str) -> object:
    """For a pydantic before-validator of an exact amount: a float (or a bool) has already lost
    the decimal the coordinator wrote (0.1 is 0.1000000000000000055), so it is refused with
    ``how_to_write``; anything else passes on unchanged."""
    if isinstance(value, bool | float):
        raise ValueError(how_to_write)
    return value


def minor_units(currency: str) -> int:
    """Number of decimals of `currency` (ISO 4217 exponent): USD 2, JPY 0, KWD 3."""
    if not _CURRENCY_CODE.fullmatch(currency):
        raise ValueError(
            f"{currency!r} is not a currency code: use three capital letters, e.g. USD"
        )
    return _MINOR_UNITS.get(currency, DEFAULT_MINOR_UNITS)


def to_minor(amount: str | Decimal, currency: str) -> int:
    """Convert a decimal amount in `currency` units to integer minor units: "0.02" USD -> 2.

    Rejects negative amounts and amounts finer than the currency's minor unit ("0.025" USD)
    instead of rounding them, so what a coordinator wrote is exactly what workers earn.
    """
    places = minor_units(currency)
    value = _parse_amount(amount)
    if value < 0:
        raise ValueError(f"amount {amount} is negative")
    # Checked first so the powers of ten below stay small whatever exponent the input
    # carries ("1e999999999"); tiny exponents are caught by the length test below.
    if value > MAX_MINOR:
        raise ValueError(f"amount {amount} is too large")
    _, digits, exponent = value.as_tuple()  # exponent is an int: the value is finite
    coefficient = int("".join(map(str, digits)))
    if coefficient == 0:
        return 0
    shift = int(exponent) + places
    if shift >= 0:
        minor = coefficient * 10**shift
    elif -shift > len(digits) or coefficient % 10**-shift:
        raise ValueError(f"amount {amount} has more decimals than {currency} allows ({places})")
    else:
        minor = coefficient // 10**-shift
    if minor > MAX_MINOR:
        raise ValueError(f"amount {amount} is too large")
    return minor


def format_money(minor: int, currency: str) -> str:
    """Render minor units for people: 1234567 USD -> "12,345.67 USD", 500 JPY -> "500 JPY"."""
    places = minor_units(currency)
    sign = "-" if minor < 0 else ""
    major, fraction = divmod(abs(minor), 10**places)
    decimals = f".{fraction:0{places}d}" if places else ""
    return f"{sign}{major:,}{decimals} {currency}"


def _parse_amount(amount: str | Decimal) -> Decimal:
    if isinstance(amount, Decimal):
        value = amount
    else:
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            raise ValueError(f"{amount!r} is not a decimal amount such as 0.02") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not a decimal amount such as 0.02")
    return value


def available_from(earned_at: datetime, hold_hours: int) -> datetime:
    """When money earned at ``earned_at`` stops being pending and can be paid out: after the
    task set's hold period (``"hold_hours"``; 0 makes it available at once)."""
    return earned_at + timedelta(hours=hold_hours)
