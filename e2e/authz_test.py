"""aa-proxy's authorization end to end, in cluster mode against the kube-apiserver double.

Contract (docs/kubernetes-semantics.md sections 3, 4, 4b and authz/README.md where upstream
differs): the SubjectAccessReview sent for each request (exact bytes), 403 and 500 bodies byte for
byte, always-allow paths and privileged groups without a SAR, and the decision cache (one SAR per
distinct spec within the TTL, concurrent identical misses coalesced, denies expiring).

The caller is the aggregator: the front-proxy certificate with X-Remote-User: alice and
X-Remote-Group: dev, so every SAR carries user "alice", groups ["dev", "system:authenticated"].
"""

import concurrent.futures
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from cluster import KUBECTL, SARS, ClusterTestCase, go_compact, go_pretty  # noqa: E402
from sample_backend_test import DISCOVERY, GET_TEAM_A_X, GV, LIST_DEFAULT  # noqa: E402

ALICE = {"user": "alice", "groups": ["dev", "system:authenticated"]}
SAMPLES = {"group": "sample-api-server", "version": "v1alpha1", "resource": "samples"}
DENY_REASON = "RBAC: samples/secret is off limits"


def sar_body(spec):
    """The SubjectAccessReview as the proxy must POST it (authz/README.md: encoding/json of the
    object with empty metadata and status, trailing newline)."""
    return go_compact({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                       "metadata": {}, "spec": spec, "status": {"allowed": False}})


def resource_spec(**attrs):
    order = ["namespace", "verb", "group", "version", "resource", "subresource", "name",
             "fieldSelector", "labelSelector"]
    merged = {k: attrs[k] for k in order if attrs.get(k)}
    return {"resourceAttributes": merged, **ALICE}


def non_resource_spec(path, verb="get"):
    return {"nonResourceAttributes": {"path": path, "verb": verb}, **ALICE}


def forbidden(message, details):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Forbidden", "details": details, "code": 403}


def ns_message(verb, resource, ns="default", name=None, reason=None):
    prefix = f'samples.sample-api-server "{name}"' if name else "samples.sample-api-server"
    text = (f'{prefix} is forbidden: User "alice" cannot {verb} resource "{resource}" in API '
            f'group "sample-api-server" in the namespace "{ns}"')
    return text + (f": {reason}" if reason else "")


SAMPLE_DETAILS = {"group": "sample-api-server", "kind": "samples"}


def named(name):
    return {"name": name, **SAMPLE_DETAILS}


