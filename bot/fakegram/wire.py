"""The Bot API on the wire: JSON objects, the calls the bot made, and request decoding.

A request's parameters come from the query string and a JSON, urlencoded or multipart body,
decoded the way python-telegram-bot encodes them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

JSONDict = dict[str, Any]
MethodHandler = Callable[[JSONDict], Awaitable[Any]]

# Form fields whose values are plain strings; every other field is JSON-encoded by the client.
_STRING_FIELDS = frozenset(
    [
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "url",
        "secret_token",
        "file_id",
        "action",
        "language_code",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "title",
        "performer",
        "photo",
        "audio",
        "video",
        "document",
        "thumbnail",
    ]
)


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request the bot made; ``at`` is ``time.monotonic()`` when it arrived."""

    method: str
    params: JSONDict
    at: float


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart request, as it appears in ``ApiCall.params``."""

    file_name: str
    mime_type: str
    content: bytes


def _decode_field(name: str, value: str) -> Any:
    """Undo PTB's form encoding: strings are sent as-is, everything else as JSON."""
    if name in _STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def read_params(request: web.Request) -> JSONDict:
    """Parameters from the query string and a JSON, urlencoded or multipart body."""
    params: JSONDict = {name: _decode_field(name, value) for name, value in request.query.items()}
    if request.content_type == "application/json":
        if request.body_exists:
            params.update(await request.json())
        return params
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            params[name] = Upload(value.filename, value.content_type, value.file.read())
        else:
            text = value if isinstance(value, str) else bytes(value).decode()
            params[name] = _decode_field(name, text)
    return params
