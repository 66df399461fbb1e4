#!/usr/bin/env python3
"""A subscriber that stops reading, and a publisher that does not wait for it.

Chapter 04, "A slow subscriber costs the publisher nothing". Start the broker first:

    RUST_LOG=info ./target/debug/mqttd -p 18845

then, in a second terminal:

    python3 walkthrough/scripts/slow_subscriber.py 18845

`slow-sub` (a 4 KiB receive buffer) subscribes to `slow/#` at QoS 0 and stops reading.
`fast-pub` sends 20 000 QoS 0 PUBLISH packets of 1000 bytes in one write, then a
PINGREQ, and times how long it takes to get the PINGRESP. Only then does `slow-sub`
read what was sent to it, until a second of silence, and count the PUBLISH packets.
Both send DISCONNECT at the end. The broker's log says how many were dropped.
"""
import socket
import struct
import sys
import time

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 18845
MESSAGES = 20000


def remaining_length(n):
    """The Remaining Length field (§2.2.3): 7 bits a byte, high bit = more follow."""
    out = b""
    while True:
        byte, n = n % 128, n // 128
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def string(text):
    """A UTF-8 string with its two-byte length (§1.5.3)."""
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def connect(client_id, receive_buffer=None):
    sock = socket.socket()
    if receive_buffer:
        # Before connect(), so the TCP window is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", PORT))
    # Protocol "MQTT", level 4, Clean Session 1, Keep Alive 60 s.
    body = string("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 60) + string(client_id)
    sock.sendall(b"\x10" + remaining_length(len(body)) + body)
    assert sock.recv(4) == b"\x20\x02\x00\x00", "CONNACK: accepted"
    return sock


def count_publishes(data):
    """How many PUBLISH packets (type 3) are in `data`, walking the fixed headers."""
    count, i = 0, 0
    while i < len(data):
        j, multiplier, length = i + 1, 1, 0
        while j < len(data):
            byte = data[j]
            j += 1
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            if not byte & 0x80:
                break
        if data[i] >> 4 == 3:
            count += 1
        i = j + length
    return count


subscriber = connect("slow-sub", receive_buffer=4096)
body = struct.pack(">H", 1) + string("slow/#") + b"\x00"  # id 1, "slow/#" at QoS 0
subscriber.sendall(b"\x82" + remaining_length(len(body)) + body)
subscriber.recv(5)  # SUBACK; from here on slow-sub reads nothing for a while

publisher = connect("fast-pub")
topic, payload = string("slow/t"), b"x" * 1000
publish = b"\x30" + remaining_length(len(topic) + len(payload)) + topic + payload
start = time.time()
publisher.sendall(publish * MESSAGES + b"\xc0\x00")  # then PINGREQ
answer = b""
while not answer.endswith(b"\xd0\x00"):
    answer += publisher.recv(16)
print("publisher got d0 00 after %.2f s" % (time.time() - start))

subscriber.settimeout(1.0)
received = b""
try:
    while True:
        chunk = subscriber.recv(65536)
        if not chunk:
            break
        received += chunk
except socket.timeout:
    pass
print("slow subscriber received %d PUBLISH of %d" % (count_publishes(received), MESSAGES))

for sock in (subscriber, publisher):
    sock.sendall(b"\xe0\x00")  # DISCONNECT
time.sleep(0.2)