# (method, path, the SAR spec, the 403 Status) for a caller nothing is allowed to.
MATRIX = [
    ("GET", GV + "/namespaces/default/samples",
     resource_spec(namespace="default", verb="list", **SAMPLES),
     forbidden(ns_message("list", "samples"), SAMPLE_DETAILS)),
    ("GET", GV + "/namespaces/default/samples/s1",
     resource_spec(namespace="default", verb="get", name="s1", **SAMPLES),
     forbidden(ns_message("get", "samples", name="s1"), named("s1"))),
    ("GET", GV + "/namespaces/default/samples?watch=true&timeoutSeconds=1",
     resource_spec(namespace="default", verb="watch", **SAMPLES),
     forbidden(ns_message("watch", "samples"), SAMPLE_DETAILS)),
    ("GET", GV + "/watch/namespaces/team-a/samples",
     resource_spec(namespace="team-a", verb="watch", **SAMPLES),
     forbidden(ns_message("watch", "samples", ns="team-a"), SAMPLE_DETAILS)),
    ("GET", GV + "/namespaces/default/samples/s1/status",
     resource_spec(namespace="default", verb="get", subresource="status", name="s1", **SAMPLES),
     forbidden(ns_message("get", "samples/status", name="s1"), named("s1"))),
    ("GET", GV + "/samples",
     resource_spec(verb="list", **SAMPLES),
     forbidden('samples.sample-api-server is forbidden: User "alice" cannot list resource '
               '"samples" in API group "sample-api-server" at the cluster scope', SAMPLE_DETAILS)),
    # An empty namespace segment is a cluster-wide list (4b): the same spec as the GV/samples
    # row above, so the cached decision answers (CACHED: no SAR is recorded).
    ("GET", GV + "/namespaces//samples",
     "CACHED",
     forbidden('samples.sample-api-server is forbidden: User "alice" cannot list resource '
               '"samples" in API group "sample-api-server" at the cluster scope', SAMPLE_DETAILS)),
    # %2F is a separator in the decoded path RequestInfo splits (name "a", subresource "b").
    ("GET", GV + "/namespaces/default/samples/a%2Fb",
     resource_spec(namespace="default", verb="get", subresource="b", name="a", **SAMPLES),
     forbidden(ns_message("get", "samples/b", name="a"), named("a"))),
    ("GET", "/api/v1/nodes/n1",
     resource_spec(verb="get", version="v1", resource="nodes", name="n1"),
     forbidden('nodes "n1" is forbidden: User "alice" cannot get resource "nodes" in API group '
               '"" at the cluster scope', {"name": "n1", "kind": "nodes"})),
    ("GET", GV,
     non_resource_spec(GV),
     forbidden(f'forbidden: User "alice" cannot get path "{GV}"', {})),
    ("GET", "/version",
     non_resource_spec("/version"),
     forbidden('forbidden: User "alice" cannot get path "/version"', {})),
    ("POST", "/logs/x",
     non_resource_spec("/logs/x", "post"),
     forbidden('forbidden: User "alice" cannot post path "/logs/x"', {})),
    ("GET", GV + "/namespaces/default/samples?labelSelector=tier%21%3Ddb,app%3Dweb,env,%21legacy"
     "&fieldSelector=metadata.name%3Dsample1,spec.x%21%3Dy",
     resource_spec(
         namespace="default", verb="list", name="sample1", **SAMPLES,
         fieldSelector={"requirements": [
             {"key": "metadata.name", "operator": "In", "values": ["sample1"]},
             {"key": "spec.x", "operator": "NotIn", "values": ["y"]}]},
         labelSelector={"requirements": [
             {"key": "app", "operator": "In", "values": ["web"]},
             {"key": "env", "operator": "Exists"},
             {"key": "legacy", "operator": "DoesNotExist"},
             {"key": "tier", "operator": "NotIn", "values": ["db"]}]}),
     forbidden(ns_message("list", "samples", name="sample1"), named("sample1"))),
    ("POST", GV + "/namespaces/default/samples",
     resource_spec(namespace="default", verb="create", **SAMPLES),
     forbidden(ns_message("create", "samples"), SAMPLE_DETAILS)),
    ("DELETE", GV + "/namespaces/team-a/samples",
     resource_spec(namespace="team-a", verb="deletecollection", **SAMPLES),
     forbidden(ns_message("deletecollection", "samples", ns="team-a"), SAMPLE_DETAILS)),
    ("GET", GV + "/namespaces/default/samples/secret",
     resource_spec(namespace="default", verb="get", name="secret", **SAMPLES),
     forbidden(ns_message("get", "samples", name="secret", reason=DENY_REASON), named("secret"))),
]


class AuthzTestCase(ClusterTestCase):
    policy = {"sar": [
        {"user": "alice", "resource": "samples", "name": "secret", "allowed": False,
         "denied": True, "reason": DENY_REASON},
        {"user": "alice", "namespace": "team-a", "verb": "get", "resource": "samples",
         "allowed": True},
        {"user": "alice", "namespace": "default", "verb": "list", "resource": "samples",
         "allowed": True},
    ]}
    proxy_flags = ()

    def setUp(self):
        super().setUp()
        self.write_policy(self.policy)
        self.start_cluster_proxy(self.proxy_flags)

    def as_alice(self, path, groups=("dev",), headers=(KUBECTL,), **kwargs):
        return self.as_front_proxy(path, "alice", list(groups), headers=headers, **kwargs)


