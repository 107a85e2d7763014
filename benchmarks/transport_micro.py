"""CPU cost of one Bot API call through each transport (aiohttp vs PTB's httpx).

A canned Bot API runs in a child process so that its CPU is not counted; this process sends
``sendMessage`` calls with an inline keyboard through a real ``telegram.Bot`` and reports its own
CPU time per call and the wall-clock rate.

    .venv/bin/python -m benchmarks.transport_micro --calls 3000 --concurrency 16
"""

import argparse
import asyncio
import multiprocessing
import time
from multiprocessing.connection import Connection

from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup

from bot.transport import TransportKind, build_requests

_TOKEN = "123456:BENCH"
_ME = b'{"ok":true,"result":{"id":123456,"is_bot":true,"first_name":"B","username":"b_bot"}}'
_SENT = b'{"ok":true,"result":{"message_id":1,"date":0,"chat":{"id":42,"type":"private"}}}'


def _serve(port_out: Connection) -> None:
    """Child process: answer getMe and every other method with a canned success."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        body = _ME if request.match_info["method"] == "getMe" else _SENT
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port_out.send(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _measure(kind: TransportKind, base_url: str, calls: int, concurrency: int) -> None:
    request, get_updates_request = build_requests(
        kind, get_updates_read_timeout=5.0, connection_pool_size=concurrency
    )
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=f"a:1:{label}") for label in ("pos", "neg")]]
    )
    async with Bot(
        _TOKEN, base_url=base_url, request=request, get_updates_request=get_updates_request
    ) as bot:

        async def worker(share: int) -> None:
            for _ in range(share):
                await bot.send_message(42, "What is the sentiment?", reply_markup=keyboard)

        await asyncio.gather(*(worker(10) for _ in range(concurrency)))  # open the connections
        sent = calls // concurrency * concurrency
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    print(f"{kind:8} {cpu / sent * 1000:6.2f} ms CPU/call {sent / wall:8.0f} calls/s")


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU per Bot API call through each transport")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    port_in, port_out = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(port_out,), daemon=True)
    server.start()
    try:
        base_url = f"http://127.0.0.1:{port_in.recv()}/bot"
        kinds: tuple[TransportKind, ...] = ("httpx", "aiohttp")
        for kind in kinds:
            asyncio.run(_measure(kind, base_url, args.calls, args.concurrency))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
