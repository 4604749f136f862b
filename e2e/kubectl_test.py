"""The machine's kubectl against aa-proxy as if aa-proxy were the API server.

Chain under test:
  kubectl (kubeconfig written by the test) --TLS--> aa-proxy --HTTP--> sample backend
                                                       |
                                                       +--TLS--> fake_apiserver.py
                                                         (ConfigMap, TokenReview, SubjectAccessReview)

aa-proxy runs in delegated mode, as in a cluster:
  aa-proxy --secure-port P --bind-address 127.0.0.1 --tls-cert-file F --tls-private-key-file F
           --client-ca-file CA --authentication-kubeconfig K --authorization-kubeconfig K
           --upstream URL --workers 2 -v 2
where K points at the apiserver double with a bearer token that the double requires
(`api_tokens`), so every TokenReview/SAR aa-proxy sends is checked to carry its own credentials.

kubectl users (one context each, namespace default):
  alice  client certificate CN=alice O=dev          allowed (group dev)
  carol  bearer token, reviewed as carol / [dev]     allowed (group dev)
  dave   bearer token, reviewed as dave / [guests]   discovery only: listing samples is denied
  eve    client certificate CN=eve O=guests          discovery only: listing samples is denied
carol may also impersonate eve (`kubectl --as eve`), and no one else.

kubectl needs discovery before `kubectl get samples`: GET /api (the sample backend answers 404,
which client-go's discovery tolerates, as for very old servers), GET /apis (the backend's
APIGroupList; kubectl asks for the aggregated apidiscovery v2 format first and accepts the plain
list) and then GET /apis/sample-api-server/v1alpha1 (the APIResourceList). The SAR policy allows
those non-resource paths to every authenticated user, and get/list/watch of samples to group dev.

Run: bazel test //e2e:kubectl_test, or E2E_BAZEL_BIN=... python3 e2e/kubectl_test.py -v
"""

import json
import re
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from sample_backend_test import DISCOVERY, GV, LIST_DEFAULT  # noqa: E402

PROXY = harness.find_binary("proxy/aa-proxy")
KUBECTL = shutil.which("kubectl")
FAKE_APISERVER = Path(os.path.dirname(os.path.abspath(__file__))) / "fake_apiserver.py"

GET_DEFAULT_SAMPLE1 = (
    b'{"apiVersion":"sample-api-server/v1alpha1","kind":"Sample","metadata":{"name":"sample1"},'
    b'"spec":{"name":"default.sample1"}}\n')

PROXY_TOKEN = "aa-proxy-service-account-token"
CAROL_TOKEN = "carol-token-0123456789"
DAVE_TOKEN = "dave-token-0123456789"

DISCOVERY_PATHS = ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"]

POLICY = {
    "api_tokens": [PROXY_TOKEN],
    "tokens": {
        CAROL_TOKEN: {"username": "carol", "uid": "carol-uid", "groups": ["dev"]},
        DAVE_TOKEN: {"username": "dave", "uid": "dave-uid", "groups": ["guests"]},
    },
    "sar": (
        [{"group": "dev", "verb": verb, "apiGroup": "sample-api-server", "resource": "samples",
          "subresource": "", "allowed": True} for verb in ("get", "list", "watch")] +
        [{"group": "system:authenticated", "path": path, "verb": "get", "allowed": True}
         for path in DISCOVERY_PATHS] +
        [{"user": "carol", "path": "/metrics", "verb": "get", "allowed": True}] +
        # carol may act as eve (kubectl --as eve), and as nobody else. Users are impersonated
        # in the core group "" (upstream's RBAC for it: apiGroups [""], resources ["users"]).
        [{"user": "carol", "verb": "impersonate", "apiGroup": "",
          "resource": "users", "subresource": "", "name": "eve", "namespace": "",
          "allowed": True}]),
}

