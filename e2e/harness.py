"""End-to-end test harness: real processes on loopback ports, a throwaway PKI, and curl.

Python 3 standard library only. Pieces:
  find_binary("sample/sample-backend")    Bazel runfiles first, then bazel-bin trees.
  free_port()                             an unused loopback TCP port.
  Process(name, argv)                     a child with its stdout+stderr captured to a log file.
  wait_until(fn, timeout, what)           poll with a deadline (no fixed sleeps).
  Pki(dir).standard()                     CAs and certificates made with the openssl CLI.
  curl(url, ...) / curl_many(urls, ...)   one curl run: status, headers, body, connections.
  StreamingCurl(url, ...)                 curl --no-buffer with per-line arrival timestamps.
  E2ETestCase                             unittest.TestCase that stops its processes and prints
                                          their logs when a test fails.
"""

import dataclasses
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

WORKSPACE_NAME = "aa_proxy"
# The e2e suites that run over both protocols set E2E_HTTP_VERSION=2 for their HTTP/2 run.
HTTP2 = os.environ.get("E2E_HTTP_VERSION") == "2"
HTTP_VERSION = "HTTP/2.0" if HTTP2 else "HTTP/1.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
# tools/tsan.sh sets E2E_SANITIZER=tsan: the binaries run several times slower, and the few
# cases that are load tests scale their load down.
SANITIZER = os.environ.get("E2E_SANITIZER", "")


# ---------------------------------------------------------------------------------------------
# Binaries


def find_binary(package_path: str) -> Optional[Path]:
    """Locates a Bazel-built binary such as "proxy/aa-proxy".

    Order: the test's runfiles (TEST_SRCDIR / RUNFILES_DIR, where `data` deps land), then
    $E2E_BAZEL_BIN, then the repository's bazel-bin symlink. None when nowhere.
    """
    candidates: List[Path] = []
    for var in ("TEST_SRCDIR", "RUNFILES_DIR"):
        root = os.environ.get(var)
        if root:
            candidates.append(Path(root) / WORKSPACE_NAME / package_path)
    manifest = os.environ.get("RUNFILES_MANIFEST_FILE")
    if manifest and os.path.exists(manifest):
        key = f"{WORKSPACE_NAME}/{package_path}"
        with open(manifest) as f:
            for line in f:
                name, _, target = line.rstrip("\n").partition(" ")
                if name == key and target:
                    candidates.append(Path(target))
    if os.environ.get("E2E_BAZEL_BIN"):
        candidates.append(Path(os.environ["E2E_BAZEL_BIN"]) / package_path)
    candidates.append(REPO_ROOT / "bazel-bin" / package_path)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_binary(package_path: str) -> Path:
    path = find_binary(package_path)
    if path is None:
        raise FileNotFoundError(
            f"{package_path} not found in runfiles or bazel-bin; build it with bazel first "
            f"or set E2E_BAZEL_BIN")
    return path


