"""A local SMTP sink for the tests: accepts every message on 127.0.0.1 and prints it.

Started by `testkit::smtp::SmtpSink`. Prints `READY <port>` once listening, then one JSON
line per message received: {"from": ..., "to": [...], "subject": ..., "body": "<the
decoded text body>", "data": "<the raw message>"}.
Stops when its standard input closes (the test process ended).
"""

import asyncio
import email
import email.policy
import json
import sys

from aiosmtpd.smtp import SMTP


class Print:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        line = json.dumps({
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message["subject"] or ""),
            "body": body.get_content() if body is not None else "",
            "data": envelope.content.decode("utf-8", "replace"),
        })
        print(line, flush=True)
        return "250 OK"


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Print()), host="127.0.0.1", port=0)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    # Serve until standard input closes.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
