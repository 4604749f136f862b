"""HTTP/2 frames written by hand against aa-proxy (nghttp2): floods, malformed streams and
smuggled headers, in standalone mode with a static policy that allows every authenticated user.

Contract under test: a hostile or broken HTTP/2 client gets the answer RFC 9113 and nghttp2 give
(GOAWAY or RST_STREAM with the error code below, or a Kubernetes Status), nothing it should not
reach the backend, and after each case the proxy still serves a new connection. The client below
is Python's standard library only (no `h2` package): TLS with ALPN h2, the preface, frames with a
9-byte header, HPACK literals without indexing, and just enough HPACK decoding to read :status.
"""

import dataclasses
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Callable, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from sample_backend_test import GV, LIST_DEFAULT  # noqa: E402

PROXY = harness.find_binary("proxy/aa-proxy")
SKIP_REASON = ("//proxy:aa-proxy is not built (no proxy binary in runfiles or bazel-bin); "
               "build it with bazel and set E2E_BAZEL_BIN")

# ---------------------------------------------------------------------------------------------
# A raw HTTP/2 client.

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PROTOCOL_ERROR, INTERNAL_ERROR, STREAM_CLOSED, CANCEL = 0x1, 0x2, 0x5, 0x8

# RFC 7541 appendix A (the :status entries) and appendix B (Huffman codes of the digits).
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
HUFFMAN_DIGITS = {"00000": "0", "00001": "1", "00010": "2", "011001": "3", "011010": "4",
                  "011011": "5", "011100": "6", "011101": "7", "011110": "8", "011111": "9"}


@dataclasses.dataclass
class Frame:
    type: int
    flags: int
    stream: int
    payload: bytes

    def error_code(self) -> int:
        """RST_STREAM's error code, or GOAWAY's (after its last stream id)."""
        offset = 4 if self.type == GOAWAY else 0
        return int.from_bytes(self.payload[offset:offset + 4], "big")


