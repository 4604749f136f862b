"""nginx in front of aa-proxy as a stand-in aggregator (front proxy), end to end.

Chain under test:
  curl (end user's client certificate, user CA)
    --TLS--> nginx: verifies the user (ssl_verify_client on), forwards ONLY a whitelist of
             request headers (so client-sent X-Remote-* / Impersonate-* never pass), and sets
             X-Remote-User = the certificate's CN and X-Remote-Group = its O (one O)
    --TLS--> aa-proxy: nginx presents CN=front-proxy-client signed by the requestheader CA and
             verifies aa-proxy's serving certificate (proxy_ssl_verify on, proxy_ssl_name localhost)
    --HTTP-> sample backend (/debug/headers shows what aa-proxy forwarded)

aa-proxy runs standalone (no kube-apiserver, static authorization):
  aa-proxy --secure-port P --bind-address 127.0.0.1 --tls-cert-file F --tls-private-key-file F
           --requestheader-client-ca-file FRONT_PROXY_CA --requestheader-allowed-names
           front-proxy-client --authentication-skip-lookup --authorization-mode static
           --authorization-policy-file POLICY --upstream URL --workers 2 -v 2
(anonymous authentication stays on, as upstream's default: a front-proxy certificate whose CN is
not allowed must still be a 401, not an anonymous request).

kubectl (certificate users alice/dev and mallory/guests) is also driven through the whole chain.

nginx has no $ssl_client_s_dn_cn variable: CN and O are taken from $ssl_client_s_dn (RFC 2253,
"CN=alice,O=dev") with `map` regexes. nginx itself runs from a config in the test's directory
(`nginx -p DIR -c CONF -e LOG -g 'daemon off;'`), never as the system service.

Run: bazel test //e2e:front_proxy_test, or E2E_BAZEL_BIN=... python3 e2e/front_proxy_test.py -v
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from sample_backend_test import GV, LIST_DEFAULT, watch_event  # noqa: E402

PROXY = harness.find_binary("proxy/aa-proxy")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                  else None)

POLICY = """\
rules:
  - groups: ["dev"]
    verbs: ["get", "list", "watch"]
    apiGroups: ["sample-api-server"]
    resources: ["samples"]
  - groups: ["system:authenticated"]
    verbs: ["get"]
    nonResourceURLs: ["/debug/headers", "/api", "/apis", "/apis/*"]
