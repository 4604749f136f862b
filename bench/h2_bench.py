#!/usr/bin/env python3
"""HTTP/2 benchmark: aa-proxy and nginx (`listen ... ssl http2`) in front of the same sample
backend, loaded by the same client, h2load (Debian nghttp2-client), in the same run; plus both
again over HTTP/1.1 (`h2load --h1`) as the reference for what HTTP/2 saves. Prints one table:
requests/s, p50/p99 latency, and the proxy's CPU (user+system, all threads and workers) per
request, with the ratios aa-proxy h2 / nginx h2 and aa-proxy h2 / aa-proxy h1.

h2load cannot present a client certificate, so here both proxies serve TLS without client
authentication: aa-proxy authenticates every request as system:anonymous and authorizes it with
a static policy (group system:unauthenticated may list samples); nginx forwards. bench/run.sh
measures the mTLS HTTP/1.1 path with client certificates.

  bench/h2.sh                 3 rounds of 10 s per target, medians
  bench/h2.sh --quick         1 round of 3 s
  bench/h2.sh --instructions  user-space instructions per HTTP/2 request under valgrind callgrind,
                              aa-proxy (1 worker) and nginx (1 process): repeatable where CPU
                              time on this VM is not; (Ir of a 12 s run - Ir of a 4 s run) divided
                              by the difference in requests, so start-up and handshakes cancel
  BENCH_H2_CONNECTIONS=4 BENCH_H2_STREAMS=32 BENCH_H1_CONNECTIONS=64 (defaults)
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "e2e"))
import harness  # noqa: E402  (Pki, free ports, processes)

REQUEST_PATH = "/apis/sample-api-server/v1alpha1/namespaces/default/samples"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int, with_children: bool = False) -> int:
    pids = [pid]
    if with_children:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def build() -> Path:
    output_base = os.environ.get("BENCH_BAZEL_OUTPUT_BASE", "/root/.cache/bazel-bench")
    bazel = ["bazel", f"--output_base={output_base}"]
    print("bench: building aa-proxy and the sample backend (bazel -c opt)", file=sys.stderr)
    subprocess.run(bazel + ["build", "-c", "opt", "--symlink_prefix=/", "//proxy:aa-proxy",
                            "//sample:sample-backend"], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bin_dir = subprocess.run(bazel + ["info", "-c", "opt", "bazel-bin"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.strip()
    # The Bazel server's JVM would compete for the two cores while we measure.
    subprocess.run(bazel + ["shutdown"], cwd=REPO, capture_output=True)
    return Path(bin_dir)


def wait_https(url: str, cacert: Path, pid_alive, timeout: float = 15) -> None:
    def ok():
        if not pid_alive():
            raise harness.StopWaiting()
        return subprocess.run(["curl", "-sf", "-o", "/dev/null", "--max-time", "1", "--cacert",
                               str(cacert), url]).returncode == 0
    harness.wait_until(ok, timeout=timeout, what=url, interval=0.2)


def nginx_config(tmp: Path, port: int, backend_port: int, pki, workers: int) -> Path:
    conf = tmp / "nginx" / "nginx.conf"
    conf.parent.mkdir(parents=True)
    d = conf.parent
    conf.write_text(f"""
