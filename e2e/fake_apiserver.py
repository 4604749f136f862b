#!/usr/bin/env python3
"""A kube-apiserver test double for aa-proxy's tests (Python 3 standard library only).

It serves, over HTTPS, just the kube-apiserver endpoints aa-proxy talks to, with outcomes driven by
files the test writes (and may rewrite at any time), and it records every request.

Command line
  fake_apiserver.py --cert server.crt --key server.key [--client-ca ca.crt [--require-client-cert]]
                    [--host 127.0.0.1] [--port 0] --configmap-file cm.json --policy-file policy.json
                    [--objects-file objects.json]
  On startup it prints exactly one line `listening on HOST:PORT` (port 0 picks a free port) and
  flushes stdout. It runs until killed (SIGTERM/SIGINT).

Files
  --configmap-file: a JSON object, the `data` of kube-system/extension-apiserver-authentication,
    e.g. {"client-ca-file": "-----BEGIN...", "requestheader-allowed-names": "[\"front-proxy-client\"]"}.
    Absent file: the ConfigMap does not exist (404). Every change of the file's content (polled every
    20 ms and on each request) bumps metadata.resourceVersion and is sent to open watches as
    ADDED / MODIFIED / DELETED. Write it atomically (write a temp file, rename) to avoid torn reads.
  --objects-file: a JSON list of API objects (each with apiVersion, kind, metadata.name and, when
    namespaced, metadata.namespace) of the kinds in COLLECTIONS below: what kube-aggregator lists
    and watches from the core API (Namespaces, Services, Endpoints, webhook configurations).
    Absent file: no objects. Polled like the ConfigMap file; every change of an object (compared
    as JSON) is a watch event (ADDED / MODIFIED / DELETED) with the next resourceVersion.
  --policy-file: a JSON object, re-read on every request (the last good copy is kept when it does
    not parse; absent file = empty policy):
    {
      "tokens": {"<token>": {"username": "alice", "uid": "u1", "groups": ["dev"],
                             "extra": {"k": ["v"]}, "audiences": ["api"],
                             "authenticated": true, "error": ""}},
      "sar": [ {"user": "alice", "group": "dev", "verb": "get", "apiGroup": "", "resource": "samples",
                "subresource": "", "name": "", "namespace": "default", "path": "/healthz",
                "allowed": true, "denied": false, "reason": "...", "evaluationError": ""} ],
      "api_tokens": ["sa-token"],
      "failures": {"<endpoint>": {"down": true, "reset": true, "garbage": true, "slow_ms": 200,
                                  "status": 500, "retry_after": 1, "times": 2,
                                  "both_allowed_and_denied": true}}
    }
    tokens: TokenReview outcomes; an unknown token is {"authenticated": false}.
    sar: SubjectAccessReview rules, first match wins; a field that is absent or "*" matches
      anything; "user" matches spec.user, "group" any of spec.groups; "caller" matches the bearer
      token the review was sent with (so two clients of the double, say an aggregator and
      aa-proxy, can be answered differently for the same user); "path" (non-resource
      requests) may end in "*" for a prefix match; a rule with "path" only matches non-resource
      requests and a rule with resource fields only resource requests. No match: default deny
      ({"allowed": false}).
    api_tokens: when present, every non-control request must carry `Authorization: Bearer <one
      of these>` or a verified client certificate, else 401 (how aa-proxy's own credentials
      are checked).
    failures, per endpoint `tokenreviews`, `subjectaccessreviews`, `configmap` (GET of the
      ConfigMap and the list), `watch`: `slow_ms` (or `slow`) delays; `down` closes the connection
      without answering (a FIN after the request was read); `reset` aborts it without answering
      (SO_LINGER 0: the client reads ECONNRESET, no TLS close_notify); `garbage` answers the
      endpoint's success status (201 for reviews, 200 otherwise) with a body that is not JSON (a
      watch: a 200 stream whose one event line is not JSON, then its end); `status` answers with
      that code (a Status body) and a `Retry-After` header when `retry_after` is set;
      `both_allowed_and_denied` (SAR only) answers allowed and denied both true. `times`: only
      the first N requests to that endpoint (counted since start, the last /__reset or the last
      change of this endpoint's failure entry) fail; absent = all. An entry applies to requests
      that arrive after it is written: a watch already streaming goes on (see /__end_watches).

Endpoints
  GET  /api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication
  GET  /api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name%3Dextension-apiserver-authentication
       (a ConfigMapList; with &watch=true a chunked watch stream, one JSON event per line;
       `resourceVersion=N` older than the current one first sends the current object;
       `timeoutSeconds=N` ends the stream)
  POST /apis/authentication.k8s.io/v1/tokenreviews (and v1beta1)
  POST /apis/authorization.k8s.io/v1/subjectaccessreviews (and v1beta1, groups in spec.group)
  GET  every collection of COLLECTIONS (cluster-wide, and per namespace for namespaced kinds),
       as a list or, with watch=true, as a watch stream (same rules as the ConfigMap watch), and
       GET of one object by name
  Control (no authentication, not recorded):
  GET  /__recorded  JSON list of {"connection": n, "method", "path" (with query), "headers":
                    [[name, value], ...], "body", "time" (unix seconds), "client_cert_cn"}
                    in arrival order; `connection` numbers TCP connections from 1 so tests can
                    count reuse.
  POST /__reset     clears the recording and the failure counters.
  POST /__end_watches  ends every open watch stream (the terminating chunk), as kube-apiserver
                    does at its watch timeout: clients re-list and re-watch, meeting whatever
                    `configmap`/`watch` failure is injected by then. {"ended": n}.
  GET  /__healthz   "ok".
"""

