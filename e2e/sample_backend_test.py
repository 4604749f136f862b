"""The sample backend on its own, over TCP and over a Unix socket: what aa-proxy will forward to."""

import hashlib
import json
import os
import socket
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

GV = "/apis/sample-api-server/v1alpha1"

DISCOVERY = (
    b'{"apiVersion":"v1","kind":"APIResourceList","groupVersion":"sample-api-server/v1alpha1",'
    b'"resources":[{"group":"sample-api-server","kind":"Sample","name":"samples",'
    b'"namespaced":true,"singularName":"sample","verbs":["get","list"]}]}\n')
LIST_DEFAULT = (
    b'{"apiVersion":"sample-api-server/v1alpha1","kind":"SampleList","metadata":'
    b'{"resourceVersion":"1"},"items":[{"apiVersion":"sample-api-server/v1alpha1",'
    b'"kind":"Sample","metadata":{"name":"sample1"},"spec":{"name":"default"}}]}\n')
GET_TEAM_A_X = (
    b'{"apiVersion":"sample-api-server/v1alpha1","kind":"Sample","metadata":{"name":"x"},'
    b'"spec":{"name":"team-a.x"}}\n')
GROUP_VERSIONS = (
    b'"name":"sample-api-server","versions":[{"groupVersion":"sample-api-server/v1alpha1",'
    b'"version":"v1alpha1"}],"preferredVersion":{"groupVersion":"sample-api-server/v1alpha1",'
    b'"version":"v1alpha1"}')
API_GROUP_LIST = b'{"kind":"APIGroupList","apiVersion":"v1","groups":[{' + GROUP_VERSIONS + b'}]}\n'
API_GROUP = b'{"kind":"APIGroup","apiVersion":"v1",' + GROUP_VERSIONS + b'}\n'
NOT_FOUND = (
    b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
    b'"the server could not find the requested resource","reason":"NotFound","details":{},'
    b'"code":404}\n')


def watch_event(event_type: str, ns: str, rv: int) -> bytes:
    return (f'{{"type":"{event_type}","object":{{"apiVersion":"sample-api-server/v1alpha1",'
            f'"kind":"Sample","metadata":{{"name":"sample1","resourceVersion":"{rv}"}},'
            f'"spec":{{"name":"{ns}"}}}}}}\n').encode()


