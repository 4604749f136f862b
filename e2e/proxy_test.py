"""aa-proxy's data plane end to end: curl with client certificates -> aa-proxy -> sample backend.

Contract under test: the data plane in standalone mode (no cluster), with a static policy that
allows every authenticated user everything, so only forwarding behaviour is in play here:
  aa-proxy --secure-port P --bind-address 127.0.0.1 --tls-cert-file F --tls-private-key-file F
           --client-ca-file F --requestheader-client-ca-file F --upstream URL --workers 2
           --anonymous-auth=false --authentication-skip-lookup
           --authorization-mode static --authorization-policy-file ALLOW_AUTHENTICATED -v 2
"""

import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from http2_frames_test import (DATA, END_HEADERS, END_STREAM, HEADERS, H2Client,  # noqa: E402
                               frame, hpack, request_fields)
from sample_backend_test import (API_GROUP, API_GROUP_LIST, DISCOVERY, GET_TEAM_A_X, GV,  # noqa: E402
                                 LIST_DEFAULT, NOT_FOUND, pattern_sha256, watch_event)

PROXY = harness.find_binary("proxy/aa-proxy")
SKIP_REASON = ("//proxy:aa-proxy is not built (no proxy binary in runfiles or bazel-bin); "
               "run through `bazel test //e2e:proxy_test`")

# What kube-apiserver writes: json.Encoder (compact, trailing newline) for API clients, and
# json.MarshalIndent (no trailing newline) when the User-Agent is curl, Wget or a browser.
UNAUTHORIZED = (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                b'"message":"Unauthorized","reason":"Unauthorized","code":401}\n')
UNAUTHORIZED_PRETTY = (b'{\n  "kind": "Status",\n  "apiVersion": "v1",\n  "metadata": {},\n'
                       b'  "status": "Failure",\n  "message": "Unauthorized",\n'
                       b'  "reason": "Unauthorized",\n  "code": 401\n}')


