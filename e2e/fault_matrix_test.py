"""aa-proxy under fire: one table of faults, each injected while keep-alive clients keep calling.

Every case starts the kube-apiserver double, a backend and aa-proxy (cluster mode), warms the
caches, takes a census of the proxy's descriptors, starts LOAD_CLIENTS (threads, each on one
keep-alive TLS connection: a front-proxy user, a bearer-token user and an x509 user, each on a
path whose TokenReview and SubjectAccessReview are already cached), injects the fault, sends
the affected requests, and asserts:
  - each affected request's status and exact body,
  - every load request before, during and after the fault got 2xx with the exact body, on the
    connection it started with (cached decisions keep serving, nothing waits on the fault),
  - the proxy is alive, and its descriptors return to the census: no client socket left, no
    socket its peer closed (CLOSE_WAIT), the same files/pipes/listeners; connections to the
    double (the ConfigMap watch, idle review connections) and idle pooled backend connections
    are allowed up to their pools' bounds.

The cases (the methods' docstrings say what is expected and why):
  KubeApiserverFaultTest  kube-apiserver closes / resets / 500 / 429 + Retry-After / garbage JSON /
                          slow 1 s / killed mid-traffic / down at start; each injected into the
                          TokenReview, SubjectAccessReview, ConfigMap and watch endpoints at once.
                          Uncached token: 401 (Unauthorized Status); uncached decision: 500,
                          `Internal Server Error: "<uri>": <why>` as upstream, <why> being the
                          Status message for an HTTP error (as client-go's) and aa-proxy's own
                          words for a transport failure (Go's differ); the ConfigMap's last good
                          data stays in force, and the watch recovers once the fault is gone.
                          A 1 s delay: the affected requests succeed after it. A 10 s delay,
                          the review client's timeout per attempt: 401 and 500 (`no complete
                          response within 10s`, one attempt, not retried), the ConfigMap re-list
                          times out too. Either way cached callers never wait.
  BackendFaultTest        the backend down (503), unreachable (connect timeout, 503), resetting
                          before answering (502), resetting mid-body (a cut response), stalling,
                          malformed (502), closing keep-alive connections the pool thinks idle
                          (GETs retried once on a new connection; a POST is not replayed).
                          FaultBackend, a small Python HTTP/1.1 server started as a real process
                          (this file with --fault-backend), misbehaves on /fault/* paths.
  ConfigMapUnderLoadTest  deleted, invalid CA bundles, client CA rotated, allowed names changed.
                          authn_test.LiveReloadTest already asserts the requestheader CA rotation,
                          the allowed-names change, the resync without a watch and invalid JSON
                          without load; here: the same kinds of change under load, with the
                          overlap phase dropping nothing and open keep-alive connections
                          re-checked on their next request.
  ServingCertificateRotationTest.
  ShutdownUnderLoadTest   SIGTERM with slow requests at the backend, and SIGTERM during a
                          1 GiB download: each finishes, the process exits 0 after.

The fatal lookup failure at start (no --authentication-tolerate-lookup-failure) is asserted by
authn_test.LookupFailureTest.test_apiserver_down_at_start_is_fatal; the tolerated start is
covered here under load, with the double coming up later.
"""

import concurrent.futures
import dataclasses
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from cluster import (CONFIGMAP, KUBECTL, SARS, TOKENREVIEWS, UNAUTHORIZED,  # noqa: E402
                     ClusterTestCase, json_array)
from sample_backend_test import pattern_sha256  # noqa: E402

GV = "/apis/sample-api-server/v1alpha1"
TINA_TOKEN = "e2e-fault-token-tina-5d1c"
TINA = {"username": "tina", "groups": ["qa"]}
# Tokens the double knows but the proxy has never reviewed: each one needs a TokenReview.
FRESH_TOKENS = [f"e2e-fault-fresh-token-{i:03d}" for i in range(40)]
POLICY = {
    "tokens": {TINA_TOKEN: TINA, **{t: {"username": f"fresh-{t[-3:]}"} for t in FRESH_TOKENS}},
    "sar": [{"allowed": True}],
}
# Decisions and token reviews cached by the warm-up stay cached for the whole case.
CACHE_FLAGS = ("--authorization-webhook-cache-authorized-ttl", "5m",
               "--authentication-token-webhook-cache-ttl", "5m")
UNAVAILABLE_KINDS = ("RemoteDisconnected", "ConnectionResetError", "ConnectionRefusedError",
                     "BrokenPipeError", "ConnectionAbortedError")


def sample_list(namespace: str) -> bytes:
    return (b'{"apiVersion":"sample-api-server/v1alpha1","kind":"SampleList","metadata":'
            b'{"resourceVersion":"1"},"items":[{"apiVersion":"sample-api-server/v1alpha1",'
            b'"kind":"Sample","metadata":{"name":"sample1"},"spec":{"name":"' +
            namespace.encode() + b'"}}]}\n')


def status_json(code: int, reason: str, message: str) -> bytes:
    """A Status body as the proxy writes its own errors (k8s/status.cc)."""
    return (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":' +
            json.dumps(message).encode() + b',"reason":"' + reason.encode() + b'","code":' +
            str(code).encode() + b'}\n')


def internal_error(uri: str, message: str) -> bytes:
    """k8s.io/apiserver's InternalError for a failed authorization (responsewriters)."""
    return f'Internal Server Error: "{uri}": {message}\n'.encode()


# ---------------------------------------------------------------------------------------------
# Keep-alive load


@dataclasses.dataclass
class Outcome:
    started: float
    ended: float
    status: int                 # 0 when no response arrived
    body: bytes
    error: Optional[str]        # exception class and text, when the exchange failed
    connection: int             # which of the client's connections carried it (1, 2, ...)
    peer_cert: bytes = b""

    @property
    def error_kind(self) -> str:
        return (self.error or "").split(":", 1)[0]


def exchange(conn: http.client.HTTPConnection, method: str, path: str,
             headers: Dict[str, str], body: Optional[bytes] = None) -> Tuple[int, bytes, Dict]:
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, {k.lower(): v for k, v in response.getheaders()}