def pattern_sha256(n: int) -> str:
    block = bytes(range(256)) * 256
    digest = hashlib.sha256()
    for _ in range(n // len(block)):
        digest.update(block)
    digest.update(block[:n % len(block)])
    return digest.hexdigest()


class SampleBackendCases:
    """Cases shared by the TCP and the Unix socket suites."""

    unix = False

    def setUp(self):
        super().setUp()
        kwargs = {"watch_interval": 1.0}
        if self.unix:
            kwargs["unix_socket"] = self.sock_dir / "backend.sock"
        self.backend = self.start_backend(**kwargs)

    def get(self, path, **kwargs):
        return harness.curl(self.backend.url + path, unix_socket=self.backend.unix_socket,
                            **kwargs)

    def connect(self) -> socket.socket:
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.backend.unix_socket)
            return s
        return socket.create_connection(("127.0.0.1", self.backend.port))

    def test_exact_bodies(self):
        for path, body in [(GV, DISCOVERY),
                           (GV + "/namespaces/default/samples", LIST_DEFAULT),
                           (GV + "/namespaces/team-a/samples/x", GET_TEAM_A_X),
                           ("/apis", API_GROUP_LIST),
                           ("/apis/sample-api-server", API_GROUP)]:
            with self.subTest(path=path):
                result = self.get(path)
                self.assertEqual(result.exit_code, 0, result.stderr)
                self.assertEqual(result.status, 200)
                self.assertEqual(result.body, body)
                self.assertEqual(result.header("Content-Type"), "application/json")
                self.assertEqual(result.header("Content-Length"), str(len(body)))

    def test_healthz(self):
        result = self.get("/healthz")
        self.assertEqual((result.status, result.body), (200, b"ok"))

    def test_unknown_paths_are_404_status(self):
        for path in ["/nope", "/api/v1/pods", GV + "/widgets", "/apis/other.io/v1"]:
            with self.subTest(path=path):
                result = self.get(path)
                self.assertEqual(result.status, 404)
                self.assertEqual(result.body, NOT_FOUND)
                self.assertEqual(result.header("Content-Type"), "application/json")

    def test_writes_are_405(self):
        result = self.get(GV + "/namespaces/default/samples", method="POST", data=b"{}")
        self.assertEqual(result.status, 405)
        self.assertEqual(json.loads(result.body)["reason"], "MethodNotAllowed")

    def test_keep_alive_reuses_one_connection(self):
        results = harness.curl_many(
            [self.backend.url + GV, self.backend.url + GV + "/namespaces/default/samples"],
            unix_socket=self.backend.unix_socket)
        self.assertEqual([r.status for r in results], [200, 200])
        self.assertEqual([r.body for r in results], [DISCOVERY, LIST_DEFAULT])
        self.assertEqual([r.num_connects for r in results], [1, 0])

    def test_pipelined_requests_answer_in_order(self):
        with self.connect() as s:
            s.sendall(b"GET /debug/slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET " + GV.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            s.settimeout(5)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        slow = data.find(b"slow\n")
        discovery = data.find(DISCOVERY)
        not_found = data.find(NOT_FOUND)
        self.assertTrue(0 < slow < discovery < not_found, data)
        self.assertEqual(data.count(b"HTTP/1.1 "), 3)

    def test_chunked_upload_is_received_intact(self):
        payload = os.urandom(3 * 1024 * 1024 + 17)
        upload = self.tmp / "upload.bin"
        upload.write_bytes(payload)
        result = self.get("/debug/body", data_file=upload, chunked=True)
        self.assertEqual(result.status, 200, result.stderr)
        self.assertEqual(json.loads(result.body), {
            "length": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
            "transferEncoding": "chunked", "contentLength": ""})

    def test_content_length_upload(self):
        payload = b"x" * 100000
        result = self.get("/debug/body", data=payload)
        body = json.loads(result.body)
        self.assertEqual((body["length"], body["sha256"], body["contentLength"]),
                         (len(payload), hashlib.sha256(payload).hexdigest(), str(len(payload))))

    def test_debug_headers_lists_every_line_in_order(self):
        result = self.get("/debug/headers?a=1&b", headers=["X-Remote-Group: one",
                                                            "X-Remote-Group: two",
                                                            "X-Other: v"])
        body = json.loads(result.body)
        self.assertEqual(body["method"], "GET")
        self.assertEqual(body["target"], "/debug/headers?a=1&b")
        names = [name for name, _ in body["headers"]]
        self.assertEqual(names[0], "Host")
        self.assertEqual([v for n, v in body["headers"] if n == "X-Remote-Group"], ["one", "two"])
        self.assertLess(names.index("X-Remote-Group"), names.index("X-Other"))

    def test_bytes_pattern(self):
        result = self.get("/debug/bytes?n=200000")
        self.assertEqual(result.header("Content-Length"), "200000")
        self.assertEqual(hashlib.sha256(result.body).hexdigest(), pattern_sha256(200000))

    def test_watch_streams_first_event_at_once_then_one_per_interval(self):
        stream = harness.StreamingCurl(
            self.backend.url + GV + "/namespaces/ns1/samples?watch=true",
            unix_socket=self.backend.unix_socket)
        try:
            lines = stream.wait_lines(2, timeout=5)
        finally:
            stream.close()
        self.assertEqual(len(lines), 2, lines)
        (t1, first), (t2, second) = lines
        self.assertEqual(first, watch_event("ADDED", "ns1", 1))
        self.assertEqual(second, watch_event("MODIFIED", "ns1", 2))
        # Loose bounds: this machine may be loaded; a buffered or immediate stream still fails.
        self.assertLess(t1, 1.5, "first event must not wait for the interval")
        self.assertGreater(t2 - t1, 0.5, "second event must wait about one interval (1 s)")
        self.assertLess(t2 - t1, 2.5)

    def test_watch_ends_at_timeout_seconds(self):
        result = self.get(GV + "/namespaces/ns1/samples?watch=1&timeoutSeconds=1")
        self.assertEqual(result.status, 200)
        self.assertEqual(result.header("Transfer-Encoding"), "chunked")
        self.assertTrue(result.body.startswith(watch_event("ADDED", "ns1", 1)), result.body)

    def test_upgrade_echo(self):
        with self.connect() as s:
            s.sendall(b"GET /debug/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                      b"Upgrade: SPDY/3.1\r\n\r\nearly")
            head, rest = harness.read_http_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head)
            self.assertIn(b"\r\nUpgrade: SPDY/3.1", head)
            self.assertEqual(harness.recv_exactly(s, 5, rest), b"early")
            for message in [b"ping", bytes(range(256)) * 64]:
                s.sendall(message)
                self.assertEqual(harness.recv_exactly(s, len(message)), message)

    def test_trailers_follow_the_last_chunk(self):
        with self.connect() as s:
            s.sendall(b"GET /debug/trailers?X-Checksum=abc&Grpc-Status=0 HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            data = harness.recv_exactly(s, 1 << 16)
        self.assertEqual(data, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               b"X-Content-Type-Options: nosniff\r\n"
                               b"Trailer: X-Checksum, Grpc-Status\r\n"
                               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                               b"10\r\ntrailers follow\n\r\n"
                               b"0\r\nX-Checksum: abc\r\nGrpc-Status: 0\r\n\r\n")

    def test_request_trailers_are_reported_apart_from_the_headers(self):
        with self.connect() as s:
            s.sendall(b"POST /debug/body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
                      b"GET /debug/headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = harness.recv_exactly(s, 1 << 16)
        first, _, second = data.partition(b"HTTP/1.1 200 OK\r\n")[2].partition(b"HTTP/1.1 ")
        self.assertEqual(json.loads(first.partition(b"\r\n\r\n")[2]), {
            "length": 5, "sha256": hashlib.sha256(b"hello").hexdigest(),
            "transferEncoding": "chunked", "contentLength": "",
            "trailers": [["X-Checksum", "abc"], ["X-Other", "1"]]})
        names = [n for n, _ in json.loads(second.partition(b"\r\n\r\n")[2])["headers"]]
        self.assertEqual(names, ["Host", "Connection"])

    def test_echo_without_upgrade_is_400(self):
        self.assertEqual(self.get("/debug/echo").status, 400)

    def test_http10_request(self):
        result = self.get(GV + "/namespaces/default/samples", http10=True)
        self.assertEqual(result.status, 200)
        self.assertEqual(result.body, LIST_DEFAULT)
        self.assertEqual(result.header("Connection"), "close")

    def test_slow(self):
        started = time.monotonic()
        result = self.get("/debug/slow?ms=300")
        self.assertEqual((result.status, result.body), (200, b"slow\n"))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)


class SampleBackendTcpTest(SampleBackendCases, harness.E2ETestCase):
    unix = False

    def test_listen_port_zero_prints_the_bound_port(self):
        self.assertRegex(self.backend.address, r"^127\.0\.0\.1:[1-9][0-9]*$")
        self.assertTrue(harness.tcp_accepts(self.backend.port))


class SampleBackendUnixTest(SampleBackendCases, harness.E2ETestCase):
    unix = True

    def test_listens_on_the_socket_path(self):
        self.assertEqual(self.backend.address, f"unix://{self.backend.unix_socket}")
        self.assertTrue(Path(self.backend.unix_socket).is_socket())


class SampleBackendFlagsTest(harness.E2ETestCase):
    def test_bad_flag_exits_2(self):
        proc = self.start("bad-flag", [harness.require_binary("sample/sample-backend"),
                                       "--no-such-flag"])
        self.assertEqual(proc.popen.wait(5), 2)
        self.assertIn("unknown flag --no-such-flag", proc.log_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