@unittest.skipIf(PROXY is None, SKIP_REASON)
class ProxyTestBase(harness.E2ETestCase):
    unix_upstream = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile
        cls._pki_dir = tempfile.mkdtemp(prefix="pki-", dir=os.environ.get("TEST_TMPDIR"))
        cls.pki = harness.Pki(cls._pki_dir).standard()

    def setUp(self):
        super().setUp()
        kwargs = {"watch_interval": 1.0}
        if self.unix_upstream:
            kwargs["unix_socket"] = self.sock_dir / "backend.sock"
        self.backend = self.start_backend(**kwargs)
        self.proxy = self.start_proxy(self.backend.upstream)

    def client(self, cert_key=None, cert_path=None) -> harness.TlsClient:
        if cert_key is None:
            return harness.TlsClient(cacert=self.pki.ca.cert)
        return harness.TlsClient(cacert=self.pki.ca.cert, cert=cert_path or cert_key.cert,
                                 key=cert_key.key)

    @property
    def alice(self) -> harness.TlsClient:
        return self.client(self.pki.alice)

    def allow_authenticated_policy(self) -> str:
        path = os.path.join(self._pki_dir, "allow-authenticated.yaml")
        with open(path, "w") as f:
            f.write("rules:\n"
                    "  - groups: [\"system:authenticated\"]\n"
                    # Every verb but impersonate: a smuggled Impersonate-User must not work.
                    "    verbs: [\"get\", \"list\", \"watch\", \"create\", \"update\", \"patch\",\n"
                    "            \"delete\", \"deletecollection\", \"proxy\"]\n"
                    "    apiGroups: [\"*\"]\n"
                    "    resources: [\"*\"]\n"
                    "  - groups: [\"system:authenticated\"]\n"
                    "    verbs: [\"*\"]\n"
                    "    nonResourceURLs: [\"*\"]\n")
        return path

    def start_proxy(self, upstream: str, flags=(), policy=None) -> harness.Process:
        self.port = harness.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        proxy = self.start("aa-proxy", [
            PROXY, "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
            "--tls-cert-file", self.pki.server.cert, "--tls-private-key-file", self.pki.server.key,
            "--client-ca-file", self.pki.ca.cert,
            "--requestheader-client-ca-file", self.pki.front_proxy_ca.cert,
            "--upstream", upstream, "--workers", "2", "--anonymous-auth=false",
            "--authentication-skip-lookup", "--authorization-mode", "static",
            "--authorization-policy-file", policy or self.allow_authenticated_policy(), "-v", "2",
            *flags])

        def ready():
            if not proxy.alive():
                raise harness.StopWaiting()
            return harness.curl(self.url + "/healthz", tls=self.alice, timeout=2).status != 0

        try:
            harness.wait_until(ready, timeout=20, what="aa-proxy to answer /healthz over TLS")
        except harness.StopWaiting:
            self.fail(f"aa-proxy exited with {proxy.popen.returncode}:\n{proxy.log_text()}")
        return proxy

    def get(self, path, tls=None, **kwargs) -> harness.CurlResult:
        return harness.curl(self.url + path, tls=tls or self.alice, **kwargs)

    def download_peak_rss(self, protocol_flag: str, size: int = 1 << 30) -> int:
        """Downloads `size` pattern bytes through the proxy, checks them, returns peak VmRSS."""
        proc = subprocess.Popen(
            ["curl", "-sS", protocol_flag, "--no-buffer", "--max-time", "180", *self.alice.args(),
             f"{self.url}/debug/bytes?n={size}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        peak_rss = [0]
        done = threading.Event()

        def sample_rss():
            while not done.is_set():
                try:
                    peak_rss[0] = max(peak_rss[0], self.proxy.rss_bytes())
                except (OSError, RuntimeError):
                    pass
                done.wait(0.1)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        digest = hashlib.sha256()
        received = 0
        try:
            while True:
                chunk = proc.stdout.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                received += len(chunk)
            proc.wait(30)
        finally:
            done.set()
            sampler.join()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(received, size)
        self.assertEqual(digest.hexdigest(), pattern_sha256(size))
        return peak_rss[0]


class ProxyDataPlaneTest(ProxyTestBase):

    def test_exact_bodies_through_the_proxy(self):
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

    def test_backend_404_passes_through(self):
        result = self.get(GV + "/widgets")
        self.assertEqual((result.status, result.body), (404, NOT_FOUND))

    def test_no_client_certificate_is_401(self):
        result = self.get(GV, tls=self.client(), headers=["User-Agent: kubectl/v1.32.0"])
        self.assertEqual(result.exit_code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        self.assertEqual(result.header("Content-Type"), "application/json")

    def test_curl_user_agent_gets_pretty_status(self):
        result = self.get(GV, tls=self.client())
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED_PRETTY))

    def backend_request_count(self, path):
        """How many requests for `path` (exact, before any query) the backend logged."""
        pattern = re.compile(r"^sample-backend: \S+ " + re.escape(path) + r"(\?\S*)? -> ",
                             re.MULTILINE)
        return len(pattern.findall(self.backend.process.log_text()))

    def test_refused_certificates_are_401_not_a_handshake_failure(self):
        # The handshake accepts any certificate (k8s.io/apiserver's tls.RequestClientCert); the
        # authenticators refuse these per request, so the client reads a Status, not an alert.
        for name, cert_key in [("another CA", self.pki.stranger), ("expired", self.pki.expired),
                               ("serverAuth only", self.pki.no_client_auth)]:
            for path in (GV, "/healthz"):
                with self.subTest(certificate=name, path=path):
                    result = self.get(path, tls=self.client(cert_key),
                                      headers=["User-Agent: kubectl/v1.32.0"])
                    self.assertEqual(result.exit_code, 0, result.stderr)
                    self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
                    self.assertEqual(result.header("Content-Type"), "application/json")
                    result = self.get(path, tls=self.client(cert_key))
                    self.assertEqual((result.status, result.body), (401, UNAUTHORIZED_PRETTY))
        self.assertEqual(self.backend_request_count(GV), 0)
        self.assertEqual(self.backend_request_count("/healthz"), 0)
        self.proxy.wait_for_log(
            r"Unable to authenticate the request: \[x509: certificate signed by unknown "
            r"authority, verifying certificate SN=\d+, SKID=[0-9A-F:]+, AKID=[0-9A-F:]+ failed: "
            r"x509: certificate signed by unknown authority\]$", timeout=5)
        # The control: alice's certificate on the same path gets through.
        self.assertEqual(self.get(GV).status, 200)
        self.assertEqual(self.backend_request_count(GV), 1)

    def test_certificate_signed_by_an_intermediate_with_chain(self):
        result = self.get("/debug/headers", tls=self.client(self.pki.bob, self.pki.bob.chain))
        self.assertEqual(result.status, 200, result.stderr + result.text)
        headers = json.loads(result.body)["headers"]
        self.assertEqual([v for n, v in headers if n.lower() == "x-remote-user"], ["bob"])

    def tls_resumptions(self):
        metrics = self.get("/metrics")
        self.assertEqual(metrics.status, 200, metrics.text)
        line = re.search(r"^aaproxy_tls_resumptions_total (\S+)$", metrics.text, re.MULTILINE)
        return float(line.group(1)) if line else 0.0

    def test_resumed_sessions_keep_the_intermediates_for_verification(self):
        # Three connections in one curl run: the second and third resume the first's session
        # (from a ticket, which must carry the intermediate; OpenSSL restores only the leaf).
        before = self.tls_resumptions()
        # HTTP/1.1 in both runs of the suite: "Connection: close" has no meaning in HTTP/2.
        results = harness.curl_many([self.url + "/debug/headers"] * 3,
                                    tls=self.client(self.pki.bob, self.pki.bob.chain),
                                    headers=["Connection: close"], extra=["--http1.1"])
        self.assertEqual([(r.status, r.num_connects) for r in results], [(200, 1)] * 3)
        for result in results:
            headers = json.loads(result.body)["headers"]
            self.assertEqual([v for n, v in headers if n.lower() == "x-remote-user"], ["bob"])
        self.assertEqual(self.tls_resumptions() - before, 2)

    def test_keep_alive_reuses_the_connection(self):
        results = harness.curl_many([self.url + GV, self.url + GV + "/namespaces/default/samples"],
                                    tls=self.alice)
        self.assertEqual([r.status for r in results], [200, 200])
        self.assertEqual([r.body for r in results], [DISCOVERY, LIST_DEFAULT])
        self.assertEqual([r.num_connects for r in results], [1, 0])

    def test_keep_alive_connection_serves_after_idling(self):
        # After a second without a request, a kept-alive HTTP/1.1 connection gives back its
        # read buffer and header buffers; the next request (and one whose head arrives in two
        # parts a second and a half apart, straddling that point) must be served as before.
        with harness.BufferedTlsClient(self.port, self.alice) as client:
            client.handshake()
            client.queue(f"GET {GV} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            client.flush()
            first = client.read_response()
            time.sleep(1.5)
            client.queue(f"GET {GV}/namespaces/default/samples HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\nX-Remote-User: mallory\r\n\r\n".encode())
            client.flush()
            second = client.read_response()
            client.queue(f"GET /debug/headers HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
            client.flush()
            time.sleep(1.5)
            client.queue(b"X-Remote-Group: system:masters\r\n\r\n")
            client.flush()
            third = client.read_response()
        self.assertEqual([head.split(b"\r\n")[0] for head, _ in (first, second, third)],
                         [b"HTTP/1.1 200 OK"] * 3)
        self.assertEqual([first[1], second[1]], [DISCOVERY, LIST_DEFAULT])
        headers = json.loads(third[1])["headers"]
        self.assertEqual([v for n, v in headers if n.lower() in ("x-remote-user", "x-remote-group")],
                         ["alice", "dev", "system:authenticated"])

    def test_idle_timeout_counts_from_the_last_response(self):
        # The idle timer stops once on the way (to release memory); the timeout stays whole.
        self.proxy.stop()
        self.proxy = self.start_proxy(self.backend.upstream, ["--idle-timeout", "3s"])
        with harness.BufferedTlsClient(self.port, self.alice, timeout=10) as client:
            client.handshake()
            client.queue(f"GET {GV} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            client.flush()
            self.assertEqual(client.read_response()[1], DISCOVERY)
            answered = time.monotonic()
            with self.assertRaises(ConnectionError):
                while True:
                    client._receive()  # an alert may come before the end of the stream
            closed_after = time.monotonic() - answered
        self.assertGreater(closed_after, 2.7)
        self.assertLess(closed_after, 4.5)

    def test_chunked_upload_arrives_intact(self):
        payload = os.urandom(5 * 1024 * 1024 + 3)
        upload = self.tmp / "upload.bin"
        upload.write_bytes(payload)
        result = self.get("/debug/body", data_file=upload, chunked=True, timeout=60)
        self.assertEqual(result.status, 200, result.stderr + result.text)
        body = json.loads(result.body)
        self.assertEqual((body["length"], body["sha256"]),
                         (len(payload), hashlib.sha256(payload).hexdigest()))

    def test_content_length_upload_arrives_intact(self):
        payload = os.urandom(1024 * 1024)
        result = self.get("/debug/body", data=payload)
        body = json.loads(result.body)
        self.assertEqual((body["length"], body["sha256"], body["contentLength"]),
                         (len(payload), hashlib.sha256(payload).hexdigest(), str(len(payload))))

    def test_watch_events_stream_before_the_backend_finishes(self):
        # The backend sends an event at once, then one a second, and ends the stream after 4 s.
        # A proxy that buffers the response would deliver every line at about the end.
        stream = harness.StreamingCurl(
            self.url + GV + "/namespaces/ns1/samples?watch=true&timeoutSeconds=4", tls=self.alice)
        try:
            lines = stream.wait_lines(2, timeout=10)
            ended_at, exit_code = stream.wait_eof(timeout=10)
        finally:
            stream.close()
        self.assertGreaterEqual(len(lines), 2, lines)
        (t1, first), (t2, second) = lines[:2]
        self.assertEqual(first, watch_event("ADDED", "ns1", 1))
        self.assertEqual(second, watch_event("MODIFIED", "ns1", 2))
        self.assertEqual(exit_code, 0)
        self.assertGreater(ended_at, 3.5)
        self.assertLess(t1, ended_at - 2.0,
                        f"first event at {t1:.2f}s, stream ended at {ended_at:.2f}s: buffered?")
        self.assertLess(t2, ended_at - 1.0,
                        f"second event at {t2:.2f}s, stream ended at {ended_at:.2f}s: buffered?")
        self.assertGreater(t2 - t1, 0.5, "events one interval apart")

    def test_pipelined_requests_in_one_segment_answer_in_order(self):
        # Three TLS records in one send(): the proxy reads them together, and the second and
        # third must be answered without the client sending anything more.
        paths = [GV, GV + "/namespaces/default/samples", GV + "/namespaces/team-a/samples/x"]
        with harness.BufferedTlsClient(self.port, self.alice) as client:
            client.handshake()
            for path in paths:
                client.queue(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            client.flush()
            responses = [client.read_response() for _ in paths]
        self.assertEqual([head.split(b"\r\n")[0] for head, _ in responses],
                         [b"HTTP/1.1 200 OK"] * 3)
        self.assertEqual([body for _, body in responses], [DISCOVERY, LIST_DEFAULT, GET_TEAM_A_X])

    def test_request_trailers_never_become_headers_of_the_next_request(self):
        # A chunked body's trailer lines come through the parser's header callbacks after the
        # head has gone; they must not turn up as headers of the connection's next request.
        with harness.BufferedTlsClient(self.port, self.alice) as client:
            client.handshake()
            client.queue(b"POST /debug/body HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n0\r\nX-Trailer-One: 1\r\nX-Trailer-Two: 2\r\n\r\n")
            client.queue(b"GET /debug/headers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            client.flush()
            (head1, body1), (head2, body2) = client.read_response(), client.read_response()
        self.assertEqual(head1.split(b"\r\n")[0], b"HTTP/1.1 200 OK", body1)
        self.assertEqual(head2.split(b"\r\n")[0], b"HTTP/1.1 200 OK", body2)
        names = [name.lower() for name, _ in json.loads(body2)["headers"]]
        self.assertNotIn("x-trailer-one", names)
        self.assertNotIn("x-trailer-two", names)
        self.assertEqual(names.count("host"), 1)

    def test_request_in_the_handshake_flight_is_answered(self):
        # The client's Finished and its first request in one segment (TLS 1.3 allows it).
        with harness.BufferedTlsClient(self.port, self.alice) as client:
            client.handshake(send_last_flight=False)
            client.queue(f"GET {GV} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            client.flush()
            head, body = client.read_response()
        self.assertEqual((head.split(b"\r\n")[0], body), (b"HTTP/1.1 200 OK", DISCOVERY))

    def handshake_errors(self) -> float:
        metrics = self.get("/metrics")
        self.assertEqual(metrics.status, 200, metrics.text)
        line = re.search(r"^aaproxy_tls_handshake_errors_total (\S+)$", metrics.text,
                         re.MULTILINE)
        return float(line.group(1)) if line else 0.0

    def test_client_closing_without_close_notify_gets_a_plain_close(self):
        # Go's server and nginx take a TCP close without close_notify as the client's close;
        # OpenSSL 3 by default answers it with a fatal decode_error alert.
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=version.name):
                context = harness.client_tls_context(self.alice)
                context.minimum_version = context.maximum_version = version
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    # socket.shutdown, not SSLSocket's: that would drop the TLS state.
                    socket.socket.shutdown(s, socket.SHUT_WR)
                    self.assertEqual(s.recv(100), b"")  # no alert, no bytes: the close
        # A request abandoned that way is logged at -v 2 (the access log has no line for it).
        with harness.tls_connect(self.port, self.alice) as s:
            s.sendall(b"GET /debug/slow?ms=2000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            time.sleep(0.3)
            socket.socket.shutdown(s, socket.SHUT_WR)
            self.assertEqual(s.recv(100), b"")
        self.proxy.wait_for_log(r"client 127\.0\.0\.1 closed the connection with a response due$",
                                timeout=5)
        # A close before the handshake is done still counts as a failed handshake.
        before = self.handshake_errors()
        socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        harness.wait_until(lambda: self.handshake_errors() == before + 1, timeout=5,
                           what="aaproxy_tls_handshake_errors_total to count the close")
        self.assertEqual(self.get(GV).status, 200)

    def test_upgrade_becomes_a_tunnel(self):
        with harness.tls_connect(self.port, self.alice) as s:
            s.sendall(b"GET /debug/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                      b"Upgrade: SPDY/3.1\r\n\r\n")
            head, rest = harness.read_http_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            self.assertIn(b"upgrade: spdy/3.1", head.lower())
            self.assertEqual(rest, b"")
            for message in [b"hello", os.urandom(200000)]:
                s.sendall(message)
                self.assertEqual(harness.recv_exactly(s, len(message)), message)

    def test_backend_down_is_503_then_recovers(self):
        address = self.backend.address
        self.backend.stop()
        result = self.get(GV)
        self.assertEqual(result.status, 503, result.stderr + result.text)
        status = json.loads(result.body)
        self.assertEqual((status["kind"], status["status"], status["reason"], status["code"]),
                         ("Status", "Failure", "ServiceUnavailable", 503))
        self.assertEqual(result.header("Content-Type"), "application/json")
        self.assertTrue(self.proxy.alive())

        port = int(address.rsplit(":", 1)[1])
        self.start_backend(port=port, name="sample-backend-restarted")
        recovered = harness.wait_until(
            lambda: (lambda r: r if r.status == 200 else None)(self.get(GV)), timeout=10,
            what="the proxy to reach the restarted backend")
        self.assertEqual(recovered.body, DISCOVERY)

    def test_backend_sees_the_identity_and_never_a_smuggled_one(self):
        result = self.get("/debug/headers", headers=["X-Remote-User: system:admin",
                                                     "X-Remote-Group: system:masters",
                                                     "X-Remote-Extra-Scopes: all"])
        self.assertEqual(result.status, 200, result.text)
        headers = json.loads(result.body)["headers"]

        def values(name):
            return [v for n, v in headers if n.lower() == name.lower()]

        self.assertEqual(values("X-Remote-User"), ["alice"])
        self.assertEqual(values("X-Remote-Group"), ["dev", "system:authenticated"])
        self.assertEqual(values("X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(values("X-Remote-Extra-Scopes"), [])
        for name, value in headers:
            self.assertNotIn("system:admin", value, f"{name}: {value}")
            self.assertNotIn("system:masters", value, f"{name}: {value}")

    def test_impersonation_without_permission_is_forbidden(self):
        # Impersonate-* is honoured as upstream does, so it needs the impersonate verb, which
        # the policy does not grant: 403 with upstream's message, and nothing reaches the backend.
        result = self.get("/debug/headers", headers=["Impersonate-User: system:admin",
                                                     "User-Agent: kubectl/v1.32.0"])
        self.assertEqual(result.status, 403, result.text)
        self.assertEqual(
            json.loads(result.body)["message"],
            'users "system:admin" is forbidden: User "alice" cannot impersonate resource "users" '
            'in API group "" at the cluster scope')

    @unittest.skipIf(harness.SANITIZER, "a sanitizer's shadow memory is no measure of the "
                     "proxy's, and 1 GiB through an instrumented build takes minutes")
    def test_one_gibibyte_download_with_bounded_memory(self):
        peak_rss = self.download_peak_rss("--http2" if harness.HTTP2 else "--http1.1")
        self.assertLess(peak_rss, 200 * 1024 * 1024, f"peak VmRSS {peak_rss >> 20} MiB")


    def raw_request(self, request: bytes) -> bytes:
        """Sends raw bytes over TLS as alice; returns the response head."""
        with harness.tls_connect(self.port, self.alice, timeout=10) as s:
            try:
                s.sendall(request)
            except (ssl.SSLError, OSError):
                pass  # the proxy may answer and close before reading everything
            try:
                head, _ = harness.read_http_head(s, timeout=10)
            except (ssl.SSLError, OSError) as e:
                self.fail(f"no response: {e!r}")
            return head

    def test_oversized_header_is_431(self):
        # 2 MiB of headers: above the proxy's default limit (--max-header-bytes 1 MiB).
        request = (b"GET " + GV.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                   b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 8000) for i in range(256)) +
                   b"\r\n")
        head = self.raw_request(request)
        self.assertTrue(head.startswith(b"HTTP/1.1 431 "), head[:200])

    def test_long_request_line_is_414(self):
        # A 128 KiB target: above the default --max-request-line-bytes (64 KiB).
        request = (b"GET " + GV.encode() + b"?q=" + b"a" * (128 * 1024) +
                   b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = self.raw_request(request)
        self.assertTrue(head.startswith(b"HTTP/1.1 414 "), head[:200])

    def test_http10_client(self):
        result = self.get(GV + "/namespaces/default/samples", http10=True)
        self.assertEqual((result.status, result.body), (200, LIST_DEFAULT))


class ProxyTrailersTest(ProxyTestBase):
    """Trailers both ways, as Go's httputil.ReverseProxy forwards them: over HTTP/1.1 a chunked
    body's trailer section, over HTTP/2 a HEADERS frame after the DATA. Fields that may not be
    trailers (httpguts.ValidTrailerHeader, hop-by-hop) are dropped, and so are identity,
    impersonation and credential fields in a request's trailers."""

    # What the backend sends after /debug/trailers' body: two trailers to forward, and fields a
    # trailer section must not carry.
    RESPONSE_TRAILERS = "X-Checksum=abc123&Grpc-Status=0&Content-Type=text%2Fevil&Host=evil"

    def curl_with_trailers(self, path: str):
        """(status, header lines, body, trailer lines) as curl reports them."""
        headers_file = self.tmp / "curl-headers"
        body_file = self.tmp / "curl-body"
        proc = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--http2" if harness.HTTP2 else "--http1.1",
             *self.alice.args(), "-D", str(headers_file), "-o", str(body_file),
             "-w", "%{http_code} %{http_version}", self.url + path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        status, version = proc.stdout.decode().split()
        self.assertEqual(version, "2" if harness.HTTP2 else "1.1")
        # curl writes the trailers to the header dump after the head's blank line.
        head, _, trailer_text = headers_file.read_bytes().decode("latin-1").partition("\r\n\r\n")

        def lines(text):
            return [(n.strip(), v.strip()) for n, _, v in
                    (line.partition(":") for line in text.splitlines()[:] if ":" in line)]

        return int(status), lines(head.split("\r\n", 1)[1]), body_file.read_bytes(), \
            lines(trailer_text)

    def test_response_trailers_reach_the_client(self):
        status, headers, body, trailers = self.curl_with_trailers(
            "/debug/trailers?" + self.RESPONSE_TRAILERS)
        self.assertEqual((status, body), (200, b"trailers follow\n"))
        self.assertEqual(trailers, [("x-checksum" if harness.HTTP2 else "X-Checksum", "abc123"),
                                    ("grpc-status" if harness.HTTP2 else "Grpc-Status", "0")])
        # Announced as Go's ReverseProxy does, naming only what is forwarded.
        self.assertEqual([v for n, v in headers if n.lower() == "trailer"],
                         ["X-Checksum, Grpc-Status"])
        # The forwarded response itself is the backend's: its own Content-Type, no stray Host.
        self.assertEqual([v for n, v in headers if n.lower() == "content-type"], ["text/plain"])

    def test_response_without_trailers_is_unchanged(self):
        status, headers, body, trailers = self.curl_with_trailers("/debug/trailers")
        self.assertEqual((status, body, trailers), (200, b"trailers follow\n", []))
        self.assertNotIn("trailer", [n.lower() for n, _ in headers])

    def send_with_trailers(self, path: str, body: bytes, trailers, headers=()):
        """(status, body) of a POST whose body ends with `trailers`: a chunked body's trailer
        section over HTTP/1.1, a HEADERS frame after the DATA over HTTP/2."""
        if harness.HTTP2:
            client = H2Client(self.port, self.alice)
            self.addCleanup(client.sock.close)
            self.assertEqual(client.alpn, "h2")
            lower = [(n.lower(), v) for n, v in headers]
            client.send(frame(HEADERS, END_HEADERS, 1, hpack(request_fields(path, "POST", lower))),
                        frame(DATA, 0, 1, body),
                        frame(HEADERS, END_HEADERS | END_STREAM, 1,
                              hpack([(n.lower(), v) for n, v in trailers])))
            status, data, error = client.response(1)
            self.assertIsNone(error)
            return status, data
        with harness.tls_connect(self.port, self.alice, timeout=10) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() +
                      b"".join(f"{n}: {v}\r\n".encode() for n, v in headers) +
                      b"Transfer-Encoding: chunked\r\n\r\n" +
                      f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n" +
                      b"".join(f"{n}: {v}\r\n".encode() for n, v in trailers) + b"\r\n")
            head, rest = harness.read_http_head(s, timeout=10)
            length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
            return int(head.split()[1]), harness.recv_exactly(s, length, rest, timeout=10)

    def body_report(self, trailers, headers=()):
        status, body = self.send_with_trailers("/debug/body", b"hello", trailers, headers)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def test_request_trailers_reach_the_backend(self):
        report = self.body_report([("X-Checksum", "abc123"), ("Server-Timing", "total;dur=5"),
                                   ("Content-Type", "text/evil"), ("Host", "evil"),
                                   ("Expect", "100-continue")])
        self.assertEqual(report, {
            "length": 5, "sha256": hashlib.sha256(b"hello").hexdigest(),
            "transferEncoding": "chunked", "contentLength": "",
            "trailers": [["X-Checksum", "abc123"], ["Server-Timing", "total;dur=5"]]})

    def test_request_without_trailers_reports_none(self):
        report = self.body_report([])
        self.assertEqual(report, {"length": 5, "sha256": hashlib.sha256(b"hello").hexdigest(),
                                  "transferEncoding": "chunked", "contentLength": ""})

    def test_identity_trailers_never_reach_the_backend(self):
        # A client must not smuggle an identity to the backend in a trailer: neither the
        # front-proxy names (built in or configured), nor impersonation, nor credentials, and
        # not in the Trailer announcement either. One allowed trailer shows trailers do flow.
        self.proxy.stop()
        self.backend.stop()
        self.backend = self.start_backend(log_headers=True)
        self.proxy = self.start_proxy(self.backend.upstream, [
            "--requestheader-username-headers", "X-Custom-User",
            "--requestheader-group-headers", "X-Custom-Group",
            "--requestheader-extra-headers-prefix", "X-Custom-Extra-"])
        smuggled = [("X-Remote-User", "system:admin"), ("X-Remote-Group", "system:masters"),
                    ("X-Remote-Uid", "0"), ("X-Remote-Extra-Scopes", "all"),
                    ("Impersonate-User", "system:admin"), ("Impersonate-Group", "system:masters"),
                    ("Impersonate-Uid", "0"), ("Impersonate-Extra-Scopes", "all"),
                    ("Authorization", "Bearer stolen"), ("X-Custom-User", "system:admin"),
                    ("X-Custom-Group", "system:masters"), ("X-Custom-Extra-Scopes", "all")]
        announced = ", ".join(["X-Checksum"] + [n for n, _ in smuggled])
        report = self.body_report([("X-Checksum", "abc123")] + smuggled,
                                  headers=[("Trailer", announced)])
        self.assertEqual(report["trailers"], [["X-Checksum", "abc123"]])
        # What the backend saw in the head: alice, and an announcement of the one trailer.
        logged = re.findall(r"^sample-backend: headers (.*)$", self.backend.process.log_text(),
                            re.MULTILINE)
        head = [json.loads(line) for line in logged if '"/debug/body"' in line][-1]["headers"]

        def values(name):
            return [v for n, v in head if n.lower() == name.lower()]

        self.assertEqual(values("X-Remote-User"), ["alice"])
        self.assertEqual(values("Trailer"), ["X-Checksum"])
        for name, value in head + report["trailers"]:
            self.assertNotIn("system:admin", value, f"{name}: {value}")
            self.assertNotIn("system:masters", value, f"{name}: {value}")
            self.assertNotIn("stolen", value, f"{name}: {value}")


class ProxyUnixUpstreamTest(ProxyTestBase):
    """The same proxy in front of a backend on a Unix socket."""

    unix_upstream = True

    def test_exact_bodies(self):
        for path, body in [(GV, DISCOVERY), (GV + "/namespaces/default/samples", LIST_DEFAULT),
                           (GV + "/namespaces/team-a/samples/x", GET_TEAM_A_X)]:
            with self.subTest(path=path):
                result = self.get(path)
                self.assertEqual((result.status, result.body), (200, body))

    def test_identity_headers(self):
        headers = json.loads(self.get("/debug/headers").body)["headers"]
        self.assertEqual([v for n, v in headers if n.lower() == "x-remote-user"], ["alice"])

    def test_upgrade_tunnel(self):
        with harness.tls_connect(self.port, self.alice) as s:
            s.sendall(b"GET /debug/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                      b"Upgrade: websocket\r\n\r\n")
            head, rest = harness.read_http_head(s)
            self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
            s.sendall(b"ping")
            self.assertEqual(harness.recv_exactly(s, 4, rest), b"ping")


if __name__ == "__main__":
    unittest.main(verbosity=2)