class LoadClient(threading.Thread):
    """GETs `path` in a loop on one keep-alive connection (a new one only after a failure),
    every `interval` seconds, until stopped; at most `max_seconds` and `max_requests`."""

    def __init__(self, name: str, port: int, context: ssl.SSLContext, path: str,
                 headers: Dict[str, str], expected: bytes, interval: float = 0.01,
                 max_seconds: float = 60, max_requests: int = 4000):
        super().__init__(name=name, daemon=True)
        self.port, self.context, self.path = port, context, path
        self.headers = dict(headers, **{"User-Agent": KUBECTL.split(": ", 1)[1]})
        self.expected = expected
        self.interval = interval
        self.deadline = time.monotonic() + max_seconds
        self.max_requests = max_requests
        self.outcomes: List[Outcome] = []
        self.stopping = threading.Event()
        self.connections = 0

    def run(self) -> None:
        conn: Optional[http.client.HTTPSConnection] = None
        pause = self.interval
        while (not self.stopping.is_set() and time.monotonic() < self.deadline and
               len(self.outcomes) < self.max_requests):
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                                   context=self.context, timeout=10)
                self.connections += 1
            started = time.monotonic()
            try:
                status, body, _ = exchange(conn, "GET", self.path, self.headers)
                cert = conn.sock.getpeercert(binary_form=True) if conn.sock else b""
                self.outcomes.append(Outcome(started, time.monotonic(), status, body, None,
                                             self.connections, cert))
                if conn.sock is None:  # the server said Connection: close
                    conn = None
                pause = self.interval
            except (OSError, http.client.HTTPException) as e:
                self.outcomes.append(Outcome(started, time.monotonic(), 0, b"",
                                             f"{type(e).__name__}: {e}", self.connections))
                conn.close()
                conn = None
                pause = 0.1  # a failing server is not hammered
            self.stopping.wait(pause)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(15)

    def completed(self) -> int:
        return len(self.outcomes)

    def failures(self) -> List[Outcome]:
        return [o for o in self.outcomes if o.status != 200 or o.body != self.expected]


# ---------------------------------------------------------------------------------------------
# Descriptor census


TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def _tcp_sockets(pid: int) -> Dict[str, Tuple[int, int, str]]:
    """inode -> (local port, remote port, state) of the process's network namespace."""
    table = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            table[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16),
                            TCP_STATES.get(state, state))
    return table


@dataclasses.dataclass
class Census:
    """The proxy's open descriptors by kind."""
    other: List[str]            # files, pipes, eventfds, Unix sockets, unclassified: exact
    listeners: int
    clients: int                # accepted connections
    backend: List[str]          # states of connections to the backend
    apiserver: List[str]        # states of connections to the double

    @staticmethod
    def take(pid: int, proxy_port: int, backend_port: Optional[int],
             apiserver_port: Optional[int]) -> "Census":
        sockets = _tcp_sockets(pid)
        census = Census([], 0, 0, [], [])
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue  # closed meanwhile
            match = re.fullmatch(r"socket:\[(\d+)\]", target)
            tcp = sockets.get(match.group(1)) if match else None
            if tcp is None:
                census.other.append(re.sub(r"\d+", "N", target))
            elif tcp[2] == "LISTEN":
                census.listeners += 1
            elif tcp[0] == proxy_port:
                census.clients += 1
            elif tcp[1] == backend_port:
                census.backend.append(tcp[2])
            elif tcp[1] == apiserver_port:
                census.apiserver.append(tcp[2])
            else:
                census.other.append(f"tcp {tcp}")
        census.other.sort()
        return census


# ---------------------------------------------------------------------------------------------
# The stand-in backend (run as a process: this file with --fault-backend PORT)


FINE = b'{"kind":"Fine","from":"fault-backend"}\n'
CUT_BODY_LENGTH = 1 << 20
CUT_AFTER = 64 << 10


class FaultBackend:
    """HTTP/1.1 keep-alive server, one thread per connection. Any path: 200 with FINE, except
      /fault/malformed        a response that is not HTTP, then close
      /fault/reset-now        no answer: the connection is reset (SO_LINGER 0)
      /fault/reset-mid-body   200 with Content-Length 1 MiB, 64 KiB of it, then a reset
      /fault/stall            no answer until the peer closes (at most 20 s)
      /slow?ms=N              FINE after N ms
    Control (the test calls the backend directly):
      GET  /__stats           {"counters": {...}, "active_slow": n, "requests": [[conn, method,
                              path], ...]}
      POST /__arm_close_idle  every connection now waiting for a request closes (FIN) when its
                              next request arrives, without answering: what a keep-alive
                              timeout racing a pooled connection's reuse looks like. {"armed": n}
    """

    def __init__(self, port: int):
        self.lock = threading.Lock()
        self.counters: Dict[str, int] = {}
        self.requests: List[list] = []
        self.idle: set = set()
        self.armed: set = set()
        self.active_slow = 0
        self.next_id = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(128)

    def count(self, name: str) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + 1

    def serve_forever(self) -> None:
        print(f"listening on 127.0.0.1:{self.listener.getsockname()[1]}", flush=True)
        while True:
            conn, _ = self.listener.accept()
            with self.lock:
                self.next_id += 1
                conn_id = self.next_id
            threading.Thread(target=self.connection, args=(conn, conn_id), daemon=True).start()

    @staticmethod
    def reset(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    @staticmethod
    def respond(conn: socket.socket, body: bytes, status: str = "200 OK",
                close: bool = False) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n"
                     f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode() +
                     body)

    def connection(self, conn: socket.socket, conn_id: int) -> None:
        reader = conn.makefile("rb")
        try:
            while self.one_request(conn, conn_id, reader):
                pass
        except OSError:
            pass
        finally:
            with self.lock:
                self.idle.discard(conn_id)
            reader.close()
            conn.close()

    def one_request(self, conn: socket.socket, conn_id: int, reader) -> bool:
        with self.lock:
            self.idle.add(conn_id)
        request_line = reader.readline()
        with self.lock:
            self.idle.discard(conn_id)
            armed = conn_id in self.armed
            self.armed.discard(conn_id)
        if not request_line:
            return False
        headers = {}
        while True:
            line = reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        method, target = request_line.decode("latin-1").split()[:2]
        length = int(headers.get("content-length", "0") or 0)
        if length:
            reader.read(length)
        path, _, query = target.partition("?")
        if not path.startswith("/__"):
            with self.lock:
                self.requests.append([conn_id, method, target])
        if armed:
            self.count("closed_on_reuse")
            conn.shutdown(socket.SHUT_RDWR)
            return False
        close = headers.get("connection", "").lower() == "close"
        if path == "/__stats":
            with self.lock:
                stats = {"counters": dict(self.counters), "active_slow": self.active_slow,
                         "requests": list(self.requests)}
            self.respond(conn, json.dumps(stats).encode(), close=close)
        elif path == "/__arm_close_idle":
            with self.lock:
                self.armed = set(self.idle)
                armed_now = len(self.armed)
            self.respond(conn, json.dumps({"armed": armed_now}).encode(), close=close)
        elif path == "/fault/malformed":
            conn.sendall(b"this is not HTTP\r\n\r\n")
            return False
        elif path == "/fault/reset-now":
            self.reset(conn)
            return False
        elif path == "/fault/reset-mid-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % CUT_BODY_LENGTH + b"x" * CUT_AFTER)
            self.reset(conn)
            return False
        elif path == "/fault/stall":
            self.count("stall_started")
            conn.settimeout(20)
            try:
                if conn.recv(1) == b"":
                    self.count("stall_released_by_peer")
            except OSError:
                self.count("stall_released_by_peer")
            return False
        elif path == "/slow":
            delay = int(re.search(r"ms=(\d+)", query).group(1)) / 1000.0
            with self.lock:
                self.active_slow += 1
            try:
                time.sleep(delay)
            finally:
                with self.lock:
                    self.active_slow -= 1
            self.respond(conn, FINE, close=close)
        else:
            self.respond(conn, FINE, close=close)
        return not close


