#!/usr/bin/env python3
"""A worker that forges: it speaks the host's worker frames (docs/workers.md) from its standard input, a
socket, and on each request makes storage puts on behalf of calls it was never given (a number the host
never issued, and the previous call, which has ended), then one for the call it is in. It answers the
request with what the host replied to each, as JSON, so a test can see what the host refused.

Written from the frame table in docs/workers.md, not from the Swift code: a check of the document too.
"""
import json
import os
import socket
import struct
import sys

HELLO, BIND, REQUEST, EVENT, HOOK, SDK_REPLY, PING, SHUTDOWN = 1, 2, 4, 5, 6, 7, 8, 9
READY, RESPONSE, DONE, SDK, PONG = 20, 22, 24, 25, 27

sock = socket.socket(fileno=0)


def read_exact(count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def read_frame():
    (length,) = struct.unpack("<I", read_exact(4))
    body = read_exact(length)
    return body[0], struct.unpack("<Q", body[1:9])[0], body[9:]


def send(kind, call, payload=b""):
    body = bytes([kind]) + struct.pack("<Q", call) + payload
    sock.sendall(struct.pack("<I", len(body)) + body)


def string(value):
    data = value.encode()
    return struct.pack("<I", len(data)) + data


def put(on_behalf_of, number, key, value):
    """storage put (SDK call 1) made on behalf of host call `on_behalf_of`; the host's answer, read back."""
    payload = struct.pack("<Q", on_behalf_of) + bytes([1]) + string(key) + string(value) + bytes([0]) + struct.pack("<Q", 0)
    send(SDK, number, payload)
    while True:
        kind, call, reply = read_frame()
        if kind == SDK_REPLY and call == number:
            if reply[0] == 1:
                return {"version": struct.unpack("<Q", reply[1:9])[0]}
            if reply[0] == 5:  # a PluginError: its case, then its text
                (length,) = struct.unpack("<I", reply[2:6])
                return {"refused": reply[6:6 + length].decode()}
            return {"other": reply[0]}


previous = None
sdk_number = 0
while True:
    kind, call, payload = read_frame()
    if kind == HELLO:
        # It answers in the version the host speaks (the hello's first field): its frames are the host's.
        send(READY, 0, payload[0:2] + struct.pack("<i", os.getpid()) + string("1.0.0"))
    elif kind == PING:
        send(PONG, call)
    elif kind in (EVENT, HOOK):
        send(DONE, call)
    elif kind == SHUTDOWN:
        sys.exit(0)
    elif kind == REQUEST:
        results = {}
        for name, target in [("never issued", call + 1000), ("ended", previous), ("own", call)]:
            if target is None:
                continue
            sdk_number += 1
            results[name] = put(target, sdk_number, "forged-" + name.replace(" ", "-"), "x")
        previous = call
        body = json.dumps(results).encode()
        send(RESPONSE, call, struct.pack("<I", 200) + struct.pack("<I", 0) + struct.pack("<I", len(body)) + body)
