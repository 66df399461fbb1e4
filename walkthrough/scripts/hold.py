#!/usr/bin/env python3
"""Holds many idle MQTT connections open, to measure what one costs the broker.

Chapter 09, "Try it":

    python3 walkthrough/scripts/hold.py PORT COUNT SECONDS

opens COUNT connections to 127.0.0.1:PORT, one after the other. Each sends CONNECT
(Client Identifier `hold-<i>`, Clean Session 1, Keep Alive 0, so the broker never times
it out), waits for its CONNACK, subscribes to `hold/<i>` at QoS 0 and waits for its
SUBACK. Then it prints `holding COUNT connections` and sleeps SECONDS seconds, so you can
look at the broker (`/proc/PID/status`, `/proc/PID/smaps`, gdb), and exits, which closes
them all.
"""
import socket
import struct
import sys
import time


def string(text):
    """A UTF-8 string with its two-byte length (§1.5.3)."""
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def packet(first_byte, body):
    """A packet with a one-byte Remaining Length: every body here is under 128 bytes."""
    assert len(body) < 128
    return bytes([first_byte, len(body)]) + body


def receive(sock, size):
    """Exactly `size` bytes, or an error if the broker closes the connection first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def hold(port, i):
    sock = socket.create_connection(("127.0.0.1", port))
    # CONNECT: protocol "MQTT", level 4, flags 0x02 (Clean Session), Keep Alive 0.
    connect = string("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 0) + string(f"hold-{i}")
    sock.sendall(packet(0x10, connect))
    connack = receive(sock, 4)
    assert connack == b"\x20\x02\x00\x00", f"CONNACK {connack.hex(' ')}"
    # SUBSCRIBE (flags 0010): Packet Identifier 1, "hold/<i>" at QoS 0.
    subscribe = struct.pack(">H", 1) + string(f"hold/{i}") + b"\x00"
    sock.sendall(packet(0x82, subscribe))
    suback = receive(sock, 5)
    assert suback == b"\x90\x03\x00\x01\x00", f"SUBACK {suback.hex(' ')}"
    return sock


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: hold.py PORT COUNT SECONDS")
    port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    sockets = [hold(port, i) for i in range(count)]
    print(f"holding {len(sockets)} connections", flush=True)
    time.sleep(seconds)


if __name__ == "__main__":
    main()