def frame(type_: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    header = len(payload).to_bytes(3, "big") + bytes([type_, flags]) + stream.to_bytes(4, "big")
    return header + payload


def _hpack_int7(n: int) -> bytes:
    if n < 0x7f:
        return bytes([n])
    out, n = bytearray([0x7f]), n - 0x7f
    while n >= 0x80:
        out.append(0x80 | (n & 0x7f))
        n >>= 7
    return bytes(out + bytes([n]))


def hpack(fields: Sequence[Tuple[str, str]]) -> bytes:
    """Literal header fields without indexing, new names, no Huffman (RFC 7541 §6.2.2)."""
    return b"".join(b"\x00" + _hpack_int7(len(n)) + n.encode() + _hpack_int7(len(v)) + v.encode()
                    for n, v in fields)


def request_fields(path: str, method: str = "GET", extra: Sequence[Tuple[str, str]] = ()):
    return [(":method", method), (":scheme", "https"), (":authority", "127.0.0.1"),
            (":path", path), ("user-agent", "h2-frames-test")] + list(extra)


def status_of(block: bytes) -> int:
    """:status, which nghttp2 encodes first: a static index, or a literal naming index 8 (plain or
    Huffman digits). The dynamic table is not kept: one non-static status per connection."""
    while block[0] & 0xe0 == 0x20:  # dynamic table size updates
        block = block[1:]
    if block[0] & 0x80:
        return STATIC_STATUS[block[0] & 0x7f]
    assert (block[0] & 0x3f if block[0] & 0x40 else block[0] & 0x0f) == 8, block[:8]
    raw = block[2:2 + (block[1] & 0x7f)]
    if not block[1] & 0x80:
        return int(raw)
    digits, code = "", ""
    for bit in "".join(f"{b:08b}" for b in raw):
        code += bit
        if code in HUFFMAN_DIGITS:
            digits, code = digits + HUFFMAN_DIGITS[code], ""
    return int(digits[:3])


class H2Client:
    """One TLS connection speaking HTTP/2 frame by frame. No flow control of its own."""

    def __init__(self, port: int, tls: harness.TlsClient, timeout: float = 10.0,
                 rcvbuf: Optional[int] = None):
        context = harness.client_tls_context(tls)
        context.set_alpn_protocols(["h2"])
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect
        raw.settimeout(timeout)
        raw.connect(("127.0.0.1", port))
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.alpn = self.sock.selected_alpn_protocol()
        self.buffer = b""
        self.closed = False  # the server closed (or reset) the connection
        if self.alpn == "h2":
            self.send(PREFACE + frame(SETTINGS, 0, 0))
            # Acknowledged now, so that no ACK lands inside a header block a test is writing.
            self.read_until(lambda f: f.type == SETTINGS and not f.flags & ACK, timeout)

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def request(self, stream: int, fields: Sequence[Tuple[str, str]]) -> None:
        self.send(frame(HEADERS, END_HEADERS | END_STREAM, stream, hpack(fields)))

    def _receive(self, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            data = b""
        self.closed = self.closed or not data
        self.buffer += data

    def read_frame(self, timeout: float = 10.0) -> Optional[Frame]:
        """The next frame (SETTINGS are acknowledged); None once the connection is closed."""
        deadline = time.monotonic() + timeout
        while len(self.buffer) < 9 + int.from_bytes(self.buffer[:3] or b"\0", "big"):
            if self.closed:
                return None
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no complete frame within {timeout}s")
            self._receive(deadline - time.monotonic())
        length = int.from_bytes(self.buffer[:3], "big")
        f = Frame(self.buffer[3], self.buffer[4],
                  int.from_bytes(self.buffer[5:9], "big") & 0x7fffffff, self.buffer[9:9 + length])
        self.buffer = self.buffer[9 + length:]
        if f.type == SETTINGS and not f.flags & ACK:
            try:
                self.send(frame(SETTINGS, ACK, 0))
            except OSError:
                pass
        return f

    def read_until(self, done: Callable[[Frame], bool], timeout: float = 10.0) -> List[Frame]:
        """Frames up to the first that satisfies `done`, or up to the close."""
        deadline = time.monotonic() + timeout
        frames: List[Frame] = []
        while True:
            f = self.read_frame(deadline - time.monotonic())
            if f is None:
                return frames
            frames.append(f)
            if done(f):
                return frames

    def poll(self) -> List[Frame]:
        """The frames that have already arrived (waiting a few milliseconds at most)."""
        frames: List[Frame] = []
        try:
            while (f := self.read_frame(0.005)) is not None:
                frames.append(f)
        except TimeoutError:
            pass
        return frames

    def read_to_close(self, timeout: float = 10.0) -> List[Frame]:
        """Every frame until the server closes; TimeoutError if it does not."""
        return self.read_until(lambda f: False, timeout)

    def response(self, stream: int, timeout: float = 10.0) -> Tuple[int, bytes, Optional[Frame]]:
        """(status, body, None) of a response, or (0, b"", the RST_STREAM/GOAWAY that ended it)."""
        status, body = 0, b""
        for f in self.read_until(lambda f: f.type == GOAWAY or (f.stream == stream and (
                f.type == RST_STREAM or f.flags & END_STREAM and f.type in (HEADERS, DATA))),
                                 timeout):
            if f.stream == stream and f.type == HEADERS and status == 0:
                status = status_of(f.payload)
            elif f.stream == stream and f.type == DATA:
                body += f.payload
            elif f.type == GOAWAY or (f.type == RST_STREAM and f.stream == stream):
                return 0, b"", f
        return status, body, None


def goaways(frames: Sequence[Frame]) -> List[Frame]:
    return [f for f in frames if f.type == GOAWAY]


# ---------------------------------------------------------------------------------------------
# The suite.


@unittest.skipIf(PROXY is None, SKIP_REASON)
class Http2FramesTest(harness.E2ETestCase):
    MAX_HEADER_BYTES = 4096
    PROXY_FLAGS: Sequence[str] = ()  # for subclasses (e.g. --http2=false must fail every case)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pki_dir = tempfile.mkdtemp(prefix="pki-", dir=os.environ.get("TEST_TMPDIR"))
        cls.pki = harness.Pki(cls._pki_dir).standard()
        cls.alice = harness.TlsClient(cacert=cls.pki.ca.cert, cert=cls.pki.alice.cert,
                                      key=cls.pki.alice.key)
        cls.policy = os.path.join(cls._pki_dir, "allow-authenticated.yaml")
        with open(cls.policy, "w") as f:
            f.write("rules:\n"
                    "  - groups: [\"system:authenticated\"]\n"  # every verb but impersonate
                    "    verbs: [\"get\", \"list\", \"watch\", \"create\", \"update\", \"patch\",\n"
                    "            \"delete\", \"deletecollection\", \"proxy\"]\n"
                    "    apiGroups: [\"*\"]\n"
                    "    resources: [\"*\"]\n"
                    "  - groups: [\"system:authenticated\"]\n"
                    "    verbs: [\"*\"]\n"
                    "    nonResourceURLs: [\"*\"]\n")

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend()
        self.ordinary = 0  # ordinary requests sent by assert_still_serving
        self.port = harness.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proxy = self.start("aa-proxy", [
            PROXY, "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
            "--tls-cert-file", self.pki.server.cert, "--tls-private-key-file", self.pki.server.key,
            "--client-ca-file", self.pki.ca.cert,
            "--requestheader-client-ca-file", self.pki.front_proxy_ca.cert,
            "--upstream", self.backend.upstream, "--workers", "2", "--anonymous-auth=false",
            "--authentication-skip-lookup", "--authorization-mode", "static",
            "--authorization-policy-file", self.policy, "-v", "2",
            "--max-header-bytes", str(self.MAX_HEADER_BYTES), *self.PROXY_FLAGS])

        def ready():
            if not self.proxy.alive():
                raise harness.StopWaiting()
            return harness.curl(self.url + "/healthz", tls=self.alice, timeout=2).status != 0

        harness.wait_until(ready, timeout=20, what="aa-proxy to answer /healthz over TLS")

    # --- helpers ---------------------------------------------------------------------------

    def connect(self, **kwargs) -> H2Client:
        client = H2Client(self.port, self.alice, **kwargs)
        self.addCleanup(client.sock.close)
        self.assertEqual(client.alpn, "h2", "the proxy did not select h2 in ALPN")
        return client

    def backend_requests(self, marker: str) -> int:
        """Requests the backend logged whose target contains `marker`."""
        return len(re.findall(r"^sample-backend: \S+ \S*" + re.escape(marker) + r"\S* -> ",
                              self.backend.process.log_text(), re.MULTILINE))

    def curl_h2(self, path: str) -> Tuple[str, int, bytes]:
        """An ordinary client on a new connection: (HTTP version, status, body)."""
        proc = subprocess.run(["curl", "-sS", "--http2", "--max-time", "10", *self.alice.args(),
                               "-w", "\n%{http_version} %{http_code}", self.url + path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        body, _, tail = proc.stdout.rpartition(b"\n")
        version, _, status = tail.decode().partition(" ")
        return version, int(status or 0), body

    def assert_still_serving(self, marker: Optional[str] = None) -> None:
        """The proxy lives and serves a new connection; with `marker`, none of the hostile
        requests tagged with it reached the backend (checked after this ordinary request got
        there, so that they had every chance to arrive first)."""
        self.assertTrue(self.proxy.alive(), "aa-proxy exited")
        self.ordinary += 1
        after = f"ordinary={self.ordinary}"
        version, status, body = self.curl_h2(GV + "/namespaces/default/samples?" + after)
        self.assertEqual((version, status, body), ("2", 200, LIST_DEFAULT))
        if marker is not None:
            harness.wait_until(lambda: self.backend_requests(after), timeout=5,
                               what="the backend to log the ordinary request")
            self.assertEqual(self.backend_requests(marker), 0,
                             f"requests tagged {marker} reached the backend")

    # --- cases -----------------------------------------------------------------------------

    def test_rapid_reset_gets_goaway_and_close(self):
        # CVE-2023-44487: HEADERS then RST_STREAM at once, over and over. nghttp2's stream reset
        # rate limit (it trips after about 1000) ends the connection. Its GOAWAY carries
        # INTERNAL_ERROR (0x2), not ENHANCE_YOUR_CALM (0xb).
        client = self.connect()
        path = GV + "/namespaces/default/samples?case=rapid-reset"
        stream, frames, started = 1, [], time.monotonic()
        try:
            while stream < 2 * 5000 and not goaways(frames) and time.monotonic() - started < 20:
                batch = []
                for _ in range(100):
                    batch.append(frame(HEADERS, END_HEADERS | END_STREAM, stream,
                                       hpack(request_fields(path))))
                    batch.append(frame(RST_STREAM, 0, stream, CANCEL.to_bytes(4, "big")))
                    stream += 2
                client.send(*batch)
                frames += client.poll()
        except OSError:
            pass  # the proxy closed while we wrote: the frames below tell why
        frames += client.read_to_close(timeout=5)
        self.assertEqual([f.error_code() for f in goaways(frames)], [INTERNAL_ERROR],
                         f"after {stream // 2} resets")
        self.assertLess(time.monotonic() - started, 15)
        self.assert_still_serving()

    def test_continuation_flood_is_closed(self):
        # CVE-2024-28182: a header block that never ends. Debian's patch lets a block have 8
        # CONTINUATION frames; the 9th is a fatal error for which nghttp2 queues no GOAWAY, so
        # the connection just closes.
        client = self.connect()
        block = hpack(request_fields(GV + "/namespaces/default/samples?case=continuation"))
        sent, frames = 0, []
        try:
            client.send(frame(HEADERS, END_STREAM, 1, block))
            while sent < 10000:
                client.send(*[frame(CONTINUATION, 0, 1, hpack([(f"x-filler-{sent + i}", "a")]))
                              for i in range(100)])
                sent += 100
                frames += client.poll()
                if client.closed:
                    break
        except OSError:
            pass
        frames += client.read_to_close(timeout=5)
        self.assertTrue(client.closed)
        self.assertLess(sent, 10000, "the proxy kept reading CONTINUATION frames")
        self.assertEqual(goaways(frames), [])
        self.assertEqual([f for f in frames if f.stream == 1], [])
        self.assertIn("Too many CONTINUATION frames following a HEADER frame",
                      self.proxy.log_text())
        self.assert_still_serving(marker="case=continuation")

    OVERSIZE = [(f"x-filler-{i}", "a" * 1500) for i in range(4)]  # ~6 KiB > 4096

    def oversize_request(self, marker: str) -> Tuple[int, bytes]:
        client = self.connect()
        client.request(1, request_fields(GV + "/namespaces/default/samples?" + marker,
                                         extra=self.OVERSIZE))
        status, body, error = client.response(1)
        self.assertIsNone(error)
        return status, body

    def test_oversize_header_list_is_431(self):
        # nghttp2 does not enforce the SETTINGS_MAX_HEADER_LIST_SIZE it advertises; aa-proxy
        # counts the fields itself (RFC 9113's 32 bytes each) and answers.
        status, body = self.oversize_request("case=oversize")
        self.assertEqual(status, 431)
        self.assertEqual({k: v for k, v in json.loads(body).items() if k != "message"},
                         {"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Failure", "reason": "RequestHeaderFieldsTooLarge",
                          "code": 431})
        self.assert_still_serving(marker="case=oversize")

    # The 431 Status is the same over both protocols (it differed once).
    def test_oversize_header_list_body_is_the_http1_one(self):
        http1 = harness.curl(self.url + GV + "/namespaces/default/samples?case=oversize-1",
                             tls=self.alice, headers=[f"{n}: {v}" for n, v in self.OVERSIZE],
                             extra=["--http1.1"])
        self.assertEqual(http1.status, 431)
        self.assertEqual(self.oversize_request("case=oversize-2"), (431, http1.body))

    def test_even_stream_id_is_a_protocol_error(self):
        client = self.connect()
        client.request(2, request_fields(GV + "/namespaces/default/samples?case=even"))
        frames = client.read_to_close(timeout=5)
        self.assertEqual([f.error_code() for f in goaways(frames)], [PROTOCOL_ERROR])
        self.assert_still_serving(marker="case=even")

    def test_data_after_end_stream_is_stream_closed(self):
        # The stream is half-closed (remote) after END_STREAM: DATA there is a connection error.
        client = self.connect()
        path = GV + "/namespaces/default/samples?case=data-after-end"
        client.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack(request_fields(path))) +
                    frame(DATA, END_STREAM, 1, b"late"))
        frames = client.read_to_close(timeout=5)
        self.assertEqual([f.error_code() for f in goaways(frames)], [STREAM_CLOSED])
        self.assert_still_serving()

    def test_data_on_a_finished_stream_is_stream_closed(self):
        client = self.connect()
        client.request(1, request_fields(GV + "/namespaces/default/samples"))
        self.assertEqual(client.response(1), (200, LIST_DEFAULT, None))
        client.send(frame(DATA, END_STREAM, 1, b"late"))
        frames = client.read_to_close(timeout=5)
        self.assertEqual([f.error_code() for f in goaways(frames)], [STREAM_CLOSED])
        self.assert_still_serving()

    def test_connection_specific_headers_are_refused_te_trailers_accepted(self):
        client = self.connect()
        refused = [("connection", "keep-alive"), ("transfer-encoding", "chunked"),
                   ("upgrade", "websocket"), ("te", "gzip")]
        for i, field in enumerate(refused):
            stream = 2 * i + 1
            client.request(stream, request_fields(
                GV + f"/namespaces/default/samples?case=conn-specific-{field[0]}", extra=[field]))
            _, _, error = client.response(stream)
            self.assertEqual((error and error.type, error and error.error_code()),
                             (RST_STREAM, PROTOCOL_ERROR), field)
        # The connection goes on, and TE: trailers is the one value HTTP/2 allows.
        client.request(9, request_fields(GV + "/namespaces/default/samples?case=te-trailers",
                                         extra=[("te", "trailers")]))
        self.assertEqual(client.response(9), (200, LIST_DEFAULT, None))
        self.assertEqual(self.backend_requests("case=te-trailers"), 1)
        self.assert_still_serving(marker="case=conn-specific")

    def test_extended_connect_is_refused(self):
        # No SETTINGS_ENABLE_CONNECT_PROTOCOL was offered, so nghttp2 rejects :protocol.
        client = self.connect()
        client.request(1, [(":method", "CONNECT"), (":protocol", "websocket"),
                           (":scheme", "https"), (":authority", "127.0.0.1"),
                           (":path", GV + "/namespaces/default/samples?case=connect")])
        _, _, error = client.response(1)
        self.assertEqual((error and error.type, error and error.error_code()),
                         (RST_STREAM, PROTOCOL_ERROR))
        # A plain CONNECT is well formed HTTP/2; aa-proxy answers it itself (tunnels stay on
        # HTTP/1.1 upgrades).
        client = self.connect()
        client.request(1, [(":method", "CONNECT"), (":authority", "127.0.0.1:443")])
        status, body, error = client.response(1)
        self.assertEqual((status, error), (405, None))
        self.assertEqual(json.loads(body)["message"],
                         "CONNECT is not supported over HTTP/2; use HTTP/1.1 upgrades")
        self.assert_still_serving(marker="case=connect")

    def flood_without_reading(self, unit: bytes) -> None:
        """Sends `unit` 100 at a time and never reads; the proxy must close the connection.

        nghttp2 keeps at most 1000 unsent ACKs; aa-proxy reads everything the socket has before
        it writes, so the limit trips at once, and the connection closes without a GOAWAY (the
        close resets it, since the flood is still unread)."""
        client = self.connect(rcvbuf=4096, timeout=2)
        cap, sent, started = 2000000, 0, time.monotonic()
        try:
            while sent < cap and time.monotonic() - started < 20:
                client.send(unit * 100)
                sent += 100
        except OSError:
            pass  # closed by the proxy; a socket.timeout (it stopped reading) fails below
        client.read_to_close(timeout=10)
        self.assertTrue(client.closed)
        self.assertLess(sent, cap, "the proxy took the whole flood")
        self.assertLess(time.monotonic() - started, 25)
        self.assertIn("Flooding was detected in this HTTP/2 session", self.proxy.log_text())
        self.assertLess(self.proxy.rss_bytes(), 100 << 20)
        self.assert_still_serving()

    def test_settings_flood_is_stopped(self):
        self.flood_without_reading(frame(SETTINGS, 0, 0))

    def test_ping_flood_is_stopped(self):
        self.flood_without_reading(frame(PING, 0, 0, b"12345678"))

    def test_identity_headers_from_the_client_never_reach_the_backend(self):
        client = self.connect()
        client.request(1, request_fields("/debug/headers", extra=[
            ("x-remote-user", "admin"), ("x-remote-group", "system:masters")]))
        status, body, error = client.response(1)
        self.assertEqual((status, error), (200, None))
        headers = json.loads(body)["headers"]

        def values(name):
            return [v for n, v in headers if n.lower() == name.lower()]

        self.assertEqual(values("X-Remote-User"), ["alice"])
        self.assertEqual(values("X-Remote-Group"), ["dev", "system:authenticated"])
        for name, value in headers:
            self.assertNotIn("admin", value, f"{name}: {value}")
            self.assertNotIn("system:masters", value, f"{name}: {value}")
        # Impersonate-User needs the impersonate verb, which the policy does not grant.
        client = self.connect()
        client.request(1, request_fields("/debug/headers?case=impersonate",
                                         extra=[("impersonate-user", "x")]))
        status, body, error = client.response(1)
        self.assertEqual((status, json.loads(body)["message"]), (403, (
            'users "x" is forbidden: User "alice" cannot impersonate resource "users" in API '
            'group "" at the cluster scope')))
        self.assert_still_serving(marker="case=impersonate")


if __name__ == "__main__":
    unittest.main()