# ---------------------------------------------------------------------------------------------
# Ports, polling, processes


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StopWaiting(Exception):
    """Raised by a wait_until predicate to give up at once (e.g. the process died)."""


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.02):
    """Calls predicate until it returns something truthy; raises TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except StopWaiting:
            raise
        except Exception as e:  # pylint: disable=broad-except
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def tcp_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Process:
    """A child process whose stdout and stderr go to one log file."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path,
                 env: Optional[Dict[str, str]] = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "ab")
        # A restarted process appends to its predecessor's log; log_text() is its own part.
        self._log_start = self._log.tell()
        self._log.write(f"$ {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            return f.read().decode(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> "re.Match":
        """Waits for a log line matching `pattern`; fails fast if the process exits."""
        regex = re.compile(pattern, re.MULTILINE)

        def check():
            match = regex.search(self.log_text())
            if match:
                return match
            if not self.alive():
                raise StopWaiting()
            return None

        try:
            return wait_until(check, timeout, f"{self.name} to log /{pattern}/")
        except StopWaiting:
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}:\n{self.log_text()}") from None

    def rss_bytes(self) -> int:
        """VmRSS from /proc/<pid>/status."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def stop(self, timeout: float = 5.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
            self.popen.wait()


# ---------------------------------------------------------------------------------------------
# PKI


@dataclasses.dataclass
class CertKey:
    cert: Path
    key: Path
    chain: Optional[Path] = None  # leaf followed by intermediates, for clients that present them


def _openssl(*args: str, cwd: Optional[Path] = None) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr.decode()}")


class Pki:
    """Certificates made with the openssl CLI into one directory. EC P-256 keys by default."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._serial = int(time.time() * 1000) % 10**12

    def _key(self, name: str, key_type: str) -> Path:
        key = self.dir / f"{name}.key"
        if key_type == "rsa":
            _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                     str(key))
        else:
            _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                     str(key))
        return key

    @staticmethod
    def _subject(cn: str, orgs: Sequence[str]) -> str:
        def esc(v: str) -> str:
            return v.replace("\\", "\\\\").replace("/", "\\/")
        return "".join(f"/O={esc(o)}" for o in orgs) + f"/CN={esc(cn)}"

    def ca(self, name: str, cn: Optional[str] = None, key_type: str = "ec") -> CertKey:
        """A self-signed root CA."""
        key = self._key(name, key_type)
        cert = self.dir / f"{name}.crt"
        ext = self.dir / f"{name}.ext"
        ext.write_text("[v3]\nbasicConstraints=critical,CA:TRUE\n"
                       "keyUsage=critical,keyCertSign,cRLSign,digitalSignature\n"
                       "subjectKeyIdentifier=hash\n")
        _openssl("req", "-x509", "-new", "-key", str(key), "-subj",
                 self._subject(cn or name, []), "-days", "3650", "-sha256", "-config", str(ext),
                 "-extensions", "v3", "-out", str(cert))
        return CertKey(cert, key)

    def issue(self, issuer: CertKey, name: str, cn: str, orgs: Sequence[str] = (),
              ext_key_usage: Optional[str] = "clientAuth", sans: Sequence[str] = (),
              is_ca: bool = False, expired: bool = False, key_type: str = "ec") -> CertKey:
        """A certificate signed by `issuer`.

        ext_key_usage: "clientAuth", "serverAuth", "serverAuth,clientAuth" or None (no EKU).
        sans: "IP:127.0.0.1", "DNS:localhost". expired: valid only during 2020-01-01..02.
        """
        key = self._key(name, key_type)
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.crt"
        ext = self.dir / f"{name}.ext"
        lines = ["[v3]", "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
        if is_ca:
            lines += ["basicConstraints=critical,CA:TRUE",
                      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"]
        else:
            lines += ["basicConstraints=critical,CA:FALSE",
                      "keyUsage=critical,digitalSignature,keyEncipherment"]
            if ext_key_usage:
                lines.append(f"extendedKeyUsage={ext_key_usage}")
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        ext.write_text("\n".join(lines) + "\n")
        _openssl("req", "-new", "-key", str(key), "-subj", self._subject(cn, orgs), "-out",
                 str(csr))
        self._serial += 1
        if expired:
            self._sign_with_dates(issuer, csr, ext, cert, "20200101000000Z", "20200102000000Z")
        else:
            _openssl("x509", "-req", "-in", str(csr), "-CA", str(issuer.cert), "-CAkey",
                     str(issuer.key), "-set_serial", str(self._serial), "-days", "825",
                     "-sha256", "-extfile", str(ext), "-extensions", "v3", "-out", str(cert))
        chain = None
        if issuer.chain is not None:
            chain = self.dir / f"{name}-chain.crt"
            chain.write_bytes(cert.read_bytes() + (issuer.chain or issuer.cert).read_bytes())
        return CertKey(cert, key, chain)

    def intermediate(self, issuer: CertKey, name: str, cn: Optional[str] = None) -> CertKey:
        """An intermediate CA; certificates it issues get a `chain` file (leaf + intermediate)."""
        ck = self.issue(issuer, name, cn or name, ext_key_usage=None, is_ca=True)
        # For an intermediate, "chain" is what its leaves must append: the intermediate itself.
        return CertKey(ck.cert, ck.key, ck.cert)

    def _sign_with_dates(self, issuer: CertKey, csr: Path, ext: Path, out: Path, start: str,
                         end: str) -> None:
        # `openssl x509 -req` cannot set a past notBefore in OpenSSL 3.0; `openssl ca` can.
        ca_dir = self.dir / "ca-db"
        ca_dir.mkdir(exist_ok=True)
        (ca_dir / "index.txt").write_text("")
        (ca_dir / "serial").write_text(f"{self._serial:016X}\n")
        config = ca_dir / "ca.cnf"
        config.write_text(
            "[ca]\ndefault_ca=dated\n"
            f"[dated]\ndir={ca_dir}\ndatabase={ca_dir}/index.txt\nnew_certs_dir={ca_dir}\n"
            f"serial={ca_dir}/serial\ndefault_md=sha256\npolicy=any\nunique_subject=no\n"
            "[any]\ncommonName=supplied\norganizationName=optional\n")
        _openssl("ca", "-batch", "-notext", "-config", str(config), "-cert", str(issuer.cert),
                 "-keyfile", str(issuer.key), "-in", str(csr), "-out", str(out), "-startdate",
                 start, "-enddate", end, "-extfile", str(ext), "-extensions", "v3",
                 "-preserveDN")

    def standard(self) -> "StandardPki":
        return StandardPki(self)


class StandardPki:
    """Everything the e2e suites use, made once per test class.

    ca                      client CA (--client-ca-file); signs the server certificate too
    server                  serving cert, SAN IP:127.0.0.1 and DNS:localhost
    alice                   client cert CN=alice O=dev (clientAuth)
    other_ca / stranger     an unrelated CA and a client cert it signed (CN=mallory)
    front_proxy_ca          requestheader CA; front_proxy_client: CN=front-proxy-client
    intermediate / bob      intermediate CA under `ca`; bob (CN=bob O=ops) signed by it,
                            bob.chain = leaf + intermediate
    expired                 CN=alice O=dev, expired in 2020
    no_client_auth          CN=alice O=dev, EKU serverAuth only
    """

    def __init__(self, pki: Pki):
        self.pki = pki
        self.dir = pki.dir
        self.ca = pki.ca("client-ca", "aa-proxy e2e client CA")
        self.server = pki.issue(self.ca, "server", "aa-proxy", ext_key_usage="serverAuth",
                                sans=["IP:127.0.0.1", "DNS:localhost"])
        self.alice = pki.issue(self.ca, "alice", "alice", orgs=["dev"])
        self.other_ca = pki.ca("other-ca", "unrelated CA")
        self.stranger = pki.issue(self.other_ca, "stranger", "mallory", orgs=["dev"])
        self.front_proxy_ca = pki.ca("front-proxy-ca", "front-proxy-ca")
        self.front_proxy_client = pki.issue(self.front_proxy_ca, "front-proxy-client",
                                            "front-proxy-client")
        self.intermediate = pki.intermediate(self.ca, "intermediate", "aa-proxy e2e intermediate")
        self.bob = pki.issue(self.intermediate, "bob", "bob", orgs=["ops"])
        self.expired = pki.issue(self.ca, "expired", "alice", orgs=["dev"], expired=True)
        self.no_client_auth = pki.issue(self.ca, "no-client-auth", "alice", orgs=["dev"],
                                        ext_key_usage="serverAuth")


# ---------------------------------------------------------------------------------------------
# curl


@dataclasses.dataclass
class CurlResult:
    exit_code: int            # curl's own exit code (35 = TLS handshake failed, 7 = refused, ...)
    status: int               # HTTP status of the last response, 0 when there was none
    headers: List[Tuple[str, str]]
    body: bytes
    num_connects: int
    stderr: str

    def header(self, name: str) -> Optional[str]:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclasses.dataclass
class TlsClient:
    """What curl presents: --cacert, and optionally --cert/--key."""
    cacert: Optional[Path] = None
    cert: Optional[Path] = None
    key: Optional[Path] = None

    def args(self) -> List[str]:
        args = []
        if self.cacert:
            args += ["--cacert", str(self.cacert)]
        if self.cert:
            args += ["--cert", str(self.cert)]
        if self.key:
            args += ["--key", str(self.key)]
        return args


_WRITE_OUT_MARK = "\n__curl_write_out__ "


def _curl_args(tls: Optional[TlsClient], headers: Sequence[str], method: Optional[str],
               data: Optional[bytes], data_file: Optional[Path], upload_file: Optional[Path],
               chunked: bool, http10: bool, unix_socket: Optional[str], timeout: float,
               extra: Sequence[str], tmp: Path) -> List[str]:
    args = ["curl", "-sS", "--max-time", str(timeout)]
    if tls:
        args += tls.args()
    for h in headers:
        args += ["-H", h]
    if method:
        args += ["-X", method]
    if data is not None:
        data_file = tmp / "request-body"
        data_file.write_bytes(data)
    if data_file is not None:
        args += ["--data-binary", f"@{data_file}"]
    if upload_file is not None:
        args += ["-T", str(upload_file)]
    if chunked:
        args += ["-H", "Transfer-Encoding: chunked"]
    if http10:
        args += ["--http1.0"]
    elif not unix_socket:
        # curl offers h2 by default; the suites pick the protocol (E2E_HTTP_VERSION=2 runs them
        # over HTTP/2, see e2e/BUILD) and otherwise speak HTTP/1.1.
        args += ["--http2"] if HTTP2 else ["--http1.1"]
    if unix_socket:
        args += ["--unix-socket", unix_socket]
    args += list(extra)
    return args


def _parse_header_blocks(raw: bytes) -> List[Tuple[int, List[Tuple[str, str]]]]:
    """Splits curl -D output into (status, headers) per response, 1xx responses included."""
    blocks = []
    for block in re.split(rb"\r?\n\r?\n", raw):
        lines = block.decode("latin-1").splitlines()
        if not lines or not lines[0].startswith("HTTP/"):
            continue
        status = int(lines[0].split()[1])
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name.strip(), value.strip()))
        blocks.append((status, headers))
    return blocks


