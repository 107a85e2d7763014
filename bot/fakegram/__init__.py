"""A loopback fake of the Telegram Bot API, faithful to what python-telegram-bot sends and expects.

``FakeTelegram`` serves ``/bot<token>/<method>`` and ``/file/bot<token>/<file_path>`` on
127.0.0.1 and answers with Telegram's JSON and error texts, so a real ``telegram.ext.Application``
(or ``labelbot run`` in another process) runs against it unchanged. ``FakeUser`` plays a person
in a private chat: sends text, voice notes, photos, stickers and documents, edits their text,
taps inline buttons, waits for the replies.

What it emulates:

- updates: ids, getUpdates with offset confirmation, long polls, ``allowed_updates``, the 409
  of a second poller, webhooks with the secret header and retries, re-sent updates;
- private chats: sendMessage, sendPhoto/Audio/Video/Voice/Document,
  editMessageText/Caption/ReplyMarkup,
  deleteMessage, answerCallbackQuery (once per query), sendChatAction, set/getMyCommands, getMe;
- rendering: HTML parse mode and bot commands become entities with UTF-16 offsets; only inline
  keyboards are kept on a message, with Telegram's limits on callback data; a ForceReply puts
  the person's input field in reply to its message (``FakeUser.reply_field``) until they send
  something or the message is deleted;
- files: uploads, file_ids and URLs in send* calls, users' documents, photos and voice notes,
  getFile and downloads;
- users' messages: text (commands get entities), documents, photos, stickers, voice notes, and
  edits of their text (``edited_message`` with ``edit_date``);
- Telegram's errors (400 "message is not modified", 403 for a user who blocked the bot, 409, 429
  with retry_after) and faults injected per method and chat or at random.

What it does not: groups, channels, inline mode, payments, reply keyboards, Markdown parsing
(stored verbatim), media decoding (photo and video sizes are defaults), fetching URLs (such a
file has a name but no bytes), rate limits of its own (429 only when injected), persistence.

The helpers that wait take ``timeout`` in seconds (like ``asyncio.wait_for``) and raise
``TimeoutError`` saying what there is instead, which reads better in a failing test than a bare
cancellation; hence the ASYNC109 exemptions. Waiting is event-based: every change of state wakes
the waiters, nothing sleeps and polls.

Used by the end-to-end tests, the benchmarks and ``labelbot demo``; it imports no project code
outside this package.
"""

from bot.fakegram.server import FakeTelegram
from bot.fakegram.users import FakeUser
from bot.fakegram.wire import ApiCall, JSONDict, Upload

__all__ = ["ApiCall", "FakeTelegram", "FakeUser", "JSONDict", "Upload"]
