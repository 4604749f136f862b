"""aa-proxy's authentication end to end, in cluster mode against the kube-apiserver double.

Contract (docs/kubernetes-semantics.md sections 1, 2, 4b): front-proxy identities from the live
kube-system/extension-apiserver-authentication ConfigMap, x509 users from its client-ca-file,
bearer tokens through cached and coalesced TokenReviews, and no way for a client to smuggle an
identity to the backend.

  aa-proxy --secure-port P --bind-address 127.0.0.1 --tls-cert-file F --tls-private-key-file F
           --authentication-kubeconfig K --authorization-kubeconfig K --upstream URL
           --workers 2 -v 2 --authentication-configmap-resync-period 2s
(no --client-ca-file / --requestheader-client-ca-file: the CAs come from the ConfigMap).
The double allows every SubjectAccessReview except impersonation, so what is asserted here is
who the proxy thinks the caller is: the headers the sample backend's /debug/headers received.
"""

import concurrent.futures
import hashlib
import json
import os
import re
import ssl
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from cluster import (KUBECTL, PROXY_SA_TOKEN, TOKENREVIEWS, UNAUTHORIZED,  # noqa: E402
                     UNAUTHORIZED_PRETTY, ClusterTestCase, go_compact, values_of)
from sample_backend_test import DISCOVERY, GV  # noqa: E402

HEADERS = "/debug/headers"

# Everything is allowed except impersonation (so Impersonate-* never changes who the backend sees).
ALLOW_ALL_BUT_IMPERSONATION = [
    {"verb": "impersonate", "allowed": False, "reason": "no impersonation in this suite"},
    {"allowed": True},
]

TINA_TOKEN = "e2e-token-tina-4f1b2c9d8e7a6b5c"
TINA = {"username": "tina", "uid": "uid-tina", "groups": ["qa", "release"],
        "extra": {"scopes.example.com/team": ["blue", "green"]}}
UNKNOWN_TOKEN = "e2e-token-nobody-0a9b8c7d6e5f"


def identity(headers):
    """(user, uid, groups, {extra header suffix as sent: values}) the backend received."""
    extras = {}
    for name, value in headers:
        if name.lower().startswith("x-remote-extra-"):
            extras.setdefault(name[len("x-remote-extra-"):], []).append(value)
    return (values_of(headers, "X-Remote-User"), values_of(headers, "X-Remote-Uid"),
            values_of(headers, "X-Remote-Group"), extras)


class AuthnTestCase(ClusterTestCase):
    policy = {"sar": ALLOW_ALL_BUT_IMPERSONATION, "tokens": {TINA_TOKEN: TINA}}
    proxy_flags = ()

    def setUp(self):
        super().setUp()
        self.write_policy(self.policy)
        self.start_cluster_proxy(self.proxy_flags)