def curl_many(urls: Sequence[str], tls: Optional[TlsClient] = None, headers: Sequence[str] = (),
              method: Optional[str] = None, data: Optional[bytes] = None,
              data_file: Optional[Path] = None, upload_file: Optional[Path] = None,
              chunked: bool = False, http10: bool = False, unix_socket: Optional[str] = None,
              timeout: float = 30.0, extra: Sequence[str] = ()) -> List[CurlResult]:
    """Fetches several URLs in ONE curl run (so curl may reuse its connection).

    Each result's num_connects is the number of new connections that transfer needed.
    """
    with tempfile.TemporaryDirectory(prefix="curl-") as tmpdir:
        tmp = Path(tmpdir)
        args = _curl_args(tls, headers, method, data, data_file, upload_file, chunked, http10,
                          unix_socket, timeout, extra, tmp)
        args += ["-D", str(tmp / "headers"), "-w",
                 _WRITE_OUT_MARK.replace("\n", "\\n") +
                 "%{http_code} %{num_connects} %{http_version}\\n"]
        for i, url in enumerate(urls):
            args += ["-o", str(tmp / f"body-{i}"), url]
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout + 10)
        out = proc.stdout.decode("latin-1")
        stats = [line.split() for line in out.split(_WRITE_OUT_MARK.strip("\n"))[1:]]
        header_blocks = []
        if (tmp / "headers").exists():
            header_blocks = [b for b in _parse_header_blocks((tmp / "headers").read_bytes())
                             if not 100 <= b[0] < 200 or b[0] == 101]
        results = []
        wants_h2 = HTTP2 and "--http1.1" not in extra and not http10 and not unix_socket
        for i in range(len(urls)):
            status, connects = 0, 0
            if i < len(stats) and len(stats[i]) >= 2:
                status, connects = int(stats[i][0]), int(stats[i][1])
            if wants_h2 and status != 0 and urls[i].startswith("https://") and \
                    stats[i][2:] != ["2"]:
                # An HTTP/2 run of a suite must not pass by falling back to HTTP/1.1.
                raise AssertionError(f"{urls[i]}: HTTP/{stats[i][2:]} where HTTP/2 was asked for")
            body_path = tmp / f"body-{i}"
            body = body_path.read_bytes() if body_path.exists() else b""
            hdrs = header_blocks[i][1] if i < len(header_blocks) else []
            results.append(CurlResult(proc.returncode, status, hdrs, body, connects,
                                      proc.stderr.decode(errors="replace")))
        return results


