"""libsrtp (through pylibsrtp) as the independent SRTP peer of sbc/tests/srtp.rs.

Usage: libsrtp_peer.py <profile> <key_salt_hex> protect|unprotect
Reads one packet per line on stdin, "rtp <hex>" or "rtcp <hex>"; writes the result as hex per line,
or "error <message>" for a packet libsrtp refused.
"""
import sys

import pylibsrtp

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


def main():
    profile, key, mode = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
    ssrc_type = (
        pylibsrtp.Policy.SSRC_ANY_OUTBOUND if mode == "protect" else pylibsrtp.Policy.SSRC_ANY_INBOUND
    )
    session = pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=PROFILES[profile])
    )
    for line in sys.stdin:
        kind, data = line.split()
        packet = bytes.fromhex(data)
        try:
            if mode == "protect":
                out = session.protect(packet) if kind == "rtp" else session.protect_rtcp(packet)
            else:
                out = session.unprotect(packet) if kind == "rtp" else session.unprotect_rtcp(packet)
            print(out.hex(), flush=True)
        except pylibsrtp.Error as e:
            print("error", str(e).replace(" ", "_"), flush=True)


main()
