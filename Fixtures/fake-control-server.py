"""A squatter on a control socket, for tests: listens on SOCKET (argv[1]), records every byte a
client sends into RECORD (argv[2]) and answers each connection with a forged successful call
result, as another user's process could. Exits after 30 s, so that it never outlives a test.

Prints "listening" on stdout once the socket is bound.
"""
import json
import os
import socket
import struct
import sys

path, record = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o600)
server.listen(8)
server.settimeout(30)
print("listening", flush=True)

forged = json.dumps({"result": {"success": True, "data": "forged by the squatter"}}).encode()
while True:
    try:
        client, _ = server.accept()
    except socket.timeout:
        break
    client.settimeout(2)
    received = b""
    try:
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
            if len(received) >= 4 and len(received) >= 4 + struct.unpack(">I", received[:4])[0]:
                break
    except socket.timeout:
        pass
    with open(record, "ab") as f:
        f.write(received)
    try:
        client.sendall(struct.pack(">I", len(forged)) + forged)
    except OSError:
        pass
    client.close()
