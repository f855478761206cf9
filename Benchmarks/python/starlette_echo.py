"""WebSocket echo at /echo on Starlette, served by Uvicorn, for run-ws.sh.

Text comes back as text, binary as binary. Run it the way run-ws.sh does:

    .venv/bin/uvicorn starlette_echo:app --app-dir python --host 127.0.0.1 --port 9105 \
        --ws websockets --ws-max-size 16777216 --ws-per-message-deflate false \
        --loop uvloop --http httptools --no-access-log --log-level warning
"""

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    await websocket.send_text(text)
                else:
                    await websocket.send_bytes(message["bytes"])
            elif message["type"] == "websocket.disconnect":
                return
    except WebSocketDisconnect:
        # The client closed while an echo was on its way back (the load generator closes with
        # messages in flight): not an error.
        return


app = Starlette(routes=[WebSocketRoute("/echo", echo)])