import argparse
import http.server
import json
import os
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid

CONFIGMAP_NAME = "extension-apiserver-authentication"
CONFIGMAP_PATH = "/api/v1/namespaces/kube-system/configmaps/" + CONFIGMAP_NAME
CONFIGMAP_LIST_PATH = "/api/v1/namespaces/kube-system/configmaps"
TOKENREVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
# Older clients (kube-aggregator 1.14's delegated authn/authz) send the v1beta1 kinds, whose
# SubjectAccessReview spec names the groups field "group".
TOKENREVIEW_PATHS = {TOKENREVIEW_PATH: "authentication.k8s.io/v1",
                     "/apis/authentication.k8s.io/v1beta1/tokenreviews":
                         "authentication.k8s.io/v1beta1"}
SAR_PATHS = {SAR_PATH: "authorization.k8s.io/v1",
             "/apis/authorization.k8s.io/v1beta1/subjectaccessreviews":
                 "authorization.k8s.io/v1beta1"}

# The collections served from --objects-file: (group/version, plural) -> (kind, namespaced).
COLLECTIONS = {
    ("v1", "namespaces"): ("Namespace", False),
    ("v1", "services"): ("Service", True),
    ("v1", "endpoints"): ("Endpoints", True),
    ("admissionregistration.k8s.io/v1beta1", "mutatingwebhookconfigurations"):
        ("MutatingWebhookConfiguration", False),
    ("admissionregistration.k8s.io/v1beta1", "validatingwebhookconfigurations"):
        ("ValidatingWebhookConfiguration", False),
}


class ConfigMapState:
    """The ConfigMap as the data file currently describes it, with a resourceVersion per change."""

    def __init__(self, path):
        self.path = path
        self.cond = threading.Condition()
        self.raw = None  # bytes of the file, None when absent
        self.data = None  # parsed data dict, None when absent
        self.resource_version = 1
        self.events = []  # (resourceVersion, type, object)
        self.refresh()

    def refresh(self):
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = None
        with self.cond:
            if raw == self.raw:
                return
            if raw is not None:
                try:
                    data = json.loads(raw.decode("utf-8"))
                except ValueError:
                    return  # torn or invalid write: keep the old state, try again later
                if not isinstance(data, dict):
                    return
            else:
                data = None
            previous = self.data
            self.raw = raw
            self.data = data
            self.resource_version += 1
            if data is None:
                event_type = "DELETED"
                obj = self._object(previous or {})
            else:
                event_type = "ADDED" if previous is None else "MODIFIED"
                obj = self._object(data)
            self.events.append((self.resource_version, event_type, obj))
            del self.events[:-1000]
            self.cond.notify_all()

    def _object(self, data):
        return {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {
                "name": CONFIGMAP_NAME,
                "namespace": "kube-system",
                "uid": "5e3c4d1a-0000-4000-8000-000000000001",
                "resourceVersion": str(self.resource_version),
            },
            "data": data,
        }

    def current(self):
        with self.cond:
            if self.data is None:
                return None, self.resource_version
            return self._object(self.data), self.resource_version

    def current_objects(self):
        """What a watch from resourceVersion "" or "0" starts with (call with cond held)."""
        return [] if self.data is None else [self._object(self.data)]