class FrontProxyTest(AuthnTestCase):

    def test_aggregator_identity_reaches_the_backend_exactly(self):
        result = self.as_front_proxy(HEADERS, "jane", ["g1", "g2, not split"], extras=[
            "X-Remote-Uid: uid-jane",
            "X-Remote-Extra-Acme.com%2FProject: p1",
            "x-remote-extra-acme.com%2fproject: p2",
            "X-Remote-Extra-Scopes: s1",
            "X-Remote-Extra-Bad%zzKey: raw",
        ])
        user, uid, groups, extras = identity(self.backend_headers(result))
        self.assertEqual(user, ["jane"])
        self.assertEqual(uid, ["uid-jane"])
        self.assertEqual(groups, ["g1", "g2, not split", "system:authenticated"])
        # Keys lowercased, unescaped, re-escaped as client-go does (%XX upper case, % itself too).
        self.assertEqual(extras, {"acme.com%2Fproject": ["p1", "p2"], "scopes": ["s1"],
                                  "bad%25zzkey": ["raw"]})
        # The SubjectAccessReview carries the same identity, extras unescaped (exact bytes: Go
        # field order, extra keys sorted, uid last).
        self.assertEqual(self.sar_bodies(), [go_compact({
            "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {}, "spec": {
                "nonResourceAttributes": {"path": HEADERS, "verb": "get"},
                "user": "jane", "groups": ["g1", "g2, not split", "system:authenticated"],
                "extra": {"acme.com/project": ["p1", "p2"], "bad%zzkey": ["raw"],
                          "scopes": ["s1"]},
                "uid": "uid-jane"},
            "status": {"allowed": False}})])

    def test_first_username_header_value_wins_and_groups_keep_order(self):
        result = self.as_front_proxy(HEADERS, "first", ["b", "a"],
                                     extras=["X-Remote-User: second"])
        user, _, groups, _ = identity(self.backend_headers(result))
        self.assertEqual(user, ["first"])
        self.assertEqual(groups, ["b", "a", "system:authenticated"])

    def test_front_proxy_identity_wins_over_a_bearer_token(self):
        result = self.as_front_proxy(HEADERS, "jane",
                                     extras=[f"Authorization: Bearer {TINA_TOKEN}"])
        headers = self.backend_headers(result)
        self.assertEqual(identity(headers)[0], ["jane"])
        self.assertEqual(values_of(headers, "Authorization"), [])
        self.assertEqual(self.token_reviews(), [])

    def test_allowed_names_mismatch_is_401(self):
        before = self.backend_request_count(HEADERS)
        result = self.as_front_proxy(HEADERS, "jane", ["g1"], tls=self.tls(self.wrong_cn_proxy))
        self.assertEqual(result.exit_code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        self.assertEqual(result.header("Content-Type"), "application/json")
        self.assertEqual(self.backend_request_count(HEADERS), before)
        self.assertEqual(self.reviews(), [])

    def test_front_proxy_certificate_without_username_is_401(self):
        # Semantics 4b: request-header has no opinion, x509 cannot verify the front-proxy cert.
        result = self.fetch(HEADERS, tls=self.aggregator,
                            headers=[KUBECTL, "X-Remote-Group: system:masters"])
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        result = self.fetch(HEADERS, tls=self.aggregator, headers=[KUBECTL, "X-Remote-User:"])
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))

    def test_aggregator_discovery_without_groups_gets_system_authenticated(self):
        # Like the system:discovery ClusterRole: only system:authenticated may read discovery.
        self.write_policy({"sar": [{"group": "system:authenticated", "path": GV,
                                    "verb": "get", "allowed": True}]})
        result = self.as_front_proxy(GV, "system:kube-aggregator")
        self.assertEqual((result.status, result.body), (200, DISCOVERY), result.stderr)
        self.assertEqual(self.sar_specs(), [{
            "nonResourceAttributes": {"path": GV, "verb": "get"},
            "user": "system:kube-aggregator", "groups": ["system:authenticated"]}])

    def test_aggregator_availability_probe_as_system_masters_needs_no_sar(self):
        result = self.as_front_proxy(GV, "system:kube-aggregator", ["system:masters"])
        self.assertEqual((result.status, result.body), (200, DISCOVERY))
        self.assertEqual(self.reviews(), [])


SPOOF_VARIANTS = {
    "canonical": ["X-Remote-User: system:admin", "X-Remote-Group: system:masters",
                  "X-Remote-Uid: 0", "X-Remote-Extra-Scopes: all"],
    "lower-case": ["x-remote-user: system:admin", "x-remote-group: system:masters",
                   "x-remote-uid: 0", "x-remote-extra-scopes: all"],
    "upper-case": ["X-REMOTE-USER: system:admin", "X-REMOTE-GROUP: system:masters",
                   "X-REMOTE-UID: 0", "X-REMOTE-EXTRA-SCOPES: all"],
    "duplicated": ["X-Remote-User: system:admin", "x-remote-user: system:admin",
                   "X-Remote-Group: system:masters", "X-Remote-Group: system:masters",
                   "X-Remote-Extra-Scopes: all", "X-Remote-Extra-scopes: all"],
    "impersonation": ["Impersonate-User: system:admin", "Impersonate-Group: system:masters",
                      "Impersonate-Extra-Scopes: all"],
}