class FaultBackendProcess:
    """This file run with --fault-backend: the stand-in backend as a real process."""

    def __init__(self, test: harness.E2ETestCase, port: int = 0, name: str = "fault-backend"):
        self.process = test.start(name, [sys.executable, os.path.abspath(__file__),
                                         "--fault-backend", str(port)])
        match = self.process.wait_for_log(r"^listening on 127\.0\.0\.1:(\d+)$")
        self.port = int(match.group(1))
        self.upstream = f"http://127.0.0.1:{self.port}"

    def control(self, method: str, path: str) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            return json.loads(exchange(conn, method, path, {})[1])
        finally:
            conn.close()

    def stats(self) -> dict:
        return self.control("GET", "/__stats")

    def counter(self, name: str) -> int:
        return self.stats()["counters"].get(name, 0)


# ---------------------------------------------------------------------------------------------
# The common frame of every case


class FaultTestCase(ClusterTestCase):
    """A proxy in cluster mode with cached decisions, LOAD_CLIENTS and a descriptor census."""

    proxy_flags: Sequence[str] = CACHE_FLAGS
    # (name, credentials, path): each warmed up once, so its TokenReview/SAR are cached.
    LOAD_CLIENTS = (("front-proxy", "front-proxy", GV + "/namespaces/load-fp/samples"),
                    ("token", "token", GV + "/namespaces/load-token/samples"),
                    ("x509", "x509", GV + "/namespaces/load-x509/samples"))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pki = cls.pki.pki
        if not hasattr(ClusterTestCase, "_fault_extras"):
            ClusterTestCase._fault_extras = {
                "server_2": pki.issue(cls.pki.ca, "server-2", "aa-proxy-rotated",
                                      ext_key_usage="serverAuth",
                                      sans=["IP:127.0.0.1", "DNS:localhost"]),
            }
        for name, value in ClusterTestCase._fault_extras.items():
            setattr(cls, name, value)

    def setUp(self):
        super().setUp()
        self.write_policy(POLICY)
        self.loads: List[LoadClient] = []
        self.fresh_tokens = list(FRESH_TOKENS)
        self.fresh_namespaces = (f"fresh-{i}" for i in range(1000))
        self.addCleanup(self.stop_load)

    # --- processes ------------------------------------------------------------------------

    def start_proxy(self, flags: Sequence[str] = (), cert: Optional[harness.CertKey] = None,
                    upstream: Optional[str] = None, wait_ready: bool = True) -> harness.Process:
        if self.apiserver_port is None:
            self.start_apiserver()
        if upstream is None:
            if not hasattr(self, "backend"):
                self.backend = self.start_backend()
            upstream = self.backend.upstream
        self.upstream_port = int(upstream.rsplit(":", 1)[1])
        argv = self.proxy_argv(upstream, list(self.proxy_flags) + list(flags))
        if cert is not None:
            argv = [str(a) for a in argv]
            argv[argv.index(str(self.pki.server.cert))] = str(cert.cert)
            argv[argv.index(str(self.pki.server.key))] = str(cert.key)
        self.proxy = self.start("aa-proxy", argv)
        if wait_ready:
            self.proxy.wait_for_log(r"serving on https://", timeout=20)
        return self.proxy

    def context(self, cert_key: Optional[harness.CertKey] = None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(self.pki.ca.cert))
        context.set_alpn_protocols(["http/1.1"])
        if cert_key is not None:
            context.load_cert_chain(str(cert_key.cert), str(cert_key.key))
        return context

    def credentials(self, kind: str) -> Tuple[ssl.SSLContext, Dict[str, str]]:
        """(TLS context, headers) of a caller: front-proxy (alice, dev), token (tina), x509
        (alice's certificate) or anonymous."""
        if kind == "front-proxy":
            return (self.context(self.pki.front_proxy_client),
                    {"X-Remote-User": "alice", "X-Remote-Group": "dev"})
        if kind == "token":
            return self.context(), {"Authorization": f"Bearer {TINA_TOKEN}"}
        if kind == "x509":
            return self.context(self.pki.alice), {}
        return self.context(), {}

    def request(self, path: str, kind: str = "front-proxy", headers: Optional[Dict] = None,
                context: Optional[ssl.SSLContext] = None, method: str = "GET",
                body: Optional[bytes] = None, timeout: float = 30) -> Tuple[int, bytes, Dict]:
        """One request on a new connection."""
        default_context, default_headers = self.credentials(kind)
        headers = dict(default_headers, **(headers or {}))
        headers.setdefault("User-Agent", KUBECTL.split(": ", 1)[1])
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=context or default_context)
        try:
            return exchange(conn, method, path, headers, body)
        finally:
            conn.close()

    def expect(self, path: str, status: int, body: bytes, **kwargs) -> Dict:
        got_status, got_body, headers = self.request(path, **kwargs)
        self.assertEqual((got_status, got_body), (status, body), path)
        return headers

    # --- load -------------------------------------------------------------------------------

    def warm_up(self, clients=None) -> None:
        for _, kind, path in clients or self.LOAD_CLIENTS:
            status, body, _ = self.request(path, kind)
            self.assertEqual(status, 200, body)

    def start_load(self, clients=None, expected: Optional[Callable[[str], bytes]] = None,
                   interval: float = 0.01) -> List[LoadClient]:
        """Starts one LoadClient per (name, credentials, path) and waits until each has
        completed a few requests."""
        expected = expected or (lambda path: sample_list(path.split("/")[-2]))
        loads = []
        for name, kind, path in clients or self.LOAD_CLIENTS:
            context, headers = self.credentials(kind)
            loads.append(LoadClient(name, self.port, context, path, headers, expected(path),
                                    interval=interval))
        for load in loads:
            load.start()
        self.loads += loads
        harness.wait_until(lambda: all(load.completed() >= 3 for load in loads), timeout=10,
                           what="the load clients to get going")
        return loads

    @staticmethod
    def fault_over(loads: Sequence[LoadClient]) -> float:
        """The end of a fault window: once every load client completed two more requests (so
        that even a short fault had load around it)."""
        counts = [load.completed() for load in loads]
        harness.wait_until(lambda: all(load.completed() >= c + 2 or not load.is_alive()
                                       for load, c in zip(loads, counts)),
                           timeout=10, what="the load to go on")
        return time.monotonic()

    def stop_load(self) -> None:
        for load in self.loads:
            load.stop()

    def assert_load_served(self, loads: Sequence[LoadClient],
                           window: Tuple[float, float]) -> None:
        """Every load request got 200 and the exact body; requests ran through `window` (the
        fault), each client on its first connection."""
        for load in loads:
            load.stop()
            with self.subTest(load=load.name):
                failures = load.failures()
                self.assertEqual([], [(round(o.started - window[0], 3), o.status, o.body[:120],
                                       o.error) for o in failures[:5]],
                                 f"{len(failures)} of {load.completed()} requests failed")
                during = [o for o in load.outcomes if window[0] <= o.started <= window[1]]
                self.assertGreaterEqual(len(during), 2, "no load while the fault was on")
                self.assertEqual(load.connections, 1, "the keep-alive connection was lost")

    # --- descriptors ----------------------------------------------------------------------

    def census(self) -> Census:
        return Census.take(self.proxy.pid, self.port, self.upstream_port, self.apiserver_port)

    def assert_descriptors_back(self, baseline: Census, timeout: float = 8) -> None:
        """The proxy's descriptors after the case, once every client closed: see the module
        docstring. Connections to the double are at most the watch plus the idle pools (8 per
        ApiServerClient: the control loop's and two per worker), to the backend at most the
        idle pools (128 per worker); none half-closed."""
        last: List[Census] = []

        def settled():
            census = self.census()
            last[:] = [census]
            return (census.other == baseline.other and census.listeners == baseline.listeners
                    and census.clients == 0 and
                    all(s == "ESTABLISHED" for s in census.backend + census.apiserver) and
                    len(census.apiserver) <= 1 + 8 * 5 and len(census.backend) <= 2 * 128)

        try:
            harness.wait_until(settled, timeout=timeout, what="the descriptors to settle",
                               interval=0.1)
        except TimeoutError:
            self.fail(f"descriptors did not return to the baseline:\n  before {baseline}\n"
                      f"  after  {last[0] if last else None}")

    def assert_alive(self) -> None:
        self.assertTrue(self.proxy.alive(), f"aa-proxy exited with {self.proxy.popen.returncode}")

    # --- the double -------------------------------------------------------------------------

    def inject(self, failure: Optional[dict], endpoints: Sequence[str]) -> None:
        policy = dict(POLICY)
        if failure is not None:
            policy["failures"] = {endpoint: failure for endpoint in endpoints}
        self.write_policy(policy)

    def end_watches(self) -> None:
        self._control("POST", "/__end_watches")

    def fresh_token(self) -> str:
        return self.fresh_tokens.pop()

    def fresh_path(self) -> str:
        return f"{GV}/namespaces/{next(self.fresh_namespaces)}/samples"

    def allow_also_wrong_cn(self) -> None:
        data = self.default_configmap()
        data["requestheader-allowed-names"] = json_array("front-proxy-client", "not-front-proxy")
        self.write_configmap(data)

    def wrong_cn_status(self) -> int:
        return self.request(GV + "/namespaces/wrong-cn/samples",
                            context=self.context(self.wrong_cn_proxy), timeout=5)[0]