class ObjectStore:
    """The objects of --objects-file, each with its own resourceVersion, and their change events."""

    def __init__(self, path):
        self.path = path
        self.cond = threading.Condition()
        self.raw = None
        self.objects = {}  # (apiVersion, kind, namespace, name) -> object as served
        self.resource_version = 1
        self.events = []  # (resourceVersion, type, object)
        self.refresh()

    @staticmethod
    def _key(obj):
        meta = obj.get("metadata") or {}
        return (obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("namespace", ""),
                meta.get("name", ""))

    @staticmethod
    def _comparable(obj):
        copy = json.loads(json.dumps(obj))
        copy.get("metadata", {}).pop("resourceVersion", None)
        return json.dumps(copy, sort_keys=True)

    def refresh(self):
        if not self.path:
            return
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = b"[]"
        with self.cond:
            if raw == self.raw:
                return
            try:
                listed = json.loads(raw.decode("utf-8"))
            except ValueError:
                return  # torn or invalid write: keep the old state, try again later
            if not isinstance(listed, list):
                return
            self.raw = raw
            wanted = {self._key(obj): obj for obj in listed if isinstance(obj, dict)}
            changes = []
            for key, obj in wanted.items():
                old = self.objects.get(key)
                if old is None:
                    changes.append(("ADDED", key, obj))
                elif self._comparable(old) != self._comparable(obj):
                    changes.append(("MODIFIED", key, obj))
            changes += [("DELETED", key, old) for key, old in self.objects.items()
                        if key not in wanted]
            for event_type, key, obj in changes:
                self.resource_version += 1
                served = json.loads(json.dumps(obj))
                meta = served.setdefault("metadata", {})
                meta["resourceVersion"] = str(self.resource_version)
                meta.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(key))))
                if event_type == "DELETED":
                    del self.objects[key]
                else:
                    self.objects[key] = served
                self.events.append((self.resource_version, event_type, served))
            del self.events[:-1000]
            if changes:
                self.cond.notify_all()

    def current_objects(self):
        """Every object (call with cond held); watches filter them."""
        return list(self.objects.values())

    def find(self, match):
        with self.cond:
            return [o for o in self.objects.values() if match(o)], self.resource_version


