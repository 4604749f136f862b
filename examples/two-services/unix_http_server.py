#!/usr/bin/env python3
"""`python3 -m http.server` on a Unix socket: serves DIRECTORY at unix://SOCKET.

Usage: unix_http_server.py SOCKET DIRECTORY
"""
import functools
import http.server
import os
import socketserver
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def address_string(self):
        return "unix"  # a Unix socket peer has no address for the log line


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    socket_path, directory = sys.argv[1], sys.argv[2]
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    handler = functools.partial(Handler, directory=directory)
    with Server(socket_path, handler) as server:
        print(f"Serving {directory} on unix://{socket_path}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