def curl(url: str, **kwargs) -> CurlResult:
    """One request with curl; see curl_many for the keyword arguments."""
    return curl_many([url], **kwargs)[0]


class StreamingCurl:
    """curl --no-buffer in the background; the body is read line by line with arrival times."""

    def __init__(self, url: str, tls: Optional[TlsClient] = None, headers: Sequence[str] = (),
                 http10: bool = False, unix_socket: Optional[str] = None,
                 timeout: float = 60.0, extra: Sequence[str] = ()):
        with tempfile.TemporaryDirectory(prefix="curl-") as tmpdir:
            args = _curl_args(tls, headers, None, None, None, None, False, http10, unix_socket,
                              timeout, extra, Path(tmpdir))
        args += ["--no-buffer", url]
        self.started = time.monotonic()
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: List[Tuple[float, bytes]] = []  # (seconds since start, line incl. \n)
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in iter(self.popen.stdout.readline, b""):
            with self._cond:
                self.lines.append((time.monotonic() - self.started, line))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_lines(self, count: int, timeout: float) -> List[Tuple[float, bytes]]:
        """Waits until `count` lines arrived (or EOF, or the timeout); returns those seen."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.lines) < count and not self._eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self.lines)

    def wait_eof(self, timeout: float) -> Tuple[float, int]:
        """Waits for curl to finish; returns (seconds since start, curl exit code)."""
        self.popen.wait(timeout)
        self._reader.join(timeout)
        return time.monotonic() - self.started, self.popen.returncode

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        self._reader.join(5)
        self.popen.stdout.close()
        self.popen.stderr.close()


# ---------------------------------------------------------------------------------------------
# Raw sockets (what curl cannot do: upgrades, malformed requests)


def tls_connect(port: int, client: "TlsClient", host: str = "127.0.0.1",
                timeout: float = 5.0, alpn: Sequence[str] = ()) -> ssl.SSLSocket:
    """A TLS connection presenting the client's certificate (if any), verifying the server;
    `alpn` lists the protocols to offer."""
    raw = socket.create_connection((host, port), timeout=timeout)
    context = client_tls_context(client)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context.wrap_socket(raw, server_hostname=host)


def client_tls_context(client: "TlsClient") -> ssl.SSLContext:
    """What curl would use for `client`: its CA bundle, and its certificate if it has one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(client.cacert))
    if client.cert:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


