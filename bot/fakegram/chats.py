"""Private chats as Telegram keeps them, and the Bot API methods that act on them: send, edit
and delete messages, answer callback queries, set commands, show chat actions."""

from __future__ import annotations

import json
import re
import secrets
import time

from bot.fakegram import rendering
from bot.fakegram.errors import BLOCKED, NOT_MODIFIED, QUERY_TOO_OLD, ApiError, bad_request
from bot.fakegram.files import FileStore
from bot.fakegram.waiting import Signal
from bot.fakegram.wire import JSONDict, MethodHandler

_CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
_MEDIA_FIELDS = ("photo", "audio", "video", "voice", "document")
# What editMessageMedia may put in a message (there is no InputMediaVoice).
_INPUT_MEDIA = ("photo", "audio", "video", "document")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")


class PrivateChat:
    """A person's private chat with the bot: the live messages of both sides by id, the answers
    to their callback queries, and whether they blocked the bot."""

    def __init__(self, user: JSONDict) -> None:
        self.chat: JSONDict = {
            "id": user["id"],
            "type": "private",
            "first_name": user["first_name"],
        }
        if "username" in user:
            self.chat["username"] = user["username"]
        self.messages: dict[int, JSONDict] = {}
        self.alerts: list[JSONDict] = []
        self.blocked = False
        # The bot message a ForceReply put the phone's input field in reply to, until the
        # person sends a message or that message is deleted.
        self.reply_field: int | None = None
        self.changed = Signal()  # fires on every new, edited or deleted message and alert
        self._next_message_id = 1

    def take_message_id(self) -> int:
        message_id = self._next_message_id
        self._next_message_id += 1
        return message_id

    def store(self, message: JSONDict) -> None:
        """Add or replace a message; stored dicts are never mutated, so snapshots stay valid."""
        self.messages[message["message_id"]] = message
        self.changed.fire()

    def delete(self, message_id: int) -> None:
        del self.messages[message_id]
        if self.reply_field == message_id:
            self.reply_field = None
        self.changed.fire()

    def add_alert(self, params: JSONDict) -> None:
        self.alerts.append(params)
        self.changed.fire()


