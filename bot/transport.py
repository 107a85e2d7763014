"""HTTP transports for python-telegram-bot: an aiohttp ``BaseRequest`` and a selector.

PTB's default ``HTTPXRequest`` spends most of a bare bot's CPU per update inside httpx;
``AiohttpRequest`` does the same job with aiohttp for a fraction of the cost (the figures are in
benchmarks/RESULTS-answer_loop.md, contenders (a) and (b)).

Timeout mapping (PTB's four timeouts onto aiohttp, which has no pool or write timeout):

* ``pool_timeout``: how long a request waits for one of the ``connection_pool_size`` slots.
  The slots are an ``asyncio.Semaphore`` held for the whole request, so running out of them is
  told apart exactly from a slow connect (aiohttp's ``connect`` timeout covers both). The
  connector has the same limit, so it never queues on its own.
* ``connect_timeout``: ``ClientTimeout.connect``: DNS, TCP and TLS of a new connection
  (a kept-alive connection skips it).
* ``read_timeout``: ``ClientTimeout.sock_read``: the longest silence from the server after the
  request body was sent, like httpx's read timeout (aiohttp starts it once the body is out).
* ``write_timeout``: for file uploads only, ``ClientTimeout.total = connect + write + read``,
  which bounds a stalled upload. Other bodies are a few kilobytes of form fields that go out in
  one socket write, and a total bound there would cut slow downloads of large files short.
"""

import asyncio
from functools import lru_cache
from typing import Final, Literal, cast

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

TransportKind = Literal["aiohttp", "httpx"]

_FORM_HEADERS: Final = {"Content-Type": "application/x-www-form-urlencoded"}
_POOL_TIMEOUT_MESSAGE: Final = (
    "Pool timeout: all connections in the connection pool are occupied. The request was *not* "
    "sent to Telegram. Consider a larger connection pool or a longer pool timeout."
)


class AiohttpRequest(BaseRequest):
    """``telegram.request.BaseRequest`` on an ``aiohttp.ClientSession``.

    The arguments mean what they mean for ``HTTPXRequest`` (see the module docstring for how the
    timeouts map onto aiohttp). Unlike httpx, proxies are not read from the environment: pass
    ``proxy`` (an ``http://`` URL) explicitly.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection_pool_size",
        "_media_write_timeout",
        "_pool_timeout",
        "_proxy",
        "_read_timeout",
        "_session",
        "_slots",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        proxy: str | None = None,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._connection_pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._proxy = proxy
        # Both are bound to the event loop, so they are made in initialize(), not here.
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def read_timeout(self) -> float | None:
        """The read timeout used when a call does not pass one (see BaseRequest)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session in the running loop; a no-op when it is already open."""
        if self._session is not None:
            return
        self._slots = asyncio.Semaphore(self._connection_pool_size)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connection_pool_size),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": self.USER_AGENT},
            proxy=self._proxy,
        )

    async def shutdown(self) -> None:
        """Close the session and its connections; a no-op when it is already closed."""
        session, self._session, self._slots = self._session, None, None
        if session is not None:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request and return its status and body, whatever the status.

        A timeout is seconds, None for no limit, or ``BaseRequest.DEFAULT_NONE`` for the
        instance's default. PTB's own annotation for that union is private, and ``object`` is
        what its documentation gives as the type of ``DEFAULT_NONE``.

        BaseRequest turns non-2xx answers into RetryAfter, BadRequest, Forbidden, ...; this
        method raises only ``TimedOut`` (any timeout, including a full pool) and
        ``NetworkError`` (the connection failed or broke).
        """
        session, slots = self._session, self._slots
        if session is None or slots is None:
            raise RuntimeError("This AiohttpRequest is not initialized")

        uploads_files = request_data is not None and request_data.contains_files
        connect = _given_or(connect_timeout, self._connect_timeout)
        read = _given_or(read_timeout, self._read_timeout)
        if uploads_files:
            write = _given_or(write_timeout, self._media_write_timeout)
            timeout = _upload_timeout(connect, write, read)
        else:
            timeout = _timeout(connect, read)

        await _acquire(slots, _given_or(pool_timeout, self._pool_timeout))
        try:
            if request_data is None:
                request = session.request(method, url, timeout=timeout)
            elif uploads_files:
                request = session.request(
                    method, url, data=_multipart_form(request_data), timeout=timeout
                )
            else:
                request = session.request(
                    method,
                    url,
                    data=request_data.url_encoded_parameters(),
                    headers=_FORM_HEADERS,
                    timeout=timeout,
                )
            async with request as response:
                return response.status, await response.read()
        except TimeoutError as exc:  # also aiohttp's ServerTimeoutError family
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            # The class name says what failed even when the message is empty.
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
        finally:
            slots.release()


def build_requests(
    kind: TransportKind, *, get_updates_read_timeout: float, connection_pool_size: int
) -> tuple[BaseRequest, BaseRequest]:
    """Return ``(bot request, get_updates request)`` for ``ApplicationBuilder``.

    The bot request gets ``connection_pool_size`` connections and default timeouts. The
    get_updates request has one connection (one long poll at a time, as PTB's own default) and
    ``get_updates_read_timeout``, to which ``Bot.get_updates`` adds the long-poll timeout.
    """
    if kind == "aiohttp":
        return (
            AiohttpRequest(connection_pool_size=connection_pool_size),
            AiohttpRequest(connection_pool_size=1, read_timeout=get_updates_read_timeout),
        )
    return (
        HTTPXRequest(connection_pool_size=connection_pool_size),
        HTTPXRequest(connection_pool_size=1, read_timeout=get_updates_read_timeout),
    )


def _given_or(value: object, default: float | None) -> float | None:
    """The timeout a call passed, or the instance default when it passed none."""
    return default if value is BaseRequest.DEFAULT_NONE else cast("float | None", value)


# Calls repeat a handful of timeout combinations, so each ClientTimeout is built once.
@lru_cache(maxsize=64)
def _timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(connect=connect, sock_read=read)


@lru_cache(maxsize=64)
def _upload_timeout(
    connect: float | None, write: float | None, read: float | None
) -> aiohttp.ClientTimeout:
    total = None if connect is None or write is None or read is None else connect + write + read
    return aiohttp.ClientTimeout(total=total, connect=connect, sock_read=read)


async def _acquire(slots: asyncio.Semaphore, pool_timeout: float | None) -> None:
    """Take a connection slot, waiting at most ``pool_timeout`` seconds for one to free up."""
    if not slots.locked():
        await slots.acquire()  # returns at once: no timer needed on the common path
        return
    try:
        async with asyncio.timeout(pool_timeout):
            await slots.acquire()
    except TimeoutError as exc:
        raise TimedOut(_POOL_TIMEOUT_MESSAGE) from exc


def _multipart_form(request_data: RequestData) -> aiohttp.FormData:
    # quote_fields=False sends file names as UTF-8, as httpx does; aiohttp's default would
    # percent-encode them and Telegram would show "my%20report.csv".
    form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form
