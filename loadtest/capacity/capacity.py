#!/usr/bin/env python3
"""loadtest/capacity: whole calls with G.711 media through a device, the SBC against Kamailio +
rtpengine, driven by the same `loadtest` UAC and UAS in one run (run.sh starts this; README.md).

For each round and each device (alternating: sbc, kamailio-rtpengine, then the other way round in
the next round), the device is started pinned to DEVICE_CPU and two searches run, each trial one
`loadtest` run pinned to TESTER_CPU (UAC + UAS in one thread) that replays pcaps/g711-ptime20.pcap
(G.711, 20 ms packets both ways, the recorded audio looped over the hold):

  cps   calls started at R per second for CPS_SECS seconds, each held CPS_HOLD s: the device's CPU
        is summed over the steady window (starts and BYEs both at R) from /proc;
  conc  N calls started at CONC_RAMP (150) per second, each held until all N have carried media together
        for CONC_WINDOW s: the calls carrying media, counted by the RTP the tester received per second
        over its busiest 5 s (100 packets a second per call), over the device's CPU in those 5 s.

A trial passes with no failed call, every call answered, RTP loss < 0.1 % (all legs), mean MOS >=
4.2 and the calls started at >= 95 % of the offered rate. The search goes up by x1.5 from its start (CPS_START_SBC/_KAM,
CONC_START_SBC/_KAM in round 1)
while trials pass (down by /1.5 while they fail), then bisects between the highest pass and the
lowest failure while they are more than 8 % apart, at most MAX_TRIALS trials; a round after the
first starts at the device's previous maximum. At the end of each round both devices also run one
trial at the same load (COMMON_CPS, COMMON_CONC, or the lower device's maximum of round 1 when
unset), for calls per core at equal load.

Figures: calls per device core-second = achieved calls/s / device CPU share; concurrent calls per
device core = calls carrying media / device CPU share (CPU share: utime + stime of every process of the device, all
threads, over the window, divided by the window). Medians over the rounds. Everything on loopback
(127.47.0.0/24); every process started is stopped by its PID; every run bounded by timeouts.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def env(name, default, kind=str):
    v = os.environ.get(name)
    return kind(v) if v not in (None, "") else default


QUICK = env("QUICK", 0, int)
CFG = {
    "devices": env("DEVICES", "sbc kamailio-rtpengine").split(),
    "rounds": env("ROUNDS", 1 if QUICK else 3, int),
    "tester_cpu": env("TESTER_CPU", "0"),
    "device_cpu": env("DEVICE_CPU", "1"),
    "bin": env("BIN", os.path.join(REPO, "target", "release")),
    "pcap": env("PCAP", os.path.join(REPO, "pcaps", "g711-ptime20.pcap")),
    "out": env("OUT", "/tmp/capacity-run"),
    # search seeds of round 1 per device (later rounds start at the device's previous maximum)
    "cps_start": {"sbc": env("CPS_START_SBC", 400.0, float),
                  "kamailio-rtpengine": env("CPS_START_KAM", 150.0, float)},
    "cps_secs": env("CPS_SECS", 5.0 if QUICK else 8.0, float),
    "cps_hold": env("CPS_HOLD", 1.0, float),
    "cps_max": env("CPS_MAX", 3000.0, float),
    "conc_start": {"sbc": env("CONC_START_SBC", 800, int),
                   "kamailio-rtpengine": env("CONC_START_KAM", 500, int)},
    "conc_ramp": env("CONC_RAMP", 150.0, float),
    "conc_window": env("CONC_WINDOW", 5.0 if QUICK else 6.0, float),
    "conc_max": env("CONC_MAX", 4000, int),
    "max_trials": env("MAX_TRIALS", 3 if QUICK else 4, int),
    "common_cps": env("COMMON_CPS", 0.0, float),
    "common_conc": env("COMMON_CONC", 0, int),
    "settle": env("SETTLE", 6.0, float),
    # SEARCH=0: only the same-load trials (COMMON_CPS and COMMON_CONC must be set)
    "search": env("SEARCH", 1, int),
    "loss_ok": 0.1,
    "mos_ok": 4.2,
}
UAC_IP, UAS = "127.47.0.1", "127.47.0.2:5090"
SBC_SIP = "127.47.0.10:5060"
KAM_SIP, RTPE_IP, RTPE_NG_PORT = "127.47.0.20:5060", "127.47.0.21", 2223
STARTED = []  # (pid, name): every process this run started, stopped by PID
LOG = None


def log(msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, file=sys.stderr, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


# ---------------------------------------------------------------- processes and /proc
def stop_pid(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def stop_all():
    while STARTED:
        pid, _ = STARTED.pop()
        stop_pid(pid)


def children(pid):
    """pid and every process whose parent is in the set (Kamailio's forked workers)"""
    out = [pid]
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    par = {}
    for d in entries:
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    par[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    grew = True
    while grew:
        grew = False
        for p, pp in par.items():
            if pp in out and p not in out:
                out.append(p)
                grew = True
    return out


TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pids):
    """utime + stime of these processes (all their threads), seconds"""
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                x = f.read().rsplit(")", 1)[1].split()
            t += int(x[11]) + int(x[12])
        except (OSError, IndexError, ValueError):
            pass
    return t / TICK


def udp_rcvbuf_errors():
    """the kernel's count of UDP datagrams dropped on a full receive buffer (/proc/net/snmp)"""
    try:
        with open("/proc/net/snmp") as f:
            rows = [ln.split() for ln in f if ln.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return 0


def udp_bound(addr):
    ip, port = addr.rsplit(":", 1)
    want = "%08X:%04X" % (int.from_bytes(bytes(map(int, ip.split("."))), "little"), int(port))
    with open("/proc/net/udp") as f:
        return any(ln.split()[1] == want for ln in list(f)[1:])


def wait_bound(addr, pid, secs):
    end = time.time() + secs
    while time.time() < end:
        if udp_bound(addr):
            return True
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        except ChildProcessError:
            return False
        time.sleep(0.1)
    return False


def start(name, cmd, logpath, envx=None):
    with open(logpath + ".cmd", "w") as f:
        f.write(" ".join(cmd) + "\n")
    lf = open(logpath, "a")
    p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=dict(os.environ, **(envx or {})))
    STARTED.append((p.pid, name))
    return p.pid


def affinity(pids):
    aff = {}
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{pid}/task/{t}/status") as f:
                    for ln in f:
                        if ln.startswith("Cpus_allowed_list"):
                            c = ln.split()[1]
                            aff[c] = aff.get(c, 0) + 1
            except OSError:
                pass
    return aff


# ---------------------------------------------------------------- devices
def start_device(name, rd):
    """returns {name, target, pids: callable -> [pid]} or raises"""
    pin = ["taskset", "-c", CFG["device_cpu"]]
    if name == "sbc":
        if udp_bound(SBC_SIP):
            raise RuntimeError(f"{SBC_SIP} is already bound by someone else")
        cmd = pin + [os.path.join(CFG["bin"], "sbc"), "--config", os.path.join(HERE, "sbc.toml"),
                     "--workers", "1"]
        pid = start("sbc", cmd, os.path.join(rd, "sbc.log"), {"RUST_LOG": "warn"})
        if not wait_bound(SBC_SIP, pid, 20):
            raise RuntimeError("sbc did not bind %s (see %s/sbc.log)" % (SBC_SIP, rd))
        time.sleep(1.0)
        # the SBC pins worker i to core i by itself: re-pin every thread to the device's core
        subprocess.run(["taskset", "-a", "-p", "-c", CFG["device_cpu"], str(pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dev = {"name": name, "target": SBC_SIP, "pids": lambda: [pid]}
    elif name == "kamailio-rtpengine":
        ng = f"{RTPE_IP}:{RTPE_NG_PORT}"
        if udp_bound(KAM_SIP) or udp_bound(ng):
            raise RuntimeError(f"{KAM_SIP} or {ng} is already bound by someone else")
        rcmd = pin + ["rtpengine", "--foreground", "--log-stderr", "-L", "4", "--table=-1",
                      f"--interface={RTPE_IP}", f"--listen-ng={ng}", "--num-threads=1",
                      "--port-min=10000", "--port-max=27999", "--delete-delay=0",
                      "--timeout=60", "--silent-timeout=3600", "--final-timeout=7200",
                      f"--pidfile={rd}/rtpengine.pid"]
        rpid = start("rtpengine", rcmd, os.path.join(rd, "rtpengine.log"))
        if not wait_bound(ng, rpid, 20):
            raise RuntimeError("rtpengine did not bind %s (see %s/rtpengine.log)" % (ng, rd))
        kcmd = pin + ["kamailio", "-DD", "-E", "-f", os.path.join(HERE, "kamailio-rtpengine.cfg"),
                      "-A", "LISTEN=udp:" + KAM_SIP, "-A", 'BACKEND="sip:%s"' % UAS,
                      "-A", 'BACKEND_IP="%s"' % UAS.split(":")[0],
                      "-A", 'RTPENGINE="udp:%s"' % ng,
                      "-m", "1024", "-M", "32", "-x", "tlsf", "-X", "tlsf", "-Y", rd, "-w", rd]
        kpid = start("kamailio", kcmd, os.path.join(rd, "kamailio.log"))
        if not wait_bound(KAM_SIP, kpid, 20):
            raise RuntimeError("kamailio did not bind %s (see %s/kamailio.log)" % (KAM_SIP, rd))
        time.sleep(1.5)
        dev = {"name": name, "target": KAM_SIP, "pids": lambda: children(kpid) + [rpid]}
    else:
        raise RuntimeError("unknown device " + name)
    pids = dev["pids"]()
    dev["affinity"] = affinity(pids)
    log(f"{name}: processes {pids}, thread affinity {dev['affinity']}")
    return dev


# ---------------------------------------------------------------- trials
def run_trial(dev, kind, level, rd, tag):
    """one loadtest run; returns the trial's row"""
    if kind == "cps":
        cps, calls, hold = level, max(1, int(round(level * CFG["cps_secs"]))), CFG["cps_hold"]
        # steady: starts and BYEs both at the rate (after the first hold and the setup)
        win = (0.05 + hold + 1.0, 0.05 + CFG["cps_secs"])
        # calls at once: the hold plus setup and teardown, with room for slow answers
        concurrent = int(cps * (hold + 3.0)) + 100
    else:
        calls, cps = int(level), CFG["conc_ramp"]
        ramp = calls / cps
        hold = ramp + CFG["conc_window"] + 1.5
        # every call is up from ramp + setup until the first BYE at hold after the first answer
        win = (0.05 + ramp + 0.75, 0.05 + ramp + 0.75 + CFG["conc_window"])
        concurrent = calls
    ports = min(calls, concurrent) * 4 + 64
    out = os.path.join(rd, f"{tag}")
    cmd = ["taskset", "-c", CFG["tester_cpu"], os.path.join(CFG["bin"], "loadtest"),
           "--pcap", CFG["pcap"], "--target", dev["target"], "--uas", UAS, "--local-ip", UAC_IP,
           "--calls", str(calls), "--cps", "%.3f" % cps, "--hold", "%.3f" % hold,
           "--threads", "1", "--max-concurrent", str(min(calls, concurrent)), "--media-port", "20000",
           "--media-ports", str(ports), "--timeout", "5"]
    with open(out + ".cmd", "w") as f:
        f.write(" ".join(cmd) + "\n")
    budget = calls / cps + hold + 40
    so, se = open(out + ".json", "w"), open(out + ".log", "w")
    drops0 = udp_rcvbuf_errors()
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL)
    STARTED.append((p.pid, "loadtest"))
    samples = []  # (t, device cpu s)
    while p.poll() is None and time.time() - t0 < budget:
        samples.append((time.time() - t0, cpu_s(dev["pids"]())))
        time.sleep(0.25)
    if p.poll() is None:
        log(f"  loadtest over its {budget:.0f} s budget: stopped")
    STARTED.remove((p.pid, "loadtest"))
    stop_pid(p.pid)
    so.close()
    se.close()
    drops = udp_rcvbuf_errors() - drops0
    try:
        with open(out + ".json") as f:
            s = json.loads([ln for ln in f if ln.strip()][-1])
    except (OSError, IndexError, ValueError):
        s = {}

    def at(t):  # device CPU seconds at time t (linear between samples)
        prev = None
        for ts, c in samples:
            if ts >= t:
                if prev is None:
                    return c
                (pt, pc) = prev
                return pc + (c - pc) * (t - pt) / max(ts - pt, 1e-9)
            prev = (ts, c)
        return samples[-1][1] if samples else 0.0

    w0, w1 = win
    dev_cpu = (at(w1) - at(w0)) / (w1 - w0) if samples and samples[-1][0] >= w1 else None
    mos = s.get("mos_mean")
    loss = s.get("rtp_loss_pct")
    fails = []
    if not s:
        fails.append("no result")
    else:
        if s.get("failed", 1) or s.get("answered", 0) != calls:
            fails.append("failed %s/%s answered %s %s" % (s.get("failed"), calls, s.get("answered"),
                                                          s.get("failures") or ""))
        if loss is None or loss >= CFG["loss_ok"]:
            fails.append(f"loss {loss}%")
        if mos is None or mos < CFG["mos_ok"]:
            fails.append(f"MOS {mos}")
        if kind == "cps" and s.get("achieved_cps", 0) < 0.95 * cps:
            fails.append("started %.0f/s" % s.get("achieved_cps", 0))
        if dev_cpu is None:
            fails.append("run shorter than the window")
    peak = s.get("media_peak") or {}
    row = {
        "device": dev["name"], "kind": kind, "level": level, "calls": calls, "cps": cps,
        "hold": hold, "pass": not fails, "why": "; ".join(fails),
        "answered": s.get("answered"), "failed": s.get("failed"),
        "achieved_cps": s.get("achieved_cps"), "loss_pct": loss, "mos_mean": mos,
        "mos_min": s.get("mos_min"), "rtp_sent": s.get("rtp_sent"),
        "setup_200_p50_ms": (s.get("setup_200_ms") or {}).get("p50"),
        "setup_200_p99_ms": (s.get("setup_200_ms") or {}).get("p99"),
        # one-way latency through the device: the legs' RTCP round trips / 2 (RFC 3550 6.4.1)
        "latency_p50_ms": (s.get("latency_ms") or {}).get("p50"),
        "latency_p99_ms": (s.get("latency_ms") or {}).get("p99"),
        "device_cpu_pct": None if dev_cpu is None else 100.0 * dev_cpu,
        "tester_peak_cpu_pct": peak.get("cpu_pct"), "window_s": [w0, w1],
        "rtp_payload_mismatches": s.get("rtp_payload_mismatches"), "uas_failed": s.get("uas_failed"),
        # the whole machine's UDP receive-buffer overflows during the trial (other processes too)
        "udp_rcvbuf_errors": drops,
    }
    if dev_cpu:
        if kind == "cps":
            row["per_core"] = (s.get("achieved_cps") or 0) / dev_cpu
        else:
            # N over the planned window: overstated when slow setups leave calls without media then
            row["per_core_n"] = calls / dev_cpu
    # Calls carrying media, counted by the packets relayed: the RTP the tester received per second
    # over its busiest 5 s (every packet came through the device), 100 a call (50 each way), over
    # the device's CPU share in the same 5 s (the tester's clock starts at its spawn, within ms).
    if peak.get("rtp_received_pps") and samples:
        p0 = peak.get("from_s", 0.0)
        p1 = p0 + peak.get("seconds", 0.0)
        if samples[-1][0] >= p1 > p0:
            cpu_peak = (at(p1) - at(p0)) / (p1 - p0)
            row["media_calls"] = peak["rtp_received_pps"] / 100.0
            row["device_cpu_peak_pct"] = 100.0 * cpu_peak
            if cpu_peak > 0:
                row["media_calls_per_core"] = row["media_calls"] / cpu_peak
    if kind == "conc":
        row["per_core"] = row.get("media_calls_per_core")
    with open(out + ".cpu.json", "w") as f:
        json.dump(samples, f)
    return row


def search(dev, kind, start, cap, rd, rows_f, tagp):
    lo, hi, lo_row = None, None, None
    level = start
    integer = kind == "conc"
    for i in range(CFG["max_trials"]):
        level = int(round(level)) if integer else round(level, 1)
        row = run_trial(dev, kind, level, rd, f"{tagp}-{kind}-{i}")
        row["search"] = True
        rows_f.write(json.dumps(row) + "\n")
        rows_f.flush()
        log("  %s %s %s: %s%s, device CPU %s%%, tester peak CPU %s%%, loss %s%%, MOS %s, setup p50/p99 "
            "%s/%s ms, per core %s (media calls %s at device CPU %s%%), UDP rcvbuf drops %d" % (
                dev["name"], kind, level, "pass" if row["pass"] else "FAIL",
                "" if row["pass"] else " (" + row["why"] + ")", fmt(row["device_cpu_pct"], 1),
                fmt(row["tester_peak_cpu_pct"], 1), fmt(row["loss_pct"], 4), fmt(row["mos_mean"], 2),
                fmt(row["setup_200_p50_ms"], 0), fmt(row["setup_200_p99_ms"], 0),
                fmt(row.get("per_core"), 0), fmt(row.get("media_calls"), 0),
                fmt(row.get("device_cpu_peak_pct"), 1), row["udp_rcvbuf_errors"]))
        time.sleep(CFG["settle"])
        if row["pass"]:
            lo, lo_row = level, row
        else:
            hi = level if hi is None else min(hi, level)
        if hi is None:
            if level >= cap:
                break
            level = min(level * 1.5, cap)
        elif lo is None:
            level = level / 1.5
            if level < 1:
                break
        elif hi / lo > 1.08:
            level = (lo + hi) / 2
        else:
            break
    return lo, hi, lo_row


def fmt(v, d):
    return "-" if v is None else f"{v:,.{d}f}"


# ---------------------------------------------------------------- report
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def report(results, common, meta):
    L = []
    L.append("| device | round | max calls/s (with media) | device CPU at max | calls per device core-second | "
             "max concurrent calls with media | device CPU at max | concurrent calls per device core |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in results:
        c, k = r.get("cps_row") or {}, r.get("conc_row") or {}
        L.append("| %s | %d | %s | %s %% | %s | %s | %s %% | %s |" % (
            r["device"], r["round"], fmt(r.get("cps_max"), 0), fmt(c.get("device_cpu_pct"), 1),
            fmt(c.get("per_core"), 0), fmt(r.get("conc_max"), 0), fmt(k.get("device_cpu_pct"), 1),
            fmt(k.get("per_core"), 0)))
    meds = {}
    for d in CFG["devices"]:
        rs = [r for r in results if r["device"] == d]
        m = {
            "cps_max": med(r.get("cps_max") for r in rs),
            "cps_cpu": med((r.get("cps_row") or {}).get("device_cpu_pct") for r in rs),
            "cps_per_core": med((r.get("cps_row") or {}).get("per_core") for r in rs),
            "conc_max": med(r.get("conc_max") for r in rs),
            "conc_cpu": med((r.get("conc_row") or {}).get("device_cpu_pct") for r in rs),
            "conc_per_core": med((r.get("conc_row") or {}).get("per_core") for r in rs),
        }
        meds[d] = m
        L.append("| **%s, median of %d** | | **%s** | %s %% | **%s** | **%s** | %s %% | **%s** |" % (
            d, len(rs), fmt(m["cps_max"], 0), fmt(m["cps_cpu"], 1), fmt(m["cps_per_core"], 0),
            fmt(m["conc_max"], 0), fmt(m["conc_cpu"], 1), fmt(m["conc_per_core"], 0)))
    L.append("")
    if common:
        L.append("Same load on both devices (one trial per device per round):")
        L.append("")
        L.append("| device | load | rounds passed | device CPU (median) | per device core (median) | loss % (median) | MOS (median) | one-way latency p50 / p99 ms (median) |")
        L.append("|---|---|---|---|---|---|---|---|")
        for kind in ("cps", "conc"):
            for d in CFG["devices"]:
                rs = [r for r in common if r["device"] == d and r["kind"] == kind]
                if not rs:
                    continue
                load = ("%s calls/s, %s s hold" % (fmt(rs[0]["level"], 0), fmt(rs[0]["hold"], 1))
                        if kind == "cps" else "%s concurrent calls" % fmt(rs[0]["level"], 0))
                meds.setdefault(d, {})[kind + "_common_per_core"] = med(r.get("per_core") for r in rs)
                L.append("| %s | %s | %d/%d | %s %% | %s | %s | %s | %s / %s |" % (
                    d, load, sum(r["pass"] for r in rs), len(rs),
                    fmt(med(r.get("device_cpu_pct") for r in rs), 1),
                    fmt(med(r.get("per_core") for r in rs), 0), fmt(med(r.get("loss_pct") for r in rs), 4),
                    fmt(med(r.get("mos_mean") for r in rs), 2),
                    fmt(med(r.get("latency_p50_ms") for r in rs), 2),
                    fmt(med(r.get("latency_p99_ms") for r in rs), 2)))
        L.append("")
    a, b = meds.get("sbc"), meds.get("kamailio-rtpengine")
    if a and b:
        def ratio(k):
            return (a[k] / b[k]) if a.get(k) and b.get(k) else None
        L.append("Ratios sbc / Kamailio + rtpengine (medians): calls per core-second at each one's maximum "
                 "%s; concurrent calls per core at each one's maximum %s; at the same load: calls/s per "
                 "core-second %s, concurrent calls per core %s; max calls/s %s; max concurrent %s." % (
                     fmt(ratio("cps_per_core"), 2), fmt(ratio("conc_per_core"), 2),
                     fmt(ratio("cps_common_per_core"), 2), fmt(ratio("conc_common_per_core"), 2),
                     fmt(ratio("cps_max"), 2), fmt(ratio("conc_max"), 2)))
        L.append("")
    L.append(meta)
    return "\n".join(L) + "\n", meds


def main():
    global LOG
    os.makedirs(CFG["out"], exist_ok=True)
    LOG = open(os.path.join(CFG["out"], "run.log"), "a")
    for b in ("loadtest", "sbc"):
        if not os.access(os.path.join(CFG["bin"], b), os.X_OK):
            log(f"missing {CFG['bin']}/{b}")
            return 2
    t_start = time.time()
    la0 = open("/proc/loadavg").read().split()[:3]
    log("config: " + json.dumps(CFG))
    rows_f = open(os.path.join(CFG["out"], "trials.jsonl"), "a")
    results, common = [], []
    prev = {}
    for rnd in range(1, CFG["rounds"] + 1):
        order = CFG["devices"] if rnd % 2 else list(reversed(CFG["devices"]))
        for d in (order if CFG["search"] else []):
            rd = os.path.join(CFG["out"], f"r{rnd}-{d}")
            os.makedirs(rd, exist_ok=True)
            res = {"device": d, "round": rnd}
            try:
                dev = start_device(d, rd)
                p = prev.get(d, {})
                cps_lo, cps_hi, cps_row = search(dev, "cps", p.get("cps") or CFG["cps_start"][d],
                                                 CFG["cps_max"], rd, rows_f, f"r{rnd}")
                conc_lo, conc_hi, conc_row = search(dev, "conc", p.get("conc") or CFG["conc_start"][d],
                                                    CFG["conc_max"], rd, rows_f, f"r{rnd}")
                res.update(cps_max=cps_lo, cps_fail=cps_hi, cps_row=cps_row,
                           conc_max=conc_lo, conc_fail=conc_hi, conc_row=conc_row)
                prev[d] = {"cps": cps_lo or (cps_hi or CFG["cps_start"][d]) / 1.5,
                           "conc": conc_lo or (conc_hi or CFG["conc_start"][d]) / 1.5}
            except RuntimeError as e:
                log(f"{d}: {e}")
            finally:
                results.append(res)
                stop_all()
                time.sleep(1.0)
        # equal-load trials at the end of the round, both devices in the round's order
        cc = CFG["common_cps"] or min((prev[d]["cps"] for d in CFG["devices"] if d in prev), default=0)
        cn = CFG["common_conc"] or min((prev[d]["conc"] for d in CFG["devices"] if d in prev), default=0)
        if rnd == 1 and CFG["search"]:
            CFG["common_cps"], CFG["common_conc"] = round(0.9 * cc, -1), int(round(0.9 * cn, -1))
            cc, cn = CFG["common_cps"], CFG["common_conc"]
        for d in order:
            if not (cc and cn):
                break
            rd = os.path.join(CFG["out"], f"r{rnd}-{d}-common")
            os.makedirs(rd, exist_ok=True)
            try:
                dev = start_device(d, rd)
                for kind, level in (("cps", cc), ("conc", cn)):
                    row = run_trial(dev, kind, level, rd, f"r{rnd}-common-{kind}")
                    row["round"], row["search"] = rnd, False
                    rows_f.write(json.dumps(row) + "\n")
                    rows_f.flush()
                    common.append(row)
                    log("  %s same load %s %s: %s, device CPU %s%%, per core %s, media calls %s at "
                        "device CPU %s%% (%s per core)" % (
                            d, kind, level, "pass" if row["pass"] else "FAIL (" + row["why"] + ")",
                            fmt(row["device_cpu_pct"], 1), fmt(row.get("per_core"), 0),
                            fmt(row.get("media_calls"), 0), fmt(row.get("device_cpu_peak_pct"), 1),
                            fmt(row.get("media_calls_per_core"), 0)))
                    time.sleep(CFG["settle"])
            except RuntimeError as e:
                log(f"{d}: {e}")
            finally:
                stop_all()
                time.sleep(1.0)
        with open(os.path.join(CFG["out"], "results.json"), "w") as f:
            json.dump({"config": CFG, "results": results, "common": common}, f, indent=1)
    la1 = open("/proc/loadavg").read().split()[:3]
    meta = ("Run %s UTC, %.1f min; load average before %s, after %s; tester (loadtest, UAC + UAS, one "
            "thread) on CPU %s, device on CPU %s; %s." % (
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(t_start)), (time.time() - t_start) / 60,
                " ".join(la0), " ".join(la1), CFG["tester_cpu"], CFG["device_cpu"],
                os.path.basename(CFG["pcap"])))
    md, meds = report(results, common, meta)
    with open(os.path.join(CFG["out"], "summary.md"), "w") as f:
        f.write(md)
    with open(os.path.join(CFG["out"], "results.json"), "w") as f:
        json.dump({"config": CFG, "results": results, "common": common, "medians": meds}, f, indent=1)
    print(md)
    return 0


if __name__ == "__main__":
    def on_signal(*_):
        stop_all()
        sys.exit(130)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sys.exit(main())
    finally:
        stop_all()
