"""HTTP/2 as clients see it: ALPN, multiplexing, streaming, memory, shutdown.

The authentication, authorization and data-plane suites also run whole over HTTP/2
(//e2e:authn_test_h2, //e2e:authz_test_h2, //e2e:proxy_test_h2); this suite covers what only
HTTP/2 has. Standalone mode, as e2e/proxy_test.py (static policy, client certificates), plus a
proxy that also lets anonymous clients read, for h2load, which cannot present a certificate.
Hostile frames are in e2e/http2_frames_test.py.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from http2_frames_test import (CANCEL, DATA, END_HEADERS, END_STREAM, GOAWAY,  # noqa: E402
                               HEADERS, RST_STREAM, H2Client, frame, goaways, hpack,
                               request_fields)
from proxy_test import ProxyTestBase  # noqa: E402
from sample_backend_test import GV, LIST_DEFAULT  # noqa: E402

H2LOAD = shutil.which("h2load")
WATCH = GV + "/namespaces/default/samples?watch=true"
WINDOW_UPDATE = 0x8
ENHANCE_YOUR_CALM = 0xb


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, increment.to_bytes(4, "big"))


class Http2Test(ProxyTestBase):

    def metric(self, name: str) -> float:
        result = self.get("/metrics")
        match = re.search(r"^" + re.escape(name) + r" (\S+)$", result.text, re.MULTILINE)
        self.assertIsNotNone(match, result.text[:300])
        return float(match.group(1))

    def access_log(self) -> list:
        return re.findall(r'access_log\.cc:\d+\] (".*)$', self.proxy.log_text(), re.MULTILINE)

    def test_alpn_prefers_h2_and_http1_still_works(self):
        h2 = self.get(GV + "/namespaces/default/samples", extra=["--http2"])
        h1 = self.get(GV + "/namespaces/default/samples", extra=["--http1.1"])
        self.assertEqual((h2.status, h2.body), (200, LIST_DEFAULT))
        self.assertEqual((h1.status, h1.body), (200, LIST_DEFAULT))
        protocols = [line.rsplit(" ", 1)[1] for line in self.access_log()
                     if "/namespaces/default/samples" in line]
        self.assertEqual(protocols, ["protocol=HTTP/2.0", "protocol=HTTP/1.1"])
        # Counted too. HTTP/1.1: the start-up /healthz probe, the list, the first /metrics read
        # (a read is counted after its page is rendered).
        self.assertEqual(self.metric('aaproxy_requests_total{protocol="HTTP/2.0"}'), 1)
        self.assertEqual(self.metric('aaproxy_requests_total{protocol="HTTP/1.1"}'), 3)

    def test_http2_off_offers_only_http1(self):
        self.proxy.stop()
        self.proxy = self.start_proxy(self.backend.upstream, ["--http2=false"])
        result = self.get(GV, extra=["--http2"])
        self.assertEqual(result.status, 200)
        self.assertEqual(self.access_log()[-1].rsplit(" ", 1)[1], "protocol=HTTP/1.1")

    def test_streams_share_one_connection(self):
        # Eight requests in one curl run: with h2 they are streams on one connection.
        urls = [self.url + GV + f"/namespaces/ns{i}/samples" for i in range(8)]
        before = self.metric("aaproxy_tls_handshakes_total")
        results = harness.curl_many(urls, tls=self.alice, extra=["--http2", "--parallel"])
        self.assertEqual([r.status for r in results], [200] * 8)
        self.assertEqual(sum(r.num_connects for r in results), 1)
        # This run's handshake, and the /metrics read's own.
        self.assertEqual(self.metric("aaproxy_tls_handshakes_total") - before, 2)

    @unittest.skipIf(H2LOAD is None, "h2load (Debian nghttp2-client) is not installed")
    def test_h2load_100_concurrent_streams_on_one_connection(self):
        self.proxy.stop()
        policy = self.tmp / "anonymous-readers.yaml"
        policy.write_text(open(self.allow_authenticated_policy()).read() +
                          "  - groups: [\"system:unauthenticated\"]\n"
                          "    verbs: [\"list\"]\n"
                          "    apiGroups: [\"sample-api-server\"]\n"
                          "    resources: [\"samples\"]\n")
        self.proxy = self.start_proxy(self.backend.upstream, ["--anonymous-auth=true"],
                                      policy=str(policy))
        before = self.metric("aaproxy_tls_handshakes_total")
        result = subprocess.run([H2LOAD, "-n", "2000", "-c", "1", "-m", "100",
                                 self.url + GV + "/namespaces/default/samples"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Application protocol: h2", result.stdout)
        self.assertIn("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed",
                      result.stdout)
        self.assertIn("status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx", result.stdout)
        # h2load's one connection, and the /metrics read's.
        self.assertEqual(self.metric("aaproxy_tls_handshakes_total") - before, 2)

    def test_watch_events_arrive_as_the_backend_writes_them(self):
        # The backend writes an event at once and then one every 0.5 s: each must reach the
        # client within 100 ms of the backend's schedule, not when a buffer fills.
        self.backend.process.stop()
        self.backend = self.start_backend(watch_interval=0.5)
        self.proxy.stop()
        self.proxy = self.start_proxy(self.backend.upstream)
        stream = harness.StreamingCurl(self.url + WATCH, tls=self.alice, extra=["--http2"])
        try:
            lines = stream.wait_lines(4, timeout=10)
        finally:
            stream.close()
        self.assertEqual([json.loads(line).get("type", line) for _, line in lines],
                         ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED"])
        first = lines[0][0]
        for i, (at, _) in enumerate(lines[1:], start=1):
            self.assertAlmostEqual(at - first, 0.5 * i, delta=0.1,
                                   msg=f"event {i} at {at - first:.3f}s after the first")

    def test_one_gibibyte_download_memory_is_that_of_http1(self):
        h1 = self.download_peak_rss("--http1.1")
        h2 = self.download_peak_rss("--http2")
        sys.stderr.write(f"\npeak proxy VmRSS for 1 GiB: HTTP/1.1 {h1 / 2**20:.1f} MiB, "
                         f"HTTP/2 {h2 / 2**20:.1f} MiB\n")
        self.assertLess(h2 - h1, 8 * 2**20, f"HTTP/1.1 {h1 >> 20} MiB, HTTP/2 {h2 >> 20} MiB")

    def test_upload_is_streamed_not_buffered(self):
        payload = os.urandom(32 * 1024 * 1024 + 7)
        upload = self.tmp / "upload.bin"
        upload.write_bytes(payload)
        result = self.get("/debug/body", data_file=upload, timeout=60, extra=["--http2"])
        self.assertEqual(result.status, 200, result.stderr + result.text)
        import hashlib
        body = json.loads(result.body)
        self.assertEqual((body["length"], body["sha256"]),
                         (len(payload), hashlib.sha256(payload).hexdigest()))

    def test_sigterm_sends_goaway_and_the_watch_ends_cleanly(self):
        self.proxy.stop()
        self.proxy = self.start_proxy(self.backend.upstream, ["--shutdown-grace-period", "2s"])
        stream = harness.StreamingCurl(self.url + WATCH, tls=self.alice, extra=["--http2"])
        try:
            stream.wait_lines(1, timeout=10)
            os.kill(self.proxy.pid, signal.SIGTERM)
            # New connections are refused at once; the open stream goes on until the grace
            # period ends, then ends with END_STREAM: curl sees a complete response.
            harness.wait_until(lambda: not harness.tcp_accepts(self.port), timeout=5,
                               what="the listener to close")
            _, exit_code = stream.wait_eof(timeout=10)
            stderr = stream.popen.stderr.read().decode()
        finally:
            stream.close()
        self.assertEqual(exit_code, 0, stderr)
        self.assertEqual(self.proxy.popen.wait(timeout=10), 0)

    def test_idle_connection_gets_goaway_then_close(self):
        self.proxy.stop()
        self.proxy = self.start_proxy(self.backend.upstream, ["--idle-timeout", "1s"])
        with harness.tls_connect(self.port, self.alice, timeout=10, alpn=["h2"]) as s:
            self.assertEqual(s.selected_alpn_protocol(), "h2")
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            started = time.monotonic()
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            closed_after = time.monotonic() - started
        frames = []
        while len(data) >= 9:
            length = int.from_bytes(data[:3], "big")
            frames.append((data[3], data[9:9 + length]))
            data = data[9 + length:]
        goaways = [payload for kind, payload in frames if kind == 7]
        self.assertEqual(len(goaways), 1, frames)
        self.assertEqual(goaways[0][4:8], b"\x00\x00\x00\x00")  # NO_ERROR
        self.assertGreater(closed_after, 0.8)
        self.assertLess(closed_after, 5)

    def test_streams_after_the_connection_idled_are_served(self):
        # A second without open streams releases the connection's spare streams and empty
        # buffers, and keeps the session (HPACK tables, settings, windows): later streams are
        # served as before, and the idle timeout still counts from the last stream.
        self.proxy.stop()
        self.proxy = self.start_proxy(self.backend.upstream, ["--idle-timeout", "4s"])
        client = H2Client(self.port, self.alice)
        self.addCleanup(client.sock.close)
        bodies = []
        for stream_id in (1, 3, 5):
            client.send(frame(HEADERS, END_HEADERS | END_STREAM, stream_id,
                              hpack(request_fields(GV + "/namespaces/default/samples", "GET",
                                                   [("x-trace", "kept")]))))
            status, body, error = client.response(stream_id)
            self.assertEqual((status, error), (200, None), body)
            bodies.append(body)
            answered = time.monotonic()
            time.sleep(1.5)
        self.assertEqual(bodies, [LIST_DEFAULT] * 3)
        client.sock.settimeout(10)
        while client.sock.recv(4096):
            pass
        closed_after = time.monotonic() - answered
        self.assertGreater(closed_after, 3.5)
        self.assertLess(closed_after, 6)

    def test_serving_certificate_reload_reaches_new_h2_connections(self):
        serving = self.tmp / "serving"
        serving.mkdir()
        first = self.pki.pki.issue(self.pki.ca, "serving-1", "first.example",
                                   ext_key_usage="serverAuth", sans=["IP:127.0.0.1"])
        second = self.pki.pki.issue(self.pki.ca, "serving-2", "second.example",
                                    ext_key_usage="serverAuth", sans=["IP:127.0.0.1"])
        for name, source in (("tls.crt", first.cert), ("tls.key", first.key)):
            shutil.copy(source, serving / name)
        self.proxy.stop()
        self.proxy = self.start_proxy(self.backend.upstream, [
            "--tls-cert-file", serving / "tls.crt", "--tls-private-key-file", serving / "tls.key",
            "--tls-reload-interval", "200ms"])

        def subject_cn():
            with harness.tls_connect(self.port, self.alice, alpn=["h2"]) as s:
                self.assertEqual(s.selected_alpn_protocol(), "h2")
                return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]

        self.assertEqual(subject_cn(), "first.example")
        for name, source in (("tls.key", second.key), ("tls.crt", second.cert)):
            shutil.copy(source, serving / (name + ".tmp"))
            os.replace(serving / (name + ".tmp"), serving / name)
        harness.wait_until(lambda: subject_cn() == "second.example", timeout=10,
                           what="new connections to get the new certificate")
        self.assertEqual(self.get(GV, extra=["--http2"]).status, 200)

    def post_with_trailers(self, extra, trailers):
        """/debug/body's report of a 5-byte POST with `extra` fields, ended by `trailers`."""
        client = H2Client(self.port, self.alice)
        self.addCleanup(client.sock.close)
        client.send(frame(HEADERS, END_HEADERS, 1,
                          hpack(request_fields("/debug/body", "POST", extra))),
                    frame(DATA, 0, 1, b"hello"),
                    frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack(trailers)))
        status, body, error = client.response(1)
        self.assertEqual((status, error), (200, None), body)
        return json.loads(body)

    def test_announced_trailers_make_a_sized_upload_chunked(self):
        # A Content-Length body cannot carry trailers to the backend: one whose request announces
        # trailers goes chunked (the length is dropped), as Go's transport sends it.
        report = self.post_with_trailers([("content-length", "5"), ("trailer", "x-checksum")],
                                         [("x-checksum", "abc")])
        self.assertEqual((report["transferEncoding"], report["contentLength"], report["length"]),
                         ("chunked", "", 5))
        self.assertEqual(report["trailers"], [["X-Checksum", "abc"]])
        # Unannounced, the upload keeps its length; trailers that then come have nowhere to go.
        report = self.post_with_trailers([("content-length", "5")], [("x-checksum", "abc")])
        self.assertEqual((report["transferEncoding"], report["contentLength"], report["length"]),
                         ("", "5", 5))
        self.assertNotIn("trailers", report)

    def restart_with_stall_timeout(self, timeout: str) -> None:
        self.proxy.stop()
        self.proxy = self.start_proxy(self.backend.upstream, ["--http2-stall-timeout", timeout])

    def backend_abandoned(self, marker: str) -> bool:
        """Whether the backend saw its connection for the request tagged `marker` closed
        mid-response (rather than kept, or returned to the proxy's pool)."""
        return re.search(r"^sample-backend: connection closed by the client during GET \S*" +
                         re.escape(marker), self.backend.process.log_text(), re.MULTILINE)

    def test_zero_window_connection_gets_goaway_and_is_closed(self):
        # A client that never sends WINDOW_UPDATE: the proxy sends the 65535 bytes its window
        # allows, then nothing can move. After --http2-stall-timeout (and before twice that)
        # the connection gets GOAWAY ENHANCE_YOUR_CALM and is closed, and the backend
        # connection of its stream goes with it.
        self.restart_with_stall_timeout("1s")
        client = H2Client(self.port, self.alice)
        self.addCleanup(client.sock.close)
        started = time.monotonic()
        client.request(1, request_fields("/debug/bytes?n=100000000&case=zero-window"))
        frames = client.read_to_close(timeout=10)
        closed_after = time.monotonic() - started
        self.assertTrue(client.closed)
        self.assertEqual(sum(len(f.payload) for f in frames if f.type == DATA and f.stream == 1),
                         65535)
        self.assertEqual([(f.error_code(), f.payload[8:]) for f in goaways(frames)],
                         [(ENHANCE_YOUR_CALM, b"flow-control window closed too long")])
        self.assertGreater(closed_after, 0.9)
        self.assertLess(closed_after, 4)
        harness.wait_until(lambda: self.backend_abandoned("case=zero-window"), timeout=5,
                           what="the backend connection to be closed")
        self.assertEqual(
            self.metric('aaproxy_http2_flow_control_stalls_total{scope="connection"}'), 1)
        self.assertEqual(self.get(GV, extra=["--http2"]).status, 200)

    def test_stalled_stream_is_reset_while_the_connection_moves(self):
        # Stream 1's window stays shut while stream 3 is read (slowly, but all the time): only
        # stream 1 goes, with its backend connection; the connection and stream 3 carry on.
        self.restart_with_stall_timeout("1s")
        client = H2Client(self.port, self.alice)
        self.addCleanup(client.sock.close)
        client.request(1, request_fields("/debug/bytes?n=100000000&case=stalled-stream"))
        client.request(3, request_fields("/debug/bytes?n=100000000&case=moving-stream"))
        started, reset, after_reset = time.monotonic(), None, 0
        while time.monotonic() - started < 8 and after_reset < 200000:
            f = client.read_frame(timeout=5)
            self.assertIsNotNone(f, "the connection was closed")
            self.assertNotEqual(f.type, GOAWAY, f)
            if f.type == RST_STREAM:
                self.assertEqual((f.stream, f.error_code()), (1, ENHANCE_YOUR_CALM))
                reset = time.monotonic() - started
            elif f.type == DATA and f.payload:
                # The connection window always, stream 3's too; about 300 KiB/s for stream 3.
                client.send(window_update(0, len(f.payload)),
                            *([window_update(3, len(f.payload))] if f.stream == 3 else []))
                if f.stream == 3:
                    after_reset += len(f.payload) if reset is not None else 0
                    time.sleep(len(f.payload) / 300000)
        self.assertIsNotNone(reset, "stream 1 was not reset")
        self.assertGreater(reset, 0.9)
        self.assertLess(reset, 4)
        self.assertGreaterEqual(after_reset, 200000, "stream 3 stopped with stream 1")
        harness.wait_until(lambda: self.backend_abandoned("case=stalled-stream"), timeout=5,
                           what="the backend connection of stream 1 to be closed")
        self.assertFalse(self.backend_abandoned("case=moving-stream"))
        self.assertEqual(self.metric('aaproxy_http2_flow_control_stalls_total{scope="stream"}'), 1)
        self.assertEqual(
            self.metric('aaproxy_http2_flow_control_stalls_total{scope="connection"}'), 0)

    def test_client_that_stops_reading_the_socket_is_closed(self):
        # Windows wide open, but the client reads nothing: the proxy's socket buffer fills and
        # nothing more can be sent. The GOAWAY could not get through either, so the connection
        # is closed at once, with the stream's backend connection.
        self.restart_with_stall_timeout("1s")
        client = H2Client(self.port, self.alice, rcvbuf=4096)
        self.addCleanup(client.sock.close)
        client.request(1, request_fields("/debug/bytes?n=1000000000&case=unread-socket"))
        client.send(window_update(0, 2**31 - 1 - 65535), window_update(1, 2**31 - 1 - 65535))
        harness.wait_until(lambda: self.backend_abandoned("case=unread-socket"), timeout=10,
                           what="the backend connection to be closed")
        self.assertEqual(
            self.metric('aaproxy_http2_flow_control_stalls_total{scope="connection"}'), 1)
        client.read_to_close(timeout=10)  # what the kernel had buffered, then the close
        self.assertTrue(client.closed)

    def test_client_reset_closes_that_streams_backend_connection(self):
        # RST_STREAM in the middle of a large download: the stream's backend connection is
        # mid-response, so it is closed, never returned to the pool; the connection and its
        # other streams carry on (here over the same worker's pool).
        client = H2Client(self.port, self.alice)
        self.addCleanup(client.sock.close)
        client.request(1, request_fields("/debug/bytes?n=100000000&case=client-reset"))
        received = 0
        for f in client.read_until(lambda f: f.type == DATA and f.stream == 1):
            received += len(f.payload) if f.type == DATA else 0
        self.assertGreater(received, 0)
        client.send(frame(RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big")),
                    window_update(0, 65535))  # whatever stream 1 took of the connection window
        harness.wait_until(lambda: self.backend_abandoned("case=client-reset"), timeout=5,
                           what="the reset stream's backend connection to be closed")
        for stream in (3, 5):
            client.request(stream, request_fields(GV + "/namespaces/default/samples"))
            self.assertEqual(client.response(stream), (200, LIST_DEFAULT, None), stream)
        self.assertEqual(len(re.findall(r"^sample-backend: connection closed by the client",
                                        self.backend.process.log_text(), re.MULTILINE)), 1)
        self.assertTrue(self.proxy.alive())

    def test_waiting_on_the_backend_is_not_a_stall(self):
        # Nothing to send while the backend thinks: the stall timeout does not apply.
        self.restart_with_stall_timeout("1s")
        client = H2Client(self.port, self.alice)
        self.addCleanup(client.sock.close)
        client.request(1, request_fields("/debug/slow?ms=2500"))
        self.assertEqual(client.response(1, timeout=10), (200, b"slow\n", None))
        self.assertEqual(
            self.metric('aaproxy_http2_flow_control_stalls_total{scope="connection"}'), 0)

    def test_connection_preface_garbage_is_refused(self):
        # A client that negotiated h2 and then speaks HTTP/1.1 gets a GOAWAY and a close.
        with harness.tls_connect(self.port, self.alice, timeout=5, alpn=["h2"]) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        # The server's SETTINGS went first (type 4); then the connection is closed, as Go's
        # server does on a bogus greeting, with no HTTP/1.1 answer.
        self.assertEqual(data[3], 4, data)
        self.assertNotIn(b"HTTP/1.1", data)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.get(GV).status, 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
