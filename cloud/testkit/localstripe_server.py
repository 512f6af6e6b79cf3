"""localstripe on a free loopback port, for tests (cloud/testkit/src/stripe.rs).

Binds 127.0.0.1:0, prints `READY <port>` once it listens, serves localstripe's app with a
fresh store kept in memory only (nothing loaded from or written to localstripe's shared
/tmp/localstripe.pickle, so parallel tests and the demo never see each other's objects),
and stops when its standard input closes (the test's helper was dropped).
"""
import asyncio
import socket
import sys

from aiohttp import web
from localstripe.resources import store
from localstripe.server import app

# In memory only: localstripe saves its store to one fixed file after every change.
store.dump_to_disk = lambda: None


async def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    print("READY %d" % sock.getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


asyncio.run(main())
