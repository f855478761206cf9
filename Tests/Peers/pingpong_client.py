#!/usr/bin/env python3
"""Ping-pong peer: a WebSocket client that plays the "nice path" game.

Usage (the venv with the pinned `websockets` comes from .ci/python-peers.sh):
    .ci/python-peers.sh Tests/Peers/pingpong_client.py ws://127.0.0.1:8000/some/path
    [--count 100] [--timeout 30] [--path EXPECTED]

The game, for a URL whose path is /<path>:
  * the server sends COUNT (100) text messages, JSON objects
    {"msg": "<path> is nice", "count": i} for i = 0 .. COUNT-1, where <path> is
    the request path without its leading slash and without the query
    ("some/path" for ws://127.0.0.1:8000/some/path?x=1); a percent-encoded
    path may come back raw or decoded; --path sets the expected <path> instead;
  * after each message the client answers with the text message "pong";
  * after the last pong the server closes the connection with code 1000.

The client checks that every message is a text frame holding a JSON object,
that they arrive in order with the right "msg" and "count" (other keys are
ignored), that nothing else arrives, and that the server's close code is 1000,
all within --timeout seconds (30) overall. It prints one line starting with
"pingpong: PASS" or "pingpong: FAIL" and exits 0 on success, 1 on any
mismatch, a refused connection, or the timeout.
"""

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import unquote, urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


class Mismatch(Exception):
    pass


def expected_paths(url, override):
    if override is not None:
        return [override]
    raw = urlsplit(url).path or "/"
    raw = raw[1:] if raw.startswith("/") else raw
    decoded = unquote(raw)
    return [raw] if decoded == raw else [raw, decoded]


def close_code_of(exc):
    return exc.rcvd.code if exc.rcvd is not None else None


async def play(url, paths, count):
    wanted = ["%s is nice" % p for p in paths]
    async with connect(url, open_timeout=10, close_timeout=5, max_size=2**20,
                       ping_interval=None, compression=None) as ws:
        for i in range(count):
            try:
                data = await ws.recv()
            except ConnectionClosed as e:
                raise Mismatch("connection closed (code %s) after %d of %d messages"
                               % (close_code_of(e), i, count))
            if not isinstance(data, str):
                raise Mismatch("message %d is binary (%d bytes), expected text" % (i, len(data)))
            try:
                obj = json.loads(data)
            except ValueError:
                raise Mismatch("message %d is not JSON: %.200r" % (i, data))
            if not isinstance(obj, dict):
                raise Mismatch("message %d is not a JSON object: %.200r" % (i, data))
            if obj.get("msg") not in wanted:
                raise Mismatch("message %d: msg %r, expected %r" % (i, obj.get("msg"), wanted[0]))
            c = obj.get("count")
            if type(c) is not int or c != i:
                raise Mismatch("message %d: count %r, expected %d (out of order?)" % (i, c, i))
            try:
                await ws.send("pong")
            except ConnectionClosed as e:
                # The server may close right after its last message without
                # waiting for the last pong; anything earlier is a failure.
                if i != count - 1:
                    raise Mismatch("connection closed (code %s) while sending pong %d"
                                   % (close_code_of(e), i))
                code = close_code_of(e)
                break
        else:
            try:
                extra = await ws.recv()
                raise Mismatch("unexpected extra message after %d: %.200r" % (count, extra))
            except ConnectionClosed as e:
                code = close_code_of(e)
    if code != 1000:
        raise Mismatch("close code %s, expected 1000%s" % (
            code, " (no close frame: connection dropped)" if code is None else ""))
    return code


def main(argv=None):
    ap = argparse.ArgumentParser(description="Ping-pong WebSocket peer for Star.")
    ap.add_argument("url", help="server URL, e.g. ws://127.0.0.1:8000/some/path")
    ap.add_argument("--count", type=int, default=100, help="messages expected (100)")
    ap.add_argument("--timeout", type=float, default=30.0, help="overall timeout in s (30)")
    ap.add_argument("--path", help="expected <path> in msg (default: from the URL)")
    args = ap.parse_args(argv)

    paths = expected_paths(args.url, args.path)
    start = time.monotonic()
    try:
        code = asyncio.run(asyncio.wait_for(play(args.url, paths, args.count), args.timeout))
    except Mismatch as e:
        print("pingpong: FAIL %s: %s" % (args.url, e))
        return 1
    except asyncio.TimeoutError:
        print("pingpong: FAIL %s: no result within %gs" % (args.url, args.timeout))
        return 1
    except Exception as e:  # refused connection, handshake rejected, ...
        print("pingpong: FAIL %s: %s: %s" % (args.url, type(e).__name__, e))
        return 1
    print("pingpong: PASS %s: %d messages in order with msg %r, close code %d (%.2fs)"
          % (args.url, args.count, "%s is nice" % paths[0], code, time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