class SubjectAccessReviewTest(AuthzTestCase):
    policy = {"sar": [{"user": "alice", "resource": "samples", "name": "secret", "allowed": False,
                       "reason": DENY_REASON}]}  # everything else: no rule, denied

    def test_matrix_sar_bodies_and_403_bodies(self):
        for method, path, spec, status in MATRIX:
            with self.subTest(method=method, path=path):
                self.reset_recording()
                result = self.as_alice(path, method=method)
                self.assertEqual(result.status, 403, result.text)
                self.assertEqual(result.body, go_compact(status))
                self.assertEqual(result.header("Content-Type"), "application/json")
                self.assertEqual(result.header("X-Content-Type-Options"), "nosniff")
                self.assertEqual(self.sar_bodies(),
                                 [] if spec == "CACHED" else [sar_body(spec)])

    def test_anonymous_is_asked_about_and_named_in_the_403(self):
        result = self.fetch(GV + "/namespaces/default/samples")
        self.assertEqual(result.status, 403)
        self.assertEqual(result.body, go_compact(forbidden(
            'samples.sample-api-server is forbidden: User "system:anonymous" cannot list '
            'resource "samples" in API group "sample-api-server" in the namespace "default"',
            SAMPLE_DETAILS)))
        self.assertEqual(self.sar_bodies(), [sar_body({
            "resourceAttributes": {"namespace": "default", "verb": "list", **SAMPLES},
            "user": "system:anonymous", "groups": ["system:unauthenticated"]})])

    def test_user_name_is_go_quoted_and_html_escaped_in_the_403(self):
        result = self.as_front_proxy(GV + "/namespaces/default/samples", 'eve<b>&"x')
        self.assertEqual(result.status, 403)
        self.assertEqual(result.body, go_compact(forbidden(
            'samples.sample-api-server is forbidden: User "eve&lt;b&gt;&amp;\\"x" cannot list '
            'resource "samples" in API group "sample-api-server" in the namespace "default"',
            SAMPLE_DETAILS)))

    def test_403_pretty_for_curl(self):
        result = self.as_alice(GV + "/namespaces/default/samples/s1", headers=())
        self.assertEqual(result.status, 403)
        self.assertEqual(result.body, go_pretty(forbidden(ns_message("get", "samples", name="s1"),
                                                          named("s1"))))

    def test_sar_request_headers(self):
        self.as_alice(GV + "/namespaces/default/samples")
        (record,) = self.recorded(SARS)
        self.assertEqual(record["method"], "POST")
        headers = {k.lower(): v for k, v in record["headers"]}
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["authorization"], "Bearer aa-proxy-service-account-token")

    def test_always_allow_paths_need_no_sar(self):
        for path in ["/healthz", "/readyz", "/livez", "/livez?verbose"]:
            with self.subTest(path=path):
                result = self.as_alice(path)
                self.assertEqual(result.status, 200, result.text)
        self.assertEqual(self.reviews(), [])
        # Anonymous too.
        self.assertEqual(self.fetch("/healthz").status, 200)
        self.assertEqual(self.reviews(), [])
        # Exact paths (no trailing *): a sub-path is asked about like any other path.
        result = self.as_alice("/healthz/ping")
        self.assertEqual(result.status, 403)
        self.assertEqual(result.body, go_compact(forbidden(
            'forbidden: User "alice" cannot get path "/healthz/ping"', {})))
        self.assertEqual(self.sar_bodies(), [sar_body(non_resource_spec("/healthz/ping"))])

    def test_system_masters_never_causes_a_sar(self):
        for path, body in [(GV, DISCOVERY), (GV + "/namespaces/default/samples", LIST_DEFAULT),
                           (GV + "/namespaces/team-a/samples/x", GET_TEAM_A_X)]:
            with self.subTest(path=path):
                result = self.as_alice(path, groups=["dev", "system:masters"])
                self.assertEqual((result.status, result.body), (200, body))
        self.assertEqual(self.reviews(), [])


