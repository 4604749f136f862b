"""Cluster mode for the e2e suites: aa-proxy in front of the sample backend, with the
kube-apiserver double (fake_apiserver.py) answering the ConfigMap lookup, TokenReviews and
SubjectAccessReviews.

  ClusterTestCase.setUpClass   one PKI per class (harness.StandardPki plus a few extras)
  self.write_configmap(data)   the double's kube-system/extension-apiserver-authentication data
  self.write_policy(policy)    the double's policy file (tokens, sar rules, failures)
  self.start_apiserver()       the double over HTTPS (serving cert signed by the client CA)
  self.start_cluster_proxy()   aa-proxy with --authentication/--authorization-kubeconfig
  self.recorded(path)          what the double received (GET /__recorded), filtered by path
  self.reset_recording()       POST /__reset
  self.fetch(path, ...)        curl to the proxy; self.front_proxy(user, groups, extras) etc.
"""

import json
import os
import re
import ssl
import sys
import tempfile
import unittest
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PROXY = harness.find_binary("proxy/aa-proxy")
SKIP_REASON = ("//proxy:aa-proxy is not built (no proxy binary in runfiles or bazel-bin); "
               "run through bazel test //e2e:authn_test //e2e:authz_test")
FAKE_APISERVER = Path(__file__).resolve().parent / "fake_apiserver.py"

TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SARS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps"

# The credential aa-proxy presents to the double (kubeconfig token); the double checks it.
PROXY_SA_TOKEN = "aa-proxy-service-account-token"

KUBECTL = "User-Agent: kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef0"

UNAUTHORIZED = (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                b'"message":"Unauthorized","reason":"Unauthorized","code":401}\n')
UNAUTHORIZED_PRETTY = (b'{\n  "kind": "Status",\n  "apiVersion": "v1",\n  "metadata": {},\n'
                       b'  "status": "Failure",\n  "message": "Unauthorized",\n'
                       b'  "reason": "Unauthorized",\n  "code": 401\n}')


def json_array(*values: str) -> str:
    """A ConfigMap value as kube-apiserver writes it: a JSON array stored as a string."""
    return json.dumps(list(values))


def _go_html_escape(text: str) -> str:
    # encoding/json escapes <, > and & inside strings (they only occur inside strings here).
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_compact(obj) -> bytes:
    """encoding/json's Encoder output (dict order kept, trailing newline), ASCII inputs only."""
    return _go_html_escape(json.dumps(obj, separators=(",", ":"))).encode() + b"\n"


def go_pretty(obj) -> bytes:
    """json.MarshalIndent(obj, "", "  ") (no trailing newline), ASCII inputs only."""
    return _go_html_escape(json.dumps(obj, indent=2, separators=(",", ": "))).encode()


def values_of(headers: Sequence[Sequence[str]], name: str) -> List[str]:
    return [v for n, v in headers if n.lower() == name.lower()]