# ---------------------------------------------------------------------------------------------
# kube-apiserver faults


@dataclasses.dataclass
class KubeFault:
    """One row: what the double does, and what an uncached token / decision gets."""
    failure: Optional[dict]        # the double's failure entry; None: the double is killed
    sar_message: str               # the 500's message ({api} = https://127.0.0.1:PORT)
    review_attempts: Tuple[int, int]  # requests per uncached review the double sees (min, max)
    affected_ok: bool = False      # the affected requests succeed (only slower)

    @property
    def slow_s(self) -> float:
        return (self.failure or {}).get("slow_ms", 0) / 1000

    @property
    def times_out(self) -> bool:
        return self.slow_s >= 10  # ApiServerClientOptions::timeout


KUBE_FAULTS: Dict[str, KubeFault] = {
    # An orderly close without an answer. Five attempts (client-go's webhook backoff); the first
    # on a pooled connection may be retried at once on a fresh one (stale connection).
    "closes": KubeFault({"down": True},
                        "kube-apiserver {api}: connection closed before the response "
                        "(after 5 attempts)", (5, 6)),
    "resets": KubeFault({"reset": True},
                        "kube-apiserver {api}: Connection reset by peer (after 5 attempts)",
                        (5, 6)),
    # client-go's Result.Error(): the Status body's message.
    "500": KubeFault({"status": 500}, "injected failure", (5, 5)),
    "429_retry_after": KubeFault({"status": 429, "retry_after": 1}, "injected failure", (5, 5)),
    # A 201 whose body is not JSON: a decoding error, not retried.
    "garbage_json": KubeFault({"garbage": True},
                              "invalid SubjectAccessReview response: {parse_error}", (1, 1)),
    # 1 s per call: the affected requests succeed after it; nothing else waits.
    "slow_1s": KubeFault({"slow_ms": 1000}, "", (1, 1), affected_ok=True),
    # 10 s per call, the review client's timeout per attempt: a timeout is not retried. The
    # ConfigMap re-list times out as well; the last good data stays.
    "slow_10s": KubeFault({"slow_ms": 10000},
                          "kube-apiserver {api}: POST " + SARS + ": no complete response within "
                          "10s", (1, 1)),
    # The process is killed mid-traffic, then started again on the same port.
    "killed_mid_traffic": KubeFault(None, "kube-apiserver {api}: Connection refused "
                                    "(after 5 attempts)", (0, 0)),
}
ENDPOINTS = ("tokenreviews", "subjectaccessreviews", "configmap", "watch")


