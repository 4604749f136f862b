"""aa-proxy in front of an HTTPS backend (issue #13, `--upstream https://host:port`).

curl (client certificate alice) -> aa-proxy (standalone, a static policy allowing everyone
authenticated) -> TlsBackend, a small Python HTTPS server started as a real process (this file
with --tls-backend), whose certificates the test makes. Contract under test:
  - requests (GET, POST with a body, large bodies both ways) reach the backend over TLS with the
    X-Remote-* identity headers, and keep-alive requests share one pooled backend connection;
  - the backend's certificate is verified: an unknown CA or a name it does not hold answers 502
    (a bad gateway, as kube-rbac-proxy's Go ReverseProxy) with a Status body, the message in
    Go's words (`backend TLS handshake failed: tls: failed to verify certificate: x509: ...`),
    and the proxy keeps serving: the next request after the backend is fixed succeeds; a
    backend that cannot be reached at all stays the 503 `backend unavailable: ...`;
  - --upstream-client-cert-file/--upstream-client-key-file: the certificate a backend requires
    is presented (the backend sees its CN); without it the backend's refusal is the same 502;
  - TLS session resumption: new backend connections resume the pool's last session;
  - start-up errors name the flag (exit 2).
TlsUpstreamTest runs against a TLS 1.3 backend, Tls12UpstreamTest against one capped at
TLS 1.2 (resumption by session ticket, the client-certificate refusal inside the handshake).
`//e2e:upstream_tls_test_h2` runs both with curl speaking HTTP/2 to the proxy.

The backend's control port (plain HTTP, for the test only):
  GET  /__stats      {"tcp_connections", "handshakes", "resumed", "handshake_errors": [...],
                      "requests", "server_names": [...]}
  GET  /__use_cert?cert=PATH&key=PATH   new handshakes present this certificate
"""

import hashlib
import http.client
import http.server
import json
import os
import re
import socketserver
import ssl
import subprocess
import sys
import threading
import unittest
from pathlib import Path
from typing import Dict, List, Optional, Sequence
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PROXY = harness.find_binary("proxy/aa-proxy")
SKIP_REASON = ("//proxy:aa-proxy is not built (no proxy binary in runfiles or bazel-bin); "
               "run through `bazel test //e2e:upstream_tls_test`")
# Compact Status bodies (kubectl's User-Agent; curl's would get them pretty-printed).
KUBECTL = "User-Agent: kubectl/v1.32.0"


def status_json(code: int, reason: str, message: str) -> bytes:
    """A Status body as the proxy writes its own errors (k8s/status.cc)."""
    return (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":' +
            json.dumps(message).encode() + b',"reason":"' + reason.encode() + b'","code":' +
            str(code).encode() + b'}\n')


def unavailable(message: str) -> bytes:
    return status_json(503, "ServiceUnavailable", "backend unavailable: " + message)


def pattern(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


# ---------------------------------------------------------------------------------------------
# The HTTPS backend (runs as its own process)


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Any path: 200 with a JSON account of the request and of the TLS connection it came on.
    /bytes?n=N: N pattern bytes. /close: the account, then the connection is closed."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        print("tls-backend: " + fmt % args, flush=True)

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self) -> None:
        body = self.read_body()
        server: "TlsBackend" = self.server  # type: ignore[assignment]
        tls: ssl.SSLSocket = self.connection  # type: ignore[assignment]
        with server.lock:
            server.stats["requests"] += 1
        path, _, query = self.path.partition("?")
        if path == "/bytes":
            data = pattern(int(parse_qs(query)["n"][0]))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        peer = tls.getpeercert() or {}
        client_cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn
                          if k == "commonName"), None)
        account = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body": body.decode("latin-1") if len(body) <= 4096 else None,
            "connection": getattr(tls, "connection_id", 0),
            "session_reused": tls.session_reused,
            "tls_version": tls.version(),
            "client_cn": client_cn,
        }
        data = json.dumps(account).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if path == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer


