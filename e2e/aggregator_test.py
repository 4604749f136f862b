"""Behind the real aggregator: kubectl -> kube-aggregator -> aa-proxy -> sample backend.

The chain a cluster operator runs, with the real Kubernetes aggregator (the standalone
kube-aggregator of Kubernetes 1.14.10, ../shared/bin/kube-aggregator) where kube-apiserver's
aggregation layer stands:

  kubectl v1.32 --TLS, client cert--> kube-aggregator --TLS, front-proxy client cert,
      X-Remote-User/Group--> aa-proxy (127.0.0.N:443) --HTTP--> sample backend
  kube-aggregator and aa-proxy --TLS, bearer token--> fake_apiserver.py, the "core" API:
      Namespaces, Services, Endpoints, webhook configurations (what the aggregator lists and
      watches), the kube-system/extension-apiserver-authentication ConfigMap, TokenReview and
      SubjectAccessReview
  kube-aggregator --> etcd (Debian's etcd-server), where it keeps APIService objects

The steps follow the walkthrough of deploy/README.md with its objects: the Namespace
`sample-api`, the Service `sample-api-server` (its clusterIP is the loopback address aa-proxy
listens on, port 443 as the aggregator always dials), its Endpoints, a serving certificate for
`sample-api-server.sample-api.svc` from a throwaway CA, and deploy/kubernetes/base/apiservice.yaml
applied with that CA as caBundle (the sed of the walkthrough). What differs from a cluster: the
Service and Endpoints are written into the double's objects file (the aggregator does not serve
the core API) and aa-proxy runs as a process, not in a Pod.

The double answers the aggregator's own SubjectAccessReviews (sent with AGGREGATOR_TOKEN) with
allow, and aa-proxy's (sent with PROXY_TOKEN) by user, so that a request the aggregator lets
through can still be denied by aa-proxy and its 403 seen through the aggregator.

Run: bazel test //e2e:aggregator_test, or E2E_BAZEL_BIN=$(bazel info bazel-bin) python3
e2e/aggregator_test.py -v. Needs etcd on PATH, the kube-aggregator binary (AA_KUBE_AGGREGATOR or
../shared/bin/kube-aggregator beside the repository), kubectl, curl, openssl, and root (port 443).
"""

import base64
import http.client
import json
import os
import random
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from cluster import UNAUTHORIZED, json_array  # noqa: E402
from sample_backend_test import DISCOVERY, GV, LIST_DEFAULT  # noqa: E402

FAKE_APISERVER = Path(os.path.dirname(os.path.abspath(__file__))) / "fake_apiserver.py"
APISERVICE_YAML = harness.REPO_ROOT / "deploy/kubernetes/base/apiservice.yaml"
KUBECTL = shutil.which("kubectl")
ETCD = shutil.which("etcd")


