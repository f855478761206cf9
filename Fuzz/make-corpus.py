#!/usr/bin/env python3
"""Writes the seed corpora in Fuzz/Corpus/<target>/ (run it again after changing a seed here).

Each seed starts with the configuration bytes its target's header comment describes. Seeds are
named by content, so rerunning the script only adds what changed; stale files are removed.
"""
import hashlib
import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")


def write(target, seeds):
    folder = os.path.join(ROOT, target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in seeds:
        digest = hashlib.sha1(data).hexdigest()[:12]
        with open(os.path.join(folder, f"{name}-{digest}"), "wb") as f:
            f.write(data)


# --- handshake: flags byte (bit 0 trusted proxy, bit 1 TLS, bits 2-4 piece size), request bytes

def request(*headers, method="GET", target="/ws", version="HTTP/1.1", body=b""):
    lines = [f"{method} {target} {version}"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


WS = ["Host: localhost:8000", "Upgrade: websocket", "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]

handshake = [
    ("valid", b"\x00" + request(*WS)),
    ("deflate-browser", b"\x00" + request(*WS, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")),
    ("deflate-all-params", b"\x00" + request(*WS, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                                              "client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9, permessage-deflate")),
    ("deflate-quoted-two-fields", b"\x00" + request(*WS, 'Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; server_max_window_bits="9"',
                                                     "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=8")),
    ("deflate-declined-then-taken", b"\x00" + request(*WS, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8, "
                                                        "permessage-deflate; unknown, permessage-deflate;client_no_context_takeover")),
    ("firefox", b"\x02" + request("Host: example.com", "User-Agent: Mozilla/5.0", "Accept: */*", "Sec-WebSocket-Version: 13",
                                  "Origin: https://example.com", "Sec-WebSocket-Protocol: chat, superchat",
                                  "Sec-WebSocket-Extensions: permessage-deflate", "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
                                  "Connection: keep-alive, Upgrade", "Cookie: session=abc; theme=dark", "Upgrade: websocket",
                                  target="/chat?room=lobby&name=a%20b")),
    ("trusted-forwarded", b"\x01" + request(*WS, 'Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::1]:443";proto=https')),
    ("trusted-x-forwarded", b"\x01" + request(*WS, "X-Forwarded-For: 198.51.100.1, 10.0.0.1", "X-Forwarded-Proto: https, http")),
    ("version-8", b"\x00" + request(*WS[:4], "Sec-WebSocket-Version: 8")),
    ("no-key", b"\x00" + request(*WS[:3], "Sec-WebSocket-Version: 13")),
    ("two-keys", b"\x00" + request(*WS, "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==")),
    ("one-byte-pieces", b"\x04" + request(*WS, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15")),
    ("seven-byte-pieces", b"\x10" + request(*WS, "Sec-WebSocket-Extensions: permessage-deflate")),
    ("pipelined-http", b"\x00" + request("Host: a") + request("Host: a", "Content-Length: 5", method="POST", target="/items", body=b"hello")
     + request("Host: a", "Transfer-Encoding: chunked", method="PUT", target="/items/1", body=b"5\r\nhello\r\n0\r\n\r\n")),
    ("http10", b"\x00" + request("Upgrade: websocket", "Connection: upgrade", version="HTTP/1.0", target="/")),
    ("absolute-target", b"\x00" + request(*WS, target="http://localhost:8000/ws?x=1#frag")),
]
write("handshake", handshake)


# --- websocket: config byte, feeding byte, wire bytes

def frame(opcode, payload=b"", fin=True, rsv1=False, rsv2=False, key=b"\x00\x00\x00\x00", masked=True, length=None):
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) | opcode
    n = len(payload) if length is None else length
    mask = 0x80 if masked else 0
    if n < 126:
        head = bytes([first, mask | n])
    elif n < 65536:
        head = bytes([first, mask | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, mask | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10


def deflate(data, wbits=15, no_context=True, compressor=None):
    c = compressor or zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


L125, L1K, L64K, LMAX = 0, 1, 2, 3
DEFLATE, NO_CONTEXT, PING_FIRST, CLOSE_FIRST = 4, 8, 64, 128
W8, W9, W15 = 16, 32, 48
utf8 = "κόσμε €𝄞".encode()
shared = zlib.compressobj(6, zlib.DEFLATED, -15)
websocket = [
    ("text", bytes([L1K, 0]) + frame(TEXT, b"Hello")),
    ("text-masked", bytes([L1K, 0]) + frame(TEXT, b"Hello, world", key=b"\x37\xfa\x21\x3d")),
    ("binary-300", bytes([L1K, 0]) + frame(BINARY, bytes(range(256)) + bytes(44), key=b"\x01\x02\x03\x04")),
    ("binary-126-form", bytes([L64K, 0]) + frame(BINARY, b"\xab" * 300)),
    ("fragmented-text", bytes([L1K, 0]) + frame(TEXT, b"Hel", fin=False) + frame(CONT, b"lo", fin=False) + frame(CONT, b"!")),
    ("utf8-split", bytes([L1K, 1]) + frame(TEXT, utf8[:3], fin=False) + frame(CONT, utf8[3:9], fin=False) + frame(CONT, utf8[9:])),
    ("ping-inside-fragments", bytes([L1K, 0]) + frame(TEXT, utf8[:1], fin=False) + frame(PING, b"ping") + frame(CONT, utf8[1:])),
    ("invalid-utf8", bytes([L1K, 0]) + frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")),
    ("invalid-utf8-fragment", bytes([L1K, 0]) + frame(TEXT, b"ok\xf4\x90", fin=False) + frame(CONT, b"\x80\x80")),
    ("control-flow", bytes([L1K, 0]) + frame(PING, b"abc") + frame(PONG, b"x") + frame(TEXT, b"t") + frame(CLOSE, struct.pack(">H", 1000) + b"bye")),
    ("close-empty", bytes([L1K, 0]) + frame(CLOSE)),
    ("close-one-byte", bytes([L1K, 0]) + frame(CLOSE, b"\x03")),
    ("close-1005", bytes([L1K, 0]) + frame(CLOSE, struct.pack(">H", 1005))),
    ("close-4999-bad-utf8", bytes([L1K, 0]) + frame(CLOSE, struct.pack(">H", 4999) + b"\xff")),
    ("close-3000-reason-123", bytes([L1K, 0]) + frame(CLOSE, struct.pack(">H", 3000) + "é".encode() * 61 + b"x")),
    ("continuation-first", bytes([L1K, 0]) + frame(CONT, b"x")),
    ("text-during-text", bytes([L1K, 0]) + frame(TEXT, b"a", fin=False) + frame(TEXT, b"b")),
    ("unmasked", bytes([L1K, 0]) + frame(TEXT, b"hi", masked=False)),
    ("rsv2", bytes([L1K, 0]) + frame(TEXT, b"hi", rsv2=True)),
    ("rsv1-without-deflate", bytes([L1K, 0]) + frame(TEXT, deflate(b"hi"), rsv1=True)),
    ("reserved-opcode", bytes([L1K, 0]) + frame(3, b"") + frame(0xB, b"")),
    ("fragmented-ping", bytes([L1K, 0]) + frame(PING, b"p", fin=False)),
    ("long-ping", bytes([L64K, 0]) + frame(PING, b"p" * 126)),
    ("over-limit", bytes([L125, 0]) + frame(BINARY, b"z" * 126)),
    ("over-limit-fragments", bytes([L125, 0]) + frame(BINARY, b"z" * 100, fin=False) + frame(CONT, b"z" * 26)),
    ("huge-length", bytes([LMAX, 0]) + frame(BINARY, b"", length=1 << 62)),
    ("keepalive-pong", bytes([L1K | PING_FIRST, 0]) + frame(PONG, struct.pack(">Q", 1)) + frame(TEXT, b"after")),
    ("app-closes", bytes([L1K | CLOSE_FIRST, 0]) + frame(TEXT, b"one") + frame(TEXT, b"two") + frame(CLOSE, struct.pack(">H", 1000))),
    ("app-closes-then-garbage", bytes([L1K | CLOSE_FIRST, 0]) + frame(TEXT, b"one") + frame(CONT, b"x")),
    ("pieces-of-3", bytes([L1K, 3]) + frame(TEXT, b"Hello") + frame(BINARY, b"\x00\x01") + frame(PING) + frame(CLOSE, struct.pack(">H", 1001))),
    # permessage-deflate
    ("deflate-hello", bytes([L1K | DEFLATE, 0]) + frame(TEXT, bytes.fromhex("f248cdc9c90700"), rsv1=True)),
    ("deflate-context-takeover", bytes([L1K | DEFLATE, 0]) + frame(TEXT, deflate(b"Hello", compressor=shared), rsv1=True)
     + frame(TEXT, deflate(b"Hello", compressor=shared), rsv1=True)),
    ("deflate-no-context", bytes([L1K | DEFLATE | NO_CONTEXT, 0]) + frame(TEXT, deflate(b"Hello"), rsv1=True) + frame(TEXT, deflate(b"Hello"), rsv1=True)),
    ("deflate-window-9", bytes([L64K | DEFLATE | W9, 0]) + frame(BINARY, deflate(bytes(range(256)) * 8, wbits=9), rsv1=True)),
    ("deflate-window-8", bytes([L64K | DEFLATE | W8 | NO_CONTEXT, 0]) + frame(TEXT, deflate(b"abcabcabc" * 20, wbits=9), rsv1=True)),
    ("deflate-fragmented", bytes([L1K | DEFLATE | W15, 2]) + frame(TEXT, deflate(utf8 * 4)[:5], rsv1=True, fin=False)
     + frame(CONT, deflate(utf8 * 4)[5:])),
    ("deflate-stored-block", bytes([L1K | DEFLATE, 0]) + frame(TEXT, bytes.fromhex("0005 00faff 48656c6c6f 00".replace(" ", "")), rsv1=True)),
    ("deflate-bfinal", bytes([L1K | DEFLATE, 0]) + frame(TEXT, bytes.fromhex("f348cdc9c90700 00".replace(" ", "")), rsv1=True)),
    ("deflate-plain-mixed", bytes([L1K | DEFLATE, 0]) + frame(TEXT, b"plain") + frame(BINARY, deflate(b"\x00" * 500), rsv1=True)),
    ("deflate-bomb", bytes([L1K | DEFLATE, 0]) + frame(BINARY, deflate(b"\x00" * 200_000), rsv1=True)),
    ("deflate-bomb-unlimited", bytes([LMAX | DEFLATE, 0]) + frame(BINARY, deflate(b"\x00" * 100_000), rsv1=True)),
    ("deflate-invalid", bytes([L1K | DEFLATE, 0]) + frame(TEXT, b"\xff\xff\xff\xff", rsv1=True)),
    ("deflate-invalid-utf8", bytes([L1K | DEFLATE, 0]) + frame(TEXT, deflate(b"\xc3\x28 bad"), rsv1=True)),
    ("deflate-rsv1-continuation", bytes([L1K | DEFLATE, 0]) + frame(TEXT, deflate(b"ab"), fin=False) + frame(CONT, b"", rsv1=True)),
    ("deflate-rsv1-ping", bytes([L1K | DEFLATE, 0]) + frame(PING, b"", rsv1=True)),
]
write("websocket", websocket)


# --- uri-template: flags byte (bits 0-1 method, 2-3 route methods offset, 7 include), lines

def lines(*items, flags=0):
    return bytes([flags]) + "\n".join(items).encode()


uri = [
    ("basic", lines("/", "/users/{id}", "/users/me", "/files/{+path}", "/users/42")),
    ("rest-value", lines("/files/{+path}", "/files/a/b/c.txt,a b/c")),
    ("percent", lines("/users/{id}", "/users/{id}/posts/{post}", "/users/J%C3%BCrgen%20K/posts/1")),
    ("include", lines("/api", "/items/{id}", "/", "/v2/items/{id}", "/api/items/9", flags=0x80)),
    ("method-not-allowed", lines("/a/{x}", "/a/{x}", "/a/b", flags=0x01)),
    ("invalid", lines("/a/{b", "/{+rest}/x", "/{a}/{a}", "no-slash", "/{}", "/{+}", "/x{y}", "/{a-b}", "/x")),
    ("unicode", lines("/café/{naïve}", "/日本/{名前}", "/café/é,ü")),
    ("empty-segments", lines("/a//b", "/a/{x}/", "//{+r}", "/a//b")),
    ("clash", lines("/a/{x}", "/a/{y}", "/a/{+r}", "/a/{+s}", "/a/1")),
    ("query", lines("/search", "/search?q=star&page=2,a%2Fb,%zz,%")),
]
write("uri-template", uri)


# --- json-body: the body

json_body = [
    ("minimal", b'{"name":"widget","count":3}'),
    ("full", b'{"name":"w","count":-1,"price":9.99,"tags":["a","b"],"kind":"large","flags":{"x":true,"y":false},'
             b'"id":255,"children":[{"name":"c","count":0,"children":[]}]}'),
    ("nulls", b'{"name":"n","count":0,"price":null,"tags":null,"kind":null,"flags":null,"id":null,"children":null}'),
    ("type-mismatch", b'{"name":1,"count":"x"}'),
    ("missing-field", b'{"name":"only"}'),
    ("bad-enum", b'{"name":"e","count":1,"kind":"medium"}'),
    ("uint8-overflow", b'{"name":"o","count":1,"id":256}'),
    ("malformed", b'{"name":"a", '),
    ("escapes", b'{"name":"\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/","count":1,"tags":["\\u0000"]}'),
    ("numbers", b'{"name":"n","count":9223372036854775807,"price":1.7976931348623157e308}'),
    ("number-edge", b'{"name":"n","count":-0,"price":-0.0e-0,"children":[{"name":"m","count":1e2}]}'),
    ("huge-exponent", b'{"name":"n","count":1,"price":1e400}'),
    ("whitespace-bom", b'\xef\xbb\xbf \r\n\t{ "name" : "b" , "count" : 2 }  '),
    ("deep", b'{"name":"d","count":0,"children":[' * 40 + b'{"name":"leaf","count":1}' + b']}' * 40),
    ("array-top", b'[1,2,3]'),
    ("duplicate-keys", b'{"name":"a","name":"b","count":1,"count":2}'),
    ("utf16-bom", b'\xff\xfe{\x00}\x00'),
]
write("json-body", json_body)