@unittest.skipIf(PROXY is None, SKIP_REASON)
class ClusterTestCase(harness.E2ETestCase):
    """A fresh double, backend and proxy per test (started explicitly by each test or setUp)."""

    _shared = None  # one PKI per process, shared by every class (openssl takes seconds)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if ClusterTestCase._shared is None:
            directory = Path(tempfile.mkdtemp(prefix="pki-", dir=os.environ.get("TEST_TMPDIR")))
            pki = harness.Pki(directory)
            standard = pki.standard()
            extras = {
                # A front-proxy certificate the allowed-names list does not contain.
                "wrong_cn_proxy": pki.issue(standard.front_proxy_ca, "wrong-cn-proxy",
                                            "not-front-proxy"),
                # The requestheader CA after a rotation, and a front-proxy client it signed.
                "front_proxy_ca_2": pki.ca("front-proxy-ca-2", "front-proxy-ca-2"),
            }
            extras["front_proxy_client_2"] = pki.issue(extras["front_proxy_ca_2"],
                                                       "front-proxy-client-2",
                                                       "front-proxy-client")
            # An x509 user with several organizations.
            extras["carol"] = pki.issue(standard.ca, "carol", "carol", orgs=["ops", "dev"])
            ClusterTestCase._shared = (standard, extras)
        standard, extras = ClusterTestCase._shared
        cls.pki = standard
        for name, value in extras.items():
            setattr(cls, name, value)

    # --- files the double reads -----------------------------------------------------------

    def setUp(self):
        super().setUp()
        self.configmap_file = self.tmp / "configmap.json"
        self.policy_file = self.tmp / "policy.json"
        self.apiserver: Optional[harness.Process] = None
        self.apiserver_port: Optional[int] = None
        self.proxy: Optional[harness.Process] = None

    @staticmethod
    def _atomic_write(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def default_configmap(self) -> Dict[str, str]:
        return {
            "client-ca-file": self.pki.ca.cert.read_text(),
            "requestheader-client-ca-file": self.pki.front_proxy_ca.cert.read_text(),
            "requestheader-allowed-names": json_array("front-proxy-client"),
            "requestheader-username-headers": json_array("X-Remote-User"),
            "requestheader-uid-headers": json_array("X-Remote-Uid"),
            "requestheader-group-headers": json_array("X-Remote-Group"),
            "requestheader-extra-headers-prefix": json_array("X-Remote-Extra-"),
        }

    def write_configmap(self, data: Dict[str, str]) -> None:
        self._atomic_write(self.configmap_file, json.dumps(data))

    def write_policy(self, policy: dict) -> None:
        policy = dict(policy)
        policy.setdefault("api_tokens", [PROXY_SA_TOKEN])
        self._atomic_write(self.policy_file, json.dumps(policy))

    # --- processes --------------------------------------------------------------------------

    def start_apiserver(self, port: int = 0, configmap: bool = True) -> harness.Process:
        if configmap and not self.configmap_file.exists():
            self.write_configmap(self.default_configmap())
        if not self.policy_file.exists():
            self.write_policy({})
        process = self.start("fake-apiserver", [
            sys.executable, FAKE_APISERVER, "--port", str(port),
            "--cert", self.pki.server.cert, "--key", self.pki.server.key,
            "--configmap-file", self.configmap_file, "--policy-file", self.policy_file])
        match = process.wait_for_log(r"^listening on 127\.0\.0\.1:(\d+)$")
        self.apiserver = process
        self.apiserver_port = int(match.group(1))
        return process

    def write_kubeconfig(self, port: int) -> Path:
        path = self.tmp / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            "clusters:\n- name: fake\n  cluster:\n"
            f"    server: https://127.0.0.1:{port}\n"
            f"    certificate-authority: {self.pki.ca.cert}\n"
            "users:\n- name: aa-proxy\n  user:\n"
            f"    token: {PROXY_SA_TOKEN}\n"
            "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: aa-proxy\n"
            "current-context: fake\n")
        return path

    def proxy_argv(self, upstream: str, flags: Sequence[str] = (),
                   apiserver_port: Optional[int] = None) -> List[str]:
        self.port = harness.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        kubeconfig = self.write_kubeconfig(apiserver_port or self.apiserver_port)
        return [PROXY, "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
                "--tls-cert-file", self.pki.server.cert,
                "--tls-private-key-file", self.pki.server.key,
                "--authentication-kubeconfig", kubeconfig,
                "--authorization-kubeconfig", kubeconfig,
                "--upstream", upstream, "--workers", "2", "-v", "2",
                "--authentication-configmap-resync-period", "2s", *flags]

    def start_cluster_proxy(self, flags: Sequence[str] = ()) -> harness.Process:
        """Double (if not running), backend and proxy; waits until the proxy serves TLS."""
        if self.apiserver is None:
            self.start_apiserver()
        if not hasattr(self, "backend"):
            self.backend = self.start_backend()
        proxy = self.start("aa-proxy", self.proxy_argv(self.backend.upstream, flags))
        proxy.wait_for_log(r"serving on https://", timeout=20)

        def ready():
            if not proxy.alive():
                raise harness.StopWaiting()
            return harness.curl(self.url + "/healthz", tls=self.anonymous, timeout=2).status != 0

        try:
            harness.wait_until(ready, timeout=20, what="aa-proxy to answer over TLS")
        except harness.StopWaiting:
            self.fail(f"aa-proxy exited with {proxy.popen.returncode}:\n{proxy.log_text()}")
        self.proxy = proxy
        self.reset_recording()
        return proxy

    # --- the double's recording ---------------------------------------------------------------

    def _control(self, method: str, path: str):
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        request = urllib.request.Request(f"https://127.0.0.1:{self.apiserver_port}{path}",
                                         method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return json.loads(response.read())

    def recorded(self, path_prefix: str = "") -> List[dict]:
        return [r for r in self._control("GET", "/__recorded")
                if r["path"].startswith(path_prefix)]

    def reviews(self) -> List[dict]:
        """What the double received besides the ConfigMap lookup and watch: the TokenReviews
        and SubjectAccessReviews. (The watch may reach the double only after the reset of
        start_cluster_proxy() when the proxy is slow, as under ThreadSanitizer.)"""
        return [r for r in self.recorded() if not r["path"].startswith(CONFIGMAP)]

    def reset_recording(self) -> None:
        self._control("POST", "/__reset")

    def sar_bodies(self) -> List[bytes]:
        return [r["body"].encode() for r in self.recorded(SARS)]

    def sar_specs(self) -> List[dict]:
        return [json.loads(r["body"])["spec"] for r in self.recorded(SARS)]

    def token_reviews(self) -> List[dict]:
        return self.recorded(TOKENREVIEWS)

    # --- clients --------------------------------------------------------------------------

    def tls(self, cert_key: Optional[harness.CertKey] = None) -> harness.TlsClient:
        if cert_key is None:
            return harness.TlsClient(cacert=self.pki.ca.cert)
        return harness.TlsClient(cacert=self.pki.ca.cert, cert=cert_key.cert, key=cert_key.key)

    @property
    def anonymous(self) -> harness.TlsClient:
        return self.tls()

    @property
    def aggregator(self) -> harness.TlsClient:
        return self.tls(self.pki.front_proxy_client)

    @staticmethod
    def identity_headers(user: str, groups: Sequence[str] = (),
                         extras: Sequence[str] = ()) -> List[str]:
        return ([f"X-Remote-User: {user}"] + [f"X-Remote-Group: {g}" for g in groups] +
                list(extras))

    def fetch(self, path: str, tls: Optional[harness.TlsClient] = None,
              headers: Sequence[str] = (KUBECTL,), **kwargs) -> harness.CurlResult:
        return harness.curl(self.url + path, tls=tls or self.anonymous, headers=headers,
                            **kwargs)

    def as_front_proxy(self, path: str, user: str, groups: Sequence[str] = (),
                       extras: Sequence[str] = (), headers: Sequence[str] = (KUBECTL,),
                       tls: Optional[harness.TlsClient] = None, **kwargs) -> harness.CurlResult:
        return self.fetch(path, tls=tls or self.aggregator,
                          headers=list(headers) + self.identity_headers(user, groups, extras),
                          **kwargs)

    def backend_headers(self, result: harness.CurlResult) -> List[List[str]]:
        self.assertEqual(result.status, 200, f"{result.stderr} {result.text}")
        return json.loads(result.body)["headers"]

    def metric(self, name: str, labels: str) -> float:
        """One sample of the proxy's /metrics, read as system:masters (no SubjectAccessReview)."""
        result = self.as_front_proxy("/metrics", "e2e-metrics-reader", ["system:masters"])
        self.assertEqual(result.status, 200, result.text)
        line = re.search(r"^" + re.escape(name + "{" + labels + "}") + r" (\S+)$", result.text,
                         re.MULTILINE)
        return float(line.group(1)) if line else 0.0

    def backend_request_count(self, path: str) -> int:
        """How many requests for `path` (exact, before any query) the backend logged."""
        pattern = re.compile(r"^sample-backend: \S+ " + re.escape(path) + r"(\?\S*)? -> ",
                             re.MULTILINE)
        return len(pattern.findall(self.backend.process.log_text()))
