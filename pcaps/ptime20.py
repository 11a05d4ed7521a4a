#!/usr/bin/env python3
"""Derives g711-ptime20.pcap from g711-rtcp.pcap: the same call (SIP, RTCP) with its audio
re-packetised from 30 ms (240-byte) to 20 ms (160-byte) RTP packets, timestamps +160 and sequence
numbers +1 per packet, sent every 20 ms from the first recorded packet of each direction; the SDP's
a=ptime:30 becomes a=ptime:20. The shape of the capacity run (loadtest/media/capacity.sh): 50 packets
per second each way, as the SBC's G.711 media tests and rtpload use.

Usage: python3 pcaps/ptime20.py [IN OUT]   (default pcaps/g711-rtcp.pcap pcaps/g711-ptime20.pcap)
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 2 else os.path.join(HERE, "g711-rtcp.pcap")
dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "g711-ptime20.pcap")
AUDIO_PORTS = {10000, 20000}


def ip_checksum(hdr):
    s = sum(struct.unpack("!%dH" % (len(hdr) // 2), hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(eth, ip, sport, dport, payload):
    """An Ethernet/IPv4/UDP frame like `eth`+`ip` with a new UDP payload (UDP checksum 0)."""
    ihl = (ip[0] & 0x0F) * 4
    hdr = bytearray(ip[:ihl])
    struct.pack_into("!H", hdr, 2, ihl + 8 + len(payload))
    struct.pack_into("!H", hdr, 10, 0)
    struct.pack_into("!H", hdr, 10, ip_checksum(bytes(hdr)))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return eth + bytes(hdr) + udp + payload


with open(src, "rb") as f:
    data = f.read()
ghdr, off = data[:24], 24
records = []  # (time_us, frame)
streams = {}  # (src ip, sport, dst ip, dport) -> dict
while off + 16 <= len(data):
    sec, usec, incl, orig = struct.unpack("<IIII", data[off : off + 16])
    pkt = data[off + 16 : off + 16 + incl]
    off += 16 + incl
    t = sec * 1_000_000 + usec
    eth, ip = pkt[:14], pkt[14:]
    ihl = (ip[0] & 0x0F) * 4
    sport, dport = struct.unpack("!HH", ip[ihl : ihl + 4])
    payload = ip[ihl + 8 :]
    if sport in AUDIO_PORTS and len(payload) >= 12 and payload[0] >> 6 == 2:
        key = (ip[12:16], sport, ip[16:20], dport)
        st = streams.setdefault(key, {"t0": t, "eth": eth, "ip": ip[:ihl], "hdr": payload[:12], "audio": b""})
        st["audio"] += payload[12:]
        continue
    if b"a=ptime:30" in payload:
        payload = payload.replace(b"a=ptime:30", b"a=ptime:20")
        pkt = frame(eth, ip, sport, dport, payload)
    records.append((t, pkt))
for (sip, sport, dip, dport), st in streams.items():
    hdr = st["hdr"]
    ssrc = hdr[8:12]
    seq = struct.unpack("!H", hdr[2:4])[0]
    ts = struct.unpack("!I", hdr[4:8])[0]
    audio = st["audio"]
    for k in range(len(audio) // 160):
        first = 0x80 if k == 0 else 0
        rtp = struct.pack("!BBHI", 0x80, (hdr[1] & 0x7F) | first, (seq + k) & 0xFFFF, (ts + 160 * k) & 0xFFFFFFFF)
        rtp += ssrc + audio[160 * k : 160 * (k + 1)]
        records.append((st["t0"] + 20_000 * k, frame(st["eth"], st["ip"], sport, dport, rtp)))
records.sort(key=lambda r: r[0])
with open(dst, "wb") as f:
    f.write(ghdr)
    for t, pkt in records:
        f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(pkt), len(pkt)))
        f.write(pkt)
print(f"{dst}: {len(records)} packets")
