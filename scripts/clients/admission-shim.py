#!/usr/bin/env python3
"""A stand-in for Mender's deviceauth (and inventory) in front of a stack that has none (the
services with `standalone.enabled = false`, meant to sit behind Mender's own).

    admission-shim.py PORT_FILE UPSTREAM_URL DEVICE_TOKEN_FILE

Listens on a free port of 127.0.0.1 (written to PORT_FILE once listening). Answers
`POST /api/devices/v1/authentication/auth_requests` that carries `id_data` and `pubkey` with
the device token in DEVICE_TOKEN_FILE, as deviceauth answers an accepted device (signatures are
not checked: this is a test double), and forwards every other request to UPSTREAM_URL as it
came, except that inventory attributes the stack answers 404 are taken with 200. Used by
mender-client.sh only when the stack under test does not admit devices itself.
"""
import http.client
import http.server
import json
import os
import socketserver
import sys
import urllib.parse

PORT_FILE, UPSTREAM, TOKEN_FILE = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
UP = urllib.parse.urlsplit(UPSTREAM)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "host", "content-length"}
AUTH_REQUESTS = "/api/devices/v1/authentication/auth_requests"
INVENTORY = "/api/devices/v1/inventory/device/attributes"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("admission-shim: " + (fmt % args) + "\n")

    def reply(self, status, headers, body):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # The client's local proxy forwards bodies chunked.
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        body = self.read_body()
        if self.command == "POST" and urllib.parse.urlsplit(self.path).path == AUTH_REQUESTS:
            try:
                request = json.loads(body)
                json.loads(request["id_data"])
                assert "BEGIN PUBLIC KEY" in request["pubkey"]
            except Exception as error:  # noqa: BLE001 - any malformed request is a 400
                self.reply(400, [("Content-Type", "application/json")],
                           json.dumps({"error": f"bad auth request: {error}"}).encode())
                return
            with open(TOKEN_FILE, "rb") as f:
                token = f.read().strip()
            self.log_message("admitted %s", request["id_data"])
            self.reply(200, [("Content-Type", "application/jwt")], token)
            return
        conn_class = (http.client.HTTPSConnection if UP.scheme == "https"
                      else http.client.HTTPConnection)
        conn = conn_class(UP.netloc, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = UP.netloc
        try:
            conn.request(self.command, UP.path + self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            if answer.status == 404 and urllib.parse.urlsplit(self.path).path == INVENTORY:
                # No inventory service either: take the attributes, as inventory does (the
                # client retries a refused inventory for minutes before checking for updates).
                self.reply(200, [], b"")
                return
            self.reply(answer.status, answer.getheaders(), data)
        except OSError as error:
            self.reply(502, [("Content-Type", "application/json")],
                       json.dumps({"error": f"upstream: {error}"}).encode())
        finally:
            conn.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