"""

# Request headers nginx passes on; everything else the client sent is dropped.
FORWARDED_REQUEST_HEADERS = ["Accept", "Accept-Encoding", "Content-Type", "User-Agent"]

NGINX_CONF = """\
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/nginx-access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;

    # RFC 2253 subject, most specific first: "CN=alice,O=dev".
    map $ssl_client_s_dn $end_user {{
        "~(?:^|,)CN=(?<cn>[^,]+)" $cn;
        default "";
    }}
    map $ssl_client_s_dn $end_user_group {{
        "~(?:^|,)O=(?<org>[^,]+)" $org;
        default "";
    }}

    upstream aa_proxy {{
        server 127.0.0.1:{proxy_port};
        keepalive 8;
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        ssl_client_certificate {user_ca};
        ssl_verify_client on;

        location / {{
            proxy_pass https://aa_proxy;
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_read_timeout 120s;

            proxy_ssl_certificate {front_proxy_cert};
            proxy_ssl_certificate_key {front_proxy_key};
            proxy_ssl_trusted_certificate {aa_proxy_ca};
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;

            # Whitelist: no client header (X-Remote-*, Impersonate-*, Authorization) passes.
            proxy_pass_request_headers off;
            proxy_set_header Host $host;
            proxy_set_header Connection "";
{forwarded}
            proxy_set_header X-Remote-User $end_user;
            proxy_set_header X-Remote-Group $end_user_group;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


def header_values(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


@unittest.skipIf(PROXY is None,
                 "//proxy:aa-proxy is not built; run `bazel test //e2e:front_proxy_test`")
@unittest.skipIf(NGINX is None, "no nginx binary (Debian's nginx-light)")
class FrontProxyTest(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pki_dir = Path(tempfile.mkdtemp(prefix="pki-", dir=os.environ.get("TEST_TMPDIR")))
        cls.pki = harness.Pki(cls._pki_dir).standard()
        pki = cls.pki.pki
        # End users have certificates from their own CA, trusted by nginx only.
        cls.user_ca = pki.ca("user-ca", "end users CA")
        cls.alice = pki.issue(cls.user_ca, "user-alice", "alice", orgs=["dev"])
        cls.carol = pki.issue(cls.user_ca, "user-carol", "carol", orgs=["qa"])
        cls.mallory = pki.issue(cls.user_ca, "user-mallory", "mallory", orgs=["guests"])
        # Signed by the requestheader CA, but not an allowed name.
        cls.not_allowed = pki.issue(cls.pki.front_proxy_ca, "not-allowed", "some-other-proxy")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls._pki_dir, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend(watch_interval=1.0)
        self.start_proxy()
        self.start_nginx()

    # --- processes ----------------------------------------------------------------------------

    def start_proxy(self):
        policy = self.tmp / "policy.yaml"
        policy.write_text(POLICY)
        self.proxy_port = harness.free_port()
        self.proxy_url = f"https://127.0.0.1:{self.proxy_port}"
        self.proxy = self.start("aa-proxy", [
            PROXY, "--secure-port", str(self.proxy_port), "--bind-address", "127.0.0.1",
            "--tls-cert-file", self.pki.server.cert, "--tls-private-key-file", self.pki.server.key,
            "--requestheader-client-ca-file", self.pki.front_proxy_ca.cert,
            "--requestheader-allowed-names", "front-proxy-client",
            "--authentication-skip-lookup", "--authorization-mode", "static",
            "--authorization-policy-file", policy, "--upstream", self.backend.upstream,
            "--workers", "2", "-v", "2"])
        self.proxy.wait_for_log(r"serving on https://", timeout=20)

    def start_nginx(self):
        self.port = harness.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        nginx_dir = self.tmp / "nginx"
        nginx_dir.mkdir()
        conf = nginx_dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            dir=nginx_dir, port=self.port, proxy_port=self.proxy_port,
            server_cert=self.pki.server.cert, server_key=self.pki.server.key,
            user_ca=self.user_ca.cert,
            front_proxy_cert=self.pki.front_proxy_client.cert,
            front_proxy_key=self.pki.front_proxy_client.key,
            aa_proxy_ca=self.pki.ca.cert,
            forwarded="\n".join(
                f"            proxy_set_header {name} $http_{name.lower().replace('-', '_')};"
                for name in FORWARDED_REQUEST_HEADERS)))
        self.nginx_dir = nginx_dir
        self.nginx = self.start("nginx", [NGINX, "-p", nginx_dir, "-c", conf,
                                          "-e", nginx_dir / "nginx-error.log",
                                          "-g", "daemon off;"])
        harness.wait_until(lambda: self._nginx_up(), timeout=20, what="nginx to listen")

    def _nginx_up(self):
        if not self.nginx.alive():
            error_log = self.nginx_dir / "nginx-error.log"
            raise harness.StopWaiting(
                self.nginx.log_text() + (error_log.read_text() if error_log.exists() else ""))
        return harness.tcp_accepts(self.port)

    def tearDown(self):
        error_log = getattr(self, "nginx_dir", None)
        if error_log is not None and self._failed():
            path = error_log / "nginx-error.log"
            if path.exists():
                sys.stderr.write("\n===== nginx-error.log =====\n" + path.read_text()[-10000:])
        super().tearDown()

    # --- clients ------------------------------------------------------------------------------

    def user(self, cert_key) -> harness.TlsClient:
        return harness.TlsClient(cacert=self.pki.ca.cert, cert=cert_key.cert, key=cert_key.key)

    def via_nginx(self, path, user, **kwargs) -> harness.CurlResult:
        return harness.curl(self.url + path, tls=self.user(user), **kwargs)

    def direct(self, path, cert_key=None, **kwargs) -> harness.CurlResult:
        tls = self.user(cert_key) if cert_key else harness.TlsClient(cacert=self.pki.ca.cert)
        return harness.curl(self.proxy_url + path, tls=tls, **kwargs)

    def backend_headers(self, result):
        self.assertEqual(result.status, 200, result.stderr + result.text)
        return json.loads(result.body)["headers"]

    # --- cases --------------------------------------------------------------------------------

    def test_backend_sees_the_end_user_identity_set_by_nginx(self):
        for user, name, group in [(self.alice, "alice", "dev"), (self.carol, "carol", "qa")]:
            with self.subTest(user=name):
                headers = self.backend_headers(self.via_nginx("/debug/headers", user))
                self.assertEqual(header_values(headers, "X-Remote-User"), [name])
                self.assertEqual(header_values(headers, "X-Remote-Group"),
                                 [group, "system:authenticated"])
                self.assertEqual([n for n, _ in headers if n.lower().startswith("x-remote-extra-")],
                                 [])
                # nginx's $remote_addr, then the client aa-proxy saw (nginx), as ReverseProxy.
                self.assertEqual(header_values(headers, "X-Forwarded-For"),
                                 ["127.0.0.1, 127.0.0.1"])
                # The front-proxy certificate authenticated nginx; its own name is no identity.
                for n, v in headers:
                    self.assertNotIn("front-proxy-client", v, n)

    def test_exact_list_through_both_proxies(self):
        result = self.via_nginx(GV + "/namespaces/default/samples", self.alice)
        self.assertEqual((result.status, result.body), (200, LIST_DEFAULT), result.stderr)
        # aa-proxy's request log line names the end user (its format beyond that may change).
        self.assertRegex(self.proxy.log_text(),
                         r'"GET /apis/sample-api-server/v1alpha1/namespaces/default/samples"'
                         r'[^\n]* user="alice"[^\n]* status=200')

    def test_spoofed_identity_headers_do_not_get_through_nginx(self):
        spoof = ["X-Remote-User: system:admin", "X-Remote-Group: system:masters",
                 "X-Remote-Extra-Scopes: all", "Impersonate-User: system:admin",
                 "Impersonate-Group: system:masters"]
        headers = self.backend_headers(self.via_nginx("/debug/headers", self.mallory,
                                                      headers=spoof))
        self.assertEqual(header_values(headers, "X-Remote-User"), ["mallory"])
        self.assertEqual(header_values(headers, "X-Remote-Group"),
                         ["guests", "system:authenticated"])
        self.assertEqual(header_values(headers, "X-Remote-Extra-Scopes"), [])
        for name, value in headers:
            self.assertNotIn("system:admin", value, f"{name}: {value}")
            self.assertNotIn("system:masters", value, f"{name}: {value}")
            self.assertFalse(name.lower().startswith("impersonate-"), name)

        # Claiming to be alice of group dev does not give mallory alice's rights.
        result = self.via_nginx(GV + "/namespaces/default/samples", self.mallory,
                                headers=["X-Remote-User: alice", "X-Remote-Group: dev",
                                         "User-Agent: kubectl/v1.32.4"])
        self.assertEqual(result.status, 403, result.text)
        status = json.loads(result.body)
        self.assertEqual(status["message"],
                         'samples.sample-api-server is forbidden: User "mallory" cannot list '
                         'resource "samples" in API group "sample-api-server" in the namespace '
                         '"default"')
        self.assertNotIn(f"GET {GV}/namespaces", self.backend.process.log_text())

    def test_nginx_requires_the_end_user_certificate(self):
        result = harness.curl(self.url + "/debug/headers",
                              tls=harness.TlsClient(cacert=self.pki.ca.cert),
                              headers=["X-Remote-User: alice", "X-Remote-Group: dev"])
        self.assertEqual(result.status, 400, result.text)
        self.assertIn(b"No required SSL certificate was sent", result.body)
        self.assertNotIn("/debug/headers", self.backend.process.log_text())

    def test_direct_front_proxy_certificate_not_in_allowed_names_is_401(self):
        result = self.direct("/debug/headers", self.not_allowed,
                             headers=["X-Remote-User: alice", "X-Remote-Group: dev",
                                      "User-Agent: kubectl/v1.32.4"])
        self.assertEqual(result.exit_code, 0, result.stderr)
        self.assertEqual(result.status, 401, result.text)
        self.assertEqual(json.loads(result.body), {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        self.assertNotIn("/debug/headers", self.backend.process.log_text())

    def test_direct_end_user_certificate_is_not_trusted_by_aa_proxy(self):
        # aa-proxy trusts only the requestheader CA: the user CA's certificate completes the
        # handshake (nothing is verified there, as upstream), then the request-header
        # authenticator refuses it, which is a 401 even with anonymous authentication on.
        result = self.direct("/debug/headers", self.alice,
                             headers=["X-Remote-User: alice", "User-Agent: kubectl/v1.32.4"])
        self.assertEqual(result.exit_code, 0, result.stderr)
        self.assertEqual(result.status, 401, result.text)
        self.assertEqual(result.body, (
            b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
            b'"message":"Unauthorized","reason":"Unauthorized","code":401}\n'))
        self.assertNotIn("/debug/headers", self.backend.process.log_text())
        self.proxy.wait_for_log(r"Unable to authenticate the request: x509: certificate signed "
                                r"by unknown authority$", timeout=5)

    def test_direct_allowed_front_proxy_certificate_is_trusted(self):
        # The control for the 401 above: the allowed name with the same headers gets through.
        result = self.direct("/debug/headers", self.pki.front_proxy_client,
                             headers=["X-Remote-User: alice", "X-Remote-Group: dev"])
        headers = self.backend_headers(result)
        self.assertEqual(header_values(headers, "X-Remote-User"), ["alice"])
        self.assertEqual(header_values(headers, "X-Remote-Group"), ["dev", "system:authenticated"])

    def test_aggregator_style_request_with_extras_and_masters_group(self):
        # What kube-aggregator itself sends on the front-proxy connection: its availability
        # probe as system:kube-aggregator in system:masters (always allowed, no policy rule),
        # and user extras with percent-escaped keys.
        identity = ["X-Remote-User: system:kube-aggregator", "X-Remote-Group: system:masters"]
        result = self.direct(GV, self.pki.front_proxy_client, headers=identity)
        self.assertEqual(result.status, 200, result.text)
        headers = self.backend_headers(self.direct(
            "/debug/headers", self.pki.front_proxy_client,
            headers=identity + ["X-Remote-Extra-Acme.com%2Fproject: foo",
                                "X-Remote-Extra-Acme.com%2Fproject: bar",
                                "X-Remote-Extra-Scopes: a b"]))
        self.assertEqual(header_values(headers, "X-Remote-User"), ["system:kube-aggregator"])
        self.assertEqual(header_values(headers, "X-Remote-Group"),
                         ["system:masters", "system:authenticated"])
        # Keys are case-insensitive (lowercased by the authenticator) and escaped again on the
        # way to the backend; header names compare case-insensitively.
        self.assertEqual(header_values(headers, "X-Remote-Extra-acme.com%2Fproject"),
                         ["foo", "bar"])
        self.assertEqual(header_values(headers, "X-Remote-Extra-Scopes"), ["a b"])

    @unittest.skipIf(shutil.which("kubectl") is None, "no kubectl on PATH")
    def test_kubectl_through_both_proxies(self):
        kubeconfig = self.tmp / "kubectl.kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "nginx", "cluster": {
                "server": self.url, "certificate-authority": str(self.pki.ca.cert)}}],
            "users": [{"name": name, "user": {"client-certificate": str(ck.cert),
                                              "client-key": str(ck.key)}}
                      for name, ck in (("alice", self.alice), ("mallory", self.mallory))],
            "contexts": [{"name": name, "context": {"cluster": "nginx", "user": name,
                                                    "namespace": "default"}}
                         for name in ("alice", "mallory")],
            "current-context": "alice"}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["HOME"] = str(self.tmp)

        def kubectl(user, *args):
            return subprocess.run(
                [shutil.which("kubectl"), "--kubeconfig", str(kubeconfig), "--context", user,
                 "--cache-dir", str(self.tmp / f"cache-{user}"), "--request-timeout", "20s",
                 *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)

        result = kubectl("alice", "get", "samples")
        self.assertEqual((result.returncode, result.stdout.decode()),
                         (0, "NAME      AGE\nsample1   <unknown>\n"), result.stderr.decode())
        result = kubectl("mallory", "get", "samples")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.decode(),
                         'Error from server (Forbidden): samples.sample-api-server is forbidden: '
                         'User "mallory" cannot list resource "samples" in API group '
                         '"sample-api-server" in the namespace "default"\n')

    def test_watch_streams_through_both_proxies(self):
        stream = harness.StreamingCurl(
            self.url + GV + "/namespaces/ns1/samples?watch=true&timeoutSeconds=4",
            tls=self.user(self.alice))
        try:
            lines = stream.wait_lines(2, timeout=15)
            ended_at, exit_code = stream.wait_eof(timeout=15)
        finally:
            stream.close()
        self.assertGreaterEqual(len(lines), 2, lines)
        (t1, first), (t2, second) = lines[:2]
        self.assertEqual(first, watch_event("ADDED", "ns1", 1))
        self.assertEqual(second, watch_event("MODIFIED", "ns1", 2))
        self.assertEqual(exit_code, 0)
        self.assertGreater(ended_at, 3.5)
        # The backend sends the first event at once and ends the stream after 4 s; buffering in
        # nginx or aa-proxy would deliver it near the end.
        self.assertLess(t1, 2.0, f"first event at {t1:.2f}s, stream ended at {ended_at:.2f}s")
        self.assertGreater(t2 - t1, 0.5, "events one interval apart")


if __name__ == "__main__":
    unittest.main(verbosity=2)
