"""WebSocket echo at /echo on picows 2.x (uvloop), for run-ws.sh.

picows works on frames: each data frame goes back with its own opcode and FIN bit, so a
fragmented message comes back fragmented the same way, text as text and binary as binary.
Frames up to 16 MiB; picows has no permessage-deflate, so compression is off; pings are
answered by picows itself (enable_auto_pong); no per-message logging (picows's
flow-control warnings are silenced).

    .venv/bin/python python/picows_echo.py --port 9106
"""

import argparse
import asyncio
import logging

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

MAX_SIZE = 16 * 1024 * 1024


class EchoListener(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(msg_type, frame.get_payload_as_memoryview(), frame.fin)
        # PING is answered by picows (enable_auto_pong); PONG needs nothing.


def listener_factory(request: WSUpgradeRequest):
    return EchoListener() if request.path == b"/echo" else None


async def main(port: int) -> None:
    server = await ws_create_server(
        listener_factory, "127.0.0.1", port, max_frame_size=MAX_SIZE, enable_auto_pong=True
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9106)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # picows logs every write-buffer pause/resume at WARNING: keep the log quiet under load.
    logging.getLogger("picows").setLevel(logging.ERROR)
    uvloop.run(main(args.port))