class SpoofingTest(AuthnTestCase):
    """X-Remote-* / Impersonate-* from anyone but the allowed front proxy never reach the backend."""

    def assert_clean(self, result, expected_user, expected_groups):
        headers = self.backend_headers(result)
        user, uid, groups, extras = identity(headers)
        self.assertEqual((user, groups), ([expected_user], expected_groups))
        self.assertEqual(uid, [])
        self.assertEqual({k: v for k, v in extras.items()
                          if k != "authentication.kubernetes.io%2Fcredential-id"}, {})
        for name, value in headers:
            self.assertFalse(name.lower().startswith("impersonate-"), name)
            self.assertNotIn("system:admin", value, f"{name}: {value}")
            self.assertNotIn("system:masters", value, f"{name}: {value}")
            self.assertNotEqual(value, "all", f"{name}: {value}")

    def run_matrix(self, tls, expected_user=None, expected_groups=None, status=200):
        for variant, spoofed in SPOOF_VARIANTS.items():
            with self.subTest(variant=variant):
                before = self.backend_request_count(HEADERS)
                result = self.fetch(HEADERS, tls=tls, headers=[KUBECTL, *spoofed])
                if variant == "impersonation" and status == 200:
                    # The caller may not impersonate: 403, and the backend sees nothing.
                    self.assertEqual(result.status, 403, result.text)
                    self.assertEqual(self.backend_request_count(HEADERS), before)
                elif status == 200:
                    self.assert_clean(result, expected_user, expected_groups)
                else:
                    self.assertEqual(result.status, status, f"{result.stderr} {result.text}")
                    self.assertEqual(self.backend_request_count(HEADERS), before)

    def test_no_client_certificate_is_anonymous(self):
        self.run_matrix(self.anonymous, "system:anonymous", ["system:unauthenticated"])

    def test_client_ca_certificate_is_its_own_user(self):
        self.run_matrix(self.tls(self.pki.alice), "alice", ["dev", "system:authenticated"])

    def test_certificate_from_an_unknown_ca_is_401_whatever_it_claims(self):
        # The handshake accepts it (tls.RequestClientCert); both certificate authenticators
        # refuse it per request, so the spoofed headers are never even considered.
        before = self.backend_request_count(HEADERS)
        for variant, spoofed in SPOOF_VARIANTS.items():
            with self.subTest(variant=variant):
                result = self.fetch(HEADERS, tls=self.tls(self.pki.stranger),
                                    headers=[KUBECTL, *spoofed])
                self.assertEqual(result.exit_code, 0, result.stderr)
                self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        self.assertEqual(self.backend_request_count(HEADERS), before)
        self.assertEqual(self.reviews(), [])

    def test_front_proxy_certificate_with_a_cn_not_allowed_is_401(self):
        self.run_matrix(self.tls(self.wrong_cn_proxy), status=401)
        self.assertEqual(self.reviews(), [])

    def test_obs_folded_identity_headers_never_reach_the_backend(self):
        before = self.backend_request_count(HEADERS)
        request = (b"GET " + HEADERS.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"User-Agent: kubectl/v1.32.0\r\nConnection: close\r\n"
                   b"X-Remote-User: nobody\r\n system:admin\r\n"
                   b"X-Remote-Group:\r\n\tsystem:masters\r\n\r\n")
        with harness.tls_connect(self.port, self.tls(self.pki.alice), timeout=10) as s:
            s.sendall(request)
            data = b""
            s.settimeout(10)
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (ssl.SSLError, OSError):
                pass
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 "), data[:200])
        if head.startswith(b"HTTP/1.1 200 "):
            if b"transfer-encoding: chunked" in head.lower():
                self.fail("unexpected chunked /debug/headers answer")
            headers = json.loads(body)["headers"]
            self.assertEqual(identity(headers)[:3],
                             (["alice"], [], ["dev", "system:authenticated"]))
            for name, value in headers:
                self.assertNotIn("system:admin", value, f"{name}: {value}")
                self.assertNotIn("system:masters", value, f"{name}: {value}")
        else:
            # Rejected outright (Go's server answers 400 to some malformed heads): fine too.
            self.assertEqual(self.backend_request_count(HEADERS), before, head)

    def test_impersonation_denied_body(self):
        result = self.fetch(HEADERS, tls=self.tls(self.pki.alice),
                            headers=[KUBECTL, "Impersonate-User: system:admin"])
        self.assertEqual(result.status, 403)
        self.assertEqual(result.body, go_compact({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            # Upstream impersonates users through a v1.ObjectReference without apiVersion:
            # the SAR's group is "" (RBAC grants it with apiGroups: [""]).
            "message": 'users "system:admin" is forbidden: User "alice" cannot impersonate '
                       'resource "users" in API group "" at the cluster '
                       'scope: no impersonation in this suite',
            "reason": "Forbidden",
            "details": {"name": "system:admin", "kind": "users"},
            "code": 403}))
        self.assertEqual([spec["resourceAttributes"] for spec in self.sar_specs()],
                         [{"verb": "impersonate", "resource": "users", "name": "system:admin"}])


