"""The route table and kube-rbac-proxy's options, end to end (issue #13, docs/routes.md).

One aa-proxy, several backends (HTTP on TCP, HTTP on a Unix socket, the sample API server), a
`routes:` list in the --config file, and the kube-apiserver double recording every
SubjectAccessReview. Each case asserts what a user sees: the status and exact Status body, which
backend answered and the headers it received, and the exact attributes of the SARs sent.

kube-rbac-proxy's own e2e scenarios, as black-box cases here: allowed / denied (non-resource
/metrics), ignore-paths, allow-paths, resource attributes, rewrites by query parameter and by
header (several values: every one must be allowed), the static authorizer (a static policy with a
resourceAttributes route), identity headers for the upstream (--auth-header-fields-enabled).
Upstream TLS has its own suite (upstream_tls_test.py).
"""

import http.client
import http.server
import json
import os
import re
import signal
import socketserver
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from cluster import KUBECTL, PROXY, ClusterTestCase, go_compact  # noqa: E402

ALICE = {"user": "alice", "groups": ["dev", "system:authenticated"]}


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with who answered, the path and the header lines it received."""

    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = json.dumps({"backend": self.server.name, "method": self.command,
                            "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                            "body": body.decode("latin-1")}).encode()
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

    def log_message(self, *args):
        pass

    def address_string(self):
        return "backend-client"


class TcpEchoServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class UnixEchoServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def start_echo(name, unix_path=None):
    server = (UnixEchoServer(str(unix_path), EchoHandler) if unix_path
              else TcpEchoServer(("127.0.0.1", 0), EchoHandler))
    server.name = name
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_proxy(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def resource_spec(**attrs):
    return {"resourceAttributes": attrs, **ALICE}


def forbidden(message, details=None):
    return go_compact({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": "Forbidden", "details": details or {},
                       "code": 403})


def failure(code, reason, message, details=False):
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": message, "reason": reason}
    if details:
        status["details"] = {}
    status["code"] = code
    return go_compact(status)


NOT_FOUND = failure(404, "NotFound", "the server could not find the requested resource",
                    details=True)


class RoutesTestCase(ClusterTestCase):
    policy = {"sar": []}
    extra_flags = ()

    def setUp(self):
        super().setUp()
        self.echo_a = start_echo("a")
        self.unix_path = self.sock_dir / "b.sock"
        self.echo_b = start_echo("b", self.unix_path)
        for server in (self.echo_a, self.echo_b):
            self.addCleanup(server.server_close)
            self.addCleanup(server.shutdown)
        self.upstream_a = f"http://127.0.0.1:{self.echo_a.server_address[1]}"
        self.write_policy(self.policy)

    def routes_yaml(self):
        return ""

    def start_with_routes(self, routes_yaml, flags=()):
        config = self.tmp / "config.yaml"
        config.write_text(routes_yaml)
        args = ["--config", str(config), *self.extra_flags, *flags]
        return self.start_cluster_proxy(args)

    def as_alice(self, path, groups=("dev",), **kwargs):
        return self.as_front_proxy(path, "alice", list(groups), **kwargs)

    def answered_by(self, result):
        self.assertEqual(result.status, 200, result.text)
        return json.loads(result.body)

    def seen_headers(self, result):
        return {k.lower(): v for k, v in self.answered_by(result)["headers"]}


class RouteTableTest(RoutesTestCase):
    policy = {"sar": [
        {"user": "alice", "path": "/orders/*", "verb": "get", "allowed": True},
        {"user": "alice", "namespace": "ns1", "resource": "services", "subresource": "metrics",
         "allowed": True},
        {"user": "alice", "namespace": "ns2", "resource": "services", "subresource": "metrics",
         "allowed": False, "reason": "ns2 is not yours"},
        {"user": "alice", "resource": "tenants", "name": "acme", "allowed": True},
        {"user": "alice", "resource": "nodes", "subresource": "metrics", "verb": "get",
         "allowed": True},
        {"user": "alice", "resource": "samples", "allowed": True},
    ]}

    def setUp(self):
        super().setUp()
        self.start_with_routes(f"""
