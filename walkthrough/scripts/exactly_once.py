#!/usr/bin/env python3
"""A QoS 2 PUBLISH sent twice is routed once.

Chapter 04, "A QoS 2 re-send is not routed twice". With the broker running and, in
another terminal, `mosquitto_sub -h 127.0.0.1 -p PORT -t 'exactly/#' -v -C 2` listening:

    python3 walkthrough/scripts/exactly_once.py PORT

The client "me" sends PUBLISH "exactly/once" QoS 2 with Packet Identifier 42, the same
PUBLISH again with DUP 1, then PUBREL 42, printing each packet and the broker's answer
(PUBREC, PUBREC, PUBCOMP); then a QoS 0 marker on "exactly/marker", and DISCONNECT. The
subscriber prints the message once, then the marker.
"""
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 18844
s = socket.create_connection(("127.0.0.1", port))
# CONNECT: "MQTT", level 4, Clean Session, Keep Alive 60, client "me".
s.sendall(bytes.fromhex("10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 6d 65"))
assert s.recv(4) == bytes.fromhex("20 02 00 00"), "CONNACK: accepted"


def exchange(label, packet):
    s.sendall(packet)
    print(f"{label:24} sent {packet.hex(' ')}")
    print(f"{'':24} got  {s.recv(4).hex(' ')}")


# 0011 0100: PUBLISH, QoS 2; Remaining Length 17; topic; id 42; payload "m".
publish = bytes.fromhex("34 11 00 0c") + b"exactly/once" + bytes.fromhex("00 2a") + b"m"
exchange("PUBLISH qos 2 id 42", publish)
exchange("PUBLISH qos 2 id 42 DUP", bytes([0x3C]) + publish[1:])  # 0011 1100: DUP 1
exchange("PUBREL id 42", bytes.fromhex("62 02 00 2a"))
marker = bytes.fromhex("30 13 00 0e") + b"exactly/marker" + b"end"  # QoS 0
s.sendall(marker)
print(f"{'PUBLISH qos 0 marker':24} sent {marker.hex(' ')}")
s.sendall(bytes.fromhex("e0 00"))  # DISCONNECT
s.close()
