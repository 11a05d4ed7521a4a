"""Run a SIPVicious tool (svmap, svwar, svcrack) from a given address, with its User-Agent replaced.

usage: python3 sipvicious_as.py USER_AGENT BIND_IP TOOL [tool arguments...]

SIPVicious 0.3.x has no option for its User-Agent ("friendly-scanner" is the default argument of
libs.svhelper.makeRequest): this wraps makeRequest in the tool so that every request it sends
carries USER_AGENT, the way a scanner disguised as a phone would. svwar and svcrack 0.3.4 also
ignore their -b (they bind every interface, so on loopback they send from 127.0.0.1): sockets
bound to the wildcard address are bound to BIND_IP instead, and -x BIND_IP is passed.
"""
import functools
import importlib
import socket
import sys


def main():
    ua, bind_ip, tool = sys.argv[1], sys.argv[2], sys.argv[3]
    original_bind = socket.socket.bind

    def bind(self, addr):
        if isinstance(addr, tuple) and addr and addr[0] in ("", "0.0.0.0"):
            addr = (bind_ip,) + tuple(addr[1:])
        return original_bind(self, addr)

    socket.socket.bind = bind
    mod = importlib.import_module("sipvicious." + tool)
    original = mod.makeRequest

    @functools.wraps(original)
    def disguised(*args, **kwargs):
        kwargs["useragent"] = ua
        return original(*args, **kwargs)

    mod.makeRequest = disguised
    sys.argv = ["sipvicious_" + tool, "-b", bind_ip, "-x", bind_ip] + sys.argv[4:]
    return mod.main()


if __name__ == "__main__":
    sys.exit(main())
