"""A person in a private chat with the bot: sends text, voice notes, photos, stickers and
documents, edits their text, taps inline buttons, and waits for what the bot writes back."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from bot.fakegram import rendering
from bot.fakegram.chats import Chats
from bot.fakegram.files import FileStore
from bot.fakegram.updates import UpdateQueue
from bot.fakegram.wire import JSONDict


class FakeUser:
    """A person in a private chat with the bot. Create one with ``FakeTelegram.user``."""

    def __init__(
        self,
        user_id: int,
        first_name: str,
        username: str | None,
        language_code: str,
        *,
        chats: Chats,
        updates: UpdateQueue,
        files: FileStore,
    ) -> None:
        self.id = user_id
        self.first_name = first_name
        self.username = username
        self.language_code = language_code
        self.sender: JSONDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }
        if username is not None:
            self.sender["username"] = username
        self.chat_instance = str(-(10**18) - user_id)
        self._chats = chats
        self._chat = chats.open(self.sender)
        self._updates = updates
        self._files = files
        self._alerts_seen = 0

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"

    @property
    def chat(self) -> JSONDict:
        """The Chat object of this private chat."""
        return self._chat.chat

    @property
    def blocked(self) -> bool:
        """Whether the person blocked the bot: every call aimed at the chat fails with 403."""
        return self._chat.blocked

    @blocked.setter
    def blocked(self, blocked: bool) -> None:
        self._chat.blocked = blocked

    # -- what the person sees -------------------------------------------------------------

    @property
    def messages(self) -> list[JSONDict]:
        """The bot's messages in this chat in order, as they look now (edits applied)."""
        return [message for message in self._chat.messages.values() if message["from"]["is_bot"]]

    @property
    def sent(self) -> list[JSONDict]:
        """The person's own messages in this chat in order, as they look now (edits applied)."""
        return [
            message for message in self._chat.messages.values() if not message["from"]["is_bot"]
        ]

    @property
    def last(self) -> JSONDict:
        """The newest bot message; LookupError if the bot has not written yet."""
        for message in reversed(self._chat.messages.values()):
            if message["from"]["is_bot"]:
                return message
        raise LookupError(f"the bot has sent no message to user {self.id}")

    @property
    def alerts(self) -> list[JSONDict]:
        """The bot's answerCallbackQuery calls (their params) for this person's taps, in order."""
        return self._chat.alerts

    @property
    def reply_field(self) -> JSONDict | None:
        """The bot message a ForceReply put the input field in reply to (what the person's next
        message answers, unless they send it elsewhere), or None."""
        message_id = self._chat.reply_field
        return None if message_id is None else self._chat.messages.get(message_id)

    def texts(self) -> list[str]:
        """Text or caption of each bot message, in order."""
        return [rendering.message_text(message) for message in self.messages]

    async def wait_for(
        self,
        predicate: Callable[[JSONDict], bool] | str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JSONDict:
        """Wait until a bot message matches (text/caption contains the string, or the predicate
        holds) and return the newest such message."""
        matches = (
            predicate
            if callable(predicate)
            else (lambda message: predicate in rendering.message_text(message))
        )
        deadline = time.monotonic() + timeout
        while True:
            for message in reversed(self.messages):
                if matches(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"no bot message matching {predicate!r} for user {self.id} within "
                    f"{timeout}s; the bot wrote: {self.texts()!r}"
                )
            await self._chat.changed.wait(remaining)

    async def wait_alert(self, timeout: float = 5.0) -> JSONDict:  # noqa: ASYNC109
        """Return the next answerCallbackQuery (params) not yet returned by wait_alert."""
        if not await self._chat.changed.wait_until(
            lambda: self._alerts_seen < len(self.alerts), timeout
        ):
            raise TimeoutError(f"no callback answer for user {self.id} within {timeout}s")
        self._alerts_seen += 1
        return self.alerts[self._alerts_seen - 1]

    # -- what the person does -------------------------------------------------------------

    async def send_text(self, text: str, *, reply_to: JSONDict | None = None) -> int:
        """Send a message (optionally as a reply to a bot message); commands get bot_command
        entities. Returns the update_id."""
        content: JSONDict = {"text": text}
        if reply_to is not None:
            content["reply_to_message"] = reply_to
        self._chat.reply_field = None  # sending leaves the forced reply, as on a phone
        message = self._user_message(content, "entities", text)
        return self._updates.push({"message": message})

    async def send_document(
        self,
        content: bytes,
        file_name: str,
        *,
        caption: str | None = None,
        mime_type: str = "application/octet-stream",
    ) -> int:
        """Send a file as a document, with an optional caption. Returns the update_id."""
        stored = self._files.add(content, file_name, mime_type, "documents")
        content_fields: JSONDict = {"document": stored.media("document", {})}
        if caption is not None:
            content_fields["caption"] = caption
        message = self._user_message(content_fields, "caption_entities", caption or "")
        return self._updates.push({"message": message})

    async def send_voice(
        self,
        duration: int,
        content: bytes = b"OggS voice",
        *,
        mime_type: str = "audio/ogg",
        reply_to: JSONDict | None = None,
    ) -> int:
        """Record and send a voice note of ``duration`` seconds; the bot can getFile and
        download ``content`` by its file_id. Returns the update_id."""
        stored = self._files.add(content, "voice.oga", mime_type, "voice")
        fields: JSONDict = {"voice": stored.media("voice", {"duration": duration})}
        if reply_to is not None:
            fields["reply_to_message"] = reply_to
        return self._updates.push({"message": self._user_message(fields, "entities", "")})

    async def send_photo(self, content: bytes, *, caption: str | None = None) -> int:
        """Send a picture (Telegram hands the bot its sizes). Returns the update_id."""
        stored = self._files.add(content, "photo.jpg", "image/jpeg", "photos")
        fields: JSONDict = {"photo": stored.media("photo", {})}
        if caption is not None:
            fields["caption"] = caption
        message = self._user_message(fields, "caption_entities", caption or "")
        return self._updates.push({"message": message})

    async def send_sticker(self, emoji: str = "👍") -> int:
        """Send a static sticker. Returns the update_id."""
        sticker: JSONDict = {
            "file_id": f"CAACAgIAAxkBAAI{secrets.token_urlsafe(24)}",
            "file_unique_id": f"AgAD{secrets.token_urlsafe(9)}",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._updates.push({"message": self._user_message({"sticker": sticker}, "", "")})

    async def edit_text(self, message_id: int, text: str) -> int:
        """Edit one of the person's own text messages, as a long press and Edit does: the bot
        gets an ``edited_message`` update with ``edit_date``. Returns the update_id."""
        original = self._chat.messages.get(message_id)
        if original is None or original["from"]["is_bot"] or "text" not in original:
            raise LookupError(f"user {self.id} has no text message {message_id} to edit")
        edited = {key: value for key, value in original.items() if key not in ("text", "entities")}
        edited["text"] = text
        entities = rendering.command_entities(text)
        if entities:
            edited["entities"] = entities
        edited["edit_date"] = max(int(time.time()), int(original["date"]))
        self._chat.store(edited)
        return self._updates.push({"edited_message": edited})

    async def press(self, button_text: str, *, message_id: int | None = None) -> int:
        """Tap the inline button with this text on the newest bot message that has it (or on
        ``message_id``). Returns the update_id; LookupError names the buttons there are."""
        candidates = (
            [self.message(message_id)] if message_id is not None else reversed(self.messages)
        )
        offered: list[str] = []
        for message in candidates:
            for button in rendering.buttons(message):
                if button["text"] == button_text and "callback_data" in button:
                    return self._push_callback(message, str(button["callback_data"]))
                offered.append(f"{button['text']!r} (message {message['message_id']})")
        listing = ", ".join(offered) or "none"
        raise LookupError(f"user {self.id} sees no button {button_text!r}; buttons: {listing}")

    async def press_data(self, data: str, message_id: int) -> int:
        """Send a callback query with arbitrary data from a bot message (forged or replayed)."""
        return self._push_callback(self.message(message_id), data)

    # -- the fake's side of the chat ------------------------------------------------------

    def _user_message(self, content: JSONDict, entities_field: str, text: str) -> JSONDict:
        message = rendering.message(self._chat.take_message_id(), self.sender, self.chat, content)
        entities = rendering.command_entities(text)
        if entities and entities_field:
            message[entities_field] = entities
        self._chat.store(message)
        return message

    def message(self, message_id: int) -> JSONDict:
        """The bot's message ``message_id`` as it looks now; LookupError if there is none."""
        message = self._chat.messages.get(message_id)
        if message is None or not message["from"]["is_bot"]:
            raise LookupError(f"user {self.id} has no bot message {message_id}")
        return message

    def _push_callback(self, message: JSONDict, data: str) -> int:
        query_id = self._chats.callback_query_id(self._chat)
        query = rendering.callback_query(query_id, self.sender, message, self.chat_instance, data)
        return self._updates.push({"callback_query": query})