class AllowTest(AuthzTestCase):

    def test_allowed_requests_reach_the_backend(self):
        result = self.as_alice(GV + "/namespaces/default/samples")
        self.assertEqual((result.status, result.body), (200, LIST_DEFAULT))
        result = self.as_alice(GV + "/namespaces/team-a/samples/x")
        self.assertEqual((result.status, result.body), (200, GET_TEAM_A_X))
        self.assertEqual([json.loads(b)["spec"]["resourceAttributes"]["verb"]
                          for b in self.sar_bodies()], ["list", "get"])

    def test_the_path_is_forwarded_unchanged(self):
        path = GV + "/namespaces/team-a/samples/x%2Fy"
        result = self.as_alice(path)
        self.assertNotIn(result.status, (401, 403, 500), result.text)
        self.assertEqual(self.backend_request_count(path), 1)
        self.assertEqual([json.loads(b)["spec"]["resourceAttributes"] for b in self.sar_bodies()],
                         [{"namespace": "team-a", "verb": "get", **SAMPLES, "subresource": "y",
                           "name": "x"}])

    def test_denied_one_but_allowed_neighbour(self):
        result = self.as_alice(GV + "/namespaces/team-a/samples/secret")
        self.assertEqual(result.status, 403)
        self.assertEqual(result.body, go_compact(forbidden(
            ns_message("get", "samples", ns="team-a", name="secret", reason=DENY_REASON),
            named("secret"))))
        self.assertEqual(self.as_alice(GV + "/namespaces/team-a/samples/y").status, 200)

    def test_identical_requests_within_the_ttl_make_one_sar(self):
        for _ in range(5):
            self.assertEqual(self.as_alice(GV + "/namespaces/default/samples").status, 200)
            self.assertEqual(self.as_alice(GV + "/namespaces/default/samples/nope").status, 403)
        self.assertEqual(len(self.sar_bodies()), 2)
        # Another user, another group set or another verb is another decision.
        self.assertEqual(self.as_front_proxy(GV + "/namespaces/default/samples", "bob").status,
                         403)
        self.assertEqual(self.as_alice(GV + "/namespaces/default/samples",
                                       groups=["dev", "ops"]).status, 200)
        self.assertEqual(self.as_alice(GV + "/namespaces/default/samples?watch=1").status, 403)
        self.assertEqual(len(self.sar_bodies()), 5)

    def test_concurrent_cold_identical_requests_make_one_sar(self):
        # 1000 requests on 1000 connections, all in flight while the one SubjectAccessReview is
        # slow. curl runs at most 300 transfers in parallel, so four curls run side by side.
        # Under ThreadSanitizer 1000 handshakes outlast the review's 10 s timeout: 100 there.
        self.write_policy(dict(self.policy,
                               failures={"subjectaccessreviews": {"slow_ms": 3000}}))
        curls, per_curl = (2, 50) if harness.SANITIZER else (4, 250)
        total = curls * per_curl

        def one_curl(_):
            return harness.curl_many(
                [self.url + GV + "/namespaces/default/samples"] * per_curl, tls=self.aggregator,
                headers=[KUBECTL, "X-Remote-User: alice", "X-Remote-Group: dev"],
                extra=["--parallel", "--parallel-max", str(per_curl), "--parallel-immediate"],
                timeout=90)

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=curls) as pool:
            results = [r for batch in pool.map(one_curl, range(curls)) for r in batch]
        elapsed = time.monotonic() - started
        self.assertEqual([r.status for r in results], [200] * total)
        self.assertEqual([r.body for r in results], [LIST_DEFAULT] * total)
        self.assertEqual(sum(r.num_connects for r in results), total, "one connection each")
        self.assertEqual(len(self.sar_bodies()), 1)
        self.assertLess(elapsed, 45, "the slow SAR was waited for once, not once per request")
        cache = "aaproxy_subject_access_review_cache_total"
        self.assertEqual(self.metric(cache, 'result="miss"'), 1)
        self.assertGreater(self.metric(cache, 'result="coalesced"'), 0,
                           "requests waited for the one SubjectAccessReview in flight")
        self.assertEqual(self.metric(cache, 'result="coalesced"') +
                         self.metric(cache, 'result="hit"'), total - 1)


class ImpersonationTest(AuthzTestCase):
    policy = {"sar": [{"user": "alice", "verb": "impersonate", "allowed": True},
                      {"path": "/debug/*", "allowed": True}]}

    def test_allowed_impersonation_checks_each_piece_and_forwards_the_new_identity(self):
        result = self.as_alice("/debug/headers", headers=[
            KUBECTL, "Impersonate-User: bob", "Impersonate-Group: qa",
            "Impersonate-Extra-Scopes: s"])
        self.assertEqual(result.status, 200, result.text)
        headers = json.loads(result.body)["headers"]
        values = lambda name: [v for n, v in headers if n.lower() == name.lower()]
        self.assertEqual(values("X-Remote-User"), ["bob"])
        self.assertEqual(values("X-Remote-Group"), ["qa", "system:authenticated"])
        self.assertEqual(values("X-Remote-Extra-Scopes"), ["s"])
        self.assertEqual([n for n, _ in headers if n.lower().startswith("impersonate-")], [])
        # One SAR per requested piece, as alice (users and groups in the core group, extras in
        # authentication.k8s.io/v1 with the key as subresource), then the request as bob.
        self.assertEqual(self.sar_bodies(), [
            sar_body(resource_spec(verb="impersonate", resource="users", name="bob")),
            sar_body(resource_spec(verb="impersonate", resource="groups", name="qa")),
            sar_body(resource_spec(verb="impersonate", group="authentication.k8s.io",
                                   version="v1", resource="userextras", subresource="scopes",
                                   name="s")),
            sar_body({"nonResourceAttributes": {"path": "/debug/headers", "verb": "get"},
                      "user": "bob", "groups": ["qa", "system:authenticated"],
                      "extra": {"scopes": ["s"]}}),
        ])