class KubeApiserverFaultTest(FaultTestCase):

    def run_kube_fault(self, name: str) -> None:
        fault = KUBE_FAULTS[name]
        self.start_proxy()
        api = f"https://127.0.0.1:{self.apiserver_port}"
        self.warm_up()
        baseline = self.census()
        loads = self.start_load()

        fault_start = time.monotonic()
        wall_start = time.time()
        if fault.failure is None:
            self.apiserver.kill()
        else:
            self.inject(fault.failure, ENDPOINTS)
            self.end_watches()  # the proxy re-lists and re-watches into the fault
        tokens = [self.fresh_token() for _ in range(2)]
        paths = [self.fresh_path() for _ in range(2)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            token_results = [pool.submit(self.request, GV + "/namespaces/t/samples", "anonymous",
                                         {"Authorization": f"Bearer {t}"}) for t in tokens]
            sar_results = [pool.submit(self.request, p) for p in paths]
            token_results = [(f.result(), time.monotonic() - fault_start) for f in token_results]
            sar_results = [(f.result(), time.monotonic() - fault_start) for f in sar_results]
        if fault.failure is not None:
            # The watch met the fault too: the proxy re-listed and re-watched meanwhile (a
            # re-list that times out is still under way).
            calls = (1, 0) if fault.times_out else (1, 1)
            harness.wait_until(lambda: self.configmap_calls_since(wall_start) >= calls,
                               timeout=5, what="the proxy to re-list and re-watch")
        else:
            self.proxy.wait_for_log(r"re-list failed: kube-apiserver .*Connection refused",
                                    timeout=10)
        fault_end = self.fault_over(loads)

        for (status, body, headers), elapsed in token_results:
            with self.subTest(endpoint="tokenreviews"):
                if fault.affected_ok:
                    self.assertEqual((status, body), (200, sample_list("t")))
                    self.assertGreaterEqual(elapsed, 1.0)
                else:
                    self.assertEqual((status, body), (401, UNAUTHORIZED))
                    self.assertEqual(headers["content-type"], "application/json")
                    if fault.times_out:
                        self.assertGreaterEqual(elapsed, fault.slow_s - 0.5)
        for ((status, body, headers), elapsed), path in zip(sar_results, paths):
            with self.subTest(endpoint="subjectaccessreviews"):
                if fault.affected_ok:
                    self.assertEqual((status, body), (200, sample_list(path.split("/")[-2])))
                    self.assertGreaterEqual(elapsed, 1.0)
                else:
                    message = fault.sar_message.format(api=api, parse_error=self.parse_error())
                    self.assertEqual((status, body.decode()),
                                     (500, internal_error(path, message).decode()))
                    self.assertEqual(headers["content-type"], "text/plain; charset=utf-8")
                    if fault.times_out:
                        self.assertGreaterEqual(elapsed, fault.slow_s - 0.5)
        if fault.failure is not None:
            with self.subTest(endpoint="attempts"):
                low, high = fault.review_attempts
                for token in tokens:
                    attempts = sum(json.loads(r["body"])["spec"]["token"] == token
                                   for r in self.recorded(TOKENREVIEWS))
                    self.assertTrue(low <= attempts <= high, f"{attempts} TokenReviews")
                for path in paths:
                    namespace = path.split("/")[-2]
                    attempts = sum(json.loads(r["body"])["spec"]["resourceAttributes"]
                                   .get("namespace") == namespace for r in self.recorded(SARS))
                    self.assertTrue(low <= attempts <= high, f"{attempts} SARs")
        if fault.slow_s:
            # Cached requests never waited for the slow double.
            slowest = max(o.ended - o.started for load in loads for o in load.outcomes
                          if fault_start <= o.started <= fault_end)
            self.assertLess(slowest, 0.9)

        # The fault ends: the double answers again (a killed one restarts on its port).
        if fault.failure is None:
            self.start_apiserver(port=self.apiserver_port)
        else:
            self.inject(None, ENDPOINTS)
        self.expect(GV + "/namespaces/after/samples", 200, sample_list("after"),
                    kind="anonymous", headers={"Authorization": f"Bearer {self.fresh_token()}"})
        after = self.fresh_path()
        self.expect(after, 200, sample_list(after.split("/")[-2]))
        # The watch (or the resync) is back: a ConfigMap change takes effect. After a 10 s
        # delay the watch started at the fault's end may itself wait 10 s before its retry.
        self.allow_also_wrong_cn()
        harness.wait_until(lambda: self.wrong_cn_status() == 200,
                           timeout=8 + 2 * fault.slow_s if fault.times_out else 8,
                           what="a ConfigMap change after the fault to apply")
        # Through all of it the last good ConfigMap stayed in force: the front-proxy and x509
        # load clients authenticated on every request.
        self.assert_load_served(loads, (fault_start, fault_end))
        self.assert_alive()
        self.assert_descriptors_back(baseline)

    def configmap_calls_since(self, wall_start: float) -> Tuple[int, int]:
        calls = [r for r in self.recorded(CONFIGMAP) if r["time"] >= wall_start]
        watches = sum("watch=true" in r["path"] for r in calls)
        return len(calls) - watches, watches

    @staticmethod
    def parse_error() -> str:
        # simdjson's text for the double's garbage body.
        return "The JSON document has an improper structure: missing or superfluous commas, " \
               "braces, missing keys, etc."

    def test_down_at_start_tolerated_then_up(self):
        """--authentication-tolerate-lookup-failure and no double yet: the proxy serves; with no
        CA loaded, front-proxy and x509 callers are anonymous and their SubjectAccessReviews
        fail (500), a token's TokenReview fails (401); /healthz (always allowed, no review)
        stays 200 under load; once the double is up the ConfigMap is loaded by the re-list and
        everything works, without a restart."""
        self.backend = self.start_backend()
        self.apiserver_port = harness.free_port()
        self.start_proxy(["--authentication-tolerate-lookup-failure"])
        self.proxy.wait_for_log(r"continuing without it")
        baseline = self.census()
        health = ("healthz", "anonymous", "/healthz")
        loads = self.start_load([health], expected=lambda _: b"ok")
        fault_start = time.monotonic()
        api = f"https://127.0.0.1:{self.apiserver_port}"
        path = self.fresh_path()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            front_proxy = pool.submit(self.request, GV + "/namespaces/fp/samples")
            x509 = pool.submit(self.request, GV + "/namespaces/x/samples", "x509")
            token = pool.submit(self.request, GV + "/namespaces/t/samples", "token")
            anonymous = pool.submit(self.request, path, "anonymous")
            refused = f"kube-apiserver {api}: Connection refused (after 5 attempts)"
            # No CA loaded: certificate authenticators have no opinion, the caller is
            # anonymous (its X-Remote-* headers ignored), and its SubjectAccessReview fails.
            self.assertEqual(front_proxy.result()[:2],
                             (500, internal_error(GV + "/namespaces/fp/samples", refused)))
            self.assertEqual(x509.result()[:2],
                             (500, internal_error(GV + "/namespaces/x/samples", refused)))
            self.assertEqual(token.result()[:2], (401, UNAUTHORIZED))
            self.assertEqual(anonymous.result()[:2], (500, internal_error(path, refused)))
        fault_end = self.fault_over(loads)
        self.start_apiserver(port=self.apiserver_port)
        harness.wait_until(lambda: self.request(GV + "/namespaces/fp/samples", timeout=5)[0] == 200,
                           timeout=8, what="the ConfigMap to load once the double is up")
        self.expect(GV + "/namespaces/x/samples", 200, sample_list("x"), kind="x509")
        self.expect(GV + "/namespaces/t/samples", 200, sample_list("t"), kind="token")
        self.assert_load_served(loads, (fault_start, fault_end))
        self.assert_alive()
        self.assert_descriptors_back(baseline)


def _kube_case(name: str):
    def test(self):
        self.run_kube_fault(name)
    slow = KUBE_FAULTS[name].affected_ok
    test.__doc__ = (f"kube-apiserver {name}: uncached token {'200, later' if slow else '401'}, "
                    f"uncached decision {'200, later' if slow else '500'}, the ConfigMap's last "
                    f"good data stays; cached callers unaffected.")
    return test


for _name in KUBE_FAULTS:
    setattr(KubeApiserverFaultTest, f"test_{_name}", _kube_case(_name))


# ---------------------------------------------------------------------------------------------
# Backend faults


class BackendFaultTest(FaultTestCase):
    LOAD_CLIENTS = (("front-proxy", "front-proxy", GV + "/namespaces/load-fp/samples"),
                    ("token", "token", GV + "/namespaces/load-token/samples"))
    proxy_flags = CACHE_FLAGS + ("--upstream-connect-timeout", "1s")

    def setUp(self):
        super().setUp()
        self.fault_backend = FaultBackendProcess(self)
        self.start_proxy(upstream=self.fault_backend.upstream)
        self.warm_up()

    def start_fine_load(self) -> List[LoadClient]:
        return self.start_load(expected=lambda _: FINE)

    def finish(self, loads, window, baseline) -> None:
        self.assert_load_served(loads, window)
        self.assert_alive()
        self.assert_descriptors_back(baseline)

    def test_down_is_503_then_recovers(self):
        """The backend process is gone (connection refused): 503 ServiceUnavailable Status;
        /healthz and /livez, served by the proxy itself, stay 200 under load; the backend
        restarted on its port is used again."""
        baseline = self.census()
        loads = self.start_load((("healthz", "front-proxy", "/healthz"),
                                 ("livez", "token", "/livez")), expected=lambda _: b"ok")
        fault_start = time.monotonic()
        self.fault_backend.process.kill()
        for _ in range(3):
            self.expect(GV + "/namespaces/load-fp/samples", 503, status_json(
                503, "ServiceUnavailable", "backend unavailable: Connection refused"))
        fault_end = self.fault_over(loads)
        FaultBackendProcess(self, port=self.fault_backend.port, name="fault-backend-restarted")
        harness.wait_until(lambda: self.request(GV + "/namespaces/load-fp/samples")[0] == 200,
                           timeout=5, what="the restarted backend to be used")
        self.finish(loads, (fault_start, fault_end), baseline)

    def test_unreachable_is_503_after_the_connect_timeout(self):
        """A backend address that never completes the TCP handshake (a listener whose accept
        queue is full drops SYNs): 503 after --upstream-connect-timeout (1 s); the pending
        connects are abandoned without a leak; other requests go on meanwhile."""
        blackhole = socket.socket()
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(0)
        fillers = []
        self.addCleanup(lambda: [s.close() for s in fillers + [blackhole]])
        while True:  # fill the accept queue until a connect times out
            filler = socket.socket()
            filler.settimeout(0.3)
            fillers.append(filler)
            try:
                filler.connect(blackhole.getsockname())
            except socket.timeout:
                break
        self.proxy.stop()
        self.start_proxy(upstream=f"http://127.0.0.1:{blackhole.getsockname()[1]}")
        baseline = self.census()
        loads = self.start_load((("healthz", "front-proxy", "/healthz"),), expected=lambda _: b"ok")
        fault_start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda i: (self.request(f"{GV}/namespaces/n{i}/samples"),
                                               time.monotonic() - fault_start), range(3)))
        for (status, body, _), elapsed in results:
            self.assertEqual((status, body), (503, status_json(
                503, "ServiceUnavailable", "backend unavailable: connect timeout")))
            self.assertGreaterEqual(elapsed, 0.9)
        self.finish(loads, (fault_start, self.fault_over(loads)), baseline)

    def test_reset_before_answering_is_502(self):
        """The backend resets the connection instead of answering (it refuses the request):
        502 with the reason; other requests on other backend connections are unaffected."""
        baseline = self.census()
        loads = self.start_fine_load()
        fault_start = time.monotonic()
        for _ in range(3):
            self.expect("/fault/reset-now", 502, status_json(
                502, "InternalError", "error reading from backend: Connection reset by peer"))
        self.finish(loads, (fault_start, self.fault_over(loads)), baseline)

    def test_reset_mid_body_cuts_the_response(self):
        """A reset after 64 KiB of a 1 MiB body: the client gets the 200 head and a cut body
        (never a complete-looking response), the proxy lives on."""
        baseline = self.census()
        loads = self.start_fine_load()
        fault_start = time.monotonic()
        for _ in range(3):
            context, headers = self.credentials("front-proxy")
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context,
                                               timeout=10)
            try:
                conn.request("GET", "/fault/reset-mid-body", headers=headers)
                response = conn.getresponse()
                self.assertEqual((response.status, response.getheader("Content-Length")),
                                 (200, str(CUT_BODY_LENGTH)))
                with self.assertRaises((http.client.IncompleteRead, ConnectionError)) as raised:
                    response.read()
                if isinstance(raised.exception, http.client.IncompleteRead):
                    self.assertLessEqual(len(raised.exception.partial), CUT_AFTER)
            finally:
                conn.close()
        self.finish(loads, (fault_start, self.fault_over(loads)), baseline)

    def test_stall_is_released_when_the_client_gives_up(self):
        """The backend never answers: the client's own timeout (1 s) ends it; the proxy then
        closes the backend connection too (the backend sees EOF) and keeps nothing."""
        baseline = self.census()
        loads = self.start_fine_load()
        fault_start = time.monotonic()
        for _ in range(2):
            with self.assertRaises(socket.timeout):
                self.request("/fault/stall", timeout=1)
        harness.wait_until(lambda: self.fault_backend.counter("stall_released_by_peer") == 2,
                           timeout=5, what="the proxy to close the stalled backend connections")
        self.assertEqual(self.fault_backend.counter("stall_started"), 2)
        self.finish(loads, (fault_start, self.fault_over(loads)), baseline)

    def test_malformed_response_is_502(self):
        baseline = self.census()
        loads = self.start_fine_load()
        fault_start = time.monotonic()
        for _ in range(3):
            self.expect("/fault/malformed", 502, status_json(
                502, "InternalError", "malformed response from backend"))
        self.finish(loads, (fault_start, self.fault_over(loads)), baseline)

    def test_idle_connection_closed_by_the_backend_is_retried_for_gets(self):
        """Every pooled connection closes on its next request without answering (a keep-alive
        timeout racing the reuse): each GET that meets one is retried once on a new
        connection, so no load request fails."""
        baseline = self.census()
        loads = self.start_fine_load()
        fault_start = time.monotonic()
        for _ in range(5):
            closed = self.fault_backend.counter("closed_on_reuse")
            armed = self.fault_backend.control("POST", "/__arm_close_idle")["armed"]
            harness.wait_until(
                lambda: self.fault_backend.counter("closed_on_reuse") > closed or armed == 0,
                timeout=5, what="a load request to meet an armed connection")
            self.expect("/", 200, FINE)
        self.assertGreaterEqual(self.fault_backend.counter("closed_on_reuse"), 3)
        self.finish(loads, (fault_start, self.fault_over(loads)), baseline)

    def test_post_on_a_stale_connection_is_not_replayed(self):
        """A POST without a body whose pooled connection closes unanswered: the backend may
        have acted on it, so it is not sent again (Go's Transport replays only idempotent
        methods); the client gets 502, over HTTP/1.1 and HTTP/2 alike. One worker, so that the
        request meets the pooled connection the warm-up GET left."""
        self.proxy.stop()
        self.start_proxy(["--workers", "1"], upstream=self.fault_backend.upstream)
        headers = {"X-Remote-User": "alice", "X-Remote-Group": "dev"}
        for protocol in ("HTTP/1.1", "HTTP/2.0"):
            with self.subTest(protocol=protocol):
                self.expect("/warm", 200, FINE)
                # The backend's thread marks the connection idle only after it sent the answer
                # the client may already have.
                harness.wait_until(
                    lambda: self.fault_backend.control("POST", "/__arm_close_idle")["armed"] >= 1,
                    timeout=5, what="the warm-up's pooled connection to wait at the backend")
                posts = len(self.posts())
                if protocol == "HTTP/1.1":
                    status, body, _ = self.request("/fault/post-once", method="POST", body=b"",
                                                   headers={"Content-Length": "0"})
                else:
                    result = harness.curl(
                        self.url + "/fault/post-once", tls=self.aggregator, method="POST",
                        data=b"", headers=[KUBECTL] + [f"{k}: {v}" for k, v in headers.items()],
                        extra=["--http2"])
                    status, body = result.status, result.body
                self.assertEqual(len(self.posts()) - posts, 1, "the POST was sent again")
                self.assertEqual((status, body), (502, status_json(
                    502, "InternalError", "error reading from backend: connection closed before "
                    "a response")))
                self.proxy.wait_for_log(r'"POST /fault/post-once" .* status=502 .* protocol=' +
                                        re.escape(protocol))
        self.expect("/fault/post-once", 200, FINE)

    def posts(self) -> List[list]:
        return [r for r in self.fault_backend.stats()["requests"] if r[1] == "POST"]


