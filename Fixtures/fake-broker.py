"""A hostile stand-in for plugvisor-broker, for tests: reads request frames on fd 3 and answers
as MODE (argv[1]) says.

garbage   answers the first request with bytes that are not a frame, then hangs
wrong-id  answers each request first under an id nobody asked for, then properly
"""
import json
import os
import struct
import sys
import time

mode = sys.argv[1]


def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(3, n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def send(message):
    body = json.dumps(message).encode()
    os.write(3, struct.pack(">I", len(body)) + body)


while True:
    (length,) = struct.unpack(">I", read_exact(4))
    request = json.loads(read_exact(length))
    if mode == "garbage":
        os.write(3, b"\xff\xff\xff\xffnot a frame")
        time.sleep(60)
    else:
        send({"id": request["id"] + 1000, "result": {"status": 666}})
        send({"id": request["id"], "result": {"status": 299, "headers": {}, "body": "from the fake broker"}})
