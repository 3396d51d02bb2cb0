"""A compromised stand-in for plugvisor-worker, for tests: it speaks the real handshake
(hello, load, ready) on fd 3, then misbehaves as its plugin's name (argv[2]) says. A plugin
named real-* runs the real worker (argv[1]) instead, so that one supervisor can host both.

huge-memory     answers each call claiming 2^63-1 bytes of guest memory
lying-code      answers each call with error code "timeout", which only the supervisor gives
stops-reading   reads nothing after ready (a large call fills the socket), never answers
floods-host     answers a call with host requests, endlessly, reading no host_result
log-flood       logs frames just under the log ceiling for 3 s, then answers
oversize-log    answers with one log frame over the log ceiling
giant-frame     answers with a frame announcing 16 MiB (the channel's ceiling), then its bytes
burst           answers with frames at each ceiling: log frames, a host request, a ~9 MiB result
stale-frame     answers each call, then sends an extra result nobody asked for
closes-channel  closes fd 3 in the middle of a call and lingers
escape-text     writes newlines and terminal escapes everywhere a worker writes text, then exits
forges-host-function  asks for host function "secret", which its manifest does not grant, and
                answers the call with what the supervisor said
"""
import json
import os
import struct
import sys
import time

real_worker, plugin = sys.argv[1], sys.argv[2]
if plugin.startswith("real-"):
    os.execv(real_worker, [real_worker, plugin])
mode = plugin

FORGED = "2000-01-01T00:00:00+0000 critical plugvisor.supervisor: plugin=good [Plugvisor] forged line"
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31m\r\u202e"


def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(3, n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def receive():
    (length,) = struct.unpack(">I", read_exact(4))
    return json.loads(read_exact(length))


def frame(message):
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body


def send(message):
    os.write(3, frame(message))


def result(call, **fields):
    return {"type": "result", "id": call["id"], "stats": {"micros": 1, "memoryBytes": 65536}, **fields}


def answer(call):
    return result(call, payload={"success": True, "data": "from the fake worker"})


def log(message):
    return {"type": "log", "level": "info", "message": message}


send({"type": "hello", "plugvisor": 2, "pid": os.getpid()})
receive()  # load
version = "1.0" + ESCAPES + "\n" + FORGED if mode == "escape-text" else "1.0"
send({"type": "ready", "meta": {"name": plugin, "version": version}, "exports": [], "imports": [], "memoryBytes": 65536})
if mode == "escape-text":
    os.write(2, ("stderr " + ESCAPES + "\n" + FORGED + "\n").encode())

if mode == "stops-reading":
    time.sleep(3600)

while True:
    call = receive()
    if mode == "huge-memory":
        send(result(call, payload={"success": True, "data": 1}, stats={"micros": 1, "memoryBytes": 2**63 - 1}))
    elif mode == "lying-code":
        send(result(call, error={"code": "timeout", "message": "I am not really timing out"}))
    elif mode == "floods-host":
        for n in range(1, 10**9):
            send({"type": "host", "id": n, "op": "nothing", "request": {}})
    elif mode == "forges-host-function":
        send({"type": "host", "id": 1, "op": "host_function", "request": {"name": "secret", "input": ""}})
        said = receive()
        send(result(call, payload={"success": True, "data": said.get("result")}))
    elif mode == "log-flood":
        line = log("flood " + "x" * (6 * 4096 + 60000))
        until = time.monotonic() + 3
        while time.monotonic() < until:
            send(line)
        send(answer(call))
    elif mode == "oversize-log":
        send(log("x" * (6 * 4096 + 70000)))
        send(answer(call))
    elif mode == "giant-frame":
        os.write(3, struct.pack(">I", 16 * 1024 * 1024))
        chunk = b" " * (1024 * 1024)
        for _ in range(16):
            os.write(3, chunk)
    elif mode == "burst":
        for _ in range(8):
            send(log("burst " + "x" * (6 * 4096 + 60000)))
        send({"type": "host", "id": 1, "op": "nothing", "request": {"filler": "x" * (4 * 1024 * 1024)}})
        receive()  # host_result
        send(result(call, payload={"success": True, "data": "x" * (9 * 1024 * 1024)}))
    elif mode == "stale-frame":
        # One write: the stale result is already there when the next caller comes.
        os.write(3, frame(answer(call)) + frame(result(call, payload={"success": True, "data": "stale"})))
    elif mode == "closes-channel":
        os.close(3)
        time.sleep(3600)
    elif mode == "escape-text":
        send(log("guest " + ESCAPES + "\n" + FORGED))
        send(result(call, error={"code": "trap", "message": "trapped " + ESCAPES + "\n" + FORGED}))
        sys.exit(3)  # so that its stderr becomes the plugin's last error
    else:
        send(answer(call))