# ---------------------------------------------------------------------------------------------
# ConfigMap changes under load


class ConfigMapUnderLoadTest(FaultTestCase):

    def setUp(self):
        super().setUp()
        self.start_proxy()
        self.warm_up()

    def keep_alive(self, cert_key: harness.CertKey, headers: Dict[str, str]):
        """A keep-alive connection and a function making one request on it: (status, body);
        call.close() closes it."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                           context=self.context(cert_key))
        self.addCleanup(conn.close)
        headers = dict(headers, **{"User-Agent": "e2e"})
        socks = []

        def call(path: str = GV + "/namespaces/load-fp/samples") -> Tuple[int, bytes]:
            status, body, _ = exchange(conn, "GET", path, headers)
            socks.append(conn.sock)
            self.assertIs(conn.sock, socks[0], "the keep-alive connection was replaced")
            return status, body
        call.close = conn.close
        return call

    def test_deleted_keeps_the_last_good_data(self):
        """The ConfigMap is deleted: the watch's DELETED event and the resync's 404 both leave
        the last good data in force (new connections of front-proxy and x509 callers still
        authenticate); re-created with a change, it applies."""
        baseline = self.census()
        loads = self.start_load()
        fault_start = time.monotonic()
        wall = time.time()
        self.configmap_file.unlink()
        self.proxy.wait_for_log(r"deleted; keeping the last good data", timeout=5)
        # A resync (every 2 s) met the 404 too.
        harness.wait_until(lambda: any(r["time"] > wall + 0.1 and "watch=true" not in r["path"]
                                       for r in self.recorded(CONFIGMAP)),
                           timeout=5, what="a resync of the deleted ConfigMap")
        self.expect(GV + "/namespaces/n1/samples", 200, sample_list("n1"))
        self.expect(GV + "/namespaces/n2/samples", 200, sample_list("n2"), kind="x509")
        fault_end = self.fault_over(loads)
        self.allow_also_wrong_cn()
        harness.wait_until(lambda: self.wrong_cn_status() == 200, timeout=8,
                           what="the re-created ConfigMap to apply")
        self.assert_load_served(loads, (fault_start, fault_end))
        self.assert_alive()
        self.assert_descriptors_back(baseline)

    def test_invalid_ca_bundles_keep_the_last_good_data(self):
        """Both CA keys replaced by text that is no PEM (authn_test covers invalid JSON in
        allowed names): rejected as a whole, the previous CAs stay; the next good version
        applies."""
        baseline = self.census()
        loads = self.start_load()
        fault_start = time.monotonic()
        data = self.default_configmap()
        data["client-ca-file"] = "not a certificate"
        data["requestheader-client-ca-file"] = "-----BEGIN CERTIFICATE-----\nAAAA\n"
        data["requestheader-allowed-names"] = json_array("not-front-proxy")
        self.write_configmap(data)
        self.proxy.wait_for_log(r"keeping the previous authentication configuration", timeout=5)
        self.expect(GV + "/namespaces/n1/samples", 200, sample_list("n1"))
        self.expect(GV + "/namespaces/n2/samples", 200, sample_list("n2"), kind="x509")
        self.assertEqual(self.wrong_cn_status(), 401)
        fault_end = self.fault_over(loads)
        self.allow_also_wrong_cn()
        harness.wait_until(lambda: self.wrong_cn_status() == 200, timeout=8,
                           what="the next good ConfigMap to apply")
        self.assert_load_served(loads, (fault_start, fault_end))
        self.assert_alive()
        self.assert_descriptors_back(baseline)

    def test_client_ca_rotation(self):
        """client-ca-file rotated the usual way, old + new, then new only (authn_test rotates
        the requestheader CA without load): during the overlap no x509 request fails and a
        user of the new CA is served; after it, alice's open keep-alive connection gets 401 on
        its next request (certificates are checked per request, not per connection) while
        front-proxy and token callers go on."""
        alice = self.keep_alive(self.pki.alice, {})
        self.assertEqual(alice()[0], 200)
        baseline = self.census()
        loads = self.start_load()
        fault_start = time.monotonic()
        data = self.default_configmap()
        data["client-ca-file"] = self.pki.ca.cert.read_text() + self.pki.other_ca.cert.read_text()
        self.write_configmap(data)
        harness.wait_until(
            lambda: self.request(GV + "/namespaces/m/samples", timeout=5,
                                 context=self.context(self.pki.stranger))[0] == 200,
            timeout=8, what="the added client CA to be trusted")
        self.assertEqual(alice(), (200, sample_list("load-fp")))
        overlap_end = self.fault_over(loads)
        x509_load = [load for load in loads if load.name == "x509"]
        self.assert_load_served(x509_load, (fault_start, overlap_end))
        data["client-ca-file"] = self.pki.other_ca.cert.read_text()
        self.write_configmap(data)
        harness.wait_until(lambda: alice()[0] == 401, timeout=8,
                           what="the removed client CA to be refused on the open connection")
        self.assertEqual(alice(), (401, UNAUTHORIZED))
        alice.close()
        others = [load for load in loads if load.name != "x509"]
        self.assert_load_served(others, (fault_start, self.fault_over(others)))
        self.assert_alive()
        self.assert_descriptors_back(baseline)

    def test_allowed_names_change(self):
        """requestheader-allowed-names gains a name, then loses the old one (authn_test
        asserts the change applies): while both are allowed nothing fails; afterwards the
        aggregator's open keep-alive connection gets 401 on its next request."""
        aggregator = self.keep_alive(self.pki.front_proxy_client,
                                     {"X-Remote-User": "alice", "X-Remote-Group": "dev"})
        self.assertEqual(aggregator()[0], 200)
        baseline = self.census()
        loads = self.start_load()
        fault_start = time.monotonic()
        self.allow_also_wrong_cn()
        harness.wait_until(lambda: self.wrong_cn_status() == 200, timeout=8,
                           what="the added allowed name")
        self.assertEqual(aggregator(), (200, sample_list("load-fp")))
        overlap_end = self.fault_over(loads)
        front_proxy_load = [load for load in loads if load.name == "front-proxy"]
        self.assert_load_served(front_proxy_load, (fault_start, overlap_end))
        data = self.default_configmap()
        data["requestheader-allowed-names"] = json_array("not-front-proxy")
        self.write_configmap(data)
        harness.wait_until(lambda: aggregator()[0] == 401, timeout=8,
                           what="the removed name to be refused on the open connection")
        self.assertEqual(aggregator(), (401, UNAUTHORIZED))
        aggregator.close()
        others = [load for load in loads if load.name != "front-proxy"]
        self.assert_load_served(others, (fault_start, self.fault_over(others)))
        self.assert_alive()
        self.assert_descriptors_back(baseline)


