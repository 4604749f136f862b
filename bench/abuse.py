#!/usr/bin/env python3
"""Load, memory and abuse benchmark (issue #12 part 3): aa-proxy and nginx as mTLS reverse proxies
in front of the same sample backend, measured in the same run, one table at the end.

Parts (all by default, or name some):
  handshakes      new mTLS connections per second and proxy CPU per connection (handshake + one
                  request, `Connection: close`; with --handshake-only the handshake alone: the
                  client half-closes once it is done), TLS 1.3 and 1.2, full and resumed
  idle            10,000 idle keep-alive mTLS connections, HTTP/1.1 and HTTP/2: base RSS and RSS
                  per connection
  slowloris       1,000 clients sending their request head one byte a second while the load
                  generator loads the proxy: throughput against the unloaded figure, and the
                  slow clients closed by the header timeout
  slow-apiserver  aa-proxy with SubjectAccessReviews answered by the kube-apiserver double after
                  1 s: cached-path throughput against the fast double, reviews per cold key
  soak            --soak-minutes of saturation with mixed traffic (allowed, denied, watches,
                  bodies, new connections): statuses, RSS growth, descriptors back to baseline

  bench/abuse.sh [PART...] [--quick] [--soak-minutes N] [--keep-tmp]

Python 3 standard library only; uses //bench:loadgen for the saturating load. See bench/README.md.
"""

import argparse
import hashlib
import itertools
import json
import multiprocessing
import os
import resource
import selectors
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "e2e"))
sys.path.insert(0, str(REPO / "bench"))
import harness  # noqa: E402  (Pki, free ports, processes)
import http2_frames_test as h2  # noqa: E402  (H2Client: a frame-level HTTP/2 client)

PARTS = ("handshakes", "idle", "slowloris", "slow-apiserver", "soak")
REQUEST_PATH = "/apis/sample-api-server/v1alpha1/namespaces/default/samples"
CLK_TCK = os.sysconf("SC_CLK_TCK")
KIB = 1024


def log(message: str) -> None:
    print(f"abuse: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# /proc readings


def process_tree(pid: int) -> List[int]:
    """pid and its children (nginx: the master and its workers)."""
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return pids


def cpu_ticks(pid: int) -> int:
    """utime + stime (fields 14 and 15 of /proc/PID/stat) of pid and its children."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def rss_kib(pid: int) -> int:
    """VmRSS of pid and its children, in KiB."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def fd_count(pid: int) -> int:
    return sum(len(os.listdir(f"/proc/{p}/fd")) for p in process_tree(pid))


def descriptors(pid: int, backend_port: int) -> Tuple[int, int]:
    """(descriptors, of which TCP connections to backend_port): the backend pool keeps idle
    connections open by design, so a return to baseline is judged without them."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == backend_port:
                inodes.add(fields[9])
    total = pooled = 0
    for p in process_tree(pid):
        for fd in os.listdir(f"/proc/{p}/fd"):
            total += 1
            try:
                target = os.readlink(f"/proc/{p}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                pooled += 1
    return total, pooled


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


# ---------------------------------------------------------------------------------------------
# Clients


class Tls:
    """The client's files; contexts are made in each process (SSLContext does not pickle)."""

    def __init__(self, cacert: Path, cert: Path, key: Path):
        self.cacert, self.cert, self.key = str(cacert), str(cert), str(key)

    def context(self, version: Optional[str] = None, tickets: bool = True,
                alpn: Sequence[str] = ()) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.cacert)
        context.load_cert_chain(self.cert, self.key)
        if version == "1.2":
            context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
        elif version == "1.3":
            context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
        if not tickets:
            context.options |= ssl.OP_NO_TICKET  # TLS 1.2: resume by session id
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context

    def harness_client(self) -> harness.TlsClient:
        return harness.TlsClient(Path(self.cacert), Path(self.cert), Path(self.key))


def request_bytes(path: str, close: bool, method: str = "GET", body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if close:
        head += "Connection: close\r\n"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def read_response(sock: ssl.SSLSocket) -> Tuple[int, bytes]:
    """One Content-Length-framed response: (status, body)."""
    head, rest = harness.read_http_head(sock, timeout=30)
    if not head:
        raise ConnectionError("closed before a response")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, harness.recv_exactly(sock, length, rest, timeout=30)


def handshake_worker(port: int, tls: Tls, version: str, resume: bool, tickets: bool,
                     seconds: float, handshake_only: bool, results) -> None:
    """New connections one after the other: handshake, one request, read to the close. With
    `handshake_only`, no request: the client half-closes the TCP connection after its Finished and
    reads to the close (TLS 1.3 tickets arrive on the way), so the server's cost is the handshake
    and the connection alone."""
    context = tls.context(version, tickets)
    request = request_bytes(REQUEST_PATH, close=True)
    session = None
    connections = resumed = errors = 0
    cipher = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            # The request follows the client's Finished at once, as a real client's would; with
            # Nagle it waits for the ACK of the Finished (a delayed ACK: 40 ms) in resumed TLS 1.2.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with context.wrap_socket(raw, server_hostname="127.0.0.1",
                                     session=session if resume else None) as sock:
                cipher = f"{sock.version()} {sock.cipher()[0]}"
                if handshake_only:
                    # socket.shutdown, not SSLSocket.shutdown (which drops the TLS state the
                    # tickets still need): a TCP half-close, the server sees the end of input.
                    socket.socket.shutdown(sock, socket.SHUT_WR)
                else:
                    sock.sendall(request)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                if data if handshake_only else not data.startswith(b"HTTP/1.1 200 "):
                    errors += 1
                resumed += sock.session_reused
                if resume:
                    session = sock.session  # after the reads: TLS 1.3 tickets come post-handshake
            connections += 1
        except (OSError, ssl.SSLError):
            errors += 1
    results.put((connections, resumed, errors, cipher))


