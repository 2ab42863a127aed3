"""A stand-in for a customer's SBC, for ``make demo``: it takes the sandbox's calls over
TLS, answers each INVITE (100, 180, 200 with the offer's first G.711 codec, SRTP for an
SRTP offer), echoes the media it is sent, and answers BYE. Built on ``reconciler.sip``,
in a thread of its own.

Not part of the product: the tests put real SIP software (SIPp, Kamailio) on this side;
the demo must run where neither is installed.
"""

from __future__ import annotations

import asyncio
import queue
import ssl
import threading
import time

from reconciler.sip import message as sip
from reconciler.sip import sdp
from reconciler.sip import stream as wire

SERVER = "demo-sbc"


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def _talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    loop = asyncio.get_running_loop()
    echoes: list[asyncio.BaseTransport] = []
    tag = sip.token(6)
    try:
        while (message := await wire.read_message(reader)) is not None:
            if not isinstance(message, sip.Incoming) or message.method == "ACK":
                continue
            if message.method != "INVITE":
                writer.write(sip.reply(message, 200, "OK", to_tag=tag, server=SERVER))
                continue
            for code, reason in ((100, "Trying"), (180, "Ringing")):
                writer.write(sip.reply(message, code, reason, to_tag=tag, server=SERVER))
            echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
            echoes.append(echo)
            port = echo.get_extra_info("sockname")[1]
            # An SRTP offer gets an SRTP answer with a key of its own; the echo sends the
            # caller's sealed packets back as they came, which the caller can open.
            answer = sdp.answer(
                message.body, "127.0.0.1", port, session=int(time.time()), key=sdp.new_key()
            )
            if answer is None:
                writer.write(
                    sip.reply(message, 488, "Not Acceptable Here", to_tag=tag, server=SERVER)
                )
                continue
            contact = ("Contact", "<sip:sbc@127.0.0.1;transport=tls>")
            writer.write(
                sip.reply(
                    message, 200, "OK", to_tag=tag, server=SERVER, headers=[contact], body=answer
                )
            )
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError, sip.NotSipError):
        pass
    finally:
        for echo in echoes:
            echo.close()
        await wire.close(writer)


def start(context: ssl.SSLContext) -> int:
    """Listen on a free loopback port in a daemon thread; the port."""
    ready: queue.Queue[int] = queue.Queue()

    async def serve() -> None:
        server = await asyncio.start_server(_talk, "127.0.0.1", 0, ssl=context)
        ready.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    return ready.get(timeout=10)