# ---------------------------------------------------------------------------------------------
# Serving certificate rotation and shutdown


class ServingCertificateRotationTest(FaultTestCase):

    def test_rotation_under_load(self):
        """The serving certificate and key files are replaced (--tls-reload-interval 200ms):
        new connections get the new certificate, the open keep-alive connections keep their
        session and every request on them succeeds."""
        serving = harness.CertKey(self.tmp / "serving.crt", self.tmp / "serving.key")
        shutil.copy(self.pki.server.cert, serving.cert)
        shutil.copy(self.pki.server.key, serving.key)
        self.start_proxy(["--tls-reload-interval", "200ms"], cert=serving)
        self.warm_up()
        old_der = ssl.PEM_cert_to_DER_cert(self.pki.server.cert.read_text())
        new_der = ssl.PEM_cert_to_DER_cert(self.server_2.cert.read_text())
        baseline = self.census()
        loads = self.start_load()
        fault_start = time.monotonic()
        # Key first, then certificate, each renamed into place: the reloader may see the new key
        # with the old certificate once (a mismatch it refuses), never a torn file.
        for source, target in ((self.server_2.key, serving.key),
                               (self.server_2.cert, serving.cert)):
            shutil.copy(source, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)

        def new_connection_cert() -> bytes:
            with harness.tls_connect(self.port, self.tls()) as s:
                return s.getpeercert(binary_form=True)

        harness.wait_until(lambda: new_connection_cert() == new_der, timeout=5,
                           what="new connections to get the new certificate")
        self.expect(GV + "/namespaces/after/samples", 200, sample_list("after"))
        # fault_over: more requests on the old connections after the switch.
        self.assert_load_served(loads, (fault_start, self.fault_over(loads)))
        for load in loads:
            self.assertEqual({o.peer_cert for o in load.outcomes}, {old_der}, load.name)
        self.assert_alive()
        self.assert_descriptors_back(baseline)