def idle_worker(port: int, tls: Tls, count: int, http2: bool, pipe) -> None:
    """Opens `count` connections (full handshakes), sends one request on each and keeps them
    open, idle, until told to close."""
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE))
    connections = []
    errors = 0
    context = tls.context(alpn=["http/1.1"])
    for _ in range(count):
        try:
            if http2:
                client = h2.H2Client(port, tls.harness_client(), timeout=30)
                if client.alpn != "h2":
                    raise ConnectionError(f"ALPN {client.alpn}")
                client.request(1, h2.request_fields(REQUEST_PATH))
                status, _, _ = client.response(1, timeout=30)
                connections.append(client.sock)
            else:
                raw = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
                sock.sendall(request_bytes(REQUEST_PATH, close=False))
                status, _ = read_response(sock)
                connections.append(sock)
            if status != 200:
                errors += 1
        except (OSError, ssl.SSLError, TimeoutError):
            errors += 1
    pipe.send((len(connections), errors))
    pipe.recv()  # measured: close
    # Still open? A connection the server closed is readable (EOF) without blocking.
    alive = 0
    selector = selectors.DefaultSelector()
    for sock in connections:
        selector.register(sock, selectors.EVENT_READ)
    ready = {key.fileobj for key, _ in selector.select(timeout=0)}
    alive = sum(1 for sock in connections if sock not in ready)
    for sock in connections:
        sock.close()
    pipe.send(alive)


SLOW_HEAD = (f"GET {REQUEST_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
             "X-Padding: " + "a" * 200 + "\r\n\r\n").encode()


def slow_worker(port: int, tls: Tls, count: int, give_up_after: float, pipe) -> None:
    """`count` mTLS connections that send their request head one byte a second; reports, for each
    connection the server closed, the seconds from connect to close."""
    context = tls.context()
    selector = selectors.DefaultSelector()
    opened: Dict[ssl.SSLSocket, Tuple[float, int]] = {}  # socket -> (connect time, bytes sent)
    errors = 0
    for _ in range(count):
        try:
            started = time.monotonic()
            raw = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(SLOW_HEAD[:1])
            sock.setblocking(False)
            opened[sock] = (started, 1)
            selector.register(sock, selectors.EVENT_READ)
        except (OSError, ssl.SSLError):
            errors += 1
    pipe.send(("ready", len(opened), errors))
    closes: List[float] = []

    def closed(sock):
        closes.append(time.monotonic() - opened.pop(sock)[0])
        selector.unregister(sock)
        sock.close()

    deadline = time.monotonic() + give_up_after
    next_drip = time.monotonic() + 1
    while opened and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, next_drip - time.monotonic())):
            sock = key.fileobj
            try:
                while sock.recv(4096):  # a 408 or an alert before the close
                    pass
                closed(sock)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except (OSError, ssl.SSLError):
                closed(sock)
        if time.monotonic() >= next_drip:
            next_drip += 1
            for sock in list(opened):
                started, sent = opened[sock]
                try:
                    if sent < len(SLOW_HEAD) - 1:  # never completes the head
                        sock.send(SLOW_HEAD[sent:sent + 1])
                        opened[sock] = (started, sent + 1)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
                except (OSError, ssl.SSLError):
                    closed(sock)
    still_open = len(opened)
    for sock in list(opened):
        sock.close()
    pipe.send(("done", closes, still_open))