class X509Test(AuthnTestCase):

    def credential_id(self, cert_key):
        der = ssl.PEM_cert_to_DER_cert(cert_key.cert.read_text())
        return "X509SHA256=" + hashlib.sha256(der).hexdigest()

    def test_users_from_the_configmap_client_ca(self):
        cases = [("alice", self.pki.alice, None, ["dev"]),
                 ("carol", self.carol, None, ["ops", "dev"]),
                 ("bob", self.pki.bob, self.pki.bob.chain, ["ops"])]
        for name, cert_key, chain, orgs in cases:
            with self.subTest(user=name):
                tls = harness.TlsClient(cacert=self.pki.ca.cert, cert=chain or cert_key.cert,
                                        key=cert_key.key)
                user, uid, groups, extras = identity(self.backend_headers(
                    self.fetch(HEADERS, tls=tls)))
                self.assertEqual((user, uid, groups), ([name], [], orgs + ["system:authenticated"]))
                self.assertEqual(extras, {"authentication.kubernetes.io%2Fcredential-id":
                                          [self.credential_id(cert_key)]})

    def test_a_name_http_cannot_carry_never_reaches_the_backend(self):
        # A CN whose line break would end X-Remote-User and start a header line of its own.
        pki = harness.Pki(self.tmp / "pki-line-break")
        eve = pki.issue(self.pki.ca, "eve", "eve\r\nX-Remote-Group: system:masters", orgs=["dev"])
        before = self.backend_request_count(HEADERS)
        result = self.fetch(HEADERS, tls=self.tls(eve))
        self.assertEqual(result.status, 502, result.text)
        self.assertEqual(result.body, go_compact({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": 'cannot forward the request: invalid header field value for "X-Remote-User"',
            "reason": "InternalError", "code": 502}))
        self.assertEqual(self.backend_request_count(HEADERS), before)
        log = self.proxy.log_text()
        self.assertIn('for user "eve\\r\\nX-Remote-Group: system:masters": invalid header field',
                      log)
        # The access log line stays one line too.
        self.assertIn('user="eve\\r\\nX-Remote-Group: system:masters" status=502', log)
        # Everybody else is served as before.
        user, _, groups, _ = identity(self.backend_headers(self.fetch(HEADERS,
                                                                      tls=self.tls(self.pki.alice))))
        self.assertEqual((user, groups), (["alice"], ["dev", "system:authenticated"]))

    def test_certificate_wins_over_a_bearer_token(self):
        result = self.fetch(HEADERS, tls=self.tls(self.pki.alice),
                            headers=[KUBECTL, f"Authorization: Bearer {TINA_TOKEN}"])
        headers = self.backend_headers(result)
        self.assertEqual(identity(headers)[0], ["alice"])
        self.assertEqual(values_of(headers, "Authorization"), [])
        self.assertEqual(self.token_reviews(), [])

    def test_sar_carries_the_x509_identity(self):
        self.backend_headers(self.fetch(HEADERS, tls=self.tls(self.pki.alice)))
        self.assertEqual(self.sar_specs(), [{
            "nonResourceAttributes": {"path": HEADERS, "verb": "get"},
            "user": "alice", "groups": ["dev", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id":
                      [self.credential_id(self.pki.alice)]}}])

    def test_expired_certificate_is_401(self):
        result = self.fetch(HEADERS, tls=self.tls(self.pki.expired))
        self.assertEqual(result.exit_code, 0, result.stderr)
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        self.assertEqual(self.backend_request_count(HEADERS), 0)