class TlsBackend(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """HTTPS with a handshake per connection in its own thread (a stuck or failed handshake
    holds up nobody)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, context: ssl.SSLContext):
        super().__init__(("127.0.0.1", port), EchoHandler)
        self.context = context
        self.lock = threading.Lock()
        self.stats: Dict[str, object] = {"tcp_connections": 0, "handshakes": 0, "resumed": 0,
                                         "handshake_errors": [], "requests": 0,
                                         "server_names": []}

        def record_sni(_socket, server_name, _context):
            with self.lock:
                self.stats["server_names"].append(server_name)
        context.sni_callback = record_sni

    def finish_request(self, request, client_address):
        with self.lock:
            self.stats["tcp_connections"] += 1
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            # aa-proxy's readiness probe connects without TLS: those are not handshake errors.
            if not isinstance(e, ssl.SSLEOFError) and "EOF" not in str(e):
                with self.lock:
                    self.stats["handshake_errors"].append(str(e))
            return
        with self.lock:
            self.stats["handshakes"] += 1
            self.stats["resumed"] += 1 if tls.session_reused else 0
            tls.connection_id = self.stats["handshakes"]
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except OSError:
            pass
        finally:
            tls.close()


class ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        backend: TlsBackend = self.server.backend  # type: ignore[attr-defined]
        if self.path.startswith("/__use_cert"):
            query = parse_qs(self.path.partition("?")[2])
            backend.context.load_cert_chain(query["cert"][0], query["key"][0])
            data = b"{}"
        else:
            with backend.lock:
                data = json.dumps(backend.stats).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET


def serve_tls_backend(argv: Sequence[str]) -> None:
    """--tls-backend CERT KEY [--client-ca CA] [--max-tls 1.2] [--port N]"""
    cert, key = argv[0], argv[1]
    options = dict(zip(argv[2::2], argv[3::2]))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if options.get("--max-tls") == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if "--client-ca" in options:
        context.load_verify_locations(options["--client-ca"])
        context.verify_mode = ssl.CERT_REQUIRED
    backend = TlsBackend(int(options.get("--port", "0")), context)
    control = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    control.backend = backend  # type: ignore[attr-defined]
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(f"listening on 127.0.0.1:{backend.server_address[1]} "
          f"control 127.0.0.1:{control.server_address[1]}", flush=True)
    backend.serve_forever()


class TlsBackendProcess:
    def __init__(self, test: harness.E2ETestCase, cert: harness.CertKey,
                 client_ca: Optional[Path] = None, max_tls: Optional[str] = None,
                 name: str = "tls-backend", port: int = 0):
        argv = [sys.executable, os.path.abspath(__file__), "--tls-backend", cert.cert, cert.key,
                "--port", str(port)]
        if client_ca:
            argv += ["--client-ca", client_ca]
        if max_tls:
            argv += ["--max-tls", max_tls]
        self.process = test.start(name, argv)
        match = self.process.wait_for_log(
            r"^listening on 127\.0\.0\.1:(\d+) control 127\.0\.0\.1:(\d+)$")
        self.port = int(match.group(1))
        self.control_port = int(match.group(2))
        self.upstream = f"https://127.0.0.1:{self.port}"

    def control(self, path: str) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=10)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def stats(self) -> dict:
        return self.control("/__stats")

    def use_cert(self, cert: harness.CertKey) -> None:
        self.control(f"/__use_cert?cert={cert.cert}&key={cert.key}")


# ---------------------------------------------------------------------------------------------
# The cases


@unittest.skipIf(PROXY is None, SKIP_REASON)
class TlsUpstreamTest(harness.E2ETestCase):
    max_tls: Optional[str] = None  # the backend's highest TLS version: None = 1.3
    # What a TLS backend that requires a client certificate answers when there is none: in
    # TLS 1.3 right after the handshake (certificate_required), in 1.2 inside it.
    missing_client_certificate = "remote error: tls: certificate required"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile
        cls._pki_dir = tempfile.mkdtemp(prefix="pki-", dir=os.environ.get("TEST_TMPDIR"))
        std = harness.Pki(cls._pki_dir).standard()
        pki = std.pki
        cls.pki = std
        cls.upstream_ca = pki.ca("upstream-ca", "aa-proxy e2e upstream CA")
        cls.backend_cert = pki.issue(cls.upstream_ca, "backend", "backend",
                                     ext_key_usage="serverAuth",
                                     sans=["IP:127.0.0.1", "DNS:localhost"])
        cls.named_cert = pki.issue(cls.upstream_ca, "backend-named", "backend",
                                   ext_key_usage="serverAuth", sans=["DNS:backend.example"])
        cls.untrusted_cert = pki.issue(std.other_ca, "backend-untrusted", "backend",
                                       ext_key_usage="serverAuth",
                                       sans=["IP:127.0.0.1", "DNS:localhost"])
        cls.upstream_client_ca = pki.ca("upstream-client-ca", "backend's client CA")
        cls.proxy_client = pki.issue(cls.upstream_client_ca, "aa-proxy-client", "aa-proxy")
        cls.policy = Path(cls._pki_dir) / "allow-authenticated.yaml"
        cls.policy.write_text("rules:\n"
                              "  - groups: [\"system:authenticated\"]\n"
                              "    verbs: [\"*\"]\n"
                              "    apiGroups: [\"*\"]\n"
                              "    resources: [\"*\"]\n"
                              "  - groups: [\"system:authenticated\"]\n"
                              "    verbs: [\"*\"]\n"
                              "    nonResourceURLs: [\"*\"]\n")

    @property
    def alice(self) -> harness.TlsClient:
        return harness.TlsClient(cacert=self.pki.ca.cert, cert=self.pki.alice.cert,
                                 key=self.pki.alice.key)

    def start_tls_backend(self, cert: Optional[harness.CertKey] = None,
                          client_ca: Optional[Path] = None) -> TlsBackendProcess:
        return TlsBackendProcess(self, cert or self.backend_cert, client_ca, self.max_tls)

    def proxy_argv(self, upstream: str, flags: Sequence[str] = ()) -> List[str]:
        self.port = harness.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        return [PROXY, "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
                "--tls-cert-file", self.pki.server.cert,
                "--tls-private-key-file", self.pki.server.key,
                "--client-ca-file", self.pki.ca.cert, "--upstream", upstream, "--workers", "2",
                "--anonymous-auth=false", "--authentication-skip-lookup",
                "--authorization-mode", "static", "--authorization-policy-file", self.policy,
                "-v", "4", *flags]

    def start_proxy(self, upstream: str, flags: Sequence[str] = (),
                    ca: bool = True) -> harness.Process:
        if ca:
            flags = ["--upstream-ca-file", str(self.upstream_ca.cert), *flags]
        proxy = self.start("aa-proxy", self.proxy_argv(upstream, flags))

        def ready():
            if not proxy.alive():
                raise harness.StopWaiting()
            return harness.curl(self.url + "/livez", tls=self.alice, timeout=2).status == 200

        try:
            harness.wait_until(ready, timeout=20, what="aa-proxy to answer /livez over TLS")
        except harness.StopWaiting:
            self.fail(f"aa-proxy exited with {proxy.popen.returncode}:\n{proxy.log_text()}")
        self.proxy = proxy
        return proxy

    def get(self, path: str, **kwargs) -> harness.CurlResult:
        kwargs.setdefault("headers", [KUBECTL])
        return harness.curl(self.url + path, tls=self.alice, **kwargs)

    def get_many(self, paths: Sequence[str], **kwargs) -> List[harness.CurlResult]:
        """All on one client connection, so on one worker and its backend pool."""
        kwargs.setdefault("headers", [KUBECTL])
        return harness.curl_many([self.url + p for p in paths], tls=self.alice, **kwargs)

    def account(self, result: harness.CurlResult) -> dict:
        self.assertEqual(result.status, 200, result.stderr + result.text)
        return json.loads(result.body)

    def metric(self, name_and_labels: str) -> float:
        text = self.get("/metrics").text
        match = re.search("^" + re.escape(name_and_labels) + r" (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def assert_unavailable(self, message: str) -> None:
        """503 for a backend that cannot be reached; 502 for one whose TLS handshake fails."""
        result = self.get("/apis/anything")
        if message.startswith(("tls: ", "remote error: tls: ")):
            expected = (502, status_json(502, "InternalError",
                                         "backend TLS handshake failed: " + message))
        else:
            expected = (503, unavailable(message))
        self.assertEqual((result.status, result.body), expected, result.stderr)
        self.assertEqual(result.header("Content-Type"), "application/json")
        self.assertTrue(self.proxy.alive())

    # --- forwarding -----------------------------------------------------------------------

    def test_get_and_post_reach_the_backend_with_the_identity(self):
        backend = self.start_tls_backend()
        self.start_proxy(backend.upstream)
        get = self.account(self.get("/apis/sample/v1/things?watch=false",
                                    headers=[KUBECTL, "X-Remote-User: system:admin"]))
        self.assertEqual((get["method"], get["path"]),
                         ("GET", "/apis/sample/v1/things?watch=false"))
        headers = get["headers"]
        self.assertIn(["X-Remote-User", "alice"], headers)
        self.assertEqual([v for k, v in headers if k.lower() == "x-remote-group"],
                         ["dev", "system:authenticated"])
        self.assertNotIn("system:admin", json.dumps(headers))
        self.assertEqual(get["tls_version"], "TLSv1.2" if self.max_tls == "1.2" else "TLSv1.3")
        self.assertIsNone(get["client_cn"])

        body = b'{"kind":"Thing","apiVersion":"sample/v1","metadata":{"name":"x"}}'
        post = self.account(self.get("/apis/sample/v1/things", method="POST", data=body,
                                     headers=[KUBECTL, "Content-Type: application/json"]))
        self.assertEqual(post["method"], "POST")
        self.assertEqual(post["body"].encode("latin-1"), body)
        self.assertIn(["X-Remote-User", "alice"], post["headers"])
        self.assertEqual(backend.stats()["handshake_errors"], [])

    def test_large_bodies_both_ways(self):
        backend = self.start_tls_backend()
        self.start_proxy(backend.upstream)
        upload = os.urandom(8 << 20)  # more than the socket buffers take at once
        post = self.account(self.get("/upload", method="POST", data=upload))
        self.assertEqual((post["body_length"], post["body_sha256"]),
                         (len(upload), hashlib.sha256(upload).hexdigest()))
        size = 16 << 20
        download = self.get(f"/bytes?n={size}")
        self.assertEqual(download.status, 200, download.stderr)
        self.assertEqual(len(download.body), size)
        self.assertEqual(download.body, pattern(size))

    def test_slow_reader_gets_the_whole_body(self):
        # The proxy stops reading the backend while the client lags (the input buffer's high
        # watermark), also in the middle of a TLS record, and resumes without losing a byte.
        backend = self.start_tls_backend()
        self.start_proxy(backend.upstream)
        size = 6 << 20
        download = self.get(f"/bytes?n={size}", extra=["--limit-rate", "4M"])
        self.assertEqual(download.status, 200, download.stderr)
        self.assertEqual(download.body, pattern(size))

    def test_keep_alive_requests_share_one_pooled_connection(self):
        backend = self.start_tls_backend()
        self.start_proxy(backend.upstream)
        results = self.get_many([f"/apis/sample/v1/things/{i}" for i in range(20)])
        connections = {self.account(r)["connection"] for r in results}
        self.assertEqual(len(connections), 1, connections)
        stats = backend.stats()
        self.assertEqual((stats["handshakes"], stats["requests"]), (1, 20))

    def test_new_connections_resume_the_session(self):
        backend = self.start_tls_backend()
        self.start_proxy(backend.upstream)
        # /close: the backend closes each connection after answering, so every request needs a
        # new one, from the same worker's pool (one client connection).
        accounts = [self.account(r) for r in self.get_many(["/close"] * 5)]
        self.assertEqual([a["session_reused"] for a in accounts],
                         [False, True, True, True, True])
        self.assertEqual(len({a["connection"] for a in accounts}), 5)
        stats = backend.stats()
        self.assertEqual((stats["handshakes"], stats["resumed"]), (5, 4))
        self.assertEqual(self.metric('aaproxy_upstream_tls_handshakes_total{resumed="true"}'), 4)
        self.assertEqual(self.metric('aaproxy_upstream_tls_handshakes_total{resumed="false"}'), 1)

    def test_server_name_is_sent_and_checked(self):
        backend = self.start_tls_backend()
        self.start_proxy(backend.upstream, ["--upstream-server-name", "localhost"])
        self.account(self.get("/apis"))
        self.assertEqual(backend.stats()["server_names"], ["localhost"])

    # --- verification failures ------------------------------------------------------------

    def test_unknown_ca_is_502_and_the_proxy_keeps_serving(self):
        backend = self.start_tls_backend(self.untrusted_cert)
        self.start_proxy(backend.upstream)
        for _ in range(2):
            self.assert_unavailable(
                "tls: failed to verify certificate: x509: certificate signed by unknown authority")
        self.assertEqual(backend.stats()["requests"], 0)
        backend.use_cert(self.backend_cert)
        self.account(self.get("/apis"))
        self.assertIn("tls: failed to verify certificate: x509: certificate signed by unknown "
                      "authority", self.proxy.log_text())

    def test_the_system_trust_store_by_default(self):
        backend = self.start_tls_backend()
        self.start_proxy(backend.upstream, ca=False)  # the test CA is in no system store
        self.assert_unavailable(
            "tls: failed to verify certificate: x509: certificate signed by unknown authority")

    def test_wrong_name_is_502_and_the_proxy_keeps_serving(self):
        backend = self.start_tls_backend()
        self.start_proxy(backend.upstream, ["--upstream-server-name", "backend.example"])
        self.assert_unavailable("tls: failed to verify certificate: x509: certificate is valid "
                                "for localhost, not backend.example")
        backend.use_cert(self.named_cert)
        self.account(self.get("/apis"))

    def test_ip_host_needs_an_ip_san(self):
        backend = self.start_tls_backend(self.named_cert)
        self.start_proxy(backend.upstream)
        self.assert_unavailable("tls: failed to verify certificate: x509: cannot validate "
                                "certificate for 127.0.0.1 because it doesn't contain any IP SANs")
        backend.use_cert(self.backend_cert)
        self.account(self.get("/apis"))

    # --- client certificates --------------------------------------------------------------

    def test_client_certificate_is_presented(self):
        backend = self.start_tls_backend(client_ca=self.upstream_client_ca.cert)
        self.start_proxy(backend.upstream, [
            "--upstream-client-cert-file", str(self.proxy_client.cert),
            "--upstream-client-key-file", str(self.proxy_client.key)])
        results = self.get_many(["/apis", "/close", "/apis"])
        for result in results:
            self.assertEqual(self.account(result)["client_cn"], "aa-proxy")
        self.assertEqual(backend.stats()["handshake_errors"], [])

    def test_routes_with_their_own_https_backends(self):
        """A route table (docs/routes.md) with per-route upstreamTLS: one backend that wants
        our client certificate, one whose CA the route does not trust (502, the other route
        unaffected)."""
        wants_cert = self.start_tls_backend(client_ca=self.upstream_client_ca.cert)
        untrusted = self.start_tls_backend(self.untrusted_cert)
        config = self.tmp / "routes.yaml"
        config.write_text(
            "routes:\n"
            f"- path: /a\n  upstream: {wants_cert.upstream}\n"
            f"  upstreamTLS: {{caFile: {self.upstream_ca.cert}, "
            f"clientCertFile: {self.proxy_client.cert}, clientKeyFile: {self.proxy_client.key}}}\n"
            f"- path: /b\n  upstream: {untrusted.upstream}\n"
            f"  upstreamTLS: {{caFile: {self.upstream_ca.cert}}}\n")
        self.start_proxy(wants_cert.upstream, ["--config", str(config)], ca=False)
        self.assertEqual(self.account(self.get("/a/x"))["client_cn"], "aa-proxy")
        result = self.get("/b/x")
        self.assertEqual(result.status, 502, result.text)
        self.assertEqual(result.body, status_json(
            502, "InternalError", "backend TLS handshake failed: tls: failed to verify "
            "certificate: x509: certificate signed by unknown authority"))
        self.assertEqual(self.account(self.get("/a/y"))["client_cn"], "aa-proxy")
        self.assertEqual(untrusted.stats()["requests"], 0)

    def test_missing_client_certificate_is_502(self):
        backend = self.start_tls_backend(client_ca=self.upstream_client_ca.cert)
        self.start_proxy(backend.upstream)
        for _ in range(5):  # the refusal races our request in TLS 1.3: the same answer each time
            self.assert_unavailable(self.missing_client_certificate)
        self.assertEqual(backend.stats()["requests"], 0)
        self.assertEqual(self.get("/livez").status, 200)

    # --- other failures and start-up ------------------------------------------------------

    def test_backend_down_is_503_then_recovers(self):
        backend = self.start_tls_backend()
        self.start_proxy(backend.upstream)
        self.account(self.get("/apis"))
        backend.process.stop()
        self.assert_unavailable("Connection refused")
        restarted = TlsBackendProcess(self, self.backend_cert, None, self.max_tls,
                                      name="tls-backend-restarted", port=backend.port)
        self.account(self.get("/apis"))
        # The pool's session came from the first backend process, whose ticket keys are gone:
        # a full handshake, nothing worse.
        self.assertEqual(restarted.stats()["resumed"], 0)

    def test_plain_http_backend_behind_an_https_upstream(self):
        backend = self.start_backend()  # the sample backend: plain HTTP
        self.start_proxy(f"https://127.0.0.1:{backend.port}")
        self.assert_unavailable("tls: first record does not look like a TLS handshake")

    def test_start_up_errors_name_the_flag(self):
        empty = Path(self._pki_dir) / "empty.pem"
        empty.write_text("")
        cases = [
            (["--upstream", "https://127.0.0.1:1", "--upstream-ca-file", str(empty)],
             f'--upstream-ca-file: no PEM certificates found in "{empty}"'),
            (["--upstream", "http://127.0.0.1:1", "--upstream-ca-file",
              str(self.upstream_ca.cert)],
             '--upstream-ca-file: needs an https:// --upstream (it is "http://127.0.0.1:1")'),
            (["--upstream", "https://127.0.0.1:1", "--upstream-client-cert-file",
              str(self.proxy_client.cert)],
             "--upstream-client-key-file: required when --upstream-client-cert-file is set"),
            (["--upstream", "https://127.0.0.1:1", "--upstream-client-cert-file",
              str(self.proxy_client.cert), "--upstream-client-key-file",
              str(self.backend_cert.key)],
             "--upstream-client-key-file: not the private key of --upstream-client-cert-file: "),
        ]
        for flags, error in cases:
            with self.subTest(error=error):
                argv = self.proxy_argv("unused")
                argv = argv[:argv.index("--upstream")] + argv[argv.index("--workers"):] + flags
                result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        timeout=30)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertTrue(result.stderr.decode().startswith("aa-proxy: " + error),
                                result.stderr)


class Tls12UpstreamTest(TlsUpstreamTest):
    max_tls = "1.2"
    missing_client_certificate = "remote error: tls: handshake failure"



if __name__ == "__main__":
    if sys.argv[1:2] == ["--tls-backend"]:
        serve_tls_backend(sys.argv[2:])
    else:
        unittest.main(verbosity=2)