FORBIDDEN_LIST = ('Error from server (Forbidden): samples.sample-api-server is forbidden: '
                  'User "{user}" cannot list resource "samples" in API group "sample-api-server" '
                  'in the namespace "default"')


@unittest.skipIf(PROXY is None, "//proxy:aa-proxy is not built; run `bazel test //e2e:kubectl_test`")
@unittest.skipIf(KUBECTL is None, "no kubectl on PATH")
class KubectlTest(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._pki_dir = Path(tempfile.mkdtemp(prefix="pki-", dir=os.environ.get("TEST_TMPDIR")))
        cls.pki = harness.Pki(cls._pki_dir).standard()
        cls.eve = cls.pki.pki.issue(cls.pki.ca, "eve", "eve", orgs=["guests"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls._pki_dir, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.backend = self.start_backend(watch_interval=1.0)
        self.start_fake_apiserver()
        self.start_proxy()
        self.kubeconfig = self.write_kubectl_kubeconfig()

    # --- processes ----------------------------------------------------------------------------

    def start_fake_apiserver(self):
        self.policy_file = self.tmp / "policy.json"
        self.policy_file.write_text(json.dumps(POLICY))
        configmap = self.tmp / "configmap.json"
        configmap.write_text(json.dumps({"client-ca-file": self.pki.ca.cert.read_text()}))
        self.fake = self.start("fake-apiserver", [
            sys.executable, FAKE_APISERVER, "--cert", self.pki.server.cert,
            "--key", self.pki.server.key, "--configmap-file", configmap,
            "--policy-file", self.policy_file])
        match = self.fake.wait_for_log(r"^listening on (\S+)$")
        self.fake_url = "https://" + match.group(1)

    def start_proxy(self):
        kubeconfig = self.tmp / "aa-proxy.kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "kube", "cluster": {
                "server": self.fake_url, "certificate-authority": str(self.pki.ca.cert)}}],
            "users": [{"name": "aa-proxy", "user": {"token": PROXY_TOKEN}}],
            "contexts": [{"name": "kube", "context": {"cluster": "kube", "user": "aa-proxy"}}],
            "current-context": "kube"}))
        self.port = harness.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proxy = self.start("aa-proxy", [
            PROXY, "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
            "--tls-cert-file", self.pki.server.cert, "--tls-private-key-file", self.pki.server.key,
            "--client-ca-file", self.pki.ca.cert,
            "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
            "--upstream", self.backend.upstream, "--workers", "2", "-v", "2"])
        self.proxy.wait_for_log(r"serving on https://", timeout=20)
        tls = harness.TlsClient(cacert=self.pki.ca.cert)

        def ready():
            if not self.proxy.alive():
                raise harness.StopWaiting()
            return harness.curl(self.url + "/healthz", tls=tls, timeout=2).status == 200

        try:
            harness.wait_until(ready, timeout=20, what="aa-proxy to answer /healthz")
        except harness.StopWaiting:
            self.fail(f"aa-proxy exited with {self.proxy.popen.returncode}")

    def write_kubectl_kubeconfig(self) -> Path:
        users = {
            "alice": {"client-certificate": str(self.pki.alice.cert),
                      "client-key": str(self.pki.alice.key)},
            "eve": {"client-certificate": str(self.eve.cert), "client-key": str(self.eve.key)},
            "carol": {"token": CAROL_TOKEN},
            "dave": {"token": DAVE_TOKEN},
        }
        path = self.tmp / "kubectl.kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "aa-proxy", "cluster": {
                "server": self.url, "certificate-authority": str(self.pki.ca.cert)}}],
            "users": [{"name": name, "user": user} for name, user in users.items()],
            "contexts": [{"name": name, "context": {"cluster": "aa-proxy", "user": name,
                                                    "namespace": "default"}}
                         for name in users],
            "current-context": "alice"}))
        return path

    # --- kubectl ------------------------------------------------------------------------------

    def kubectl_argv(self, user, *args):
        return [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--context", user,
                "--cache-dir", str(self.tmp / f"kube-cache-{user}"), "--request-timeout", "20s",
                *args]

    def kubectl_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["HOME"] = str(self.tmp)  # no ~/.kube of the machine
        return env

    def kubectl(self, user, *args, timeout=30) -> subprocess.CompletedProcess:
        return subprocess.run(self.kubectl_argv(user, *args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=self.kubectl_env(), timeout=timeout)

    def recorded(self):
        result = harness.curl(self.fake_url + "/__recorded",
                              tls=harness.TlsClient(cacert=self.pki.ca.cert))
        return json.loads(result.body)

    def sars(self):
        return [json.loads(r["body"])["spec"] for r in self.recorded()
                if r["path"].startswith("/apis/authorization.k8s.io/v1/subjectaccessreviews")]

    def token_reviews(self):
        return [json.loads(r["body"])["spec"] for r in self.recorded()
                if r["path"].startswith("/apis/authentication.k8s.io/v1/tokenreviews")]

    # --- cases --------------------------------------------------------------------------------

    def test_get_raw_exact_bodies_for_certificate_and_token_users(self):
        for user in ("alice", "carol"):
            for path, body in [(GV, DISCOVERY),
                               (GV + "/namespaces/default/samples", LIST_DEFAULT),
                               (GV + "/namespaces/default/samples/sample1", GET_DEFAULT_SAMPLE1)]:
                with self.subTest(user=user, path=path):
                    result = self.kubectl(user, "get", "--raw", path)
                    self.assertEqual(result.returncode, 0, result.stderr.decode())
                    self.assertEqual(result.stdout, body)

        # The token was reviewed (with aa-proxy's own credentials), and each user was authorized
        # under its own name.
        self.assertIn(CAROL_TOKEN, [spec.get("token") for spec in self.token_reviews()])
        for r in self.recorded():
            self.assertIn(["Authorization", f"Bearer {PROXY_TOKEN}"],
                          [[n, v] for n, v in r["headers"] if n.lower() == "authorization"],
                          r["path"])
        sar_keys = {(spec["user"], tuple(spec.get("groups", [])),
                     (spec.get("resourceAttributes") or {}).get("verb"),
                     (spec.get("resourceAttributes") or {}).get("name", ""))
                    for spec in self.sars() if spec.get("resourceAttributes")}
        self.assertIn(("alice", ("dev", "system:authenticated"), "list", ""), sar_keys)
        self.assertIn(("alice", ("dev", "system:authenticated"), "get", "sample1"), sar_keys)
        self.assertIn(("carol", ("dev", "system:authenticated"), "list", ""), sar_keys)
        self.assertIn(("carol", ("dev", "system:authenticated"), "get", "sample1"), sar_keys)

    def test_get_samples_prints_the_table(self):
        for user in ("alice", "carol"):
            with self.subTest(user=user):
                result = self.kubectl(user, "get", "samples")
                self.assertEqual(result.returncode, 0, result.stderr.decode())
                self.assertEqual(result.stdout.decode(), "NAME      AGE\nsample1   <unknown>\n")
                self.assertEqual(result.stderr.decode(), "")

    def test_kubectl_speaks_http2_to_aa_proxy(self):
        # kubectl (client-go) offers h2 in ALPN; aa-proxy serves it.
        before = self.handshakes()
        result = self.kubectl("alice", "get", "samples")
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        lines = re.findall(r'access_log\.cc:\d+\] (".*)$', self.proxy.log_text(), re.MULTILINE)
        kubectl_lines = [line for line in lines if 'user="alice"' in line]
        self.assertTrue(kubectl_lines, lines)
        self.assertEqual([line for line in kubectl_lines if not line.endswith("protocol=HTTP/2.0")],
                         [])
        # Streams share connections: client-go may dial a second one while its first handshake
        # is in flight (discovery starts several requests at once), never one per request.
        handshakes = self.handshakes() - before
        self.assertLessEqual(handshakes, 2)
        self.assertGreater(len(kubectl_lines), handshakes + 2, kubectl_lines)

    def handshakes(self) -> float:
        tls = harness.TlsClient(cacert=self.pki.ca.cert)
        result = harness.curl(self.url + "/metrics", tls=tls, headers=[f"Authorization: Bearer "
                                                                       f"{CAROL_TOKEN}"])
        match = re.search(r"^aaproxy_tls_handshakes_total (\S+)$", result.text, re.MULTILINE)
        self.assertIsNotNone(match, result.text[:500])
        # This curl's own handshake is counted before the page is rendered.
        return float(match.group(1)) - 1

    def test_get_sample_by_name(self):
        result = self.kubectl("alice", "get", "samples", "sample1", "-o", "json")
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.assertEqual(json.loads(result.stdout), json.loads(GET_DEFAULT_SAMPLE1))

    def test_kubectl_discovery_requests(self):
        # What kubectl asks for before it can resolve "samples" (seen with -v=6), all answered
        # through aa-proxy: the legacy and named group lists, then the group version.
        result = self.kubectl("alice", "get", "samples", "-v=6")
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        log = result.stderr.decode()
        requests = re.findall(r"round_trippers\.go:\d+\] (GET \S+ \d+ [A-Za-z ]+?) in \d+ millisec",
                              log)
        self.assertEqual(requests, [
            f"GET {self.url}/api?timeout=20s 404 Not Found",
            f"GET {self.url}/apis?timeout=20s 200 OK",
            f"GET {self.url}{GV}?timeout=20s 200 OK",
            f"GET {self.url}{GV}/namespaces/default/samples?limit=500&timeout=20s 200 OK"], log)
        paths = {(spec["user"], spec["nonResourceAttributes"]["path"])
                 for spec in self.sars() if spec.get("nonResourceAttributes")}
        self.assertLessEqual({("alice", "/api"), ("alice", "/apis"), ("alice", GV)}, paths)

    def test_denied_users_see_the_forbidden_line(self):
        for user in ("dave", "eve"):
            with self.subTest(user=user):
                result = self.kubectl(user, "get", "samples")
                self.assertEqual(result.returncode, 1, result.stdout.decode())
                self.assertEqual(result.stdout, b"")
                self.assertEqual(result.stderr.decode(), FORBIDDEN_LIST.format(user=user) + "\n")
        # aa-proxy answered the 403 itself: the backend saw discovery but never a samples list.
        self.assertIn(f"GET {GV}?", self.backend.process.log_text())
        self.assertNotIn(f"GET {GV}/namespaces", self.backend.process.log_text())
        denied = {(spec["user"], tuple(spec.get("groups", [])))
                  for spec in self.sars()
                  if (spec.get("resourceAttributes") or {}).get("verb") == "list"}
        self.assertEqual(denied, {("dave", ("guests", "system:authenticated")),
                                  ("eve", ("guests", "system:authenticated"))})

    def test_denied_get_raw(self):
        result = self.kubectl("dave", "get", "--raw", GV + "/namespaces/default/samples")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, b"")
        self.assertEqual(result.stderr.decode(), FORBIDDEN_LIST.format(user="dave") + "\n")

    def test_impersonation_with_as(self):
        # Allowed: carol acts as eve, who may discover but not list samples.
        result = self.kubectl("carol", "--as", "eve", "get", "samples")
        self.assertEqual(result.returncode, 1, result.stdout.decode())
        self.assertEqual(result.stderr.decode(), FORBIDDEN_LIST.format(user="eve") + "\n")
        sars = self.sars()
        self.assertIn({"user": "carol", "groups": ["dev", "system:authenticated"],
                       "uid": "carol-uid",
                       "resourceAttributes": {"verb": "impersonate", "resource": "users",
                                              "name": "eve"}}, sars)
        # The list was authorized as eve alone (no groups asked for: system:authenticated).
        self.assertIn(("eve", ["system:authenticated"]),
                      [(spec["user"], spec.get("groups")) for spec in sars
                       if (spec.get("resourceAttributes") or {}).get("verb") == "list"])
        # Not allowed: carol may not act as alice.
        result = self.kubectl("carol", "--as", "alice", "get", "--raw",
                              GV + "/namespaces/default/samples")
        self.assertEqual(result.returncode, 1, result.stdout.decode())
        self.assertEqual(result.stderr.decode(),
                         'Error from server (Forbidden): users "alice" is forbidden: User "carol" '
                         'cannot impersonate resource "users" in API group "" at the cluster '
                         'scope\n')
        self.assertNotIn(f"GET {GV}/namespaces", self.backend.process.log_text())

    def test_repeated_requests_reuse_cached_reviews(self):
        # Within the default cache TTLs (10 s), the same token is reviewed once and the same
        # request authorized once, however many kubectl runs (new connections) ask.
        for _ in range(3):
            result = self.kubectl("carol", "get", "--raw", GV + "/namespaces/default/samples")
            self.assertEqual((result.returncode, result.stdout), (0, LIST_DEFAULT),
                             result.stderr.decode())
        self.assertEqual([spec.get("token") for spec in self.token_reviews()], [CAROL_TOKEN])
        lists = [spec for spec in self.sars()
                 if (spec.get("resourceAttributes") or {}).get("verb") == "list"]
        self.assertEqual(len(lists), 1, lists)

    def test_unknown_token_is_unauthorized(self):
        config = json.loads(self.kubeconfig.read_text())
        config["users"].append({"name": "nobody", "user": {"token": "not-a-known-token"}})
        config["contexts"].append({"name": "nobody", "context": {
            "cluster": "aa-proxy", "user": "nobody", "namespace": "default"}})
        self.kubeconfig.write_text(json.dumps(config))
        result = self.kubectl("nobody", "get", "--raw", GV)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.decode(),
                         "error: You must be logged in to the server (Unauthorized)\n")

    def test_watch_receives_the_first_event(self):
        proc = subprocess.Popen(self.kubectl_argv("alice", "get", "samples", "-w",
                                                  "--output-watch-events"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.kubectl_env())
        lines = []
        cond = threading.Condition()
        started = time.monotonic()

        def read():
            for line in iter(proc.stdout.readline, b""):
                with cond:
                    lines.append((time.monotonic() - started, line.decode().split()))
                    cond.notify_all()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            with cond:
                cond.wait_for(lambda: len(lines) >= 4 or proc.poll() is not None, timeout=20)
                got = list(lines)
        finally:
            proc.kill()  # kubectl -w never ends by itself
            proc.wait()
            reader.join(5)
            stderr = proc.stderr.read().decode()
            proc.stdout.close()
            proc.stderr.close()
        # The header, the list's item (printed as ADDED), then the watch stream: the backend
        # sends ADDED at once and MODIFIED one --watch-interval (1 s) later.
        self.assertEqual([words for _, words in got], [
            ["EVENT", "NAME", "AGE"], ["ADDED", "sample1", "<unknown>"],
            ["ADDED", "sample1", "<unknown>"], ["MODIFIED", "sample1", "<unknown>"]],
            f"stderr: {stderr}")
        # The watch's first event arrived on its own, not held back until the next one.
        first_event_at, second_event_at = got[2][0], got[3][0]
        self.assertGreater(second_event_at - first_event_at, 0.5,
                           f"watch events at {first_event_at:.2f}s and {second_event_at:.2f}s")
        self.assertRegex(self.backend.process.log_text(),
                         re.escape(f"GET {GV}/namespaces/default/samples?resourceVersion=1&")
                         + r"\S*watch=true -> watch stream")


if __name__ == "__main__":
    unittest.main(verbosity=2)