class BufferedTlsClient:
    """TLS over a plain socket through memory BIOs, so a test decides which TLS records share one
    send(): several pipelined requests in one segment, or a request in the same flight as the
    handshake's Finished. A server must answer all of them without waiting for more bytes."""

    def __init__(self, port: int, client: "TlsClient", host: str = "127.0.0.1",
                 timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.tls = client_tls_context(client).wrap_bio(self._incoming, self._outgoing,
                                                       server_hostname=host)
        self._plain = b""

    def __enter__(self) -> "BufferedTlsClient":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self._incoming.write(data)

    def handshake(self, send_last_flight: bool = True) -> None:
        """With send_last_flight=False the client's Finished stays queued for the next flush()."""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._receive()
        if send_last_flight:
            self.flush()

    def queue(self, data: bytes) -> None:
        """Encrypts data (one record per 16 KiB) without sending it."""
        self.tls.write(data)

    def flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def _read_plain(self) -> None:
        while True:
            try:
                self._plain += self.tls.read(65536)
                return
            except ssl.SSLWantReadError:
                self._receive()

    def read_response(self) -> Tuple[bytes, bytes]:
        """One response framed by Content-Length: (head, body)."""
        while b"\r\n\r\n" not in self._plain:
            self._read_plain()
        head, _, self._plain = self._plain.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(self._plain) < length:
            self._read_plain()
        body, self._plain = self._plain[:length], self._plain[length:]
        return head, body


def read_http_head(sock: socket.socket, timeout: float = 5.0) -> Tuple[bytes, bytes]:
    """Reads until the end of a response head; returns (head, bytes already read past it)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def recv_exactly(sock: socket.socket, n: int, already: bytes = b"",
                 timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = already
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


# ---------------------------------------------------------------------------------------------
# Sample backend


class SampleBackend:
    """The sample backend on a free port (TCP) or a Unix socket."""

    def __init__(self, log_dir: Path, unix_socket: Optional[Path] = None,
                 port: int = 0, watch_interval: float = 1.0, name: str = "sample-backend",
                 log_headers: bool = False):
        listen = f"unix://{unix_socket}" if unix_socket else f"127.0.0.1:{port}"
        self.unix_socket = str(unix_socket) if unix_socket else None
        self.process = Process(name, [require_binary("sample/sample-backend"), "--listen", listen,
                                      "--watch-interval", str(watch_interval)] +
                               (["--log-headers"] if log_headers else []), log_dir)
        match = self.process.wait_for_log(r"^listening on (\S+)$")
        self.address = match.group(1)
        self.port = None if unix_socket else int(self.address.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        """Base URL for curl (with unix_socket=self.unix_socket for the Unix socket case)."""
        return "http://localhost" if self.unix_socket else f"http://127.0.0.1:{self.port}"

    @property
    def upstream(self) -> str:
        """The proxy's --upstream value for this backend."""
        return f"unix://{self.unix_socket}" if self.unix_socket else self.url

    def stop(self) -> None:
        self.process.stop()


# ---------------------------------------------------------------------------------------------
# unittest glue


class E2ETestCase(unittest.TestCase):
    """Starts processes through self.start(); stops them after each test and prints their logs
    to stderr when the test failed."""

    def setUp(self) -> None:
        super().setUp()
        self._processes: List[Process] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{type(self).__name__}-",
                                         dir=os.environ.get("TEST_TMPDIR")))
        # Unix socket paths must fit in 108 bytes; Bazel's TEST_TMPDIR is too deep for that.
        self.sock_dir = Path(tempfile.mkdtemp(prefix="aa-e2e-", dir="/tmp"))
        self.addCleanup(shutil.rmtree, self.sock_dir, True)
        self.addCleanup(self._teardown_processes)

    def start(self, name: str, argv: Sequence[str], env: Optional[Dict[str, str]] = None
              ) -> Process:
        process = Process(name, argv, self.tmp, env)
        self._processes.append(process)
        return process

    def adopt(self, process: Process) -> Process:
        self._processes.append(process)
        return process

    def start_backend(self, **kwargs) -> SampleBackend:
        backend = SampleBackend(self.tmp, **kwargs)
        self._processes.append(backend.process)
        return backend

    def _failed(self) -> bool:
        """Whether this test has failed so far (cleanups run after the test body)."""
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        if result is not None and hasattr(result, "failures"):  # Python >= 3.11
            for test, _ in list(result.failures) + list(result.errors):
                if test is self or getattr(test, "test_case", None) is self:
                    return True
        # Python <= 3.10 collects errors on the outcome until the test ends.
        return any(error for _, error in getattr(outcome, "errors", []))

    def _teardown_processes(self) -> None:
        failed = self._failed()
        for process in reversed(self._processes):
            process.stop()
        reports = [(process, report) for process in self._processes
                   for report in sanitizer_reports(_read_log(process))]
        if failed:
            for process in self._processes:
                text = process.log_text()
                for report in sanitizer_reports(text):  # printed once, whole, below
                    text = text.replace(report, "(sanitizer report: see below)")
                sys.stderr.write(f"\n===== log of {process.name} (pid {process.pid}) =====\n")
                sys.stderr.write(text[-20000:])
        for process, report in reports:
            sys.stderr.write(f"\n===== sanitizer report of {process.name} (pid {process.pid}) "
                             f"=====\n{report}\n")
        if not failed and not reports:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if reports:
            # Also a report from the drain at exit, after the test's own checks passed.
            raise AssertionError(f"{len(reports)} sanitizer report(s) in the logs of "
                                 f"{sorted({p.name for p, _ in reports})}")


def _read_log(process: Process) -> str:
    """The process's log, or "" once a teardown that ran before this one removed it."""
    try:
        return process.log_text()
    except OSError:
        return ""


# What a sanitizer-built child (tools/tsan.sh, --config=asan) writes when it finds a bug: up to
# TSan's closing "=====" line, or (ASan, which then aborts) to the end of the log.
_SANITIZER_REPORT = re.compile(
    r"^(?:WARNING: ThreadSanitizer:|==\d+==ERROR: (?:Address|Leak)Sanitizer:).*?(?=^=+$|\Z)",
    re.MULTILINE | re.DOTALL)


def sanitizer_reports(log: str) -> List[str]:
    """The ThreadSanitizer and AddressSanitizer reports in a process log."""
    return [m.group(0).rstrip() for m in _SANITIZER_REPORT.finditer(log)]