RESOURCE = GV + "/namespaces/default/samples"
UNKNOWN_AUTHORITY = "x509: certificate signed by unknown authority"
# k8s.io/apiserver's x509 authenticator error; the identifier is certificateIdentifier's.
X509_FAILED = r"verifying certificate SN=\d+, SKID=[0-9A-F:]+, AKID=[0-9A-F:]+ failed: "
EXPIRED = ("x509: certificate has expired or is not yet valid: current time "
           r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ is after 2020-01-02T00:00:00Z")


class UnverifiedCertificateTest(AuthnTestCase):
    """Certificates the handshake accepts but no authenticator does (semantics: the TLS handshake).

    The request-header authenticator (requestheader CA) and the x509 authenticator (client CA)
    each verify the certificate per request; with both failing and no token it is a 401, on
    /healthz too, and the reasons are logged at -v 2 as upstream's union error.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pki = harness.Pki(Path(tempfile.mkdtemp(prefix="pki-impostor-",
                                                dir=os.environ.get("TEST_TMPDIR"))))
        # The allowed front-proxy name, signed by a CA nobody configured.
        cls.impostor_proxy = pki.issue(cls.pki.other_ca, "impostor-proxy", "front-proxy-client")

    def refused(self):
        """(name, certificate, the -v 2 log reason as a regex) for every refused certificate."""
        return [
            ("unknown CA", self.pki.stranger,
             re.escape(f"[{UNKNOWN_AUTHORITY}, ") + X509_FAILED + re.escape(
                 f"{UNKNOWN_AUTHORITY}]")),
            # The request-header authenticator fails first on the validity period too.
            ("expired", self.pki.expired, re.escape("[") + EXPIRED + ", " + X509_FAILED +
             EXPIRED + re.escape("]")),
            ("serverAuth only", self.pki.no_client_auth,
             re.escape(f"[{UNKNOWN_AUTHORITY}, ") + X509_FAILED +
             re.escape("x509: certificate specifies an incompatible key usage]")),
        ]

    def assert_logged(self, reason):
        self.proxy.wait_for_log(r"Unable to authenticate the request: " + reason + "$",
                                timeout=5)

    def test_refused_certificates_are_401_on_a_resource_and_on_healthz(self):
        for name, cert_key, reason in self.refused():
            for path in (RESOURCE, "/healthz"):
                with self.subTest(certificate=name, path=path):
                    result = self.fetch(path, tls=self.tls(cert_key))
                    self.assertEqual(result.exit_code, 0, result.stderr)
                    self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
                    self.assertEqual(result.header("Content-Type"), "application/json")
                    # curl's User-Agent gets upstream's indented Status.
                    result = self.fetch(path, tls=self.tls(cert_key), headers=())
                    self.assertEqual((result.status, result.body), (401, UNAUTHORIZED_PRETTY))
            with self.subTest(certificate=name, log=True):
                self.assert_logged(reason)
        self.assertEqual(self.backend_request_count(RESOURCE), 0)
        self.assertEqual(self.backend_request_count("/healthz"), 0)
        self.assertEqual(self.reviews(), [])
        # The control: the same request with a certificate the client CA signed gets through.
        result = self.fetch(RESOURCE, tls=self.tls(self.pki.alice))
        self.assertEqual(result.status, 200, result.text)
        self.assertEqual(self.backend_request_count(RESOURCE), 1)

    def test_a_valid_bearer_token_still_authenticates_beside_a_refused_certificate(self):
        for name, cert_key, _ in self.refused():
            with self.subTest(certificate=name):
                result = self.fetch(HEADERS, tls=self.tls(cert_key),
                                    headers=[KUBECTL, f"Authorization: Bearer {TINA_TOKEN}"])
                headers = self.backend_headers(result)
                self.assertEqual(identity(headers), (
                    ["tina"], ["uid-tina"], ["qa", "release", "system:authenticated"],
                    {"scopes.example.com%2Fteam": ["blue", "green"]}))
                self.assertEqual(values_of(headers, "Authorization"), [])
        # One TokenReview and one SubjectAccessReview: the later requests hit the caches.
        self.assertEqual([json.loads(r["body"])["spec"] for r in self.token_reviews()],
                         [{"token": TINA_TOKEN}])
        self.assertEqual(self.sar_specs(), [{
            "nonResourceAttributes": {"path": HEADERS, "verb": "get"},
            "user": "tina", "uid": "uid-tina", "groups": ["qa", "release", "system:authenticated"],
            "extra": {"scopes.example.com/team": ["blue", "green"]}}])

    def test_front_proxy_headers_need_a_certificate_the_requestheader_ca_signed(self):
        for tls in (self.tls(self.impostor_proxy), self.tls(self.pki.stranger)):
            result = self.as_front_proxy(HEADERS, "system:admin", ["system:masters"], tls=tls)
            self.assertEqual(result.exit_code, 0, result.stderr)
            self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        self.assertEqual(self.backend_request_count(HEADERS), 0)
        self.assertEqual(self.reviews(), [])
        self.assert_logged(re.escape(f"[{UNKNOWN_AUTHORITY}, ") + X509_FAILED +
                           re.escape(f"{UNKNOWN_AUTHORITY}]"))
        # The same headers from the real front-proxy client are honoured.
        result = self.as_front_proxy(HEADERS, "jane", ["g1"])
        self.assertEqual(identity(self.backend_headers(result))[:3],
                         (["jane"], [], ["g1", "system:authenticated"]))

    def test_front_proxy_certificate_with_a_cn_not_allowed_logs_why(self):
        result = self.as_front_proxy(HEADERS, "jane", tls=self.tls(self.wrong_cn_proxy))
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        # Its CA is the requestheader CA, not the client CA: both authenticators say why.
        self.assert_logged(re.escape("[x509: subject with cn=not-front-proxy is not in the "
                                     "allowed list, ") + X509_FAILED +
                           re.escape(f"{UNKNOWN_AUTHORITY}]"))


class TokenTest(AuthnTestCase):
    proxy_flags = ("--authentication-token-webhook-cache-ttl", "30s")

    def bearer(self, token, path=HEADERS, ua=KUBECTL):
        return self.fetch(path, headers=[ua, f"Authorization: Bearer {token}"])

    def test_valid_token_is_the_user_from_the_token_review(self):
        user, uid, groups, extras = identity(self.backend_headers(self.bearer(TINA_TOKEN)))
        self.assertEqual((user, uid, groups),
                         (["tina"], ["uid-tina"], ["qa", "release", "system:authenticated"]))
        self.assertEqual(extras, {"scopes.example.com%2Fteam": ["blue", "green"]})
        headers = self.backend_headers(self.bearer(TINA_TOKEN))
        self.assertEqual(values_of(headers, "Authorization"), [])

    def test_scheme_is_case_insensitive(self):
        result = self.fetch(HEADERS, headers=[KUBECTL, f"Authorization: bearer {TINA_TOKEN}"])
        self.assertEqual(identity(self.backend_headers(result))[0], ["tina"])

    def test_the_recorded_token_review(self):
        self.backend_headers(self.bearer(TINA_TOKEN))
        reviews = self.token_reviews()
        self.assertEqual(len(reviews), 1)
        review = reviews[0]
        self.assertEqual(review["method"], "POST")
        self.assertEqual(review["path"], TOKENREVIEWS)
        body = json.loads(review["body"])
        self.assertEqual((body["kind"], body["apiVersion"], body["spec"]),
                         ("TokenReview", "authentication.k8s.io/v1", {"token": TINA_TOKEN}))
        self.assertEqual(values_of(review["headers"], "Authorization"),
                         [f"Bearer {PROXY_SA_TOKEN}"])
        self.assertEqual(values_of(review["headers"], "Content-Type"), ["application/json"])

    def test_invalid_token_is_401(self):
        before = self.backend_request_count(HEADERS)
        result = self.bearer(UNKNOWN_TOKEN)
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        self.assertEqual(result.header("Content-Type"), "application/json")
        result = self.fetch(HEADERS, headers=[f"Authorization: Bearer {UNKNOWN_TOKEN}"])
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED_PRETTY))
        self.assertEqual(self.backend_request_count(HEADERS), before)
        # Bad credentials are 401 even on an always-allowed path (4b).
        self.assertEqual(self.bearer(UNKNOWN_TOKEN, "/healthz").status, 401)

    def test_identical_requests_within_the_ttl_make_one_token_review(self):
        for _ in range(5):
            self.backend_headers(self.bearer(TINA_TOKEN))
            self.assertEqual(self.bearer(UNKNOWN_TOKEN).status, 401)  # failures are cached too
        self.assertEqual([json.loads(r["body"])["spec"]["token"] for r in self.token_reviews()],
                         [TINA_TOKEN, UNKNOWN_TOKEN])

    def test_concurrent_cold_requests_coalesce_into_one_token_review(self):
        self.write_policy(dict(self.policy, failures={"tokenreviews": {"slow_ms": 1500}}))
        results = harness.curl_many([self.url + HEADERS] * 50, tls=self.anonymous,
                                    headers=[KUBECTL, f"Authorization: Bearer {TINA_TOKEN}"],
                                    extra=["--parallel", "--parallel-max", "50",
                                           "--parallel-immediate"], timeout=60)
        self.assertEqual([r.status for r in results], [200] * 50)
        self.assertEqual(sum(r.num_connects for r in results), 50, "50 separate connections")
        self.assertEqual(len(self.token_reviews()), 1)
        cache = "aaproxy_token_review_cache_total"
        self.assertEqual(self.metric(cache, 'result="miss"'), 1)
        self.assertGreater(self.metric(cache, 'result="coalesced"'), 0,
                           "requests waited for the one TokenReview in flight")
        self.assertEqual(self.metric(cache, 'result="coalesced"') +
                         self.metric(cache, 'result="hit"'), 49)

    def test_token_never_appears_in_the_log(self):
        self.backend_headers(self.bearer(TINA_TOKEN))
        self.bearer(UNKNOWN_TOKEN)
        self.write_policy(dict(self.policy, failures={"tokenreviews": {"status": 500}}))
        self.bearer("e2e-token-erroring-77aa")
        log = self.proxy.log_text()
        for token in (TINA_TOKEN, UNKNOWN_TOKEN, "e2e-token-erroring-77aa", PROXY_SA_TOKEN):
            self.assertNotIn(token, log)
            self.assertNotIn(token[8:], log)

    def test_token_review_down_is_401_and_not_cached(self):
        self.write_policy(dict(self.policy, failures={"tokenreviews": {"down": True}}))
        result = self.bearer(TINA_TOKEN)
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        self.write_policy(self.policy)
        user = identity(self.backend_headers(self.bearer(TINA_TOKEN)))[0]
        self.assertEqual(user, ["tina"])


class TokenCacheTtlTest(AuthnTestCase):
    proxy_flags = ("--authentication-token-webhook-cache-ttl", "1s")

    def test_cached_review_expires(self):
        bearer = [KUBECTL, f"Authorization: Bearer {TINA_TOKEN}"]
        self.backend_headers(self.fetch(HEADERS, headers=bearer))
        self.backend_headers(self.fetch(HEADERS, headers=bearer))
        self.assertEqual(len(self.token_reviews()), 1)
        time.sleep(1.3)
        self.backend_headers(self.fetch(HEADERS, headers=bearer))
        self.assertEqual(len(self.token_reviews()), 2)


class AnonymousDisabledTest(AuthnTestCase):
    proxy_flags = ("--anonymous-auth=false",)

    def test_no_credentials_is_401(self):
        result = self.fetch(HEADERS, headers=[KUBECTL, "X-Remote-User: system:admin"])
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))
        self.assertEqual(self.reviews(), [])
        self.assertEqual(self.backend_request_count(HEADERS), 0)
        result = self.as_front_proxy(HEADERS, "jane")
        self.assertEqual(identity(self.backend_headers(result))[0], ["jane"])


class TokenAudiencesTest(AuthnTestCase):
    policy = {"sar": ALLOW_ALL_BUT_IMPERSONATION,
              "tokens": {TINA_TOKEN: TINA,
                         "e2e-token-other-audience": {"username": "otto",
                                                      "audiences": ["someone-else"]}}}
    proxy_flags = ("--authentication-token-audiences", "aa-proxy-e2e")

    def test_audiences_are_sent_and_checked(self):
        result = self.fetch(HEADERS, headers=[KUBECTL, f"Authorization: Bearer {TINA_TOKEN}"])
        self.assertEqual(identity(self.backend_headers(result))[0], ["tina"])
        self.assertEqual([json.loads(r["body"])["spec"] for r in self.token_reviews()],
                         [{"token": TINA_TOKEN, "audiences": ["aa-proxy-e2e"]}])
        result = self.fetch(HEADERS, headers=[KUBECTL,
                                              "Authorization: Bearer e2e-token-other-audience"])
        self.assertEqual((result.status, result.body), (401, UNAUTHORIZED))


class CustomHeaderNamesTest(AuthnTestCase):
    """Header names from the ConfigMap: read from the front proxy, stripped from everyone else."""

    def setUp(self):
        harness.E2ETestCase.setUp(self)
        ClusterTestCase.setUp(self)  # files only; the ConfigMap is written before the start
        data = self.default_configmap()
        data["requestheader-username-headers"] = '["X-Custom-User", "X-Remote-User"]'
        data["requestheader-group-headers"] = '["X-Custom-Group"]'
        data["requestheader-extra-headers-prefix"] = '["X-Custom-Extra-"]'
        data["requestheader-allowed-names"] = "[]"  # any CN the requestheader CA signed
        self.write_configmap(data)
        self.write_policy(self.policy)
        self.start_cluster_proxy()

    def test_configured_names_are_read(self):
        result = self.fetch(HEADERS, tls=self.tls(self.wrong_cn_proxy), headers=[
            KUBECTL, "X-Custom-User: kim", "X-Remote-User: ignored", "X-Custom-Group: c1",
            "X-Remote-Group: not-a-group-here", "X-Custom-Extra-Color: red",
            "X-Remote-Extra-Size: not-an-extra-here"])
        user, _, groups, extras = identity(self.backend_headers(result))
        self.assertEqual((user, groups), (["kim"], ["c1", "system:authenticated"]))
        self.assertEqual(extras, {"color": ["red"]})

    def test_second_username_header_is_a_fallback(self):
        result = self.fetch(HEADERS, tls=self.aggregator, headers=[KUBECTL, "X-Remote-User: lee"])
        self.assertEqual(identity(self.backend_headers(result))[0], ["lee"])

    def test_configured_names_are_stripped_from_other_callers(self):
        result = self.fetch(HEADERS, tls=self.tls(self.pki.alice), headers=[
            KUBECTL, "X-Custom-User: system:admin", "X-Custom-Group: system:masters",
            "X-Custom-Extra-Scopes: all", "x-custom-user: system:admin"])
        headers = self.backend_headers(result)
        self.assertEqual(identity(headers)[:3], (["alice"], [], ["dev", "system:authenticated"]))
        for name, value in headers:
            self.assertFalse(name.lower().startswith("x-custom-"), f"{name}: {value}")


class LiveReloadTest(AuthnTestCase):

    def front_proxy_status(self, cert_key):
        result = self.as_front_proxy(HEADERS, "jane", tls=self.tls(cert_key), timeout=5)
        return result.status

    def test_requestheader_ca_rotation_without_restart(self):
        self.assertEqual(self.front_proxy_status(self.pki.front_proxy_client), 200)
        # Signed by a CA not configured yet: the handshake accepts it, the authenticator not.
        self.assertEqual(self.front_proxy_status(self.front_proxy_client_2), 401)
        data = self.default_configmap()
        data["requestheader-client-ca-file"] = self.front_proxy_ca_2.cert.read_text()
        started = time.monotonic()
        self.write_configmap(data)
        harness.wait_until(lambda: self.front_proxy_status(self.front_proxy_client_2) == 200,
                           timeout=8, what="the rotated front-proxy CA to be trusted")
        harness.wait_until(lambda: self.front_proxy_status(self.pki.front_proxy_client) != 200,
                           timeout=8, what="the old front-proxy CA to be dropped")
        self.assertLess(time.monotonic() - started, 8)
        self.assertEqual(self.front_proxy_status(self.pki.front_proxy_client), 401)
        result = self.as_front_proxy(HEADERS, "jane", ["g"], tls=self.tls(self.front_proxy_client_2))
        self.assertEqual(identity(self.backend_headers(result))[:3],
                         (["jane"], [], ["g", "system:authenticated"]))
        self.assertTrue(self.proxy.alive())

    def test_allowed_names_change_applies_live(self):
        data = self.default_configmap()
        data["requestheader-allowed-names"] = '["not-front-proxy"]'
        self.write_configmap(data)
        harness.wait_until(lambda: self.front_proxy_status(self.wrong_cn_proxy) == 200,
                           timeout=8, what="the new allowed name")
        self.assertEqual(self.front_proxy_status(self.pki.front_proxy_client), 401)

    def test_periodic_resync_without_a_watch(self):
        # Every watch request is cut: only the --authentication-configmap-resync-period (2s)
        # re-read can bring the change.
        self.write_policy(dict(self.policy, failures={"watch": {"down": True}}))
        self.proxy.stop()
        self.start_cluster_proxy(self.proxy_flags)
        self.assertEqual(self.front_proxy_status(self.wrong_cn_proxy), 401)
        data = self.default_configmap()
        data["requestheader-allowed-names"] = '["not-front-proxy"]'
        self.write_configmap(data)
        harness.wait_until(lambda: self.front_proxy_status(self.wrong_cn_proxy) == 200,
                           timeout=10, what="the resync to load the new allowed names")

    def test_invalid_json_keeps_the_last_good_configuration(self):
        data = self.default_configmap()
        data["requestheader-allowed-names"] = '["not-front-proxy"'  # not JSON
        data["requestheader-client-ca-file"] = self.front_proxy_ca_2.cert.read_text()
        self.write_configmap(data)
        self.proxy.wait_for_log(r"keeping the previous authentication configuration", timeout=8)
        self.assertEqual(self.front_proxy_status(self.pki.front_proxy_client), 200)
        self.assertEqual(self.front_proxy_status(self.front_proxy_client_2), 401)
        # Still live afterwards: a good version is picked up.
        data["requestheader-allowed-names"] = '["front-proxy-client"]'
        self.write_configmap(data)
        harness.wait_until(lambda: self.front_proxy_status(self.front_proxy_client_2) == 200,
                           timeout=8, what="the next good ConfigMap")


class LookupFailureTest(ClusterTestCase):

    def test_apiserver_down_at_start_is_fatal(self):
        self.backend = self.start_backend()
        dead_port = harness.free_port()
        proxy = self.start("aa-proxy", self.proxy_argv(self.backend.upstream,
                                                       apiserver_port=dead_port))
        try:
            proxy.popen.wait(30)
        except Exception:  # pylint: disable=broad-except
            self.fail("aa-proxy kept running without its ConfigMap:\n" + proxy.log_text())
        self.assertNotEqual(proxy.popen.returncode, 0)
        self.assertRegex(proxy.log_text(),
                         r"unable to load configmap based request-header-client-ca-file: .*"
                         + str(dead_port))
        self.assertFalse(harness.tcp_accepts(self.port))

    def test_apiserver_down_at_start_tolerated(self):
        self.write_policy({"sar": ALLOW_ALL_BUT_IMPERSONATION})
        self.backend = self.start_backend()
        dead_port = harness.free_port()
        proxy = self.start("aa-proxy", self.proxy_argv(
            self.backend.upstream, ["--authentication-tolerate-lookup-failure"],
            apiserver_port=dead_port))
        proxy.wait_for_log(r"serving on https://", timeout=30)
        result = harness.wait_until(
            lambda: (lambda r: r if r.status else None)(self.fetch("/healthz")), timeout=10,
            what="aa-proxy to answer")
        self.assertEqual(result.status, 200, result.text)
        self.assertTrue(proxy.alive())
        # Nothing trusted yet: a front-proxy certificate is no identity (never system:admin).
        result = self.as_front_proxy(HEADERS, "system:admin", ["system:masters"], timeout=20)
        self.assertNotEqual(result.status, 200, result.text)

    def test_missing_configmap_is_not_fatal(self):
        self.write_policy({"sar": ALLOW_ALL_BUT_IMPERSONATION})
        self.start_apiserver(configmap=False)  # no configmap file: 404
        self.start_cluster_proxy()
        user, _, groups, _ = identity(self.backend_headers(self.fetch(HEADERS)))
        self.assertEqual((user, groups), (["system:anonymous"], ["system:unauthenticated"]))
        # The ConfigMap appears later: trusted within the resync period / watch.
        self.write_configmap(self.default_configmap())
        harness.wait_until(
            lambda: self.as_front_proxy(HEADERS, "jane", timeout=5).status == 200, timeout=8,
            what="the ConfigMap created after start to be used")


if __name__ == "__main__":
    unittest.main(verbosity=2)
