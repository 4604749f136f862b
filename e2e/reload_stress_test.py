"""Everything reloads at once while several workers serve (issue #12: the snapshot swaps).

aa-proxy runs with E2E_PROXY_WORKERS workers (default 4) in cluster mode, static,webhook
authorization and --tls-reload-interval 200ms. Load threads keep calling, each as one kind of
caller, so that every worker verifies certificates against the shared CA pools, looks up the
shared TokenReview and SubjectAccessReview caches (misses too: namespaces and tokens cycle)
and scrapes /metrics while other threads write them:
  - keep-alive connections: a front-proxy user over cycling namespaces (SARs), bearer tokens
    cycling over a set the proxy reviews once each (TokenReviews), an x509 user;
  - a new TLS connection per request: an x509 user and a user the static policy allows, so
    handshakes take whichever serving context and CA names are current;
  - /metrics as system:masters on a new connection each time.
Meanwhile, ROUNDS times, the test changes each reloadable input and waits until the proxy took
it: the extension-apiserver-authentication ConfigMap (the client CA bundle gains and loses a CA,
the allowed names a name: new authentication snapshots for every worker), the static policy
file (SIGHUP: a new authorizer), and the serving certificate (key and certificate renamed into
place: a new TLS context). None of the changes takes anything away from the load's callers, so
every load request must get 200 and, for the sample list, the exact body. Under
tools/tsan.sh this is the suite that exercises the swaps with ThreadSanitizer watching.
"""

import http.client
import os
import re
import shutil
import signal
import ssl
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from cluster import KUBECTL, ClusterTestCase, json_array  # noqa: E402

GV = "/apis/sample-api-server/v1alpha1"
WORKERS = os.environ.get("E2E_PROXY_WORKERS", "4")
ROUNDS = 20
TOKENS = [f"e2e-stress-token-{i:02d}" for i in range(16)]
NAMESPACES = [f"stress-{i:02d}" for i in range(24)]
POLICY = {
    "tokens": {t: {"username": f"stress-{t[-2:]}", "groups": ["stress"]} for t in TOKENS},
    "sar": [{"allowed": True}],
}
STATIC_RULE = ("- users: [static-reader]\n  verbs: [list]\n  apiGroups: [sample-api-server]\n"
               "  resources: [samples]\n")
STATIC_POLICIES = ("rules:\n" + STATIC_RULE,
                   "rules:\n" + STATIC_RULE + "- users: [static-reader]\n  verbs: [get]\n"
                   "  nonResourceURLs: [/stress/*]\n")
USER_AGENT = KUBECTL.split(": ", 1)[1]


def sample_list(namespace: str) -> bytes:
    return (b'{"apiVersion":"sample-api-server/v1alpha1","kind":"SampleList","metadata":'
            b'{"resourceVersion":"1"},"items":[{"apiVersion":"sample-api-server/v1alpha1",'
            b'"kind":"Sample","metadata":{"name":"sample1"},"spec":{"name":"' +
            namespace.encode() + b'"}}]}\n')


class Caller(threading.Thread):
    """Calls `next_request()` -> (path, headers) in a loop until stopped, on one keep-alive
    connection or a new one per request; records (status, body matched, error) per request."""

    def __init__(self, name: str, port: int, context: ssl.SSLContext,
                 next_request: Callable[[int], Tuple[str, Dict[str, str]]],
                 expected: Callable[[str, bytes], bool], keep_alive: bool):
        super().__init__(name=name, daemon=True)
        self.port, self.context, self.keep_alive = port, context, keep_alive
        self.next_request, self.expected = next_request, expected
        self.outcomes: List[Tuple[str, int, bool, Optional[str]]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        conn: Optional[http.client.HTTPSConnection] = None
        i = 0
        while not self.stopping.is_set():
            path, headers = self.next_request(i)
            i += 1
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context,
                                                   timeout=30)
            try:
                conn.request("GET", path, headers=dict(headers, **{"User-Agent": USER_AGENT}))
                response = conn.getresponse()
                body = response.read()
                self.outcomes.append((path, response.status, self.expected(path, body), None))
            except (OSError, http.client.HTTPException) as e:
                self.outcomes.append((path, 0, False, f"{type(e).__name__}: {e}"))
                conn.close()
                conn = None
                self.stopping.wait(0.1)
            if conn is not None and not self.keep_alive:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)

    def failures(self) -> List[Tuple[str, int, bool, Optional[str]]]:
        return [o for o in self.outcomes if o[1] != 200 or not o[2]]


