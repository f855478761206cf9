"""Star's WebSocket client against an outside server: Python `websockets` (the reference peer).

The client is driven through `star-ws` (Examples/Sources/StarWS), the command-line client built
on StarWebSocketClient: lines on its standard input become text messages, the messages it
receives are printed, and its exit status comes from the close code. Each test runs a
`websockets` server in the test's own event loop on a free loopback port and `star-ws` as a
subprocess, with a deadline on every wait.

The wss:// tests make a CA, a server and a client certificate with `openssl` at test time (the
Examples package builds Star with its TLS trait; root `swift test` runs without it).

A missing `star-ws` binary fails the tests when CI=true (skips them otherwise).
"""

import asyncio
import shutil
import ssl
import subprocess

import pytest
from websockets.asyncio.server import serve

from conftest import HOST, binary_path, free_port

WAIT = 10.0


async def start_client(url, *args):
    return await asyncio.create_subprocess_exec(
        str(binary_path("star-ws")), url, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def read_lines(stream, count):
    lines = []
    for _ in range(count):
        line = await asyncio.wait_for(stream.readline(), WAIT)
        assert line, "star-ws ended before printing %d lines (got %r)" % (count, lines)
        lines.append(line.decode().rstrip("\n"))
    return lines


async def finish(client):
    """Closes star-ws's input and returns (exit status, stderr)."""
    if client.stdin and not client.stdin.is_closing():
        client.stdin.close()
    try:
        _, err = await asyncio.wait_for(client.communicate(), WAIT)
    except asyncio.TimeoutError:
        client.kill()
        raise
    return client.returncode, err.decode()


async def echo(ws):
    async for message in ws:
        await ws.send(message)


def test_echo_text_and_a_large_message_with_compression():
    async def main():
        seen = {}

        async def handler(ws):
            seen["extensions"] = [e.name for e in ws.protocol.extensions]
            seen["offer"] = ws.request.headers.get("Sec-WebSocket-Extensions")
            await echo(ws)

        port = free_port()
        async with serve(handler, HOST, port, compression="deflate"):
            client = await start_client("ws://%s:%d/" % (HOST, port))
            large = "compress me " * 2000
            client.stdin.write(("hello\n%s\nworld\n" % large).encode())
            await client.stdin.drain()
            assert await read_lines(client.stdout, 3) == ["hello", large, "world"]
            status, err = await finish(client)
        assert status == 0, err
        assert "permessage-deflate" in err, err
        assert seen["extensions"] == ["permessage-deflate"]
        assert seen["offer"].startswith("permessage-deflate")
    asyncio.run(main())


def test_without_compression_offers_none():
    async def main():
        seen = {}

        async def handler(ws):
            seen["offer"] = ws.request.headers.get("Sec-WebSocket-Extensions")
            await echo(ws)

        port = free_port()
        async with serve(handler, HOST, port):
            client = await start_client("ws://%s:%d/" % (HOST, port), "--no-compression")
            client.stdin.write(b"plain\n")
            await client.stdin.drain()
            assert await read_lines(client.stdout, 1) == ["plain"]
            status, err = await finish(client)
        assert status == 0, err
        assert seen["offer"] is None
    asyncio.run(main())


def test_headers_and_subprotocol_reach_the_server():
    async def main():
        seen = {}

        async def handler(ws):
            seen["authorization"] = ws.request.headers.get("Authorization")
            seen["origin"] = ws.request.headers.get("Origin")
            await ws.send("subprotocol=%s" % ws.subprotocol)
            await echo(ws)

        port = free_port()
        async with serve(handler, HOST, port, subprotocols=["chat.v2"]):
            client = await start_client("ws://%s:%d/chat" % (HOST, port), "--subprotocol", "chat.v1",
                                        "--subprotocol", "chat.v2", "--header", "Authorization: Bearer t0k3n",
                                        "--origin", "https://app.example")
            assert await read_lines(client.stdout, 1) == ["subprotocol=chat.v2"]
            status, err = await finish(client)
        assert status == 0, err
        assert "subprotocol chat.v2" in err
        assert seen == {"authorization": "Bearer t0k3n", "origin": "https://app.example"}
    asyncio.run(main())


@pytest.mark.parametrize("code, reason, status", [(1000, "done", 0), (1001, "going away", 1), (1011, "oops", 11),
                                                  (4000, "bye", 100)])
def test_the_servers_close_code_is_the_exit_status(code, reason, status):
    async def main():
        async def handler(ws):
            await ws.recv()
            await ws.close(code, reason)

        port = free_port()
        async with serve(handler, HOST, port):
            client = await start_client("ws://%s:%d/" % (HOST, port))
            client.stdin.write(b"close please\n")
            await client.stdin.drain()
            got, err = await asyncio.wait_for(client.communicate(), WAIT)
        assert client.returncode == status, err.decode()
        assert ("closed: %d %s" % (code, reason)) in err.decode()
    asyncio.run(main())


def test_the_clients_close_at_end_of_input_is_1000():
    async def main():
        closed = asyncio.get_running_loop().create_future()

        async def handler(ws):
            await ws.wait_closed()
            closed.set_result((ws.close_code, ws.close_reason))

        port = free_port()
        async with serve(handler, HOST, port):
            client = await start_client("ws://%s:%d/" % (HOST, port))
            status, err = await finish(client)
            assert await asyncio.wait_for(closed, WAIT) == (1000, "")
        assert status == 0, err
    asyncio.run(main())


def test_a_denied_handshake_prints_status_and_body():
    async def main():
        def deny(connection, request):
            return connection.respond(401, "token required\n")

        port = free_port()
        async with serve(echo, HOST, port, process_request=deny):
            client = await start_client("ws://%s:%d/" % (HOST, port))
            status, err = await finish(client)
        assert status == 1
        assert "401" in err and "token required" in err, err
    asyncio.run(main())


# ---------------------------------------------------------------------------
# wss:// (the Examples package builds Star with its TLS trait): certificates made at test time
# ---------------------------------------------------------------------------

def openssl(*args, cwd):
    done = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, "openssl %s failed:\n%s" % (" ".join(args), done.stderr)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A throwaway CA, a server certificate it signed for 127.0.0.1, and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates", pytrace=False)
    d = tmp_path_factory.mktemp("client-tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Star Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, usage, san in (("server", "serverAuth", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"),
                             ("client", "clientAuth", "")):
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
        (d / (name + ".ext")).write_text(san + "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                                         "extendedKeyUsage=%s\n" % usage)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=d)
    return d


def tls_context(certificates, client_certificate=False):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    if client_certificate:
        context.load_verify_locations(certificates / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.mark.parametrize("trust, works", [("--cacert", True), ("--insecure", True), (None, False)])
def test_wss_verifies_the_server_unless_told_not_to(certificates, trust, works):
    async def main():
        port = free_port()
        async with serve(echo, HOST, port, ssl=tls_context(certificates)):
            args = {"--cacert": ["--cacert", str(certificates / "ca.pem")], "--insecure": ["--insecure"], None: []}[trust]
            client = await start_client("wss://%s:%d/" % (HOST, port), *args)
            if works:
                client.stdin.write(b"over tls\n")
                await client.stdin.drain()
                assert await read_lines(client.stdout, 1) == ["over tls"]
            status, err = await finish(client)
        if works:
            assert status == 0, err
        else:
            assert status == 1 and "connection to" in err and "failed" in err, err
    asyncio.run(main())


def test_wss_with_a_client_certificate(certificates):
    async def main():
        seen = {}

        async def handler(ws):
            seen["peer"] = ws.transport.get_extra_info("peercert")["subject"]
            await echo(ws)

        port = free_port()
        async with serve(handler, HOST, port, ssl=tls_context(certificates, client_certificate=True)):
            client = await start_client("wss://127.0.0.1:%d/" % port, "--cacert", str(certificates / "ca.pem"),
                                        "--cert", str(certificates / "client.pem"), "--key", str(certificates / "client.key"))
            client.stdin.write(b"mutual\n")
            await client.stdin.drain()
            assert await read_lines(client.stdout, 1) == ["mutual"]
            status, err = await finish(client)
        assert status == 0, err
        assert seen["peer"] == ((("commonName", "client"),),)
    asyncio.run(main())