class Policy:
    """The policy file, re-read on each use; the last parseable version wins."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.last_good = {}
        self.failure_counts = {}  # endpoint -> (failure entry json, count)

    def get(self):
        try:
            with open(self.path, "rb") as f:
                parsed = json.loads(f.read().decode("utf-8"))
            if isinstance(parsed, dict):
                with self.lock:
                    self.last_good = parsed
        except FileNotFoundError:
            with self.lock:
                self.last_good = {}
        except ValueError:
            pass
        with self.lock:
            return self.last_good

    def failure_for(self, endpoint):
        """The failure entry to apply to this request, or None (counts the `times` budget)."""
        entry = (self.get().get("failures") or {}).get(endpoint)
        if not entry:
            return None
        key = json.dumps(entry, sort_keys=True)
        with self.lock:
            old_key, count = self.failure_counts.get(endpoint, (None, 0))
            if old_key != key:
                count = 0
            count += 1
            self.failure_counts[endpoint] = (key, count)
        times = entry.get("times")
        if times is not None and count > times:
            return None
        return entry

    def reset_counters(self):
        with self.lock:
            self.failure_counts = {}


def _matches(rule_value, actual):
    return rule_value is None or rule_value == "*" or rule_value == actual


def _path_matches(pattern, path):
    if pattern is None or pattern == "*":
        return True
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return pattern == path


RESOURCE_FIELDS = ("verb", "apiGroup", "resource", "subresource", "name", "namespace", "version")


def evaluate_sar(policy, spec, caller=""):
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    groups = spec.get("groups") or spec.get("group") or []  # v1, v1beta1
    for rule in policy.get("sar") or []:
        if not _matches(rule.get("caller"), caller):
            continue
        if not _matches(rule.get("user"), spec.get("user", "")):
            continue
        if rule.get("group") not in (None, "*") and rule["group"] not in groups:
            continue
        if "path" in rule:
            if non_resource is None:
                continue
            if not _path_matches(rule["path"], non_resource.get("path", "")):
                continue
            if not _matches(rule.get("verb"), non_resource.get("verb", "")):
                continue
        else:
            if resource is None:
                if any(k in rule for k in RESOURCE_FIELDS if k != "verb"):
                    continue
                if not _matches(rule.get("verb"), (non_resource or {}).get("verb", "")):
                    continue
            else:
                attrs = dict(resource)
                attrs["apiGroup"] = resource.get("group", "")
                if not all(_matches(rule.get(k), attrs.get(k, "")) for k in RESOURCE_FIELDS):
                    continue
        status = {"allowed": bool(rule.get("allowed", False))}
        if rule.get("denied"):
            status["denied"] = True
        if rule.get("reason"):
            status["reason"] = rule["reason"]
        if rule.get("evaluationError"):
            status["evaluationError"] = rule["evaluationError"]
        return status
    return {"allowed": False}


def status_body(code, reason, message):
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []

    def add(self, entry):
        with self.lock:
            self.requests.append(entry)

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def reset(self):
        with self.lock:
            self.requests = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connection_id = 0  # set per TCP connection by FakeApiServer.finish_request
    server_version = "fake-kube-apiserver/1"

    def log_message(self, fmt, *args):  # quiet: tests read stdout for the port line only
        pass

    # --- plumbing -------------------------------------------------------------------------

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, code, obj, extra_headers=()):
        body = json.dumps(obj).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_raw(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_watch_head(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _client_cn(self):
        try:
            cert = self.connection.getpeercert()
        except (AttributeError, ValueError):
            return ""
        if not cert:
            return ""
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return value
        return ""

    def _record(self, body):
        self.server.recorder.add({
            "connection": self.connection_id,
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "time": time.time(),
            "client_cert_cn": self._client_cn(),
        })

    def _apply_failure(self, endpoint):
        """Applies the injected failure; True when the request has been fully handled."""
        failure = self.server.policy.failure_for(endpoint)
        if not failure:
            return False, None
        delay_ms = failure.get("slow_ms", failure.get("slow"))
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        if failure.get("down"):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True, failure
        if failure.get("reset"):
            # The socket is closed for real once the handler's files are (finish()): with
            # SO_LINGER 0 that close is an RST instead of a FIN.
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass
            return True, failure
        if failure.get("garbage"):
            if endpoint == "watch":
                self._send_watch_head()
                line = b"{not a watch event\n"
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(line), line))
            else:
                code = 201 if endpoint in ("tokenreviews", "subjectaccessreviews") else 200
                self._send_raw(code, b'{"kind": "garbage", this is not JSON')
            return True, failure
        if failure.get("status"):
            code = int(failure["status"])
            headers = []
            if failure.get("retry_after") is not None:
                headers.append(("Retry-After", str(failure["retry_after"])))
            reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                      504: "Timeout"}.get(code, "Unknown")
            self._send_json(code, status_body(code, reason, "injected failure"), headers)
            return True, failure
        return False, failure

    def _bearer_token(self):
        parts = self.headers.get("Authorization", "").split(" ", 1)
        return parts[1].strip() if len(parts) == 2 and parts[0].lower() == "bearer" else ""

    def _authorized(self, policy):
        tokens = policy.get("api_tokens")
        if tokens is None:
            return True
        if self._client_cn():
            return True
        return self._bearer_token() in tokens

    # --- dispatch -------------------------------------------------------------------------

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self):
        body = self._read_body()
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/__recorded" and self.command == "GET":
            return self._send_json(200, self.server.recorder.snapshot())
        if url.path == "/__reset" and self.command == "POST":
            self.server.recorder.reset()
            self.server.policy.reset_counters()
            return self._send_json(200, {"reset": True})
        if url.path == "/__end_watches" and self.command == "POST":
            return self._send_json(200, {"ended": self.server.end_watches()})
        if url.path == "/__healthz":
            return self._send_json(200, "ok")

        self._record(body)
        policy = self.server.policy.get()
        self.server.configmap.refresh()
        self.server.objects.refresh()
        if not self._authorized(policy):
            return self._send_json(401, status_body(401, "Unauthorized", "Unauthorized"))

        if url.path == CONFIGMAP_PATH and self.command == "GET":
            handled, _ = self._apply_failure("configmap")
            if handled:
                return
            obj, _ = self.server.configmap.current()
            if obj is None:
                return self._send_json(404, status_body(
                    404, "NotFound",
                    'configmaps "%s" not found' % CONFIGMAP_NAME) | {
                        "details": {"name": CONFIGMAP_NAME, "kind": "configmaps"}})
            return self._send_json(200, obj)
        if url.path == CONFIGMAP_LIST_PATH and self.command == "GET":
            selector = (query.get("fieldSelector") or [""])[0]
            wanted = selector in ("", "metadata.name=" + CONFIGMAP_NAME)
            if query.get("watch", ["false"])[0] not in ("", "0", "false"):
                handled, _ = self._apply_failure("watch")
                if handled:
                    return
                return self._watch(self.server.configmap, query, lambda _: wanted)
            handled, _ = self._apply_failure("configmap")
            if handled:
                return
            obj, rv = self.server.configmap.current()
            items = [obj] if obj is not None and wanted else []
            return self._send_json(200, {"kind": "ConfigMapList", "apiVersion": "v1",
                                         "metadata": {"resourceVersion": str(rv)},
                                         "items": items})
        if url.path in TOKENREVIEW_PATHS and self.command == "POST":
            return self._token_review(policy, body, TOKENREVIEW_PATHS[url.path])
        if url.path in SAR_PATHS and self.command == "POST":
            return self._subject_access_review(policy, body, SAR_PATHS[url.path])
        if self.command == "GET" and self._serve_objects(url.path, query):
            return
        return self._send_json(404, status_body(404, "NotFound", "the server could not find the "
                                                "requested resource"))

    def _token_review(self, policy, body, api_version):
        handled, _ = self._apply_failure("tokenreviews")
        if handled:
            return
        try:
            review = json.loads(body.decode("utf-8"))
            spec = review.get("spec") or {}
        except (ValueError, AttributeError):
            return self._send_json(400, status_body(400, "BadRequest", "invalid TokenReview"))
        outcome = (policy.get("tokens") or {}).get(spec.get("token", ""))
        status = {"authenticated": False, "user": {}}
        if outcome is not None:
            status["authenticated"] = bool(outcome.get("authenticated", True))
            if status["authenticated"]:
                user = {"username": outcome.get("username", "")}
                for key in ("uid", "groups", "extra"):
                    if outcome.get(key):
                        user[key] = outcome[key]
                status["user"] = user
            audiences = outcome.get("audiences", spec.get("audiences"))
            if audiences:
                status["audiences"] = audiences
            if outcome.get("error"):
                status["error"] = outcome["error"]
        self._send_json(201, {"kind": "TokenReview", "apiVersion": api_version,
                              "metadata": {"creationTimestamp": None},
                              "spec": spec, "status": status})

    def _subject_access_review(self, policy, body, api_version):
        handled, failure = self._apply_failure("subjectaccessreviews")
        if handled:
            return
        try:
            review = json.loads(body.decode("utf-8"))
            spec = review.get("spec") or {}
        except (ValueError, AttributeError):
            return self._send_json(400, status_body(400, "BadRequest", "invalid SubjectAccessReview"))
        if failure and failure.get("both_allowed_and_denied"):
            status = {"allowed": True, "denied": True}
        else:
            status = evaluate_sar(policy, spec, caller=self._bearer_token())
        self._send_json(201, {"kind": "SubjectAccessReview",
                              "apiVersion": api_version,
                              "metadata": {"creationTimestamp": None},
                              "spec": spec, "status": status})

    def _serve_objects(self, path, query):
        """GET of a COLLECTIONS list, watch or object; False when the path is none of those."""
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group_version, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group_version, rest = parts[1] + "/" + parts[2], parts[3:]
        else:
            return False
        namespace, name = "", ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if len(rest) not in (1, 2) or (group_version, rest[0]) not in COLLECTIONS:
            return False
        kind, namespaced = COLLECTIONS[(group_version, rest[0])]
        if namespace and not namespaced:
            return False
        if len(rest) == 2:
            name = rest[1]
        api_version = group_version

        def match(obj):
            meta = obj.get("metadata") or {}
            return (obj.get("apiVersion") == api_version and obj.get("kind") == kind and
                    (not namespace or meta.get("namespace", "") == namespace) and
                    (not name or meta.get("name") == name))

        store = self.server.objects
        if name:
            found, _ = store.find(match)
            if not found:
                self._send_json(404, status_body(404, "NotFound", '%s "%s" not found' % (
                    rest[0], name)) | {"details": {"name": name, "kind": rest[0]}})
            else:
                self._send_json(200, found[0])
            return True
        if query.get("watch", ["false"])[0] not in ("", "0", "false"):
            self._watch(store, query, match)
            return True
        items, rv = store.find(match)
        self._send_json(200, {"kind": kind + "List", "apiVersion": api_version,
                              "metadata": {"resourceVersion": str(rv)}, "items": items})
        return True

    def _watch(self, state, query, match):
        """A chunked watch stream of `state`'s events whose object `match` accepts."""
        timeout = float((query.get("timeoutSeconds") or ["0"])[0] or 0)
        deadline = time.time() + timeout if timeout > 0 else None
        since = (query.get("resourceVersion") or [""])[0]
        self._send_watch_head()
        with self.server.connection_lock:
            generation = self.server.watch_generation
            self.server.open_watches += 1
        with state.cond:
            sent_rv = state.resource_version
            if since in ("", "0"):
                # As kube-apiserver for an unset/"0" resourceVersion: the current state first.
                pending = [{"type": "ADDED", "object": o} for o in state.current_objects()]
            else:
                try:
                    since_rv = int(since)
                except ValueError:
                    since_rv = 0
                pending = [{"type": t, "object": o} for rv, t, o in state.events if rv > since_rv]
            pending = [e for e in pending if match(e["object"])]
        try:
            while (not self.server.stopping.is_set() and
                   self.server.watch_generation == generation):
                for event in pending:
                    line = (json.dumps(event) + "\n").encode("utf-8")
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                pending = []
                with state.cond:
                    remaining = None if deadline is None else deadline - time.time()
                    if remaining is not None and remaining <= 0:
                        break
                    state.cond.wait(timeout=0.2 if remaining is None else min(0.2, remaining))
                    for rv, event_type, obj in state.events:
                        if rv > sent_rv and match(obj):
                            pending.append({"type": event_type, "object": obj})
                    sent_rv = state.resource_version
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            with self.server.connection_lock:
                self.server.open_watches -= 1


class FakeApiServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, ssl_context, configmap, policy, objects):
        super().__init__(address, Handler)
        self.ssl_context = ssl_context
        self.configmap = configmap
        self.objects = objects
        self.policy = policy
        self.recorder = Recorder()
        self.stopping = threading.Event()
        self.connection_lock = threading.Lock()
        self.next_connection_id = 0
        # Bumped by /__end_watches: streams started in an older generation end.
        self.watch_generation = 0
        self.open_watches = 0

    def end_watches(self):
        """Ends the open watch streams within one poll (0.2 s); returns how many were open."""
        with self.connection_lock:
            self.watch_generation += 1
            return self.open_watches

    def finish_request(self, request, client_address):
        # The TLS handshake runs on the connection's own thread, never on the accept loop.
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self.connection_lock:
            self.next_connection_id += 1
            connection_id = self.next_connection_id

        class ConnectionHandler(Handler):
            pass

        ConnectionHandler.connection_id = connection_id
        try:
            ConnectionHandler(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass  # the peer went away, or an injected `down` closed the connection
        finally:
            try:
                tls.close()
            except OSError:
                pass


def _poll_files(states, stopping):
    while not stopping.wait(0.02):
        for state in states:
            state.refresh()


def main(argv=None):
    parser = argparse.ArgumentParser(description="kube-apiserver test double")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", default="")
    parser.add_argument("--require-client-cert", action="store_true")
    parser.add_argument("--configmap-file", required=True)
    parser.add_argument("--policy-file", required=True)
    parser.add_argument("--objects-file", default="")
    args = parser.parse_args(argv)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    context.set_alpn_protocols(["http/1.1"])
    if args.client_ca:
        context.load_verify_locations(args.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if args.require_client_cert else ssl.CERT_OPTIONAL

    configmap = ConfigMapState(args.configmap_file)
    policy = Policy(args.policy_file)
    objects = ObjectStore(args.objects_file)
    server = FakeApiServer((args.host, args.port), context, configmap, policy, objects)
    poller = threading.Thread(target=_poll_files, args=((configmap, objects), server.stopping),
                              daemon=True)
    poller.start()
    host, port = server.server_address[:2]
    print("listening on %s:%d" % (host, port), flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()


if __name__ == "__main__":
    import signal

    def _terminate(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
