"""Client echo throughput of Python `websockets` (asyncio client), measured as
star-ws-client-bench measures Star's: CONNECTIONS connections, each sending a binary message of
SIZE bytes and waiting for its echo, for SECONDS (at most 50 million messages in all).

    python websockets_client_bench.py ws://127.0.0.1:PORT/echo CONNECTIONS SIZE SECONDS
"""
import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect


async def one(url, size, deadline, limit):
    payload = b"a" * size
    count = 0
    async with connect(url, compression=None, max_size=max(size * 2, 1 << 20), ping_interval=None) as ws:
        while count < limit and time.monotonic() < deadline:
            await ws.send(payload)
            await ws.recv()
            count += 1
    return count


async def main():
    url, connections, size, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    start = time.monotonic()
    counts = await asyncio.gather(*(one(url, size, start + seconds, 50_000_000 // connections) for _ in range(connections)))
    elapsed = time.monotonic() - start
    print(json.dumps({"client": "python-websockets", "connections": connections, "size": size,
                      "messages": sum(counts), "seconds": elapsed}))


asyncio.run(main())