def find_aggregator() -> Optional[Path]:
    candidates = [os.environ.get("AA_KUBE_AGGREGATOR"),
                  harness.REPO_ROOT.parent / "shared/bin/kube-aggregator"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


AGGREGATOR = find_aggregator()
PROXY = harness.find_binary("proxy/aa-proxy")

NAMESPACE = "sample-api"
SERVICE = "sample-api-server"
APISERVICE = "v1alpha1.sample-api-server"
SERVING_NAME = f"{SERVICE}.{NAMESPACE}.svc"
AGGREGATOR_TOKEN = "kube-aggregator-token"
PROXY_TOKEN = "aa-proxy-service-account-token"
RESYNC = 2  # aa-proxy's --authentication-configmap-resync-period, seconds
SAMPLES = f"{GV}/namespaces/default/samples"
# Status bodies are compact for kubectl (pretty for curl's own User-Agent, as upstream).
KUBECTL_AGENT = "User-Agent: kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef0"

POLICY = {
    "api_tokens": [AGGREGATOR_TOKEN, PROXY_TOKEN],
    "sar": [
        # The aggregator's own authorizer lets everyone through: aa-proxy decides.
        {"caller": AGGREGATOR_TOKEN, "allowed": True},
        # aa-proxy's reviews: discovery for every authenticated user (upstream's
        # system:discovery), samples for alice, nothing else (bob is denied).
        {"caller": PROXY_TOKEN, "group": "system:authenticated", "path": "/apis*", "verb": "get",
         "allowed": True},
        {"caller": PROXY_TOKEN, "user": "alice", "apiGroup": "sample-api-server",
         "resource": "samples", "allowed": True},
    ],
}

FORBIDDEN = ('samples.sample-api-server is forbidden: User "{user}" cannot {verb} resource '
             '"samples" in API group "sample-api-server" in the namespace "default"')


def loopback_address_with_free_443() -> str:
    """A 127.0.0.N whose port 443 nobody uses: the Service's clusterIP and aa-proxy's address."""
    candidates = list(range(2, 255))
    random.shuffle(candidates)
    for n in candidates:
        address = f"127.0.0.{n}"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((address, 443))
                return address
            except OSError:
                continue
    raise RuntimeError("no loopback address with a free port 443 (is this root?)")


class Timings:
    """How long each step of the walkthrough took, printed at the end of the suite."""

    def __init__(self):
        self.rows: List[tuple] = []

    def record(self, step: str, seconds: float) -> None:
        self.rows.append((step, seconds))

    def report(self) -> str:
        width = max([len(s) for s, _ in self.rows] + [4])
        return "\n".join(f"  {step:<{width}}  {seconds * 1000:10.3f} ms" for step, seconds in
                         self.rows)


@unittest.skipIf(PROXY is None, "//proxy:aa-proxy is not built; run `bazel test //e2e:aggregator_test`")
class AggregatorTest(unittest.TestCase):
    """One chain for the whole class (etcd and the aggregator take seconds to start); the test
    methods are the walkthrough's steps, in order, the disruptive ones (CA rotation, restart)
    last, each leaving the chain as it found it."""

    processes: List[harness.Process] = []
    failed = False

    # --- the chain ------------------------------------------------------------------------

    @classmethod
    def setUpClass(cls):
        missing = [what for what, found in (
            ("etcd (Debian etcd-server; tools/install-deps.sh installs it)", ETCD),
            ("kube-aggregator (set AA_KUBE_AGGREGATOR, or keep ../shared/bin beside the repo)",
             AGGREGATOR),
            ("kubectl", KUBECTL)) if not found]
        if missing:
            raise RuntimeError("the aggregator suite needs " + ", ".join(missing))
        cls.timings = Timings()
        cls.tmp = Path(tempfile.mkdtemp(prefix="aggregator-", dir=os.environ.get("TEST_TMPDIR")))
        cls.processes = []
        try:
            cls._start_chain()
        except BaseException:
            cls._dump_logs()
            cls._stop_all()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.failed:
            cls._dump_logs()
        cls._stop_all()
        sys.stderr.write("\nstep timings (kubectl -> kube-aggregator -> aa-proxy -> backend):\n" +
                         cls.timings.report() + "\n")
        if not cls.failed:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is not None and any(test is self for test, _ in
                                      list(result.failures) + list(result.errors)):
            type(self).failed = True
        super().tearDown()

    @classmethod
    def _dump_logs(cls):
        for process in cls.processes:
            sys.stderr.write(f"\n===== log of {process.name} (pid {process.pid}) =====\n")
            sys.stderr.write(process.log_text()[-15000:])

    @classmethod
    def _stop_all(cls):
        for process in reversed(cls.processes):
            process.stop()

    @classmethod
    def _start(cls, name: str, argv: Sequence) -> harness.Process:
        process = harness.Process(name, [str(a) for a in argv], cls.tmp)
        cls.processes.append(process)
        return process

    @classmethod
    def _step(cls, name: str, fn):
        started = time.monotonic()
        value = fn()
        cls.timings.record(name, time.monotonic() - started)
        return value

    @classmethod
    def _start_chain(cls):
        cls._step("PKI (openssl CLI)", cls._make_pki)
        cls.service_ip = loopback_address_with_free_443()
        cls._step("etcd + kube-apiserver double started", cls._start_etcd_and_double)
        cls._step("kube-aggregator healthy", cls._start_aggregator)
        cls._step("sample backend + aa-proxy serving", cls._start_backend_and_proxy)

    @classmethod
    def _make_pki(cls):
        pki = harness.Pki(cls.tmp / "pki")
        cls.pki = pki.standard()
        ca = cls.pki.ca  # the cluster's client CA (client-ca-file); also signs the double
        cls.admin = pki.issue(ca, "admin", "admin", orgs=["system:masters"])
        cls.bob = pki.issue(ca, "bob-plain", "bob", orgs=["viewers"])
        cls.aggregator_serving = pki.issue(ca, "aggregator-serving", "kube-aggregator",
                                           ext_key_usage="serverAuth",
                                           sans=["IP:127.0.0.1", "DNS:localhost"])
        # The walkthrough's throwaway serving CA and aa-proxy's certificate for the Service name.
        cls.serving_ca = pki.ca("sample-api-ca", "sample-api-ca")
        cls.serving = pki.issue(cls.serving_ca, "sample-api-serving", SERVING_NAME,
                                ext_key_usage="serverAuth",
                                sans=[f"DNS:{SERVING_NAME}", f"DNS:{SERVING_NAME}.cluster.local"])
        # A requestheader CA the aggregator's front-proxy certificate does not chain to.
        cls.other_front_proxy_ca = pki.ca("other-front-proxy-ca", "other-front-proxy-ca")

    @classmethod
    def configmap(cls, requestheader_cas: Sequence[harness.CertKey]) -> Dict[str, str]:
        return {
            "client-ca-file": cls.pki.ca.cert.read_text(),
            "requestheader-client-ca-file": "".join(c.cert.read_text() for c in requestheader_cas),
            "requestheader-allowed-names": json_array("front-proxy-client"),
            "requestheader-username-headers": json_array("X-Remote-User"),
            # No requestheader-uid-headers: a 1.14 kube-apiserver does not write the key, and its
            # aggregator neither sets nor strips X-Remote-Uid (see test_07).
            "requestheader-group-headers": json_array("X-Remote-Group"),
            "requestheader-extra-headers-prefix": json_array("X-Remote-Extra-"),
        }

    @staticmethod
    def _atomic_write(path: Path, obj) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(obj))
        os.replace(tmp, path)

    @classmethod
    def core_objects(cls, endpoint_generation: int = 0) -> List[dict]:
        """The core API objects the walkthrough creates (namespace.yaml, service.yaml, and the
        Endpoints the endpoints controller would make for the running Pod)."""
        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            for name in ("default", "kube-system", NAMESPACE)
        ] + [
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": SERVICE, "namespace": NAMESPACE},
             "spec": {"type": "ClusterIP", "clusterIP": cls.service_ip,
                      "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                 "targetPort": "https"}]}},
            {"apiVersion": "v1", "kind": "Endpoints",
             "metadata": {"name": SERVICE, "namespace": NAMESPACE,
                          # A change here makes the aggregator re-check availability at once.
                          "annotations": {"e2e/generation": str(endpoint_generation)}},
             "subsets": [{"addresses": [{"ip": cls.service_ip}],
                          "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}]},
        ]

    @classmethod
    def _kubeconfig_for_double(cls, name: str, token: str) -> Path:
        path = cls.tmp / f"{name}.kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "core", "cluster": {
                "server": f"https://127.0.0.1:{cls.double_port}",
                "certificate-authority": str(cls.pki.ca.cert)}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "core", "context": {"cluster": "core", "user": name}}],
            "current-context": "core"}))
        return path

    @classmethod
    def _start_etcd_and_double(cls):
        client_port, peer_port = harness.free_port(), harness.free_port()
        cls.etcd = cls._start("etcd", [
            ETCD, "--data-dir", cls.tmp / "etcd", "--name", "e2e",
            "--listen-client-urls", f"http://127.0.0.1:{client_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"e2e=http://127.0.0.1:{peer_port}"])
        cls.etcd_url = f"http://127.0.0.1:{client_port}"
        cls.configmap_file = cls.tmp / "configmap.json"
        cls.policy_file = cls.tmp / "policy.json"
        cls.objects_file = cls.tmp / "objects.json"
        cls._atomic_write(cls.configmap_file, cls.configmap([cls.pki.front_proxy_ca]))
        cls._atomic_write(cls.policy_file, POLICY)
        cls._atomic_write(cls.objects_file, cls.core_objects())
        cls.double = cls._start("kube-apiserver-double", [
            sys.executable, FAKE_APISERVER, "--cert", cls.pki.server.cert,
            "--key", cls.pki.server.key, "--configmap-file", cls.configmap_file,
            "--policy-file", cls.policy_file, "--objects-file", cls.objects_file])
        cls.double_port = int(cls.double.wait_for_log(r"^listening on 127\.0\.0\.1:(\d+)$")
                              .group(1))
        harness.wait_until(lambda: harness.tcp_accepts(client_port), timeout=20,
                           what="etcd to accept connections")

    @classmethod
    def _start_aggregator(cls):
        kubeconfig = cls._kubeconfig_for_double("kube-aggregator", AGGREGATOR_TOKEN)
        cls.aggregator_port = harness.free_port()
        cls.aggregator_url = f"https://127.0.0.1:{cls.aggregator_port}"
        cls.aggregator = cls._start("kube-aggregator", [
            AGGREGATOR, "--etcd-servers", cls.etcd_url,
            "--secure-port", cls.aggregator_port, "--bind-address", "127.0.0.1",
            "--tls-cert-file", cls.aggregator_serving.cert,
            "--tls-private-key-file", cls.aggregator_serving.key,
            "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig,
            "--proxy-client-cert-file", cls.pki.front_proxy_client.cert,
            "--proxy-client-key-file", cls.pki.front_proxy_client.key,
            "--cert-dir", cls.tmp / "aggregator-certs", "-v", "2"])

        def healthy():
            if not cls.aggregator.alive():
                raise harness.StopWaiting()
            result = harness.curl(cls.aggregator_url + "/healthz", tls=cls.tls(cls.admin),
                                  timeout=2)
            return result.status == 200 and result.body == b"ok"

        harness.wait_until(healthy, timeout=60, what="kube-aggregator /healthz to say ok")

    @classmethod
    def _start_backend_and_proxy(cls):
        cls.backend = harness.SampleBackend(cls.tmp, watch_interval=0.5, log_headers=True)
        cls.processes.append(cls.backend.process)
        cls.start_proxy()

    @classmethod
    def start_proxy(cls) -> harness.Process:
        kubeconfig = cls._kubeconfig_for_double("aa-proxy", PROXY_TOKEN)
        cls.proxy = cls._start("aa-proxy", [
            PROXY, "--secure-port", "443", "--bind-address", cls.service_ip,
            "--tls-cert-file", cls.serving.cert, "--tls-private-key-file", cls.serving.key,
            "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
            "--authentication-configmap-resync-period", f"{RESYNC}s",
            "--upstream", cls.backend.upstream, "--workers", "2", "-v", "2"])
        cls.proxy.wait_for_log(r"serving on https://", timeout=20)
        return cls.proxy

    # --- clients ------------------------------------------------------------------------------

    @classmethod
    def tls(cls, cert_key: Optional[harness.CertKey]) -> harness.TlsClient:
        if cert_key is None:
            return harness.TlsClient(cacert=cls.pki.ca.cert)
        return harness.TlsClient(cacert=cls.pki.ca.cert, cert=cert_key.cert, key=cert_key.key)

    def via_aggregator(self, path: str, user: harness.CertKey, headers: Sequence[str] = (),
                       **kwargs) -> harness.CurlResult:
        return harness.curl(self.aggregator_url + path, tls=self.tls(user),
                            headers=[KUBECTL_AGENT, *headers], **kwargs)

    def direct(self, path: str, user: str, groups: Sequence[str] = (), **kwargs
               ) -> harness.CurlResult:
        """Straight to aa-proxy as the aggregator would send it (front-proxy certificate)."""
        headers = ([KUBECTL_AGENT, f"X-Remote-User: {user}"] +
                   [f"X-Remote-Group: {g}" for g in groups])
        return harness.curl(f"https://{SERVING_NAME}{path}", tls=harness.TlsClient(
            cacert=self.serving_ca.cert, cert=self.pki.front_proxy_client.cert,
            key=self.pki.front_proxy_client.key), headers=headers,
            extra=["--resolve", f"{SERVING_NAME}:443:{self.service_ip}"], **kwargs)

    @classmethod
    def kubeconfig(cls) -> Path:
        path = cls.tmp / "kubectl.kubeconfig"
        if not path.exists():
            users = {"admin": cls.admin, "alice": cls.pki.alice, "bob": cls.bob}
            path.write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "aggregator", "cluster": {
                    "server": cls.aggregator_url,
                    "certificate-authority": str(cls.pki.ca.cert)}}],
                "users": [{"name": name, "user": {"client-certificate": str(c.cert),
                                                  "client-key": str(c.key)}}
                          for name, c in users.items()],
                "contexts": [{"name": name, "context": {"cluster": "aggregator", "user": name,
                                                        "namespace": "default"}}
                             for name in users],
                "current-context": "admin"}))
        return path

    def kubectl_argv(self, user: str, *args: str) -> List[str]:
        return [KUBECTL, "--kubeconfig", str(self.kubeconfig()), "--context", user,
                "--cache-dir", str(self.tmp / "kube-cache"), *args]

    def kubectl(self, user: str, *args: str, stdin: Optional[bytes] = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.kubectl_argv(user, *args), input=stdin, capture_output=True,
                              timeout=timeout, env=dict(os.environ, HOME=str(self.tmp)))

    def kubectl_ok(self, user: str, *args: str, **kwargs) -> str:
        result = self.kubectl(user, *args, **kwargs)
        self.assertEqual(result.returncode, 0,
                         f"kubectl {' '.join(args)}: {result.stderr.decode()}")
        return result.stdout.decode()

    # --- what the other processes saw ---------------------------------------------------------

    def recorded_sars(self, caller: str) -> List[dict]:
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        with harness_urlopen(f"https://127.0.0.1:{self.double_port}/__recorded", context) as body:
            recorded = json.loads(body)
        return [json.loads(r["body"])["spec"] for r in recorded
                if r["path"] == "/apis/authorization.k8s.io/v1/subjectaccessreviews" and
                [v for n, v in r["headers"] if n.lower() == "authorization"] ==
                [f"Bearer {caller}"]]

    def backend_requests(self) -> List[dict]:
        """Every request the backend logged: method, target and the header lines it received."""
        text = self.backend.process.log_text()
        requests = []
        for match in re.finditer(r"^sample-backend: headers (.*)$", text, re.MULTILINE):
            requests.append(json.loads(match.group(1)))  # method, target, headers
        return requests

    def proxy_access_log(self) -> List[str]:
        return re.findall(r'^\S+ \S+ +\d+ access_log\.cc:\d+\] (".*)$',
                          self.proxy.log_text(), re.MULTILINE)

    def apiservice_available(self) -> dict:
        out = self.kubectl_ok("admin", "get", "apiservice", APISERVICE, "-o", "json")
        conditions = json.loads(out).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Available"), {})

    def wait_available(self, status: str, timeout: float = 30) -> dict:
        def check():
            condition = self.apiservice_available()
            return condition if condition.get("status") == status else None

        return harness.wait_until(check, timeout=timeout, what=f"{APISERVICE} Available={status}",
                                  interval=0.2)

    @classmethod
    def touch_endpoints(cls):
        """Changes the Endpoints' annotation: the aggregator re-checks availability at once (its
        own period is 30 s, too slow for a test)."""
        cls.endpoint_generation = getattr(cls, "endpoint_generation", 0) + 1
        cls._atomic_write(cls.objects_file, cls.core_objects(cls.endpoint_generation))

    # --- the walkthrough ------------------------------------------------------------------

    def test_01_apiservice_registered_with_its_ca_bundle_becomes_available(self):
        out = self._step("kubectl apply -f apiservice.yaml",
                         lambda: self.apply_apiservice(self.serving_ca))
        self.assertEqual(out, f"apiservice.apiregistration.k8s.io/{APISERVICE} created\n")
        condition = self._step("APIService Available=True", lambda: self.wait_available("True"))
        self.assertEqual((condition["reason"], condition["message"]),
                         ("Passed", "all checks passed"))
        # kube-aggregator 1.14 checks availability with an anonymous `GET /` (no front-proxy
        # certificate, no identity headers) and takes 200 or 403 as available: aa-proxy's 403
        # for system:anonymous is what it saw.
        self.assertIn('"GET /" verb=GET user="system:anonymous" status=403',
                      "\n".join(self.proxy_access_log()))

    def test_02_discovery_is_merged_by_the_aggregator(self):
        self.wait_available("True")
        groups = json.loads(self.kubectl_ok("alice", "get", "--raw", "/apis"))
        group = next(g for g in groups["groups"] if g["name"] == "sample-api-server")
        self.assertEqual(group["versions"], [{"groupVersion": "sample-api-server/v1alpha1",
                                              "version": "v1alpha1"}])
        self.assertEqual(self.kubectl_ok("alice", "get", "--raw", GV).encode(), DISCOVERY)
        resources = self._step("kubectl api-resources",
                               lambda: self.kubectl_ok("alice", "api-resources",
                                                       "--api-group", "sample-api-server"))
        self.assertEqual([line.split() for line in resources.splitlines()], [
            ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
            ["samples", "sample-api-server/v1alpha1", "true", "Sample"]])

    def test_03_allowed_user_gets_the_backends_answers(self):
        self.wait_available("True")
        out = self._step("kubectl get samples", lambda: self.kubectl_ok("alice", "get", "samples"))
        self.assertEqual([line.split() for line in out.splitlines()],
                         [["NAME", "AGE"], ["sample1", "<unknown>"]])
        out = self.kubectl_ok("alice", "get", "samples", "-o", "yaml")
        self.assertIn("- apiVersion: sample-api-server/v1alpha1\n  kind: Sample\n  metadata:\n"
                      "    name: sample1\n    namespace: default\n  spec:\n    name: default\n", out)
        self.assertEqual(json.loads(self.kubectl_ok("alice", "get", "sample", "other", "-o",
                                                    "json")),
                         {"apiVersion": "sample-api-server/v1alpha1", "kind": "Sample",
                          "metadata": {"name": "other"}, "spec": {"name": "default.other"}})
        result = self.via_aggregator(SAMPLES, self.pki.alice)
        self.assertEqual((result.status, result.body), (200, LIST_DEFAULT))

    def test_04_reviews_carry_the_end_user_not_the_aggregator(self):
        self.wait_available("True")
        self.kubectl_ok("alice", "get", "sample", "reviewed-sample", "-o", "json")
        specs = [s for s in self.recorded_sars(PROXY_TOKEN)
                 if (s.get("resourceAttributes") or {}).get("name") == "reviewed-sample"]
        self.assertEqual(len(specs), 1, specs)
        self.assertEqual(specs[0]["user"], "alice")
        self.assertEqual(specs[0]["groups"], ["dev", "system:authenticated"])
        self.assertEqual(specs[0]["resourceAttributes"], {
            "namespace": "default", "verb": "get", "group": "sample-api-server",
            "version": "v1alpha1", "resource": "samples", "name": "reviewed-sample"})
        # What the backend received: the end user, as aa-proxy wrote it.
        request = [r for r in self.backend_requests() if r["target"].endswith("/reviewed-sample")]
        self.assertEqual(len(request), 1)
        identity = [[n, v] for n, v in request[0]["headers"]
                    if n.lower().startswith(("x-remote-", "authorization", "impersonate-"))]
        self.assertEqual(identity, [["X-Remote-User", "alice"], ["X-Remote-Group", "dev"],
                                    ["X-Remote-Group", "system:authenticated"]])

    def test_05_watch_streams_events_through_both_proxies(self):
        self.wait_available("True")
        proc = subprocess.Popen(self.kubectl_argv("alice", "get", "samples", "--watch",
                                                  "--output-watch-events"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(os.environ, HOME=str(self.tmp)))
        lines, cond, started = [], threading.Condition(), time.monotonic()

        def read():
            for line in iter(proc.stdout.readline, b""):
                with cond:
                    lines.append((time.monotonic() - started, line.decode().split()))
                    cond.notify_all()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            with cond:
                cond.wait_for(lambda: len(lines) >= 4 or proc.poll() is not None, timeout=30)
                got = list(lines)
        finally:
            proc.kill()
            proc.wait()
            reader.join(5)
            stderr = proc.stderr.read().decode()
            proc.stdout.close()
            proc.stderr.close()
        self.timings.record("kubectl get samples --watch: 2nd event", got[-1][0] if got else 0)
        self.assertEqual([words for _, words in got], [
            ["EVENT", "NAME", "AGE"], ["ADDED", "sample1", "<unknown>"],
            ["ADDED", "sample1", "<unknown>"], ["MODIFIED", "sample1", "<unknown>"]],
            f"stderr: {stderr}")
        # The backend writes the watch's events 0.5 s apart; they arrive apart, not batched.
        self.assertGreater(got[3][0] - got[2][0], 0.3, got)

    def test_06_denied_user_gets_aa_proxys_exact_403_through_the_aggregator(self):
        self.wait_available("True")
        before = len(self.backend_requests())
        result = self.kubectl("bob", "get", "samples")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.decode(), "Error from server (Forbidden): " +
                         FORBIDDEN.format(user="bob", verb="list") + "\n")
        # The bytes are aa-proxy's own 403 Status (the same as straight to aa-proxy).
        through = self.via_aggregator(SAMPLES, self.bob)
        direct = self.direct(SAMPLES, "bob", ["viewers", "system:authenticated"])
        expected = (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                    b'"message":"' + FORBIDDEN.format(user="bob", verb="list").replace(
                        '"', '\\"').encode() +
                    b'","reason":"Forbidden","details":{"group":"sample-api-server",'
                    b'"kind":"samples"},"code":403}\n')
        self.assertEqual((through.status, through.body), (403, expected))
        self.assertEqual((direct.status, direct.body), (403, expected))
        # A denied create is refused before the backend; an allowed one reaches it, and the
        # backend's own answer (it serves get/list/watch only) comes back through both proxies.
        sample = json.dumps({"apiVersion": "sample-api-server/v1alpha1", "kind": "Sample",
                             "metadata": {"name": "new-sample"}, "spec": {"name": "x"}})
        result = self.kubectl("bob", "create", "--validate=false", "-f", "-",
                              stdin=sample.encode())
        self.assertEqual(result.stderr.decode(), "Error from server (Forbidden): error when "
                         "creating \"STDIN\": " + FORBIDDEN.format(user="bob", verb="create") +
                         "\n")
        self.assertEqual(len(self.backend_requests()), before)
        result = self.kubectl("alice", "create", "--validate=false", "-f", "-",
                              stdin=sample.encode())
        self.assertEqual(result.stderr.decode(), "Error from server (MethodNotAllowed): error "
                         "when creating \"STDIN\": the server does not allow this method on the "
                         "requested resource\n")
        result = self.kubectl("alice", "delete", "sample", "sample1")
        self.assertIn("(MethodNotAllowed)", result.stderr.decode())
        methods = [(r["method"], r["target"].split("?")[0])
                   for r in self.backend_requests()[before:]]
        self.assertEqual(methods, [("POST", SAMPLES), ("DELETE", SAMPLES + "/sample1")])

    def test_07_spoofed_identity_headers_never_reach_the_backend(self):
        self.wait_available("True")
        before = len(self.backend_requests())
        result = self.via_aggregator(SAMPLES + "/spoofed", self.pki.alice, headers=[
            "X-Remote-User: admin", "X-Remote-Group: system:masters",
            "X-Remote-Extra-Scopes: all", "X-Remote-Uid: 0"])
        self.assertEqual(result.status, 200, result.text)
        requests = self.backend_requests()[before:]
        self.assertEqual(len(requests), 1)
        identity = [[n, v] for n, v in requests[0]["headers"]
                    if n.lower().startswith(("x-remote-", "authorization", "impersonate-"))]
        self.assertEqual(identity, [["X-Remote-User", "alice"], ["X-Remote-Group", "dev"],
                                    ["X-Remote-Group", "system:authenticated"]])
        # And aa-proxy reviewed alice, never admin.
        users = {s["user"] for s in self.recorded_sars(PROXY_TOKEN)}
        self.assertNotIn("admin", users)

    def test_08_the_aggregator_reaches_aa_proxy_over_http_2(self):
        self.wait_available("True")
        self.kubectl_ok("alice", "get", "sample", "protocol-probe")
        lines = [line for line in self.proxy_access_log() if "/protocol-probe" in line]
        self.assertEqual(len(lines), 1, self.proxy_access_log())
        # aa-proxy offers h2 then http/1.1 in ALPN; the aggregator's client-go transport offers
        # h2 first and takes it.
        self.assertTrue(lines[0].endswith(" protocol=HTTP/2.0"), lines[0])

    def test_09_aggregator_latency_over_aa_proxy(self):
        """Not a bound: the aggregator's own added latency per request, for the record."""
        self.wait_available("True")
        via = measure_latency("127.0.0.1", self.aggregator_port, None, self.pki.ca.cert,
                              self.pki.alice, SAMPLES, {})
        direct = measure_latency(self.service_ip, 443, SERVING_NAME, self.serving_ca.cert,
                                 self.pki.front_proxy_client, SAMPLES,
                                 {"X-Remote-User": "alice", "X-Remote-Group": "dev"})
        self.timings.record(f"GET samples via aggregator, median of {len(via)}",
                            statistics.median(via))
        self.timings.record(f"GET samples straight to aa-proxy, median of {len(direct)}",
                            statistics.median(direct))
        self.timings.record("aggregator's added latency (median difference)",
                            statistics.median(via) - statistics.median(direct))

    def apply_apiservice(self, ca: harness.CertKey) -> str:
        """deploy/README.md step 3: the manifest, with `ca` put in as caBundle by sed."""
        ca_bundle = base64.b64encode(ca.cert.read_bytes()).decode()
        manifest = re.sub(r"caBundle: .*", f"caBundle: {ca_bundle}", APISERVICE_YAML.read_text())
        # --validate=false: kubectl v1.32 validates against its own schema, in which
        # spec.service.port exists; 1.14's server ignores the field (it always dials 443).
        return self.kubectl_ok("admin", "apply", "--validate=false", "-f", "-",
                               stdin=manifest.encode())

    def test_10_wrong_ca_bundle_fails_requests_not_availability(self):
        self.wait_available("True")
        self.assertEqual(self.apply_apiservice(self.pki.ca),  # not the serving CA
                         f"apiservice.apiregistration.k8s.io/{APISERVICE} configured\n")
        try:
            def refused():
                result = self.via_aggregator(SAMPLES, self.pki.alice)
                return result if result.status == 503 else None

            result = harness.wait_until(refused, timeout=10, what="503 with the wrong caBundle")
            self.assertIn(b"x509: certificate signed by unknown authority", result.body)
            # 1.14's availability check skips verification, so the APIService stays Available.
            self.assertEqual(self.apiservice_available()["status"], "True")
        finally:
            self.apply_apiservice(self.serving_ca)
        harness.wait_until(lambda: self.via_aggregator(SAMPLES, self.pki.alice).status == 200,
                           timeout=10, what="200 with the right caBundle again")

    def test_11_requestheader_ca_rotation_in_the_configmap(self):
        self.wait_available("True")
        # The ConfigMap's requestheader CA no longer vouches for the aggregator's certificate:
        # aa-proxy refuses its front-proxy headers within the resync period (401), and the
        # aggregator's availability check fails.
        self._atomic_write(self.configmap_file, self.configmap([self.other_front_proxy_ca]))
        started = time.monotonic()
        harness.wait_until(lambda: self.via_aggregator(SAMPLES, self.pki.alice).status == 401,
                           timeout=RESYNC * 3, what="401 after the CA left the ConfigMap")
        self.timings.record("requestheader CA removed -> 401", time.monotonic() - started)
        result = self.via_aggregator(SAMPLES, self.pki.alice)
        self.assertEqual(result.body, UNAUTHORIZED)
        # kube-aggregator 1.14's availability check is an anonymous `GET /` that takes 200 or
        # 403 as available, without its front-proxy certificate: it does not see the rotation.
        # Rotation done right: the bundle holds the new CA and the old one; requests recover.
        self._atomic_write(self.configmap_file, self.configmap([self.other_front_proxy_ca,
                                                                self.pki.front_proxy_ca]))
        started = time.monotonic()
        harness.wait_until(lambda: self.via_aggregator(SAMPLES, self.pki.alice).status == 200,
                           timeout=RESYNC * 3, what="200 after the CA came back")
        self.timings.record("CA bundle restored -> 200", time.monotonic() - started)

    def test_12_aa_proxy_restart_while_the_aggregator_keeps_its_connections(self):
        self.wait_available("True")
        # The aggregator holds keep-alive connections to aa-proxy from the earlier steps.
        self.assertEqual(self.via_aggregator(SAMPLES, self.pki.alice).status, 200)
        self.proxy.stop()
        self.processes.remove(self.proxy)
        result = self.via_aggregator(SAMPLES, self.pki.alice)
        self.assertEqual(result.status, 503, result.text)
        self.touch_endpoints()
        condition = self._step("aa-proxy stopped -> Available=False",
                               lambda: self.wait_available("False"))
        self.assertEqual(condition["reason"], "FailedDiscoveryCheck")
        started = time.monotonic()
        self.start_proxy()
        harness.wait_until(lambda: self.via_aggregator(SAMPLES, self.pki.alice).status == 200,
                           timeout=20, what="requests through the aggregator to recover")
        self.timings.record("aa-proxy restarted -> 200 via aggregator", time.monotonic() - started)
        self.touch_endpoints()
        self._step("APIService Available=True after restart", lambda: self.wait_available("True"))
        result = self.via_aggregator(SAMPLES, self.pki.alice)
        self.assertEqual((result.status, result.body), (200, LIST_DEFAULT))