# ---------------------------------------------------------------------------------------------
# Processes under test


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.tmp = Path(tempfile.mkdtemp(prefix="aa-proxy-abuse-"))
        self.processes: List[harness.Process] = []
        self.rows: List[Tuple[str, str, str, str, str, str]] = []
        self.bin = self.build()
        self.pki = harness.Pki(self.tmp / "pki")
        key_type = getattr(args, "key_type", "ec")
        self.ca = self.pki.ca("ca", "aa-proxy-abuse-ca", key_type=key_type)
        self.server = self.pki.issue(self.ca, "server", "127.0.0.1", ext_key_usage="serverAuth",
                                     sans=["IP:127.0.0.1", "DNS:localhost"], key_type=key_type)
        client = self.pki.issue(self.ca, "client", "bench-user", orgs=["bench-readers"],
                                key_type=key_type)
        self.tls = Tls(self.ca.cert, client.cert, client.key)
        self.backend_port = harness.free_port()
        backend = self.start("backend", [self.bin / "sample/sample-backend", "--listen",
                                         f"127.0.0.1:{self.backend_port}"])
        backend.wait_for_log(r"^listening on ")
        self.policy = self.tmp / "policy.yaml"
        self.policy.write_text("""rules:
  - groups: ["bench-readers"]
    verbs: ["get", "list", "watch"]
    apiGroups: ["sample-api-server"]
    resources: ["samples"]
  - groups: ["bench-readers"]
    verbs: ["post"]
    nonResourceURLs: ["/debug/body"]
""")

    def build(self) -> Path:
        output_base = os.environ.get("BENCH_BAZEL_OUTPUT_BASE", "/root/.cache/bazel-bench")
        bazel = ["bazel", f"--output_base={output_base}"]
        log(f"building aa-proxy, the sample backend and the load generator (bazel -c opt, "
            f"output base {output_base})")
        subprocess.run(bazel + ["build", "-c", "opt", "--symlink_prefix=/", "//proxy:aa-proxy",
                                "//sample:sample-backend", "//bench:loadgen"], cwd=REPO,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bin_dir = subprocess.run(bazel + ["info", "-c", "opt", "bazel-bin"], cwd=REPO,
                                 check=True, capture_output=True, text=True).stdout.strip()
        # The Bazel server's JVM would compete for the two cores while we measure.
        subprocess.run(bazel + ["shutdown"], cwd=REPO, capture_output=True)
        return Path(bin_dir)

    def start(self, name: str, argv: Sequence) -> harness.Process:
        process = harness.Process(name, argv, self.tmp)
        self.processes.append(process)
        return process

    def stop(self, process: harness.Process) -> None:
        process.stop()
        self.processes.remove(process)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.args.keep_tmp:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def wait_ready(self, process: harness.Process, port: int) -> None:
        def ok():
            if not process.alive():
                raise harness.StopWaiting()
            return subprocess.run(
                ["curl", "-sf", "-o", "/dev/null", "--max-time", "1", "--cacert", self.tls.cacert,
                 "--cert", self.tls.cert, "--key", self.tls.key,
                 f"https://127.0.0.1:{port}{REQUEST_PATH}"]).returncode == 0
        try:
            harness.wait_until(ok, timeout=15, what=process.name, interval=0.2)
        except (TimeoutError, harness.StopWaiting):
            raise RuntimeError(f"{process.name} did not start:\n{process.log_text()[-3000:]}")

    def aa_proxy(self, name: str, *flags) -> Tuple[harness.Process, int]:
        port = harness.free_port()
        process = self.start(name, [
            self.bin / "proxy/aa-proxy", "--secure-port", port, "--bind-address", "127.0.0.1",
            "--tls-cert-file", self.server.cert, "--tls-private-key-file", self.server.key,
            "--client-ca-file", self.ca.cert, "--upstream", f"http://127.0.0.1:{self.backend_port}",
            "--workers", "2", "--anonymous-auth=false", *flags])
        self.wait_ready(process, port)
        return process, port

    def aa_proxy_static(self, name: str, *flags) -> Tuple[harness.Process, int]:
        return self.aa_proxy(name, "--authorization-mode", "static",
                             "--authorization-policy-file", self.policy, *flags)

    def nginx(self, name: str, header_timeout: str = "60s") -> Tuple[harness.Process, int]:
        """nginx configured as bench/run.sh's reference (client certificate required, keep-alive
        upstream pool), with HTTP/2 and enough descriptors for the idle part."""
        port = harness.free_port()
        d = self.tmp / name
        d.mkdir()
        (d / "nginx.conf").write_text(f"""
worker_processes 2;
worker_rlimit_nofile {resource.getrlimit(resource.RLIMIT_NOFILE)[0]};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log crit;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  http2_idle_timeout 600s;
  http2_max_requests 100000000;
  client_header_timeout {header_timeout};
  upstream backend {{
    server 127.0.0.1:{self.backend_port};
    keepalive 64;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
  }}
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {self.server.cert};
    ssl_certificate_key {self.server.key};
    ssl_client_certificate {self.ca.cert};
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:abuse:10m;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Remote-User $ssl_client_s_dn;
    }}
  }}
}}
""")
        process = self.start(name, ["nginx", "-c", d / "nginx.conf", "-p", d])
        self.wait_ready(process, port)
        return process, port

    def loadgen(self, port: int, seconds: float, connections: int = 64,
                path: str = REQUEST_PATH) -> dict:
        out = subprocess.run(
            [self.bin / "bench/loadgen", "--url", f"https://127.0.0.1:{port}{path}",
             "--connections", str(connections), "--duration", f"{seconds:g}s", "--cert",
             self.tls.cert, "--key", self.tls.key, "--cacert", self.tls.cacert],
            capture_output=True, text=True, timeout=seconds + 120)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed: {out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def row(self, part: str, what: str, aa: str, nginx: str = "-", comparison: str = "-",
            verdict: str = "-") -> None:
        self.rows.append((part, what, aa, nginx, comparison, verdict))
        log(f"{part}: {what}: aa-proxy {aa}, nginx {nginx}; {comparison} {verdict}")

    # -----------------------------------------------------------------------------------------
    # 1. Handshakes

    def handshakes(self) -> None:
        rounds = 1 if self.quick else 3
        seconds = 3.0 if self.quick else 6.0
        clients = 2
        aa, aa_port = self.aa_proxy_static("aa-proxy-handshakes")
        ng, ng_port = self.nginx("nginx-handshakes")
        targets = {"aa-proxy": (aa, aa_port), "nginx": (ng, ng_port)}
        # (row, version, resume, client accepts tickets). A TLS 1.2 client that accepts tickets
        # resumes with one when the server issues them (nginx), else by session id (aa-proxy).
        modes = [("TLS 1.3 full", "1.3", False, True),
                 ("TLS 1.3 resumed (PSK)", "1.3", True, True),
                 ("TLS 1.2 full", "1.2", False, True),
                 ("TLS 1.2 resumed, client takes tickets", "1.2", True, True),
                 ("TLS 1.2 resumed, session id only", "1.2", True, False)]
        per: Dict[Tuple[str, str], List[Tuple[float, float, float]]] = {}
        ciphers: Dict[Tuple[str, str], str] = {}
        errors: Dict[Tuple[str, str], int] = {}
        for round_index in range(rounds):
            for mode, version, resume, tickets in modes:
                for name, (process, port) in targets.items():
                    queue = multiprocessing.Queue()
                    workers = [multiprocessing.Process(
                        target=handshake_worker,
                        args=(port, self.tls, version, resume, tickets, seconds,
                              self.args.handshake_only, queue))
                        for _ in range(clients)]
                    before = cpu_ticks(process.pid)
                    started = time.monotonic()
                    for w in workers:
                        w.start()
                    results = [queue.get(timeout=seconds + 120) for _ in workers]
                    for w in workers:
                        w.join()
                    elapsed = time.monotonic() - started
                    ticks = cpu_ticks(process.pid) - before
                    connections = sum(r[0] for r in results)
                    resumed = sum(r[1] for r in results)
                    errors[(name, mode)] = errors.get((name, mode), 0) + sum(r[2] for r in results)
                    ciphers[(name, mode)] = results[0][3]
                    cpu_us = ticks / CLK_TCK * 1e6 / max(connections, 1)
                    per.setdefault((name, mode), []).append(
                        (connections / elapsed, cpu_us, resumed / max(connections, 1)))
                    log(f"handshakes round {round_index + 1}/{rounds} {name} {mode}: "
                        f"{connections / elapsed:.0f} conn/s, {cpu_us:.0f} us CPU/conn, "
                        f"{100 * resumed / max(connections, 1):.0f}% resumed, {results[0][3]}")
        cpu = {k: median([r[1] for r in v]) for k, v in per.items()}
        for mode, _, resume, _ in modes:
            cells = {}
            for name in targets:
                rs = per[(name, mode)]
                cells[name] = (f"{median([r[0] for r in rs]):.0f} conn/s, "
                               f"{cpu[(name, mode)]:.0f} us CPU/conn, "
                               f"{100 * median([r[2] for r in rs]):.0f}% resumed")
                if errors[(name, mode)]:
                    cells[name] += f", {errors[(name, mode)]} errors"
            ratio = cpu[("aa-proxy", mode)] / max(cpu[("nginx", mode)], 1e-9)
            comparison = f"CPU aa/nginx {ratio:.2f}"
            verdict = "-"
            if not resume:
                verdict = "OK (<= 1.00)" if ratio <= 1.0 else "MISSED (goal <= 1.00)"
            else:
                full = mode.split(" resumed")[0] + " full"
                cheaper = cpu[("aa-proxy", full)] / max(cpu[("aa-proxy", mode)], 1e-9)
                nginx_cheaper = cpu[("nginx", full)] / max(cpu[("nginx", mode)], 1e-9)
                comparison += f"; full/resumed aa {cheaper:.2f}x, nginx {nginx_cheaper:.2f}x"
                verdict = "OK (>= 5x)" if cheaper >= 5 else "MISSED (goal >= 5x)"
            label = mode + (", handshake alone" if self.args.handshake_only else "")
            self.row("handshakes", label, cells["aa-proxy"], cells["nginx"], comparison, verdict)
        for mode, *_ in modes:
            if ciphers[("aa-proxy", mode)] != ciphers[("nginx", mode)]:
                log(f"WARNING: {mode}: aa-proxy negotiated {ciphers[('aa-proxy', mode)]}, "
                    f"nginx {ciphers[('nginx', mode)]}")
        self.stop(aa)
        self.stop(ng)

    # -----------------------------------------------------------------------------------------
    # 2. Idle connections

    def open_idle(self, port: int, count: int, http2: bool):
        clients = 4
        pipes, workers = [], []
        for i in range(clients):
            parent, child = multiprocessing.Pipe()
            share = count // clients + (1 if i < count % clients else 0)
            w = multiprocessing.Process(target=idle_worker, args=(port, self.tls, share, http2, child))
            w.start()
            pipes.append(parent)
            workers.append(w)
        opened = errors = 0
        for p in pipes:
            o, e = p.recv()
            opened += o
            errors += e
        return pipes, workers, opened, errors

    def idle(self) -> None:
        count = 1000 if self.quick else 10000
        for protocol, http2 in (("HTTP/1.1", False), ("HTTP/2", True)):
            results = {}
            for name in ("aa-proxy", "nginx"):
                if name == "aa-proxy":
                    process, port = self.aa_proxy_static("aa-proxy-idle", "--idle-timeout", "10m")
                else:
                    process, port = self.nginx("nginx-idle-" + ("h2" if http2 else "h1"))
                # Warm-up: allocator arenas, TLS and backend pool state that any connection needs.
                pipes, workers, _, _ = self.open_idle(port, 100, http2)
                for p in pipes:
                    p.send("close")
                    p.recv()
                for w in workers:
                    w.join()
                time.sleep(1)
                base, fds_before = rss_kib(process.pid), fd_count(process.pid)
                started = time.monotonic()
                pipes, workers, opened, errors = self.open_idle(port, count, http2)
                opening = time.monotonic() - started
                time.sleep(2)
                after, fds_after = rss_kib(process.pid), fd_count(process.pid)
                for p in pipes:
                    p.send("close")
                alive = sum(p.recv() for p in pipes)
                for w in workers:
                    w.join()
                per_conn = (after - base) * KIB / max(opened, 1)
                results[name] = (base, per_conn, opened, errors, alive, fds_after - fds_before)
                log(f"idle {protocol} {name}: base {base} KiB, after {opened} connections "
                    f"{after} KiB ({per_conn / KIB:.1f} KiB/conn), {fds_after - fds_before} more "
                    f"descriptors, {alive} still open at the end, {errors} errors, "
                    f"opened in {opening:.1f} s")
                self.stop(process)

            def cell(r):
                text = f"{r[1] / KIB:.1f} KiB/conn ({r[2]} open"
                if r[3]:
                    text += f", {r[3]} errors"
                if r[4] != r[2]:
                    text += f", {r[2] - r[4]} closed by the server"
                return text + ")"
            aa, ng = results["aa-proxy"], results["nginx"]
            self.row("idle", f"{protocol}: RSS per idle connection", cell(aa), cell(ng),
                     f"aa/nginx {aa[1] / max(ng[1], 1e-9):.2f}",
                     "OK (<= 16 KiB)" if aa[1] <= 16 * KIB else "MISSED (goal <= 16 KiB)")
            self.row("idle", f"{protocol}: base RSS (after 100 warm-up connections)",
                     f"{aa[0] / KIB:.1f} MiB", f"{ng[0] / KIB:.1f} MiB (master + workers)", "-",
                     "OK (<= 20 MiB)" if aa[0] <= 20 * KIB else "MISSED (goal <= 20 MiB)")

    # -----------------------------------------------------------------------------------------
    # 3. Slowloris

    def slowloris(self) -> None:
        count = 200 if self.quick else 1000
        load_seconds = 4.0 if self.quick else 10.0
        # Long enough for the slow clients to connect and the loaded run to finish before the
        # first of them is closed, so the whole loaded run sees all of them dripping.
        timeout = 10 if self.quick else 20
        clients = 2
        targets = {"aa-proxy": self.aa_proxy_static("aa-proxy-slowloris", "--read-header-timeout",
                                                    f"{timeout}s"),
                   "nginx": self.nginx("nginx-slowloris", header_timeout=f"{timeout}s")}
        results = {}
        for name, (process, port) in targets.items():
            self.loadgen(port, 1)  # warm-up
            before = self.loadgen(port, load_seconds)
            pipes, workers = [], []
            started = time.monotonic()
            for i in range(clients):
                parent, child = multiprocessing.Pipe()
                w = multiprocessing.Process(target=slow_worker, args=(
                    port, self.tls, count // clients, timeout + 30, child))
                w.start()
                pipes.append(parent)
                workers.append(w)
            opened = sum(p.recv()[1] for p in pipes)
            setup = time.monotonic() - started
            loaded = self.loadgen(port, load_seconds)
            loaded_end = time.monotonic() - started
            closes, still_open = [], 0
            for p in pipes:
                _, c, s = p.recv()
                closes += c
                still_open += s
            for w in workers:
                w.join()
            after = self.loadgen(port, load_seconds)
            unloaded = (before["requests_per_sec"] + after["requests_per_sec"]) / 2
            errors = before["errors"] + loaded["errors"] + after["errors"]
            results[name] = (loaded["requests_per_sec"] / max(unloaded, 1e-9), closes, still_open,
                             opened, errors)
            if loaded_end > timeout:
                log(f"WARNING: {name}: the loaded run ended {loaded_end:.1f} s after the first "
                    f"slow client connected, past the {timeout} s header timeout")
            log(f"slowloris {name}: unloaded {before['requests_per_sec']:.0f} and "
                f"{after['requests_per_sec']:.0f} req/s, with {opened} slow clients "
                f"{loaded['requests_per_sec']:.0f} req/s (setup {setup:.1f} s); "
                f"{len(closes)} closed by the server after "
                f"{min(closes, default=0):.1f}-{max(closes, default=0):.1f} s, {still_open} never")
        for name, (process, _) in targets.items():
            self.stop(process)
        aa, ng = results["aa-proxy"], results["nginx"]
        self.row("slowloris", f"throughput with {count} slow clients / unloaded",
                 f"{aa[0]:.2f}" + (f" ({aa[4]} errors)" if aa[4] else ""),
                 f"{ng[0]:.2f}" + (f" ({ng[4]} errors)" if ng[4] else ""), "-",
                 "OK (>= 0.90)" if aa[0] >= 0.9 and not aa[4] else "MISSED (goal >= 0.90, 0 errors)")

        def closed(r):
            return (f"{len(r[1])}/{r[3]} closed after {min(r[1], default=0):.1f}-"
                    f"{max(r[1], default=0):.1f} s")
        self.row("slowloris", f"slow clients closed by the header timeout ({timeout} s)",
                 closed(aa), closed(ng), "-",
                 "OK" if len(aa[1]) == aa[3] and aa[3] > 0 and
                 all(timeout - 1 <= c <= timeout + 3 for c in aa[1]) else "MISSED")

    # -----------------------------------------------------------------------------------------
    # 4. Slow kube-apiserver

    def slow_apiserver(self) -> None:
        seconds = 4.0 if self.quick else 10.0
        rounds = 1 if self.quick else 3
        burst = 20
        d = self.tmp / "apiserver"
        d.mkdir()
        policy = d / "policy.json"
        rules = {"sar": [{"group": "bench-readers", "verb": "list",
                          "apiGroup": "sample-api-server", "resource": "samples",
                          "allowed": True}]}

        def set_slow(slow: bool) -> None:
            doc = dict(rules)
            if slow:
                doc["failures"] = {"subjectaccessreviews": {"slow_ms": 1000}}
            (d / "policy.tmp").write_text(json.dumps(doc))
            (d / "policy.tmp").rename(policy)

        set_slow(False)
        (d / "configmap.json").write_text("{}")
        apiserver = self.start("apiserver", [
            sys.executable, REPO / "e2e/fake_apiserver.py", "--cert", self.server.cert, "--key",
            self.server.key, "--configmap-file", d / "configmap.json", "--policy-file", policy])
        address = apiserver.wait_for_log(r"^listening on (\S+)").group(1)
        (d / "kubeconfig").write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: double, cluster: {{server: 'https://{address}', "
            f"certificate-authority: '{self.ca.cert}'}}}}]\n"
            "users: [{name: aa-proxy, user: {token: bench}}]\n"
            "contexts: [{name: double, context: {cluster: double, user: aa-proxy}}]\n"
            "current-context: double\n")
        aa, port = self.aa_proxy("aa-proxy-sar", "--authentication-skip-lookup",
                                 "--authorization-mode", "webhook", "--authorization-kubeconfig",
                                 d / "kubeconfig")
        context = self.tls.context()
        cold_results: List[Tuple[str, List[int], List[float]]] = []
        stop = threading.Event()
        cold_keys = itertools.count(1)  # across rounds: every burst has a key of its own

        def cold_bursts():
            """Every 2 s, `burst` concurrent requests for a key nobody asked for yet."""
            while not stop.is_set():
                namespace = f"cold-{next(cold_keys)}"
                statuses, latencies = [], []
                barrier = threading.Barrier(burst)

                def one():
                    try:
                        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
                        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                            barrier.wait(10)
                            t = time.monotonic()
                            sock.sendall(request_bytes(REQUEST_PATH.replace("default", namespace),
                                                       close=True))
                            status, _ = read_response(sock)
                            latencies.append(time.monotonic() - t)
                            statuses.append(status)
                    except (OSError, ssl.SSLError, threading.BrokenBarrierError):
                        statuses.append(0)
                threads = [threading.Thread(target=one) for _ in range(burst)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                cold_results.append((namespace, statuses, latencies))
                stop.wait(2)

        self.loadgen(port, 1)  # the cached key
        normal, slow = [], []
        for round_index in range(rounds):
            set_slow(False)
            self.loadgen(port, 1)  # refresh the cached decision with the fast double
            normal.append(self.loadgen(port, seconds))
            set_slow(True)
            stop.clear()
            burster = threading.Thread(target=cold_bursts)
            burster.start()
            slow.append(self.loadgen(port, seconds))
            stop.set()
            burster.join()
            log(f"slow-apiserver round {round_index + 1}/{rounds}: fast double "
                f"{normal[-1]['requests_per_sec']:.0f} req/s (p99 {normal[-1]['p99_us']} us, max "
                f"{normal[-1]['max_us']} us), slow double {slow[-1]['requests_per_sec']:.0f} req/s "
                f"(p99 {slow[-1]['p99_us']} us, max {slow[-1]['max_us']} us: a request that "
                f"waited for the double takes over 1 s)")
        set_slow(False)
        recorded = json.loads(subprocess.run(
            ["curl", "-sf", "--cacert", self.tls.cacert, f"https://{address}/__recorded"],
            capture_output=True, check=True).stdout)
        reviews: Dict[str, int] = {}
        for r in recorded:
            if "subjectaccessreviews" in r["path"]:
                ns = json.loads(r["body"])["spec"].get("resourceAttributes", {}).get("namespace")
                reviews[ns] = reviews.get(ns, 0) + 1
        per_key = [reviews.get(ns, 0) for ns, _, _ in cold_results]
        bad = sum(1 for _, statuses, _ in cold_results for s in statuses if s != 200)
        latencies = sorted(x for _, _, ls in cold_results for x in ls)
        ratio = median([s["requests_per_sec"] for s in slow]) / max(
            median([n["requests_per_sec"] for n in normal]), 1e-9)
        errors = sum(r["errors"] for r in normal + slow)
        self.row("slow-apiserver", "cached-path req/s, double answering after 1 s / fast double",
                 f"{ratio:.2f} ({median([n['requests_per_sec'] for n in normal]):.0f} -> "
                 f"{median([s['requests_per_sec'] for s in slow]):.0f} req/s"
                 + (f", {errors} errors" if errors else "") + ")",
                 "n/a", "-", "OK (>= 0.95)" if ratio >= 0.95 and not errors else
                 "MISSED (goal >= 0.95, 0 errors)")
        self.row("slow-apiserver", f"reviews per cold key ({burst} concurrent requests each)",
                 f"{len(per_key)} keys: min {min(per_key, default=0)}, max "
                 f"{max(per_key, default=0)}; latency {latencies[0] if latencies else 0:.2f}-"
                 f"{latencies[-1] if latencies else 0:.2f} s; {bad} not 200",
                 "n/a", "-",
                 "OK (exactly 1)" if per_key and set(per_key) == {1} and not bad else "MISSED")
        self.stop(aa)
        self.stop(apiserver)

    # -----------------------------------------------------------------------------------------
    # 5. Soak

    def soak(self) -> None:
        minutes = self.args.soak_minutes if self.args.soak_minutes is not None else (
            0.5 if self.quick else 10)
        seconds = minutes * 60
        warmup = min(30.0, seconds / 4)
        aa, port = self.aa_proxy_static("aa-proxy-soak")
        context = self.tls.context()
        fds_base, pool_base = descriptors(aa.pid, self.backend_port)
        stop = threading.Event()
        counts: Dict[str, int] = {}
        unexpected: Dict[str, int] = {}
        lock = threading.Lock()

        def record(kind: str, ok: bool, detail: str = "") -> None:
            with lock:
                counts[kind] = counts.get(kind, 0) + 1
                if not ok:
                    unexpected[f"{kind} {detail}"] = unexpected.get(f"{kind} {detail}", 0) + 1

        def connect():
            raw = socket.create_connection(("127.0.0.1", port), timeout=30)
            return context.wrap_socket(raw, server_hostname="127.0.0.1")

        def denied():
            # Keep-alive: a 403 does not close the connection.
            sock = None
            while not stop.is_set():
                try:
                    sock = sock or connect()
                    sock.sendall(request_bytes("/api/v1/namespaces/default/secrets", close=False))
                    status, _ = read_response(sock)
                    record("denied", status == 403, str(status))
                except (OSError, ssl.SSLError) as e:
                    record("denied", False, type(e).__name__)
                    sock = None
            if sock:
                sock.close()

        def watches():
            while not stop.is_set():
                try:
                    with connect() as sock:
                        sock.sendall(request_bytes(REQUEST_PATH + "?watch=true&timeoutSeconds=2",
                                                   close=True))
                        data = b""
                        while chunk := sock.recv(65536):
                            data += chunk
                    ok = data.startswith(b"HTTP/1.1 200 ") and b'"type":"ADDED"' in data
                    record("watch", ok, data[:12].decode(errors="replace"))
                except (OSError, ssl.SSLError) as e:
                    record("watch", False, type(e).__name__)

        def bodies():
            body = os.urandom(256 * 1024)
            digest = hashlib.sha256(body).hexdigest()
            sock = None
            while not stop.is_set():
                try:
                    sock = sock or connect()
                    sock.sendall(request_bytes("/debug/body", close=False, method="POST",
                                               body=body))
                    status, answer = read_response(sock)
                    ok = status == 200 and json.loads(answer).get("sha256") == digest
                    record("body", ok, str(status))
                except (OSError, ssl.SSLError, ValueError) as e:
                    record("body", False, type(e).__name__)
                    sock = None
            if sock:
                sock.close()

        def new_connections():
            while not stop.is_set():
                try:
                    with connect() as sock:
                        sock.sendall(request_bytes(REQUEST_PATH, close=True))
                        status, _ = read_response(sock)
                    record("new-connection", status == 200, str(status))
                except (OSError, ssl.SSLError) as e:
                    record("new-connection", False, type(e).__name__)

        threads = [threading.Thread(target=f) for f in (denied, watches, watches, bodies,
                                                          new_connections)]
        samples: List[Tuple[float, int]] = []
        started = time.monotonic()
        result: Dict[str, dict] = {}

        def load():
            result["loadgen"] = self.loadgen(port, seconds)
        loader = threading.Thread(target=load)
        loader.start()
        for t in threads:
            t.start()
        while loader.is_alive():
            samples.append((time.monotonic() - started, rss_kib(aa.pid)))
            loader.join(10)
        stop.set()
        for t in threads:
            t.join()
        rss_end = rss_kib(aa.pid)
        rss_warm = next((rss for t, rss in samples if t >= warmup), samples[-1][1])
        peak = max(rss for _, rss in samples)
        deadline = time.monotonic() + 15
        while True:
            fds_end, pool_end = descriptors(aa.pid, self.backend_port)
            if fds_end - pool_end == fds_base - pool_base or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        lg = result["loadgen"]
        growth = rss_end - rss_warm
        log(f"soak: {lg['requests']} allowed requests ({lg['requests_per_sec']:.0f} req/s), "
            f"{counts}; RSS samples (s, KiB): {samples}")
        self.row("soak", f"{minutes:g} min mixed traffic: unexpected statuses",
                 f"{lg['errors'] + sum(unexpected.values())} of "
                 f"{lg['requests'] + sum(counts.values())} "
                 f"({lg['requests']} allowed, " +
                 ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ")"
                 + (f"; {unexpected}" if unexpected else ""),
                 "n/a", "-",
                 "OK (0)" if not lg["errors"] and not unexpected else "MISSED (goal 0)")
        self.row("soak", f"RSS growth after {warmup:.0f} s warm-up",
                 f"{growth / KIB:+.2f} MiB ({rss_warm / KIB:.1f} -> {rss_end / KIB:.1f}, peak "
                 f"{peak / KIB:.1f})", "n/a", "-",
                 "OK (<= 2 MiB)" if growth <= 2 * KIB else "MISSED (goal <= 2 MiB)")
        self.row("soak", "descriptors after the clients closed / before (idle backend pool)",
                 f"{fds_end} ({pool_end}) / {fds_base} ({pool_base})", "n/a", "-",
                 "OK (same without the pool)" if fds_end - pool_end == fds_base - pool_base
                 else "MISSED")
        self.stop(aa)

    def report(self) -> None:
        headers = ("part", "measure", "aa-proxy", "nginx", "comparison", "goal")
        widths = [max(len(str(r[i])) for r in self.rows + [headers]) for i in range(6)]
        print()
        key = "RSA 2048" if getattr(self.args, "key_type", "ec") == "rsa" else "EC P-256"
        print(f"aa-proxy load, memory and abuse benchmark ({'--quick' if self.quick else 'full'}; "
              f"{key} keys; {os.cpu_count()} cores, load average before start "
              f"{self.load_average})")
        print()
        print(" | ".join(h.ljust(w) for h, w in zip(headers, widths)))
        print("-|-".join("-" * w for w in widths))
        for r in self.rows:
            print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*", metavar="PART",
                        help=f"parts to run, of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller and shorter: a smoke check")
    parser.add_argument("--soak-minutes", type=float, default=None,
                        help="soak duration in minutes [10; --quick: 0.5]")
    parser.add_argument("--keep-tmp", action="store_true")
    parser.add_argument("--handshake-only", action="store_true",
                        help="handshakes part: measure the handshake alone, without the request "
                             "each new connection otherwise carries")
    parser.add_argument("--key-type", choices=("ec", "rsa"),
                        default=os.environ.get("BENCH_KEY_TYPE", "ec"),
                        help="keys of the throwaway PKI: EC P-256, or RSA 2048 as kubeadm's "
                             "[ec; env BENCH_KEY_TYPE]")
    args = parser.parse_args()
    parts = args.parts or list(PARTS)
    for part in parts:
        if part not in PARTS:
            parser.error(f"unknown part {part!r} (parts: {', '.join(PARTS)})")
    for tool in ("nginx", "openssl", "curl"):
        if shutil.which(tool) is None:
            log(f"{tool} is not installed (tools/install-deps.sh)")
            return 1
    # 10,000 idle connections need 10,000 descriptors in the client and in each proxy (the
    # proxies inherit this limit; aa-proxy raises its soft limit to the hard one itself).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 12000 and "idle" in parts:
        log(f"the descriptor limit is {hard}; the idle part needs more than 10,000 "
            f"(ulimit -Hn)")
        return 1
    load_average = Path("/proc/loadavg").read_text().split()[:3]
    bench = Bench(args)
    bench.load_average = " ".join(load_average)
    try:
        for part in PARTS:
            if part in parts:
                log(f"--- {part}")
                getattr(bench, part.replace("-", "_"))()
        bench.report()
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
