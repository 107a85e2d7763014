"""Files as the Bot API keeps them: what send* calls upload or name (file_id, URL), what users
send as documents, getFile, and downloads under ``/file/bot<token>/<file_path>``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from aiohttp import web

from bot.fakegram.errors import ApiError, bad_request
from bot.fakegram.wire import JSONDict, Upload

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # what the Bot API accepts as a multipart upload
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the largest file getFile hands out


@dataclass(slots=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    file_name: str
    mime_type: str
    content: bytes

    def describe(self) -> JSONDict:
        """The File object getFile returns."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.content),
            "file_path": self.file_path,
        }

    def media(self, kind: str, params: JSONDict) -> Any:
        """The photo sizes / audio / video / voice / document object a message carries.

        Media are not decoded: photo and video dimensions come from the call or default.
        """
        common: JSONDict = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.content),
        }
        if kind == "photo":
            return [{**common, "width": 1280, "height": 960}]
        if kind == "voice":  # a voice note has no file name
            return {
                **common,
                "duration": int(params.get("duration", 0)),
                "mime_type": self.mime_type,
            }
        described = {**common, "file_name": self.file_name, "mime_type": self.mime_type}
        if kind == "document":
            return described
        described["duration"] = int(params.get("duration", 0))
        if kind == "video":
            described["width"] = int(params.get("width", 1280))
            described["height"] = int(params.get("height", 720))
        for tag in ("title", "performer"):
            if kind == "audio" and tag in params:
                described[tag] = params[tag]
        return described


class FileStore:
    """Every file the fake has seen, by file_id and by download path."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}

    def add(self, content: bytes, file_name: str, mime_type: str, folder: str) -> StoredFile:
        number = len(self._by_id) + 1
        stored = StoredFile(
            file_id=f"BQACAgIAAxkBAAI{number:06d}{secrets.token_urlsafe(30)}",
            file_unique_id=f"AgAD{secrets.token_urlsafe(9)}",
            file_path=f"{folder}/file_{number}{PurePosixPath(file_name).suffix}",
            file_name=file_name,
            mime_type=mime_type,
            content=content,
        )
        self._by_id[stored.file_id] = stored
        self._by_path[stored.file_path] = stored
        return stored

    def resolve(self, params: JSONDict, kind: str) -> StoredFile:
        """The file a send* call refers to: an upload, a known file_id, or an HTTP URL."""
        value = params[kind]
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, Upload):
            return self.add(value.content, value.file_name, value.mime_type, kind + "s")
        if isinstance(value, str) and value in self._by_id:
            return self._by_id[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            # Telegram would fetch the URL; offline, the file keeps its name but no bytes.
            name = PurePosixPath(value.split("?")[0]).name or kind
            return self.add(b"", name, "application/octet-stream", kind + "s")
        raise bad_request("wrong file identifier/HTTP URL specified")

    async def get_file(self, params: JSONDict) -> JSONDict:
        stored = self._by_id.get(str(params.get("file_id", "")))
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD_BYTES:
            raise bad_request("file is too big")
        return stored.describe()

    async def download(self, request: web.Request) -> web.Response:
        """The route of ``/file/bot{token}/{file_path}``."""
        stored = self._by_path.get(request.match_info["file_path"])
        if request.match_info["token"] != self._token or stored is None:
            return ApiError(404, "Not Found").response()
        return web.Response(body=stored.content, content_type="application/octet-stream")