class ReloadStressTest(ClusterTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server_2 = cls.pki.pki.issue(cls.pki.ca, "stress-server-2", "aa-proxy-rotated",
                                         ext_key_usage="serverAuth",
                                         sans=["IP:127.0.0.1", "DNS:localhost"])

    def context(self, cert_key: Optional[harness.CertKey] = None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(self.pki.ca.cert))
        context.set_alpn_protocols(["http/1.1"])
        if cert_key is not None:
            context.load_cert_chain(str(cert_key.cert), str(cert_key.key))
        return context

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.proxy.log_text(), re.MULTILINE))

    def serving_cert(self) -> bytes:
        with harness.tls_connect(self.port, self.tls()) as s:
            return s.getpeercert(binary_form=True)

    def test_reloads_while_workers_serve(self):
        serving = harness.CertKey(self.tmp / "serving.crt", self.tmp / "serving.key")
        certs = (self.pki.server, self.server_2)
        shutil.copy(certs[0].cert, serving.cert)
        shutil.copy(certs[0].key, serving.key)
        policy_path = self.tmp / "static-policy.yaml"
        policy_path.write_text(STATIC_POLICIES[0])
        self.write_policy(POLICY)
        self.start_apiserver()
        self.backend = self.start_backend()
        argv = [str(a) for a in self.proxy_argv(self.backend.upstream, [
            "--authorization-mode", "static,webhook", "--authorization-policy-file",
            str(policy_path), "--tls-reload-interval", "200ms"])]
        argv[argv.index(str(self.pki.server.cert))] = str(serving.cert)
        argv[argv.index(str(self.pki.server.key))] = str(serving.key)
        argv[argv.index("--workers") + 1] = WORKERS
        self.proxy = self.start("aa-proxy", argv)
        self.proxy.wait_for_log(r"serving on https://", timeout=60)
        harness.wait_until(lambda: self.count(r"loaded kube-system/extension-apiserver-auth") >= 1,
                           timeout=30, what="the first ConfigMap load")

        def namespaced(i: int) -> str:
            return f"{GV}/namespaces/{NAMESPACES[i % len(NAMESPACES)]}/samples"

        def front_proxy(user: str) -> Dict[str, str]:
            return {"X-Remote-User": user, "X-Remote-Group": "dev"}

        def is_sample_list(path: str, body: bytes) -> bool:
            return body == sample_list(path.split("/")[-2])

        def is_metrics(path: str, body: bytes) -> bool:
            return (body.startswith(b"# HELP ") and
                    b"\n# TYPE aaproxy_tls_reloads_total counter\n" in body)

        masters = {"X-Remote-User": "stress-metrics", "X-Remote-Group": "system:masters"}
        callers = [
            Caller("front-proxy", self.port, self.context(self.pki.front_proxy_client),
                   lambda i: (namespaced(i), front_proxy("alice")), is_sample_list, True),
            Caller("token", self.port, self.context(),
                   lambda i: (namespaced(i + 7),
                              {"Authorization": f"Bearer {TOKENS[i % len(TOKENS)]}"}),
                   is_sample_list, True),
            Caller("x509", self.port, self.context(self.carol),
                   lambda i: (namespaced(i + 3), {}), is_sample_list, True),
            Caller("x509-new-connections", self.port, self.context(self.pki.alice),
                   lambda i: (namespaced(i + 11), {}), is_sample_list, False),
            Caller("static-new-connections", self.port,
                   self.context(self.pki.front_proxy_client),
                   lambda i: (namespaced(i + 5), front_proxy("static-reader")), is_sample_list,
                   False),
            Caller("metrics", self.port, self.context(self.pki.front_proxy_client),
                   lambda i: ("/metrics", masters), is_metrics, False),
        ]
        for caller in callers:
            caller.start()
        self.addCleanup(lambda: [caller.stop() for caller in callers])

        def served_more(n: int) -> None:
            counts = [len(caller.outcomes) for caller in callers]
            harness.wait_until(
                lambda: all(len(c.outcomes) >= before + n for c, before in zip(callers, counts)),
                timeout=60, what=f"every caller to complete {n} more requests")

        served_more(3)
        configmaps = self.count(r"loaded kube-system/extension-apiserver-authentication")
        for round_ in range(1, ROUNDS + 1):
            # The ConfigMap: an extra client CA and an extra allowed name, every other round.
            data = self.default_configmap()
            if round_ % 2:
                data["client-ca-file"] += self.pki.other_ca.cert.read_text()
                data["requestheader-allowed-names"] = json_array("front-proxy-client",
                                                                 "not-front-proxy")
            self.write_configmap(data)
            # The static policy, reloaded on SIGHUP.
            policy_path.write_text(STATIC_POLICIES[round_ % 2])
            self.proxy.popen.send_signal(signal.SIGHUP)
            # The serving certificate: key first, then certificate, each renamed into place.
            cert = certs[round_ % 2]
            for source, target in ((cert.key, serving.key), (cert.cert, serving.cert)):
                shutil.copy(source, target.with_suffix(".tmp"))
                os.replace(target.with_suffix(".tmp"), target)
            expected_der = ssl.PEM_cert_to_DER_cert(cert.cert.read_text())

            harness.wait_until(lambda: self.count(r"reloaded --authorization-policy-file") >=
                               round_, timeout=30, what=f"policy reload {round_}")
            harness.wait_until(lambda: self.count(r"loaded kube-system/extension-apiserver-"
                                                  r"authentication") >= configmaps + round_,
                               timeout=30, what=f"ConfigMap load {round_}")
            harness.wait_until(lambda: self.serving_cert() == expected_der, timeout=30,
                               what=f"serving certificate {round_}")
            served_more(2)

        for caller in callers:
            caller.stop()
        self.assertTrue(self.proxy.alive(), f"aa-proxy exited: {self.proxy.popen.returncode}")
        for caller in callers:
            self.assertGreaterEqual(len(caller.outcomes), 2 * ROUNDS + 3, caller.name)
            self.assertEqual(caller.failures()[:5], [], caller.name)


if __name__ == "__main__":
    unittest.main()