class harness_urlopen:
    """urllib.request.urlopen(url, context=...) returning the body, as a context manager."""

    def __init__(self, url: str, context: ssl.SSLContext):
        import urllib.request
        self._response = urllib.request.urlopen(url, context=context, timeout=10)

    def __enter__(self) -> bytes:
        return self._response.read()

    def __exit__(self, *exc):
        self._response.close()


def measure_latency(host: str, port: int, server_name: Optional[str], cafile: Path,
                    client: harness.CertKey, path: str, headers: Dict[str, str],
                    count: int = 300) -> List[float]:
    """Seconds per GET over one keep-alive TLS connection (after 20 warm-up requests)."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.load_cert_chain(str(client.cert), str(client.key))
    context.set_alpn_protocols(["http/1.1"])
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    if server_name:
        connection.host = server_name  # SNI and certificate name; the socket goes to `host`
        sock = socket.create_connection((host, port), timeout=10)
        connection.sock = context.wrap_socket(sock, server_hostname=server_name)
    samples = []
    try:
        for i in range(count + 20):
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise AssertionError(f"{host}:{port}{path}: {response.status} {body[:200]!r}")
            if i >= 20:
                samples.append(time.perf_counter() - started)
    finally:
        connection.close()
    return samples


if __name__ == "__main__":
    unittest.main(verbosity=2)
