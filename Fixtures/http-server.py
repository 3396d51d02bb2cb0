#!/usr/bin/env python3
"""A loopback HTTP server for tests: prints its port, then serves until killed.

/hello     200 "hello from the host"
/big       200 with 2 MiB of body (over the broker's 1 MiB limit)
/redirect  302 to a host no manifest allows
/slow      answers after 10 s
/pause     200 "after a pause", after 0.5 s
"""
import http.server
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/hello":
            self.answer(200, b"hello from the host")
        elif self.path == "/big":
            self.answer(200, b"x" * (2 << 20))
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://not-allowed.invalid/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/pause":
            time.sleep(0.5)
            self.answer(200, b"after a pause")
        elif self.path == "/slow":
            time.sleep(10)
            self.answer(200, b"late")
        else:
            self.answer(404, b"not found")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
