#!/usr/bin/env python3
"""Self-test of the kube-apiserver test double: `python3 -m unittest e2e/fake_apiserver_test.py`
(from the repository root) or `bazel test //e2e:fake_apiserver_test`. Needs the `openssl` CLI to
generate its certificates."""

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "fake_apiserver.py")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(directory):
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate (CN=aa-proxy)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "1", "-subj", "/CN=test-ca", cwd=directory)
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    with open(os.path.join(directory, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, subject in (("server", "/CN=kube-apiserver"), ("client", "/CN=aa-proxy/O=proxies")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
                 name + ".csr", "-subj", subject, cwd=directory)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", name + ".crt", "-days", "1", "-extfile", name + ".ext",
                 cwd=directory)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


class FakeApiServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        make_certs(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.cm_file = os.path.join(self.dir, "cm-%s.json" % self._testMethodName)
        self.policy_file = os.path.join(self.dir, "policy-%s.json" % self._testMethodName)
        self.objects_file = os.path.join(self.dir, "objects-%s.json" % self._testMethodName)
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, "--cert", os.path.join(self.dir, "server.crt"),
             "--key", os.path.join(self.dir, "server.key"),
             "--client-ca", os.path.join(self.dir, "ca.crt"),
             "--configmap-file", self.cm_file, "--policy-file", self.policy_file,
             "--objects-file", self.objects_file],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        self.assertTrue(line.startswith("listening on 127.0.0.1:"), line)
        self.port = int(line.rsplit(":", 1)[1])
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))

    def tearDown(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()

    def connect(self, client_cert=False):
        ctx = self.ctx
        if client_cert:
            ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))
            ctx.load_cert_chain(os.path.join(self.dir, "client.crt"),
                                os.path.join(self.dir, "client.key"))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)

    def call(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.connect()
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, dict(resp.getheaders()), payload
        finally:
            if own:
                conn.close()

    def recorded(self):
        _, _, payload = self.call("GET", "/__recorded")
        return json.loads(payload)

    CM = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
    WATCH = ("/api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name%3D"
             "extension-apiserver-authentication&watch=true")

    def test_configmap_absent_then_present(self):
        status, _, payload = self.call("GET", self.CM)
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(payload)["reason"], "NotFound")
        write_json(self.cm_file, {"requestheader-allowed-names": '["front-proxy-client"]'})
        status, _, payload = self.call("GET", self.CM)
        self.assertEqual(status, 200)
        cm = json.loads(payload)
        self.assertEqual(cm["data"], {"requestheader-allowed-names": '["front-proxy-client"]'})
        self.assertEqual(cm["metadata"]["name"], "extension-apiserver-authentication")

    def test_watch_streams_modifications_with_increasing_resource_version(self):
        write_json(self.cm_file, {"k": "1"})
        conn = self.connect()
        conn.request("GET", self.WATCH)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
        first = json.loads(resp.readline())
        self.assertEqual(first["type"], "ADDED")
        self.assertEqual(first["object"]["data"], {"k": "1"})
        write_json(self.cm_file, {"k": "2"})
        second = json.loads(resp.readline())
        self.assertEqual(second["type"], "MODIFIED")
        self.assertEqual(second["object"]["data"], {"k": "2"})
        self.assertGreater(int(second["object"]["metadata"]["resourceVersion"]),
                           int(first["object"]["metadata"]["resourceVersion"]))
        os.remove(self.cm_file)
        self.assertEqual(json.loads(resp.readline())["type"], "DELETED")
        conn.close()

    def test_watch_timeout_ends_stream(self):
        status, _, payload = self.call("GET", self.WATCH + "&timeoutSeconds=1&resourceVersion=999")
        self.assertEqual(status, 200)
        self.assertEqual(payload, b"")

    def test_token_review_from_policy(self):
        write_json(self.policy_file, {"tokens": {"good": {"username": "alice", "groups": ["dev"]}}})
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": "good"}}
        status, _, payload = self.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review)
        self.assertEqual(status, 201)
        self.assertEqual(json.loads(payload)["status"],
                         {"authenticated": True, "user": {"username": "alice", "groups": ["dev"]}})
        review["spec"]["token"] = "bad"
        _, _, payload = self.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review)
        self.assertEqual(json.loads(payload)["status"], {"authenticated": False, "user": {}})

    def test_subject_access_review_rules_and_default_deny(self):
        write_json(self.policy_file, {"sar": [
            {"user": "alice", "verb": "list", "resource": "samples", "namespace": "default",
             "allowed": True},
            {"group": "ops", "path": "/metrics*", "allowed": True},
            {"user": "mallory", "denied": True, "reason": "blocked"},
        ]})

        def sar(spec):
            body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                    "spec": spec}
            status, _, payload = self.call(
                "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
            self.assertEqual(status, 201)
            return json.loads(payload)["status"]

        ra = {"namespace": "default", "verb": "list", "group": "sample-api-server",
              "resource": "samples"}
        self.assertEqual(sar({"user": "alice", "resourceAttributes": ra}), {"allowed": True})
        self.assertEqual(sar({"user": "bob", "resourceAttributes": ra}), {"allowed": False})
        self.assertEqual(sar({"user": "bob", "groups": ["ops"],
                              "nonResourceAttributes": {"path": "/metrics/x", "verb": "get"}}),
                         {"allowed": True})
        self.assertEqual(sar({"user": "mallory", "resourceAttributes": ra}),
                         {"allowed": False, "denied": True, "reason": "blocked"})

    def test_sar_rules_can_depend_on_the_caller(self):
        write_json(self.policy_file, {"sar": [
            {"caller": "aggregator-token", "allowed": True},
            {"user": "alice", "verb": "get", "allowed": False, "reason": "not here"},
        ]})
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": "alice", "resourceAttributes": {"verb": "get"}}}

        def status_as(token):
            _, _, payload = self.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                                      body, headers={"Authorization": "Bearer " + token})
            return json.loads(payload)["status"]

        self.assertEqual(status_as("aggregator-token"), {"allowed": True})
        self.assertEqual(status_as("proxy-token"), {"allowed": False, "reason": "not here"})

    def test_v1beta1_reviews_as_older_clients_send_them(self):
        write_json(self.policy_file, {"sar": [{"group": "dev", "allowed": True}],
                                      "tokens": {"good": {"username": "alice"}}})
        body = {"apiVersion": "authorization.k8s.io/v1beta1", "kind": "SubjectAccessReview",
                "spec": {"user": "alice", "group": ["dev"], "resourceAttributes": {"verb": "get"}}}
        status, _, payload = self.call(
            "POST", "/apis/authorization.k8s.io/v1beta1/subjectaccessreviews", body)
        review = json.loads(payload)
        self.assertEqual((status, review["apiVersion"], review["status"]),
                         (201, "authorization.k8s.io/v1beta1", {"allowed": True}))
        status, _, payload = self.call(
            "POST", "/apis/authentication.k8s.io/v1beta1/tokenreviews",
            {"apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview",
             "spec": {"token": "good"}})
        review = json.loads(payload)
        self.assertEqual((status, review["apiVersion"], review["status"]["user"]),
                         (201, "authentication.k8s.io/v1beta1", {"username": "alice"}))

    SERVICE = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "api", "namespace": "sample"},
               "spec": {"type": "ClusterIP", "clusterIP": "127.0.0.9"}}
    NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sample"}}

    def test_objects_are_listed_and_fetched_by_collection(self):
        write_json(self.objects_file, [self.SERVICE, self.NAMESPACE])
        status, _, payload = self.call("GET", "/api/v1/services?limit=500&resourceVersion=0")
        self.assertEqual(status, 200)
        services = json.loads(payload)
        self.assertEqual((services["kind"], services["apiVersion"]), ("ServiceList", "v1"))
        self.assertEqual([i["spec"]["clusterIP"] for i in services["items"]], ["127.0.0.9"])
        self.assertTrue(services["items"][0]["metadata"]["uid"])
        self.assertEqual(json.loads(self.call("GET", "/api/v1/namespaces/other/services")[2])
                         ["items"], [])
        status, _, payload = self.call("GET", "/api/v1/namespaces/sample/services/api")
        self.assertEqual((status, json.loads(payload)["metadata"]["name"]), (200, "api"))
        status, _, payload = self.call("GET", "/api/v1/namespaces/sample")
        self.assertEqual((status, json.loads(payload)["kind"]), (200, "Namespace"))
        self.assertEqual(self.call("GET", "/api/v1/namespaces/sample/services/none")[0], 404)
        status, _, payload = self.call(
            "GET", "/apis/admissionregistration.k8s.io/v1beta1/validatingwebhookconfigurations")
        self.assertEqual((status, json.loads(payload)["items"]), (200, []))
        self.assertEqual(self.call("GET", "/api/v1/pods")[0], 404)

    def test_object_watch_sends_changes_of_its_collection_only(self):
        write_json(self.objects_file, [self.SERVICE, self.NAMESPACE])
        _, _, payload = self.call("GET", "/api/v1/endpoints")
        rv = json.loads(payload)["metadata"]["resourceVersion"]
        conn = self.connect()
        conn.request("GET", "/api/v1/endpoints?watch=true&resourceVersion=" + rv)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": "api", "namespace": "sample"},
                     "subsets": [{"addresses": [{"ip": "127.0.0.9"}]}]}
        write_json(self.objects_file, [self.SERVICE, self.NAMESPACE, endpoints])
        added = json.loads(resp.readline())
        self.assertEqual((added["type"], added["object"]["kind"]), ("ADDED", "Endpoints"))
        endpoints["subsets"] = []
        changed_service = dict(self.SERVICE, spec={"type": "ClusterIP", "clusterIP": "127.0.0.8"})
        write_json(self.objects_file, [changed_service, self.NAMESPACE, endpoints])
        modified = json.loads(resp.readline())
        self.assertEqual((modified["type"], modified["object"]["subsets"]), ("MODIFIED", []))
        self.assertGreater(int(modified["object"]["metadata"]["resourceVersion"]),
                           int(added["object"]["metadata"]["resourceVersion"]))
        write_json(self.objects_file, [changed_service, self.NAMESPACE])
        self.assertEqual(json.loads(resp.readline())["type"], "DELETED")
        conn.close()

    def test_failure_injection_status_retry_after_times(self):
        write_json(self.policy_file, {"failures": {"tokenreviews": {
            "status": 429, "retry_after": 2, "times": 1}}})
        review = {"spec": {"token": "x"}}
        status, headers, _ = self.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review)
        self.assertEqual(status, 429)
        self.assertEqual(headers["Retry-After"], "2")
        status, _, _ = self.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review)
        self.assertEqual(status, 201)

    def test_failure_injection_down_and_slow_and_both(self):
        write_json(self.policy_file, {"failures": {
            "configmap": {"down": True},
            "subjectaccessreviews": {"slow": 300, "both_allowed_and_denied": True}}})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.call("GET", self.CM)
        start = time.monotonic()
        status, _, payload = self.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                                       {"spec": {"user": "a"}})
        self.assertGreaterEqual(time.monotonic() - start, 0.3)
        self.assertEqual(json.loads(payload)["status"], {"allowed": True, "denied": True})

    def raw_ending(self, path):
        """Sends one POST over TLS (through memory BIOs, so that the socket reads are ours) and
        reads until the connection ends: "eof" (a FIN) or "reset" (an RST), and the bytes of
        application data that came before."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        data = b""
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    incoming.write(sock.recv(65536))
            body = b'{"spec": {}}'
            tls.write(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" %
                      (path.encode(), len(body), body))
            sock.sendall(outgoing.read())
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    return "reset", data
                if not chunk:
                    return "eof", data
                incoming.write(chunk)
                try:
                    data += tls.read(65536)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    pass
        finally:
            sock.close()

    def test_failure_injection_reset_is_an_rst_and_down_a_close(self):
        write_json(self.policy_file, {"failures": {"tokenreviews": {"reset": True},
                                                   "subjectaccessreviews": {"down": True}}})
        self.assertEqual(self.raw_ending("/apis/authentication.k8s.io/v1/tokenreviews"),
                         ("reset", b""))
        self.assertEqual(self.raw_ending("/apis/authorization.k8s.io/v1/subjectaccessreviews"),
                         ("eof", b""))
        self.assertEqual(len(self.recorded()), 2)  # both requests were read before the fault

    def test_failure_injection_garbage_bodies(self):
        write_json(self.cm_file, {"k": "1"})
        write_json(self.policy_file, {"failures": {
            "tokenreviews": {"garbage": True}, "subjectaccessreviews": {"garbage": True},
            "configmap": {"garbage": True}, "watch": {"garbage": True}}})
        for method, path, code in (
                ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", 201),
                ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", 201),
                ("GET", self.CM, 200)):
            status, headers, payload = self.call(method, path, {"spec": {}})
            self.assertEqual((status, headers["Content-Type"]), (code, "application/json"))
            with self.assertRaises(ValueError):
                json.loads(payload)
        status, headers, payload = self.call("GET", self.WATCH)
        self.assertEqual((status, headers["Transfer-Encoding"]), (200, "chunked"))
        self.assertEqual(payload, b"{not a watch event\n")

    def test_end_watches_ends_open_streams(self):
        write_json(self.cm_file, {"k": "1"})
        conn = self.connect()
        conn.request("GET", self.WATCH)
        resp = conn.getresponse()
        self.assertEqual(json.loads(resp.readline())["type"], "ADDED")
        _, _, payload = self.call("POST", "/__end_watches")
        self.assertEqual(json.loads(payload), {"ended": 1})
        self.assertEqual(resp.read(), b"")  # the terminating chunk: a clean end
        # The connection stays usable, and a new watch streams again.
        conn.request("GET", self.WATCH)
        resp = conn.getresponse()
        self.assertEqual(json.loads(resp.readline())["object"]["data"], {"k": "1"})
        conn.close()

    def test_api_tokens_and_client_certs(self):
        write_json(self.policy_file, {"api_tokens": ["sa-token"]})
        status, _, _ = self.call("GET", self.CM)
        self.assertEqual(status, 401)
        status, _, _ = self.call("GET", self.CM, headers={"Authorization": "Bearer sa-token"})
        self.assertEqual(status, 404)
        conn = self.connect(client_cert=True)
        status, _, _ = self.call("GET", self.CM, conn=conn)
        conn.close()
        self.assertEqual(status, 404)
        self.assertEqual([r["client_cert_cn"] for r in self.recorded()], ["", "", "aa-proxy"])

    def test_recording_connections_and_reset(self):
        conn = self.connect()
        self.call("GET", self.CM, conn=conn)
        self.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": "t"}},
                  headers={"Authorization": "Bearer abc"}, conn=conn)
        self.call("GET", self.CM)
        conn.close()
        recorded = self.recorded()
        self.assertEqual([(r["method"], r["path"]) for r in recorded],
                         [("GET", self.CM),
                          ("POST", "/apis/authentication.k8s.io/v1/tokenreviews"),
                          ("GET", self.CM)])
        self.assertEqual(recorded[0]["connection"], recorded[1]["connection"])
        self.assertNotEqual(recorded[0]["connection"], recorded[2]["connection"])
        self.assertIn(["Authorization", "Bearer abc"], recorded[1]["headers"])
        self.assertEqual(json.loads(recorded[1]["body"]), {"spec": {"token": "t"}})
        self.call("POST", "/__reset")
        self.assertEqual(self.recorded(), [])


if __name__ == "__main__":
    unittest.main()