class ShutdownUnderLoadTest(FaultTestCase):
    LOAD_CLIENTS = (("front-proxy", "front-proxy", GV + "/namespaces/load-fp/samples"),
                    ("token", "token", GV + "/namespaces/load-token/samples"))

    def test_sigterm_drains_in_flight_requests_and_exits_0(self):
        """SIGTERM while 4 slow requests (1.5 s) are at the backend and keep-alive clients are
        busy: the listener closes at once, the 4 complete with 200 and their whole body, no
        keep-alive request gets an error status or a cut body (one arriving after the signal
        may find its connection closed, as Go's server does to idle connections), and the
        process exits 0 as soon as the last one is done."""
        self.fault_backend = FaultBackendProcess(self)
        self.start_proxy(["--shutdown-grace-period", "10s"], upstream=self.fault_backend.upstream)
        self.warm_up()
        loads = self.start_load(expected=lambda _: FINE)
        slow = "/slow?ms=1500"
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(lambda: (self.request(slow), time.monotonic()))
                       for _ in range(4)]
            harness.wait_until(lambda: self.fault_backend.stats()["active_slow"] == 4,
                               timeout=5, what="the slow requests to reach the backend")
            signalled = time.monotonic()
            self.proxy.popen.send_signal(signal.SIGTERM)
            harness.wait_until(lambda: not harness.tcp_accepts(self.port), timeout=2,
                               what="the listener to close")
            self.assertEqual(self.fault_backend.stats()["active_slow"], 4)
            results = [f.result() for f in futures]
        for (status, body, headers), _ in results:
            self.assertEqual((status, body), (200, FINE))
        last_done = max(done for _, done in results)
        self.assertEqual(self.proxy.popen.wait(10), 0)
        exited = time.monotonic()
        self.assertLess(exited - last_done, 1.5, "the process lingered after the drain")
        self.assertRegex(self.proxy.log_text(), r"shut down cleanly")
        self.assert_load_drained(loads, signalled)

    def assert_load_drained(self, loads: Sequence[LoadClient], signalled: float) -> None:
        """No keep-alive request got an error status or a cut body; a request may fail only
        by finding its connection closed, and only once the signal was sent."""
        for load in loads:
            load.stop()
            with self.subTest(load=load.name):
                before = [o for o in load.outcomes if o.started < signalled]
                self.assertGreaterEqual(len(before), 3)
                for outcome in load.outcomes:
                    if outcome.status:
                        self.assertEqual((outcome.status, outcome.body), (200, load.expected))
                    else:
                        self.assertGreater(outcome.started, signalled - 0.3, outcome.error)
                        self.assertIn(outcome.error_kind, UNAVAILABLE_KINDS, outcome.error)

    def test_sigterm_during_a_1_gib_download_lets_it_finish(self):
        """SIGTERM when 1 MiB of a 1 GiB download has been read, with keep-alive clients
        busy: the listener closes at once, the download goes on to its last byte with the
        backend's exact pattern, and the process exits 0 once it is done. Under a sanitizer
        128 MiB, as 1 GiB through an instrumented build takes minutes."""
        size = (128 << 20) if harness.SANITIZER else (1 << 30)
        self.start_proxy(["--shutdown-grace-period", "120s"])
        self.warm_up()
        loads = self.start_load()
        context, headers = self.credentials("front-proxy")
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=context)
        self.addCleanup(conn.close)
        conn.request("GET", f"/debug/bytes?n={size}", headers=headers)
        response = conn.getresponse()
        self.assertEqual(response.status, 200)
        digest = hashlib.sha256()
        first = response.read(1 << 20)
        digest.update(first)
        received = len(first)
        signalled = time.monotonic()
        self.proxy.popen.send_signal(signal.SIGTERM)
        harness.wait_until(lambda: not harness.tcp_accepts(self.port), timeout=2,
                           what="the listener to close")
        self.assertIsNone(self.proxy.popen.poll(), "the proxy exited with a download under way")
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            received += len(chunk)
        done = time.monotonic()
        self.assertEqual(received, size)
        self.assertEqual(digest.hexdigest(), pattern_sha256(size))
        self.assertEqual(self.proxy.popen.wait(10), 0)
        self.assertLess(time.monotonic() - done, 1.5, "the process lingered after the drain")
        self.assertRegex(self.proxy.log_text(), r"shut down cleanly")
        self.assert_load_drained(loads, signalled)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fault-backend"]:
        FaultBackend(int(sys.argv[2])).serve_forever()
    else:
        unittest.main(verbosity=2)