routes:
- path: /apis/
  # no upstream: --upstream (the sample API server), kubernetes authorization
- path: /metrics
  upstream: {self.upstream_a}
  authorization: resourceAttributes
  resourceAttributes:
    namespace: "{{{{ .Value }}}}"
    apiVersion: v1
    resource: services
    subresource: metrics
  rewrites:
    byQueryParameter: {{name: namespace}}
    byHttpHeader: {{name: X-Namespace}}
- path: /orders
  upstream: unix://{self.unix_path}
  authorization: nonResource
- path: /static
  upstream: {self.upstream_a}
  authorization: public
- path: /admin
  upstream: {self.upstream_a}
  authorization: deny
- path: /tenants
  upstream: {self.upstream_a}
  resourceAttributes: {{apiGroup: example.com, resource: tenants, name: "{{{{.Value}}}}"}}
  rewrites: {{byPathSegment: {{index: 1}}}}
- path: /cluster-metrics
  upstream: unix://{self.unix_path}
  resourceAttributes: {{apiVersion: v1, resource: nodes, subresource: metrics}}
""")

    def test_non_resource_route_reaches_the_unix_socket_backend(self):
        result = self.as_alice("/orders/42")
        seen = self.answered_by(result)
        self.assertEqual(seen["backend"], "b")
        self.assertEqual(seen["path"], "/orders/42")
        headers = {k.lower(): v for k, v in seen["headers"]}
        self.assertEqual(headers["x-remote-user"], "alice")
        self.assertEqual(self.sar_specs(), [{"nonResourceAttributes": {"path": "/orders/42",
                                                                       "verb": "get"}, **ALICE}])
        self.reset_recording()
        denied = self.as_alice("/orders/42", method="POST", data=b"{}")
        self.assertEqual(denied.status, 403)
        self.assertEqual(denied.body, forbidden(
            'forbidden: User "alice" cannot post path "/orders/42"'))
        self.assertEqual(self.sar_specs(), [{"nonResourceAttributes": {"path": "/orders/42",
                                                                       "verb": "post"}, **ALICE}])

    def test_resource_attributes_from_the_query_parameter(self):
        seen = self.answered_by(self.as_alice("/metrics?namespace=ns1"))
        self.assertEqual(seen["backend"], "a")
        self.assertEqual(seen["path"], "/metrics?namespace=ns1")
        self.assertEqual(self.sar_specs(), [resource_spec(
            namespace="ns1", verb="get", version="v1", resource="services",
            subresource="metrics")])

    def test_every_rewritten_value_must_be_allowed(self):
        result = self.as_alice("/metrics?namespace=ns1&namespace=ns2")
        self.assertEqual(result.status, 403)
        self.assertEqual(result.body, forbidden(
            'services is forbidden: User "alice" cannot get resource "services/metrics" '
            'in API group "" in the namespace "ns2": ns2 is not yours', {"kind": "services"}))
        self.assertEqual([s["resourceAttributes"]["namespace"] for s in self.sar_specs()],
                         ["ns1", "ns2"])
        self.assertEqual(self.echo_a.requests, [])

    def test_header_values_are_rewritten_too(self):
        seen = self.answered_by(self.as_alice("/metrics", headers=[KUBECTL, "X-Namespace: ns1"]))
        self.assertEqual(seen["backend"], "a")
        self.assertEqual(self.sar_specs(), [resource_spec(
            namespace="ns1", verb="get", version="v1", resource="services",
            subresource="metrics")])
        # The header is the backend's to read as well: it goes through.
        self.assertIn(["X-Namespace", "ns1"], seen["headers"])

    def test_no_value_for_the_template_is_a_bad_request(self):
        result = self.as_alice("/metrics")
        self.assertEqual(result.status, 400)
        self.assertEqual(result.body, failure(
            400, "BadRequest", "the request has no value for the route's resource attributes "
            '(query parameter "namespace", header "X-Namespace")'))
        self.assertEqual(self.sar_specs(), [])

    def test_path_segment_rewrite(self):
        seen = self.answered_by(self.as_alice("/tenants/acme/usage"))
        self.assertEqual(seen["path"], "/tenants/acme/usage")
        self.assertEqual(self.sar_specs(), [resource_spec(
            verb="get", group="example.com", resource="tenants", name="acme")])
        self.reset_recording()
        result = self.as_alice("/tenants/other")
        self.assertEqual(result.status, 403)
        self.assertEqual(self.sar_specs(), [resource_spec(
            verb="get", group="example.com", resource="tenants", name="other")])

    def test_fixed_resource_attributes_take_the_verb_from_the_method(self):
        seen = self.answered_by(self.as_alice("/cluster-metrics/cpu"))
        self.assertEqual(seen["backend"], "b")
        self.assertEqual(self.sar_specs(), [resource_spec(
            verb="get", version="v1", resource="nodes", subresource="metrics")])
        self.reset_recording()
        for method, verb in (("POST", "create"), ("PUT", "update"), ("PATCH", "patch"),
                             ("DELETE", "delete")):
            result = self.as_alice("/cluster-metrics", method=method, data=b"x")
            self.assertEqual(result.status, 403, method)
        self.assertEqual([s["resourceAttributes"]["verb"] for s in self.sar_specs()],
                         ["create", "update", "patch", "delete"])

    def test_public_route_needs_no_identity_and_forwards_none(self):
        result = self.fetch("/static/app.js", headers=[
            "X-Remote-User: mallory", "X-Remote-Group: system:masters",
            "Authorization: Bearer stolen", "Impersonate-User: root"])
        headers = self.seen_headers(result)
        self.assertEqual(self.answered_by(result)["backend"], "a")
        for name in ("x-remote-user", "x-remote-group", "authorization", "impersonate-user"):
            self.assertNotIn(name, headers)
        self.assertEqual(self.sar_specs(), [])
        self.assertEqual(self.token_reviews(), [])

    def test_deny_route(self):
        result = self.as_alice("/admin/users")
        self.assertEqual(result.status, 403)
        self.assertEqual(result.body, forbidden(
            'forbidden: User "alice" cannot get path "/admin/users": Everything is forbidden.'))
        self.assertEqual(self.sar_specs(), [])
        self.assertEqual(self.echo_a.requests, [])

    def test_unmatched_path_is_404(self):
        for path in ("/", "/other", "/staticx", "/api/v1/pods"):
            with self.subTest(path=path):
                result = self.as_alice(path)
                self.assertEqual(result.status, 404)
                self.assertEqual(result.body, NOT_FOUND)
        self.assertEqual(self.sar_specs(), [])

    def test_dot_segments_cannot_reach_another_route(self):
        for path in ("/static/../admin/x", "/static/%2E%2E/admin", "//admin", "/static/./a"):
            with self.subTest(path=path):
                result = self.fetch(path, extra=["--path-as-is"])
                self.assertEqual(result.status, 400, result.text)
                self.assertIn(b"has empty, \\\".\\\" or \\\"..\\\" segments", result.body)
        self.assertEqual(self.echo_a.requests, [])

    def test_kubernetes_route_keeps_request_info(self):
        gv = "/apis/sample-api-server/v1alpha1"
        result = self.as_alice(gv + "/namespaces/default/samples")
        self.assertEqual(result.status, 200, result.text)
        self.assertEqual(self.sar_specs(), [resource_spec(
            namespace="default", verb="list", group="sample-api-server", version="v1alpha1",
            resource="samples")])


class StaticAuthorizerTest(RoutesTestCase):
    """kube-rbac-proxy's static authorizer: a static policy in front of the webhook
    (--authorization-mode static,webhook) answers the attributes of a resourceAttributes route
    without a SubjectAccessReview; what it does not allow goes to kube-apiserver."""

    policy = {"sar": [{"user": "alice", "namespace": "ns2", "allowed": True}]}

    def test_static_rules_first_then_reviews(self):
        static = self.tmp / "static.yaml"
        static.write_text("rules:\n- users: [alice]\n  verbs: [get]\n  apiGroups: ['']\n"
                          "  resources: [services/metrics]\n  namespaces: [ns1]\n")
        self.start_with_routes(f"""