class SarFailureTest(AuthzTestCase):
    LIST = GV + "/namespaces/default/samples"

    def assert_internal_error(self, result, message):
        self.assertEqual(result.status, 500, result.text)
        self.assertEqual(result.header("Content-Type"), "text/plain; charset=utf-8")
        self.assertEqual(result.header("X-Content-Type-Options"), "nosniff")
        self.assertEqual(result.text, f'Internal Server Error: "{self.LIST}": {message}\n')

    def test_both_allowed_and_denied_is_500(self):
        self.write_policy(dict(self.policy, failures={
            "subjectaccessreviews": {"both_allowed_and_denied": True}}))
        self.assert_internal_error(
            self.as_alice(self.LIST),
            "webhook subject access review returned both allow and deny response")

    def test_sar_500_after_retries_is_500_with_the_apiserver_message(self):
        # client-go's Result.Error() turns a non-2xx Status body into its message, so upstream's
        # body reads   Internal Server Error: "<uri>": injected failure
        self.write_policy(dict(self.policy, failures={"subjectaccessreviews": {"status": 500}}))
        self.assert_internal_error(self.as_alice(self.LIST, timeout=30), "injected failure")

    def test_sar_500_is_retried_then_500_and_never_cached(self):
        self.write_policy(dict(self.policy, failures={"subjectaccessreviews": {"status": 500}}))
        started = time.monotonic()
        result = self.as_alice(self.LIST, timeout=30)
        elapsed = time.monotonic() - started
        self.assertEqual(result.status, 500, result.text)
        self.assertEqual(result.header("Content-Type"), "text/plain; charset=utf-8")
        self.assertTrue(result.text.startswith(f'Internal Server Error: "{self.LIST}": '),
                        result.text)
        # wait.Backoff{500ms, x1.5, jitter 0.2, 5 steps}: 5 attempts over about 4 s.
        self.assertEqual(len(self.sar_bodies()), 5)
        self.assertGreater(elapsed, 3.0)
        self.write_policy(self.policy)
        result = self.as_alice(self.LIST)
        self.assertEqual((result.status, result.body), (200, LIST_DEFAULT))
        self.assertEqual(len(self.sar_bodies()), 6)

    def test_sar_down_is_500(self):
        self.write_policy(dict(self.policy, failures={"subjectaccessreviews": {"down": True}}))
        result = self.as_alice(self.LIST, timeout=30)
        self.assertEqual(result.status, 500, result.text)
        self.assertTrue(result.text.startswith(f'Internal Server Error: "{self.LIST}": '),
                        result.text)


class DenyTtlTest(AuthzTestCase):
    proxy_flags = ("--authorization-webhook-cache-unauthorized-ttl", "2s",
                   "--authorization-webhook-cache-authorized-ttl", "30s")
    PATH = GV + "/namespaces/team-b/samples"

    def test_a_deny_expires_after_its_ttl(self):
        self.assertEqual(self.as_alice(self.PATH).status, 403)
        denied_at = time.monotonic()
        self.write_policy({"sar": [{"user": "alice", "allowed": True}]})
        self.assertEqual(self.as_alice(self.PATH).status, 403, "the deny is cached")
        self.assertEqual(len(self.sar_bodies()), 1)
        result = harness.wait_until(
            lambda: (lambda r: r if r.status == 200 else None)(self.as_alice(self.PATH)),
            timeout=8, what="the cached deny to expire", interval=0.1)
        self.assertGreater(time.monotonic() - denied_at, 1.5)
        self.assertEqual(result.body, b'{"apiVersion":"sample-api-server/v1alpha1",'
                         b'"kind":"SampleList","metadata":{"resourceVersion":"1"},"items":'
                         b'[{"apiVersion":"sample-api-server/v1alpha1","kind":"Sample",'
                         b'"metadata":{"name":"sample1"},"spec":{"name":"team-b"}}]}\n')
        self.assertEqual(len(self.sar_bodies()), 2)
        # The allow is cached for 30 s: a later deny in the policy is not consulted.
        self.write_policy(self.policy)
        self.assertEqual(self.as_alice(self.PATH).status, 200)
        self.assertEqual(len(self.sar_bodies()), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