class Chats:
    """Every private chat by user id, and what the bot does in them."""

    def __init__(self, bot: JSONDict, files: FileStore) -> None:
        self._bot = bot
        self._files = files
        self._chats: dict[int, PrivateChat] = {}
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._callback_queries: dict[str, tuple[PrivateChat, bool]] = {}
        self._next_callback_query = 4_000_000_000_000_000_000 + secrets.randbelow(10**9)

    def open(self, user: JSONDict) -> PrivateChat:
        """The private chat of a new person, whose User object is ``user``."""
        chat = PrivateChat(user)
        self._chats[user["id"]] = chat
        return chat

    def callback_query_id(self, chat: PrivateChat) -> str:
        """A fresh id for a tap in ``chat``, which answerCallbackQuery may answer once."""
        self._next_callback_query += 1
        query_id = str(self._next_callback_query)
        self._callback_queries[query_id] = (chat, False)
        return query_id

    def methods(self) -> dict[str, MethodHandler]:
        return {
            "sendMessage": self._send_message,
            "sendPhoto": self._media_sender("photo"),
            "sendAudio": self._media_sender("audio"),
            "sendVideo": self._media_sender("video"),
            "sendVoice": self._media_sender("voice"),
            "sendDocument": self._media_sender("document"),
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageMedia": self._edit_message_media,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "sendChatAction": self._send_chat_action,
        }

    def _chat(self, params: JSONDict) -> PrivateChat:
        """The private chat a call aims at; 400 if unknown, 403 if the user blocked the bot."""
        chat = self._chats.get(params.get("chat_id", 0))
        if chat is None:
            raise bad_request("chat not found")
        if chat.blocked:
            raise ApiError(403, BLOCKED)
        return chat

    def _send(self, chat: PrivateChat, params: JSONDict, content: JSONDict) -> JSONDict:
        keyboard = rendering.inline_keyboard(params.get("reply_markup"))
        forces_reply = rendering.forces_reply(params.get("reply_markup"))
        reply = params.get("reply_parameters") or {}
        replied = chat.messages.get(reply.get("message_id", 0))
        if reply and replied is None and not reply.get("allow_sending_without_reply"):
            raise bad_request("message to be replied not found")
        message = rendering.message(chat.take_message_id(), self._bot, chat.chat, content)
        if replied is not None:
            message["reply_to_message"] = replied
        if keyboard is not None:
            message["reply_markup"] = keyboard
        if forces_reply:
            chat.reply_field = message["message_id"]
        chat.store(message)
        return message

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat = self._chat(params)
        content = rendering.formatted(params, "text", "entities")
        text = content.get("text", "")
        if not text.strip():
            raise bad_request("message text is empty")
        if rendering.utf16_len(text) > 4096:
            raise bad_request("message is too long")
        return self._send(chat, params, content)

    def _media_sender(self, kind: str) -> MethodHandler:
        """The handler of sendPhoto/sendAudio/sendVideo/sendDocument for this kind of media."""

        async def send_media(params: JSONDict) -> JSONDict:
            chat = self._chat(params)
            if kind not in params:
                raise bad_request(f"there is no {kind} in the request")
            stored = self._files.resolve(params, kind)
            content = rendering.formatted(params, "caption", "caption_entities")
            if rendering.utf16_len(content.get("caption", "")) > 1024:
                raise bad_request("message caption is too long")
            content[kind] = stored.media(kind, params)
            return self._send(chat, params, content)

        return send_media

    def _message_to_edit(self, params: JSONDict) -> tuple[PrivateChat, JSONDict]:
        if "inline_message_id" in params:
            raise bad_request("inline messages are not supported by the fake")
        chat = self._chat(params)
        message = chat.messages.get(params.get("message_id", 0))
        if message is None:
            raise bad_request("message to edit not found")
        if not message["from"]["is_bot"]:
            raise bad_request("message can't be edited")
        return chat, message

    def _edit(
        self,
        chat: PrivateChat,
        message: JSONDict,
        params: JSONDict,
        replaced: tuple[str, ...],
        content: JSONDict,
    ) -> JSONDict:
        """Replace the ``replaced`` fields by ``content``; a missing reply_markup removes the
        keyboard, as in Telegram."""
        unchanged = {key: value for key, value in message.items() if key != "edit_date"}
        edited = {
            key: value
            for key, value in unchanged.items()
            if key not in replaced and key != "reply_markup"
        }
        edited.update(content)
        keyboard = rendering.inline_keyboard(params.get("reply_markup"))
        if keyboard is not None:
            edited["reply_markup"] = keyboard
        if edited == unchanged:
            raise bad_request(NOT_MODIFIED)
        edited["edit_date"] = int(time.time())
        chat.store(edited)
        return edited

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        chat, message = self._message_to_edit(params)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        content = rendering.formatted(params, "text", "entities")
        if not content.get("text", "").strip():
            raise bad_request("message text is empty")
        return self._edit(chat, message, params, ("text", "entities"), content)

    async def _edit_message_caption(self, params: JSONDict) -> JSONDict:
        chat, message = self._message_to_edit(params)
        if not any(kind in message for kind in _MEDIA_FIELDS):
            raise bad_request("there is no caption in the message to edit")
        content = rendering.formatted(params, "caption", "caption_entities")
        return self._edit(chat, message, params, ("caption", "caption_entities"), content)

    async def _edit_message_media(self, params: JSONDict) -> JSONDict:
        """A media message gets other media (any kind) and caption; a text message cannot."""
        chat, message = self._message_to_edit(params)
        if not any(kind in message for kind in _MEDIA_FIELDS):
            raise bad_request("there is no media in the message to edit")
        media = params.get("media")
        if not isinstance(media, dict) or media.get("type") not in _INPUT_MEDIA:
            raise bad_request("can't parse InputMedia")
        kind = media["type"]
        stored = self._files.resolve({**params, kind: media.get("media")}, kind)
        content = rendering.formatted(media, "caption", "caption_entities")
        if rendering.utf16_len(content.get("caption", "")) > 1024:
            raise bad_request("message caption is too long")
        content[kind] = stored.media(kind, media)
        replaced = (*_MEDIA_FIELDS, "caption", "caption_entities")
        return self._edit(chat, message, params, replaced, content)

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        chat, message = self._message_to_edit(params)
        return self._edit(chat, message, params, (), {})

    async def _delete_message(self, params: JSONDict) -> bool:
        chat = self._chat(params)
        message_id = params.get("message_id")
        if message_id not in chat.messages:
            raise bad_request("message to delete not found")
        chat.delete(message_id)
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        known = self._callback_queries.get(query_id)
        if known is None or known[1]:
            raise bad_request(QUERY_TOO_OLD)
        chat = known[0]
        self._callback_queries[query_id] = (chat, True)
        chat.add_alert(params)
        return True

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not _COMMAND_NAME.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[_commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self._commands.get(_commands_key(params), [])

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True


def _commands_key(params: JSONDict) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(params.get("language_code", ""))
