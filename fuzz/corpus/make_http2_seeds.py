#!/usr/bin/env python3
"""Writes the http2_session_fuzzer seeds (HTTP/2 client frames, HPACK without Huffman coding)
into fuzz/corpus/http2_session/. Byte 0 of each seed holds the target's options (bit 0: the
target prepends the client preface; bit 1: GOAWAY after the first request; bits 2-7: read
size / 16, 0 = all at once)."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http2_session")

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 2, 3, 4, 6, 7, 8, 9)
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(
        ">I", stream) + payload


def literal(name, value):
    """Literal header field without indexing, new name (RFC 7541 6.2.2), 7-bit lengths."""
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def block(*fields):
    return b"".join(literal(n, v) for n, v in fields)


def request(method, path, *extra):
    return block((":method", method), (":scheme", "https"), (":authority", "aa-proxy:8443"),
                 (":path", path), *extra)


SETTINGS_EMPTY = frame(SETTINGS, 0, 0)

SEEDS = {
    "get": (0x01, SETTINGS_EMPTY + frame(
        HEADERS, END_HEADERS | END_STREAM, 1,
        request("GET", "/api/v1/namespaces/default/pods?watch=1", ("accept", "application/json")))),
    "post_with_body": (0x05, SETTINGS_EMPTY + frame(
        HEADERS, END_HEADERS, 1,
        request("POST", "/apis/g/v1/namespaces/ns/things", ("content-length", "4"),
                ("content-type", "application/json"))) + frame(DATA, END_STREAM, 1, b"{}\r\n")),
    "trailers": (0x01, SETTINGS_EMPTY + frame(
        HEADERS, END_HEADERS, 1, request("PUT", "/upload", ("te", "trailers"),
                                         ("trailer", "x-checksum"))) + frame(DATA, 0, 1, b"x") +
                 frame(HEADERS, END_HEADERS | END_STREAM, 1, block(("x-checksum", "1")))),
    "continuation": (0x01, SETTINGS_EMPTY + frame(
        HEADERS, 0, 1, request("GET", "/healthz")) + frame(
            CONTINUATION, END_HEADERS | END_STREAM, 1,
            block(("cookie", "a=1"), ("cookie", "b=2"), ("host", "other"),
                  ("x-remote-user", "spoofed")))),
    "streams_and_reset": (0x01, SETTINGS_EMPTY + b"".join(
        frame(HEADERS, END_HEADERS | (END_STREAM if i % 2 else 0), i,
              request("GET", "/apis/g/v1/things/%d" % i)) for i in (1, 3, 5, 7, 9)) +
                          frame(RST_STREAM, 0, 3, struct.pack(">I", 8)) +
                          frame(DATA, END_STREAM, 5, b"late")),
    "control_frames": (0x09, SETTINGS_EMPTY + frame(SETTINGS, ACK, 0) +
                       frame(PING, 0, 0, b"12345678") +
                       frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20)) +
                       frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 15)) +
                       frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)) +
                       frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0))),
    "goaway_after_first": (0x03, SETTINGS_EMPTY + frame(
        HEADERS, END_HEADERS | END_STREAM, 1, request("GET", "/a")) + frame(
            HEADERS, END_HEADERS | END_STREAM, 3, request("GET", "/b"))),
    "invalid_fields": (0x01, SETTINGS_EMPTY + frame(
        HEADERS, END_HEADERS | END_STREAM, 1,
        request("GET", "/x", ("Upper-Case", "v"), ("connection", "keep-alive"),
                ("x-nul", "a\x00b")))),
    "connect": (0x01, SETTINGS_EMPTY + frame(
        HEADERS, END_HEADERS, 1, block((":method", "CONNECT"),
                                       (":authority", "example.com:443")))),
    "no_preface": (0x00, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
}

os.makedirs(OUT, exist_ok=True)
for name, (options, payload) in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([options]) + payload)
