#!/usr/bin/env python3
"""RTCP for a recorded call: sends an RTCP compound packet (SR + SDES CNAME) every second from
LOCAL_IP:LOCAL_PORT to REMOTE_IP:REMOTE_PORT for DURATION seconds, then an RTCP BYE. The sender
counts follow the sipp G.711 audio (30 ms packets of 240 bytes). Used by pcaps/record.sh only."""
import socket
import struct
import sys
import time

local_ip, local_port, remote_ip, remote_port, duration, ssrc = sys.argv[1:7]
ssrc = int(ssrc, 16)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind((local_ip, int(local_port)))
dest = (remote_ip, int(remote_port))
cname = f"rec@{local_ip}".encode()


def sdes():
    item = bytes([1, len(cname)]) + cname + b"\x00"
    while (len(item) + 4) % 4:
        item += b"\x00"
    body = struct.pack("!I", ssrc) + item
    return struct.pack("!BBH", 0x81, 202, len(body) // 4) + body


start = time.time()
while time.time() - start < float(duration):
    time.sleep(1.0)
    now = time.time()
    ntp = now + 2208988800
    sent = int((now - start) / 0.03)
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, int(ntp), int((ntp % 1) * 2**32),
                     int((now - start) * 8000) & 0xFFFFFFFF, sent, sent * 240)
    sock.sendto(sr + sdes(), dest)
bye = struct.pack("!BBHI", 0x81, 203, 1, ssrc)
rr = struct.pack("!BBHI", 0x80, 201, 1, ssrc)
sock.sendto(rr + bye, dest)
time.sleep(0.5)  # keep the port open for the peer's BYE