# nginx as the reference HTTP/2 reverse proxy: h2 and http/1.1 by ALPN, keep-alive pool to the
# backend, HTTP/1.1 upstream, no access log (as aa-proxy at -v 0).
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  http2_max_requests 100000000;
  http2_max_concurrent_streams 250;
  upstream backend {{
    server 127.0.0.1:{backend_port};
    keepalive 256;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
  }}
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {pki.server.cert};
    ssl_certificate_key {pki.server.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:bench:10m;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Remote-User system:anonymous;
    }}
  }}
}}
""")
    return conf


def h2load(url: str, seconds: float, h1: bool, tmp: Path) -> dict:
    """One closed-loop h2load run; returns requests, duration, p50/p99 (ms), errors."""
    connections = int(os.environ.get("BENCH_H1_CONNECTIONS" if h1 else "BENCH_H2_CONNECTIONS",
                                     "64" if h1 else "4"))
    streams = 1 if h1 else int(os.environ.get("BENCH_H2_STREAMS", "32"))
    log_file = tmp / "h2load.log"
    args = ["h2load", "-c", str(connections), "-m", str(streams), "-t", "1",
            "-D", f"{seconds:g}", "--log-file", str(log_file), url]
    if h1:
        args.insert(1, "--h1")
    log_file.unlink(missing_ok=True)
    run = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    out = run.stdout
    if run.returncode != 0 or not log_file.exists():
        raise RuntimeError(f"h2load failed ({run.returncode}): {run.stderr}{out[-2000:]}")
    durations, errors = [], 0
    for line in log_file.read_text().splitlines():
        fields = line.split("\t")  # start time, status, duration (µs)
        if len(fields) >= 3:
            if not fields[1].startswith("2"):
                errors += 1
            durations.append(int(fields[2]))
    durations.sort()
    protocol = next((l.split(":", 1)[1].strip() for l in out.splitlines()
                     if l.startswith("Application protocol:")), "?")

    def pct(p):
        return durations[min(len(durations) - 1, int(p * len(durations)))] / 1000.0

    return {"requests": len(durations), "errors": errors, "protocol": protocol,
            "p50": pct(0.50) if durations else 0, "p99": pct(0.99) if durations else 0}


def callgrind_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def instructions_per_request(bin_dir: Path, tmp: Path, pki, backend_port: int,
                             policy: Path) -> None:
    """Each proxy under callgrind twice (runs A and B of different lengths), same h2 load."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed (tools/install-deps.sh)")
    durations = {"A": float(os.environ.get("BENCH_DURATION_A", "4")),
                 "B": float(os.environ.get("BENCH_DURATION_B", "12"))}
    results = {}
    for name in ("aa-proxy", "nginx"):
        totals, requests = {}, {}
        for run, seconds in durations.items():
            port = harness.free_port()
            out = tmp / f"callgrind-{name}-{run}.out"
            valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            if name == "aa-proxy":
                argv = valgrind + [
                    bin_dir / "proxy/aa-proxy", "--secure-port", port, "--bind-address",
                    "127.0.0.1", "--tls-cert-file", pki.server.cert, "--tls-private-key-file",
                    pki.server.key, "--upstream", f"http://127.0.0.1:{backend_port}",
                    "--workers", "1", "--authentication-skip-lookup", "--authorization-mode",
                    "static", "--authorization-policy-file", policy,
                    "--shutdown-grace-period", "1s"]
            else:
                conf = nginx_config(tmp / f"cg-{run}", port, backend_port, pki, 1)
                argv = valgrind + ["nginx", "-c", conf, "-p", conf.parent, "-g",
                                   "master_process off;"]
            process = harness.Process(f"callgrind-{name}-{run}", argv, tmp)
            try:
                wait_https(f"https://127.0.0.1:{port}{REQUEST_PATH}", pki.ca.cert, process.alive,
                           timeout=120)
                result = h2load(f"https://127.0.0.1:{port}{REQUEST_PATH}", seconds, False, tmp)
            finally:
                process.stop(timeout=60)
            totals[run], requests[run] = callgrind_total(out), result["requests"]
            print(f"bench: callgrind {name} run {run}: {requests[run]} requests, "
                  f"{totals[run]} instructions", file=sys.stderr)
        results[name] = (totals["B"] - totals["A"]) / max(requests["B"] - requests["A"], 1)
    print("\n| HTTP/2, user-space instructions per request | aa-proxy | nginx | ratio |")
    print("|---|---|---|---|")
    print(f"| callgrind, h2load -c 4 -m 32 | {results['aa-proxy']:.0f} | {results['nginx']:.0f} | "
          f"{results['aa-proxy'] / results['nginx']:.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    runs = int(os.environ.get("BENCH_RUNS", "1" if args.quick else "3"))
    seconds = float(os.environ.get("BENCH_DURATION", "3" if args.quick else "10"))
    workers = int(os.environ.get("BENCH_PROXY_WORKERS", "2"))
    for tool in ("h2load", "nginx", "openssl", "curl"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed (tools/install-deps.sh)", file=sys.stderr)
            return 1
    bin_dir = build()
    tmp = Path(tempfile.mkdtemp(prefix="aa-proxy-h2-bench-"))
    processes = []
    try:
        pki = harness.Pki(tmp / "pki").standard()
        backend_port = harness.free_port()
        backend = harness.Process("backend", [bin_dir / "sample/sample-backend", "--listen",
                                              f"127.0.0.1:{backend_port}"], tmp)
        processes.append(backend)
        backend.wait_for_log(r"^listening on ")
        policy = tmp / "policy.yaml"
        policy.write_text('rules:\n  - groups: ["system:unauthenticated"]\n'
                          '    verbs: ["list"]\n    apiGroups: ["sample-api-server"]\n'
                          '    resources: ["samples"]\n')
        if args.instructions:
            instructions_per_request(bin_dir, tmp, pki, backend_port, policy)
            return 0
        aa_port = harness.free_port()
        aa = harness.Process("aa-proxy", [
            bin_dir / "proxy/aa-proxy", "--secure-port", aa_port, "--bind-address", "127.0.0.1",
            "--tls-cert-file", pki.server.cert, "--tls-private-key-file", pki.server.key,
            "--upstream", f"http://127.0.0.1:{backend_port}", "--workers", workers,
            "--authentication-skip-lookup", "--authorization-mode", "static",
            "--authorization-policy-file", policy], tmp)
        processes.append(aa)
        nginx_port = harness.free_port()
        nginx = harness.Process("nginx", ["nginx", "-c", nginx_config(
            tmp, nginx_port, backend_port, pki, workers), "-p", tmp / "nginx"], tmp)
        processes.append(nginx)
        targets = {"aa-proxy": (f"https://127.0.0.1:{aa_port}", aa, False),
                   "nginx": (f"https://127.0.0.1:{nginx_port}", nginx, True)}
        for name, (url, process, _) in targets.items():
            wait_https(url + REQUEST_PATH, pki.ca.cert, process.alive)
        # h2load does not verify the server; the same bytes must come back from both.
        bodies = {subprocess.run(["curl", "-sf", "--cacert", str(pki.ca.cert), url + REQUEST_PATH],
                                 capture_output=True).stdout for url, _, _ in targets.values()}
        if len(bodies) != 1:
            print("bench: the proxies return different bodies", file=sys.stderr)
            return 1
        rows = {}
        plan = [(name, h1) for h1 in (False, True) for name in targets]
        for name, h1 in plan:  # warm-up: connections, caches, page faults
            h2load(targets[name][0] + REQUEST_PATH, 1, h1, tmp)
        for round_index in range(runs):
            for name, h1 in plan:
                url, process, children = targets[name]
                before = cpu_ticks(process.pid, children)
                started = time.monotonic()
                result = h2load(url + REQUEST_PATH, seconds, h1, tmp)
                elapsed = time.monotonic() - started
                ticks = cpu_ticks(process.pid, children) - before
                result["rps"] = result["requests"] / seconds
                result["cpu_us"] = ticks / CLK_TCK * 1e6 / max(result["requests"], 1)
                rows.setdefault((name, h1), []).append(result)
                print(f"bench: round {round_index + 1}/{runs} {name} "
                      f"{'h1' if h1 else 'h2'}: {result['rps']:.0f} req/s, "
                      f"{result['cpu_us']:.1f} µs CPU/req ({elapsed:.1f} s)", file=sys.stderr)
        print(f"\nHTTP/2 benchmark: {runs} x {seconds:g} s per target, medians; h2load "
              f"-c {os.environ.get('BENCH_H2_CONNECTIONS', '4')} -m "
              f"{os.environ.get('BENCH_H2_STREAMS', '32')} (h2), --h1 -c "
              f"{os.environ.get('BENCH_H1_CONNECTIONS', '64')} (HTTP/1.1); {workers} workers")
        print("| target | protocol | req/s | p50 ms | p99 ms | proxy CPU µs/req | errors |")
        print("|---|---|---|---|---|---|---|")
        med = {}
        for (name, h1), results in rows.items():
            m = {k: statistics.median(r[k] for r in results)
                 for k in ("rps", "p50", "p99", "cpu_us")}
            m["errors"] = sum(r["errors"] for r in results)
            m["protocol"] = results[0]["protocol"]
            med[(name, h1)] = m
            print(f"| {name} | {m['protocol']} | {m['rps']:.0f} | {m['p50']:.2f} | "
                  f"{m['p99']:.2f} | {m['cpu_us']:.1f} | {m['errors']} |")
        aa_h2, ng_h2, aa_h1 = med[("aa-proxy", False)], med[("nginx", False)], med[("aa-proxy", True)]
        print(f"\naa-proxy h2 CPU/req: {aa_h2['cpu_us'] / ng_h2['cpu_us']:.2f} of nginx h2's, "
              f"{aa_h2['cpu_us'] / aa_h1['cpu_us']:.2f} of aa-proxy HTTP/1.1's")
        return 0 if all(m["errors"] == 0 for m in med.values()) else 1
    finally:
        for process in reversed(processes):
            process.stop()
        if os.environ.get("BENCH_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