routes:
- path: /metrics
  upstream: {self.upstream_a}
  resourceAttributes: {{namespace: "{{{{ .Value }}}}", apiVersion: v1, resource: services,
                       subresource: metrics}}
  rewrites: {{byQueryParameter: {{name: namespace}}}}
""", ["--authorization-mode", "static,webhook", "--authorization-policy-file", str(static)])
        self.assertEqual(self.answered_by(self.as_alice("/metrics?namespace=ns1"))["backend"], "a")
        self.assertEqual(self.sar_specs(), [])  # the static policy allowed it
        self.assertEqual(self.answered_by(self.as_alice("/metrics?namespace=ns2"))["backend"], "a")
        self.assertEqual([s["resourceAttributes"]["namespace"] for s in self.sar_specs()], ["ns2"])
        self.assertEqual(self.as_alice("/metrics?namespace=ns3").status, 403)


class AuthHeaderFieldsTest(RoutesTestCase):
    policy = {"sar": [{"user": "alice", "allowed": True}]}
    extra_flags = ("--auth-header-fields-enabled", "--auth-header-user-field-name", "X-Forwarded-User",
                   "--auth-header-groups-field-name", "X-Forwarded-Groups",
                   "--auth-header-groups-field-separator", ",")

    def test_identity_under_the_configured_names_and_never_the_clients(self):
        self.start_with_routes(f"routes:\n- path: /\n  upstream: {self.upstream_a}\n")
        result = self.as_alice("/anything", groups=("dev", "ops"), headers=[
            KUBECTL, "X-Forwarded-User: mallory", "x-forwarded-groups: system:masters"])
        seen = self.answered_by(result)["headers"]
        self.assertEqual([v for k, v in seen if k.lower() == "x-forwarded-user"], ["alice"])
        self.assertEqual([v for k, v in seen if k.lower() == "x-forwarded-groups"],
                         ["dev,ops,system:authenticated"])
        self.assertEqual([v for k, v in seen if k.lower() == "x-remote-user"], ["alice"])


class AuthHeaderFieldsDefaultNamesTest(RoutesTestCase):
    policy = {"sar": [{"user": "alice", "allowed": True}]}
    extra_flags = ("--auth-header-fields-enabled",)

    def test_default_names_do_not_repeat_x_remote_user(self):
        self.start_with_routes(f"routes:\n- path: /\n  upstream: {self.upstream_a}\n")
        seen = self.answered_by(self.as_alice("/anything", groups=("dev", "ops")))["headers"]
        self.assertEqual([v for k, v in seen if k.lower() == "x-remote-user"], ["alice"])
        self.assertEqual([v for k, v in seen if k.lower() == "x-remote-groups"],
                         ["dev|ops|system:authenticated"])
        self.assertEqual([v for k, v in seen if k.lower() == "x-remote-group"],
                         ["dev", "ops", "system:authenticated"])


class KubeRbacProxyPathFlagsTest(RoutesTestCase):
    policy = {"sar": [{"user": "alice", "path": "/metrics", "verb": "get", "allowed": True}]}

    def start_plain(self, flags):
        return self.start_with_routes(f"routes:\n- path: /\n  upstream: {self.upstream_a}\n",
                                      flags)

    def test_ignore_paths(self):
        self.start_plain(["--ignore-paths", "/healthz-app,/public/*"])
        result = self.fetch("/public/a", headers=["X-Remote-User: mallory"])
        self.assertNotIn("x-remote-user", self.seen_headers(result))
        self.assertEqual(self.answered_by(self.fetch("/healthz-app"))["path"], "/healthz-app")
        # /public/a/b: '*' does not cross '/', so authorization applies (anonymous: denied).
        self.assertEqual(self.fetch("/public/a/b").status, 403)
        self.assertEqual(len(self.sar_specs()), 1)

    def test_allow_paths(self):
        self.start_plain(["--allow-paths", "/metrics,/api/v1/*"])
        self.assertEqual(self.answered_by(self.as_alice("/metrics"))["path"], "/metrics")
        result = self.as_alice("/metrics/extra")
        self.assertEqual((result.status, result.body), (404, NOT_FOUND))
        self.assertEqual(self.as_alice("/api/v1/pods").status, 403)  # allowed path, denied user
        self.assertEqual(self.echo_a.requests, ["/metrics"])

    def test_allow_and_ignore_paths_together_is_a_start_up_error(self):
        config = self.tmp / "c.yaml"
        config.write_text(f"upstream: {self.upstream_a}\n")
        proc = run_proxy([str(PROXY), "--config", str(config),
                                       "--allow-paths", "/a", "--ignore-paths", "/b"])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--allow-paths: cannot be combined with --ignore-paths", proc.stderr)


class StaleAllowTest(RoutesTestCase):
    """--authorization-stale-allow-grace-period: opt-in, allows only, only for outages."""

    policy = {"sar": [{"user": "alice", "path": "/ok", "allowed": True},
                      {"user": "alice", "path": "/no", "allowed": False, "reason": "nope"}]}

    def start_with_grace(self, grace):
        self.start_with_routes(
            f"routes:\n- path: /\n  upstream: {self.upstream_a}\n",
            ["--authorization-webhook-cache-authorized-ttl", "1s",
             "--authorization-webhook-cache-unauthorized-ttl", "1s",
             "--authorization-stale-allow-grace-period", grace])

    def outage(self, failure):
        self.write_policy({**self.policy, "failures": {"subjectaccessreviews": failure}})

    def expire_ttl(self):
        time.sleep(1.2)

    def stale_count(self):
        result = self.as_front_proxy("/metrics", "e2e-metrics-reader", ["system:masters"])
        line = re.search(r"^aaproxy_authorization_stale_allows_total (\S+)$", result.text,
                         re.MULTILINE)
        return float(line.group(1))

    def test_allow_outlives_its_ttl_during_an_outage_denials_do_not(self):
        self.start_with_grace("3s")
        self.assertEqual(self.as_alice("/ok").status, 200)
        self.assertEqual(self.as_alice("/no").status, 403)
        for failure in ({"down": True}, {"status": 503}, {"reset": True}):
            with self.subTest(failure=failure):
                self.outage(failure)
                self.expire_ttl()
                self.assertEqual(self.as_alice("/ok").status, 200)
                result = self.as_alice("/no")
                self.assertEqual(result.status, 500, result.text)  # the outage, not a stale deny
                self.write_policy(self.policy)
                self.assertEqual(self.as_alice("/ok").status, 200)  # fresh again
        self.assertEqual(self.stale_count(), 3)
        self.assertRegex(self.proxy.log_text(), r"allowing by an expired decision")

    def test_grace_runs_out(self):
        # Margins of seconds, not tenths: a loaded CI machine takes a while to start a client.
        self.start_with_grace("3s")
        allowed_at = time.monotonic()
        self.assertEqual(self.as_alice("/ok").status, 200)
        self.outage({"down": True})
        self.expire_ttl()
        self.assertEqual(self.as_alice("/ok").status, 200)  # TTL 1s + grace 3s not yet over
        time.sleep(max(0.0, allowed_at + 5.5 - time.monotonic()))
        self.assertEqual(self.as_alice("/ok").status, 500)

    def test_a_4xx_is_not_an_outage(self):
        self.start_with_grace("5s")
        self.assertEqual(self.as_alice("/ok").status, 200)
        self.outage({"status": 429, "retry_after": 1})
        self.expire_ttl()
        self.assertEqual(self.as_alice("/ok").status, 500)
        self.assertEqual(self.stale_count(), 0)

    def test_off_by_default(self):
        self.start_with_routes(f"routes:\n- path: /\n  upstream: {self.upstream_a}\n",
                               ["--authorization-webhook-cache-authorized-ttl", "1s"])
        self.assertEqual(self.as_alice("/ok").status, 200)
        self.outage({"down": True})
        self.expire_ttl()
        self.assertEqual(self.as_alice("/ok").status, 500)


class LiveReloadTest(RoutesTestCase):
    """The static policy and the route table reload on SIGHUP and when the files change; a bad
    file keeps the last good configuration (logged, counted, /readyz/config-files); requests in
    flight during reloads all succeed."""

    POLICY_OK = "rules:\n- users: [alice]\n  verbs: [get]\n  nonResourceURLs: [/ok, /ok/*]\n"
    POLICY_NEW = POLICY_OK + "- users: [alice]\n  verbs: [get]\n  nonResourceURLs: [/new]\n"

    def setUp(self):
        super().setUp()
        self.policy_path = self.tmp / "policy.yaml"
        self.policy_path.write_text(self.POLICY_OK)
        self.config_path = self.tmp / "config.yaml"
        self.echo_c = start_echo("c")
        self.addCleanup(self.echo_c.server_close)
        self.addCleanup(self.echo_c.shutdown)
        self.upstream_c = f"http://127.0.0.1:{self.echo_c.server_address[1]}"

    def routes(self, extra=""):
        return (f"routes:\n- path: /\n  upstream: {self.upstream_a}\n"
                f"- path: /c\n  upstream: {self.upstream_c}\n  authorization: public\n" + extra)

    def start_reloading(self, interval="1h"):
        self.config_path.write_text(self.routes())
        self.start_cluster_proxy(["--config", str(self.config_path), "--authorization-mode",
                                  "static", "--authorization-policy-file", str(self.policy_path),
                                  "--tls-reload-interval", interval])

    def sighup_and_wait(self, pattern, count=1):
        self.proxy.popen.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: len(re.findall(pattern, self.proxy.log_text())) >= count,
                           timeout=10, what=pattern)

    def reloads(self, file, result):
        text = self.as_front_proxy("/metrics", "m", ["system:masters"]).text
        line = re.search(r'^aaproxy_config_reloads_total\{file="' + file + '",result="' + result +
                         r'"\} (\S+)$', text, re.MULTILINE)
        return float(line.group(1))

    def test_policy_reload_under_load_loses_no_request(self):
        self.start_reloading()
        statuses = []
        stop = threading.Event()

        def load():
            context = harness.client_tls_context(self.aggregator)
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context)
            while not stop.is_set():
                conn.request("GET", "/ok/x", headers={"X-Remote-User": "alice"})
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
            conn.close()

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        for i in range(10):
            self.policy_path.write_text(self.POLICY_NEW if i % 2 == 0 else self.POLICY_OK)
            self.sighup_and_wait(r"reloaded --authorization-policy-file", i + 1)
            time.sleep(0.2)  # requests under each policy
        stop.set()
        for t in threads:
            t.join()
        self.assertGreater(len(statuses), 50)
        self.assertEqual({s for s in statuses}, {200})
        self.assertEqual(self.reloads("policy", "success"), 10)

    def test_new_rules_apply_and_a_bad_policy_is_kept_out(self):
        self.start_reloading()
        self.assertEqual(self.as_alice("/new").status, 403)
        self.policy_path.write_text(self.POLICY_NEW)
        self.sighup_and_wait(r"reloaded --authorization-policy-file")
        self.assertEqual(self.as_alice("/new").status, 200)
        self.policy_path.write_text("rules:\n- users: [alice]\n  verbs: [get]\n  resources: [x]\n")
        self.sighup_and_wait(r"keeping the previous policy")
        self.assertEqual(self.as_alice("/new").status, 200)  # the last good policy
        self.assertEqual(self.reloads("policy", "failure"), 1)
        ready = self.as_front_proxy("/readyz/config-files", "m", ["system:masters"])
        self.assertEqual(ready.status, 500)
        self.assertIn("--authorization-policy-file: ", ready.text)
        self.assertIn("rules[0]", ready.text)
        self.assertEqual(self.fetch("/readyz").status, 200)  # still serving: not unready
        self.policy_path.write_text(self.POLICY_OK)
        self.sighup_and_wait(r"reloaded --authorization-policy-file", 2)
        self.assertEqual(
            self.as_front_proxy("/readyz/config-files", "m", ["system:masters"]).status, 200)
        self.assertEqual(self.as_alice("/new").status, 403)

    def test_routes_reload_on_change_without_a_signal(self):
        self.start_reloading(interval="1s")
        self.assertEqual(self.answered_by(self.as_alice("/ok/d"))["backend"], "a")
        self.config_path.write_text(self.routes(
            f"- path: /ok/d\n  upstream: {self.upstream_c}\n  authorization: nonResource\n"))
        harness.wait_until(lambda: "reloaded the routes" in self.proxy.log_text(), timeout=10,
                           what="the route table reload")
        self.assertEqual(self.answered_by(self.as_alice("/ok/d"))["backend"], "c")
        # A backend aa-proxy did not start with, and a bad field: both kept out.
        self.config_path.write_text(self.routes("- path: /z\n  upstream: http://127.0.0.1:1\n"))
        harness.wait_until(lambda: "keeping the previous routes" in self.proxy.log_text(),
                           timeout=10, what="the rejected reload")
        self.assertIn("routes[2].upstream: http://127.0.0.1:1 is a backend aa-proxy did not start "
                      "with; adding a backend needs a restart", self.proxy.log_text())
        self.config_path.write_text(self.routes("- path: /z\n  authorization: nope\n"))
        self.sighup_and_wait(r'routes\[2\]\.authorization: "nope" is not one of')
        self.assertEqual(self.answered_by(self.as_alice("/ok/d"))["backend"], "c")
        self.assertEqual(self.reloads("routes", "success"), 1)
        self.assertGreaterEqual(self.reloads("routes", "failure"), 2)


class RouteConfigErrorsTest(RoutesTestCase):
    def test_a_bad_route_names_the_field_and_the_proxy_does_not_start(self):
        cases = [
            ("routes:\n- path: /a\n  authorization: rbac\n",
             'routes[0].authorization: "rbac" is not one of kubernetes, resourceAttributes, '
             "nonResource, public, deny"),
            ("routes:\n- path: /a\n  upstream: http://127.0.0.1:1\n- path: /b\n",
             'routes[1].upstream: required when --upstream is not set (path "/b")'),
            ("routes:\n- path: /a\n  upstream: http://127.0.0.1:1\n  resourceAttributes:\n"
             "    resource: \"{{ .Value }}\"\n",
             "routes[0].rewrites: required: resourceAttributes use {{ .Value }}"),
        ]
        for text, message in cases:
            with self.subTest(message=message):
                config = self.tmp / "bad.yaml"
                config.write_text(text)
                proc = run_proxy([str(PROXY), "--config", str(config),
                                               "--secure-port", str(harness.free_port())])
                self.assertNotEqual(proc.returncode, 0)
                self.assertIn(f'--config: "{config}": {message}', proc.stderr)


if __name__ == "__main__":
    unittest.main()
