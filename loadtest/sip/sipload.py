#!/usr/bin/env python3
"""loadtest/sip driver: calls-per-second step search through several SIP devices under test.

Called by run.sh (which builds the SBC and the bare forwarder); see README.md.

    SIPp caller 127.0.0.3:5070 --> DUT 127.0.0.1:5060 --> SIPp callee 127.0.0.2:5090
    (direct: caller --> callee, nothing between)

For each DUT in one run: start it (pinned), step through the rate ladder, bisect between the
last passing and the first failing rate, confirm the best rate and the fixed comparison rate
with REPEATS runs (median), stop it. Every SIPp run is bounded (-m calls, -timeout) and every
process is stopped by the PID this script started.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def env(name, default, conv=str):
    v = os.environ.get(name, "")
    return conv(v) if v != "" else default


def ints(s):
    return [int(x) for x in s.split()]


CFG = {
    "duts": env("DUTS", "direct sbc kamailio-sbc bare-fwd").split(),
    "rates": env("RATES", ints("1000 2000 4000 8000 12000 16000 24000 32000 40000"), ints),
    "fixed_rate": env("FIXED_RATE", 2000, int),
    "duration": env("DURATION", 10, int),
    "hold_ms": env("HOLD_MS", 1000, int),
    "repeats": env("REPEATS", 3, int),
    "refine": env("REFINE", 2, int),
    "max_fail_pct": env("MAX_FAIL_PCT", 0.1, float),
    "max_retrans_pct": env("MAX_RETRANS_PCT", 1.0, float),
    "min_rate_frac": env("MIN_RATE_FRAC", 0.95, float),
    "pin": env("PIN", 1, int),
    "dut_cpus": env("DUT_CPUS", "1"),
    "sipp_cpus": env("SIPP_CPUS", "0"),
    "max_dut_s": env("MAX_DUT_S", 330, int),
    "gap_s": env("GAP_S", 1.0, float),
    # after a failed step the DUT is restarted: an overloaded B2BUA or proxy keeps retransmitting
    # and tearing down the step's leftover calls for ~32 s (Timers B/F/H, no-ACK), and that traffic
    # would land on the next step's SIPp pair (same addresses) and fail calls that are not its own
    "restart_after_fail": env("RESTART_AFTER_FAIL", 1, int),
    "buff": env("BUFF", 4194304, int),
    "uac": env("UAC_ADDR", "127.0.0.3:5070"),
    "dut": env("DUT_ADDR", "127.0.0.1:5060"),
    "uas": env("UAS_ADDR", "127.0.0.2:5090"),
    "sbc_bin": env("SBC_BIN", os.path.join(REPO, "target/release/sbc")),
    # a second SBC build measured in the same run as DUT "sbc-base" (e.g. the commit before a change)
    "sbc_base_bin": env("SBC_BASE_BIN", ""),
    "sbc_cfg": env("SBC_CFG", os.path.join(HERE, "sbc.toml")),
    # the config of "sbc-base" when the older build does not know every section of sbc_cfg
    "sbc_base_cfg": env("SBC_BASE_CFG", ""),
    "sbc_workers": env("SBC_WORKERS", 1, int),
    "kam_cfg": env("KAM_CFG", "/work/shared/peer-bench/sip/sbc.cfg"),
    "kam_children": env("KAM_CHILDREN", 1, int),
    "kam_mem": env("KAM_MEM", "tlsf"),
    "fwd_bin": env("FWD_BIN", ""),
    "out": env("OUT", ""),
}
SCEN = env("SCEN_DIR", os.path.join(HERE, "scenarios"))
UAC_XML = env("UAC_XML", "caller.xml")
UAS_XML = env("UAS_XML", "callee.xml")

STARTED = []  # (pid, what) of every long-lived process started here


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def split_addr(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)


for k in ("uac", "dut", "uas"):
    if not split_addr(CFG[k])[0].startswith("127."):
        sys.exit(f"{k} address {CFG[k]} is not loopback")


# ------------------------------------------------------------------ processes
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_gone(pid, timeout):
    end = time.time() + timeout
    while time.time() < end:
        reap()
        if not alive(pid):
            return True
        time.sleep(0.1)
    return not alive(pid)


def stop_pid(pid, grace=5.0):
    """TERM, wait, KILL: only a PID started here."""
    if not pid or not alive(pid):
        reap()
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone(pid, grace):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid, 3)


def children_map():
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        m.setdefault(ppid, []).append(int(d))
    return m


def tree(pid):
    m = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(m.get(p, []))
    return out


def pin(cpus):
    return ["taskset", "-c", cpus] if CFG["pin"] and cpus else []


def udp_bound(addr):
    """is ip:port bound by some UDP socket (from /proc/net/udp)"""
    h, p = split_addr(addr)
    a = "".join(f"{int(x):02X}" for x in reversed(h.split(".")))
    want = f"{a}:{p:04X}"
    try:
        with open("/proc/net/udp") as f:
            return any(line.split()[1] == want for line in f.readlines()[1:])
    except OSError:
        return False


def wait_bound(addr, pid, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if udp_bound(addr):
            return True
        if pid and not alive(pid):
            return False
        time.sleep(0.1)
    return False


def wait_free(addr, timeout=10.0):
    end = time.time() + timeout
    while udp_bound(addr):
        if time.time() > end:
            return False
        time.sleep(0.1)
    return True


# ------------------------------------------------------------------------ CPU
def proc_ticks(pid):
    """utime+stime (all threads of the process) in seconds, from /proc/PID/stat"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def proc_sched(pid):
    """sum of sum_exec_runtime of every thread (ns-exact cross-check), seconds"""
    tot, ok = 0, False
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                tot += int(f.read().split()[0])
                ok = True
        except (OSError, ValueError, IndexError):
            pass
    return tot / 1e9 if ok else None


def sys_stat():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 10
    return sum(v[:8]), v[3] + v[4], v[7]


def snapshot(roles):
    """roles: {role: [pids]} -> {role: (ticks_s, sched_s, processes seen)}"""
    out = {}
    for role, pids in roles.items():
        t = s = 0.0
        seen = 0
        for p in pids:
            pt = proc_ticks(p)
            seen += pt is not None
            t += pt or 0.0
            s += proc_sched(p) or 0.0
        out[role] = (t, s, seen)
    return out


def settle(pids, max_pct=5.0, timeout=30.0):
    """wait until the DUT is (nearly) idle: an overloaded proxy keeps retransmitting"""
    end = time.time() + timeout
    pct = None
    while time.time() < end:
        a = sum(proc_sched(p) or 0 for p in pids)
        time.sleep(0.5)
        b = sum(proc_sched(p) or 0 for p in pids)
        pct = 200.0 * (b - a)
        if pct < max_pct:
            return pct
    log(f"  DUT not idle after {timeout}s ({pct:.0f}% CPU)")
    return pct


# ----------------------------------------------------------------------- SIPp
def sipp_bg(workdir, name, args):
    """start SIPp in background mode; returns its PID (SIPp prints PID=[n])"""
    cmd = pin(CFG["sipp_cpus"]) + ["sipp"] + args + ["-nostdin", "-bg"]
    with open(os.path.join(workdir, name + ".cmd"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    r = subprocess.run(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    with open(os.path.join(workdir, name + ".out"), "w") as f:
        f.write(r.stdout)
    for tok in r.stdout.split("PID=[")[1:]:
        return int(tok.split("]")[0])
    raise RuntimeError(f"sipp {name} did not start: {r.stdout.strip()[-400:]}")


def read_stat_csv(path):
    if not os.path.exists(path):
        return None, []
    with open(path, errors="replace") as f:
        lines = [ln.rstrip("\n").rstrip(";") for ln in f if ln.strip()]
    if len(lines) < 2:
        return None, []
    hdr = lines[0].split(";")
    return hdr, [dict(zip(hdr, ln.split(";"))) for ln in lines[1:]]


def num(row, key):
    try:
        return int(float(row.get(key) or 0))
    except ValueError:
        return 0


def epoch(field):
    # "2026-11-23\t14:40:01.123456\t1795446001.123456"
    return float(field.split("\t")[-1])


def gen_rate(rows, calls):
    """calls / time SIPp took to create them (interpolated between its 1 s dumps)"""
    if not rows:
        return None
    t0 = epoch(rows[0]["StartTime"])
    pt, pc = t0, 0
    for r in rows:
        t, c = epoch(r["CurrentTime"]), num(r, "OutgoingCall(C)")
        if c >= calls and c > pc:
            tend = pt + (calls - pc) / (c - pc) * (t - pt)
            return calls / (tend - t0) if tend > t0 else None
        pt, pc = t, c
    last = rows[-1]
    el = epoch(last["CurrentTime"]) - t0
    return num(last, "OutgoingCall(C)") / el if el > 0 else None


def setup_pct(hdr, row, q):
    """q-th percentile of call setup time (upper bound of SIPp's bucket, ms)"""
    pre = "ResponseTimeRepartition1_"
    b = []
    for k in hdr:
        if k.startswith(pre):
            lab = k[len(pre):]
            b.append((float(lab[1:]) if lab.startswith("<") else 1e9, num(row, k)))
    tot = sum(c for _, c in b)
    if not tot:
        return None
    acc = 0
    for ub, c in b:
        acc += c
        if acc >= tot * q / 100.0:
            return ub if ub < 1e9 else 1001.0
    return None


def udp_snmp():
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Udp:")]
    return dict(zip(rows[0][1:], (int(x) for x in rows[1][1:])))


# ----------------------------------------------------------------------- step
def run_step(dut, rate, rep, raw):
    d = os.path.join(raw, dut["name"], f"r{rate}-{rep}")
    os.makedirs(d, exist_ok=True)
    D, hold_ms = CFG["duration"], CFG["hold_ms"]
    calls = rate * D
    hold_s = (hold_ms + 999) // 1000
    tmo = D * 2 + hold_s + 15          # hard stop of every SIPp run
    limit = rate * (hold_s + 10) + 1000  # max concurrent calls of the caller
    warm = hold_s + 1                  # CPU window: [start+warm, start+D]
    if D <= warm:
        sys.exit("DURATION must exceed hold time + 1 s")
    uas_pid = uac_pid = None
    res = {"dut": dut["name"], "rate": rate, "rep": rep, "calls": calls}
    try:
        for a in (CFG["uac"], CFG["uas"]):
            if not wait_free(a, 15):
                raise RuntimeError(f"{a} still bound")
        dut_pids = tree(dut["pid"]) if dut.get("pid") else []
        if dut_pids:
            if not alive(dut["pid"]):
                raise RuntimeError("DUT died")
            res["settle_pct"] = round(settle(dut_pids), 1)
        uh, up = split_addr(CFG["uas"])
        uas_pid = sipp_bg(d, "uas", [
            "-sf", os.path.join(SCEN, UAS_XML), "-i", uh, "-p", str(up),
            "-m", str(calls), "-timeout", f"{tmo}s", "-buff_size", str(CFG["buff"]),
            "-trace_stat", "-stf", "uas.csv", "-fd", "1",
            "-trace_err", "-error_file", "uas.err", "-max_log_size", "1000000"])
        if not wait_bound(CFG["uas"], uas_pid, 5):
            raise RuntimeError("callee did not bind")
        snmp0 = udp_snmp()
        ch, cp = split_addr(CFG["uac"])
        t_start = time.time()
        uac_pid = sipp_bg(d, "uac", [
            "-sf", os.path.join(SCEN, UAC_XML), dut["target"], "-i", ch, "-p", str(cp),
            "-s", "1000", "-d", str(hold_ms), "-r", str(rate), "-m", str(calls), "-l", str(limit),
            "-timeout", f"{tmo}s", "-timeout_error", "-recv_timeout", "10000",
            "-buff_size", str(CFG["buff"]),
            "-trace_stat", "-stf", "uac.csv", "-fd", "1",
            "-trace_err", "-error_file", "uac.err", "-max_log_size", "1000000"])
        roles = {"uac": [uac_pid], "uas": [uas_pid]}
        if dut_pids:
            roles["dut"] = tree(dut["pid"])
        # steady window: calls are being set up and torn down at the full rate
        time.sleep(max(0.0, t_start + warm - time.time()))
        c0, s0, w0 = snapshot(roles), sys_stat(), time.time()
        time.sleep(max(0.0, t_start + D - time.time()))
        c1, s1, w1 = snapshot(roles), sys_stat(), time.time()
        el = w1 - w0
        res["cpu_window_s"] = round(el, 2)
        for role in roles:
            if c1[role][2] < len(roles[role]):  # a process exited inside the window
                continue
            res[f"cpu_{role}"] = round(100.0 * (c1[role][0] - c0[role][0]) / el, 1)
            res[f"cpu_{role}_sched"] = round(100.0 * (c1[role][1] - c0[role][1]) / el, 1)
        dt = s1[0] - s0[0]
        if dt > 0:
            res["cpu_machine"] = round(100.0 * NCPU * (dt - (s1[1] - s0[1])) / dt, 1)
            res["steal"] = round(100.0 * NCPU * (s1[2] - s0[2]) / dt, 1)
        if not wait_gone(uac_pid, tmo + 10):
            log(f"  caller {uac_pid} overran its -timeout, stopping it")
            stop_pid(uac_pid)
        # the callee exits by itself after -m calls + timewait; not when calls were lost
        if not wait_gone(uas_pid, 3):
            stop_pid(uas_pid, 3)
        snmp1 = udp_snmp()
        res["udp_rcvbuf_drops"] = snmp1["RcvbufErrors"] - snmp0["RcvbufErrors"]
        res["udp_in"] = snmp1["InDatagrams"] - snmp0["InDatagrams"]
    except Exception as e:  # noqa: BLE001 -- a broken step is a failed step, never a hang
        res["error"] = str(e)
        log(f"  step error: {e}")
    finally:
        stop_pid(uac_pid, 3)
        stop_pid(uas_pid, 3)

    hdr, rows = read_stat_csv(os.path.join(d, "uac.csv"))
    ok = failed = retr = created = 0
    rate_ach = None
    if rows:
        last = rows[-1]
        ok, failed = num(last, "SuccessfulCall(C)"), num(last, "FailedCall(C)")
        retr, created = num(last, "Retransmissions(C)"), num(last, "OutgoingCall(C)")
        rate_ach = gen_rate(rows, calls)
        res["p50_setup_ms_le"] = setup_pct(hdr, last, 50)
        res["p99_setup_ms_le"] = setup_pct(hdr, last, 99)
        for k, n in (("uac_timeout", "FailedTimeoutOnRecv(C)"), ("uac_max_retrans", "FailedMaxUDPRetrans(C)"),
                     ("uac_unexpected", "FailedUnexpectedMessage(C)"), ("uac_out_of_call", "OutOfCallMsgs(C)")):
            res[k] = num(last, n)
    _, urows = read_stat_csv(os.path.join(d, "uas.csv"))
    uas_retr = 0
    if urows:
        ul = urows[-1]
        uas_retr = num(ul, "Retransmissions(C)")
        res["uas_calls"], res["uas_ok"] = num(ul, "IncomingCall(C)"), num(ul, "SuccessfulCall(C)")
    res.update(created=created, ok=ok, failed=failed, unfinished=max(0, calls - ok - failed),
               uac_retrans=retr, uas_retrans=uas_retr,
               achieved=round(rate_ach, 1) if rate_ach else None,
               fail_pct=round(100.0 * (calls - ok) / calls, 4),
               retrans_pct=round(100.0 * (retr + uas_retr) / calls, 3))
    why = []
    if "error" in res:
        why.append(res["error"])
    if res["fail_pct"] > CFG["max_fail_pct"]:
        why.append(f"fail {res['fail_pct']}%")
    if res["retrans_pct"] > CFG["max_retrans_pct"]:
        why.append(f"retr {res['retrans_pct']}%")
    if not rate_ach or rate_ach < CFG["min_rate_frac"] * rate:
        why.append(f"achieved {res['achieved']}/s")
    res["pass"] = not why
    res["why"] = "; ".join(why)
    # efficiency: calls per second per core-second of the DUT (of the SIPp pair for direct)
    if rate_ach and res.get("cpu_dut"):
        res["per_core"] = round(rate_ach / (res["cpu_dut"] / 100.0))
    if rate_ach and res.get("cpu_uac") is not None and res.get("cpu_uas") is not None:
        pair = res["cpu_uac"] + res["cpu_uas"]
        if pair > 0:
            res["per_sipp_core"] = round(rate_ach / (pair / 100.0))
    log(f"  {dut['name']} {rate}/s #{rep}: achieved {res['achieved']} ok {ok}/{calls} "
        f"fail {res['fail_pct']}% retr {res['retrans_pct']}% DUT {res.get('cpu_dut', '-')}% "
        f"UAC {res.get('cpu_uac', '-')}% UAS {res.get('cpu_uas', '-')}% "
        f"per-core {res.get('per_core', '-')} drops {res.get('udp_rcvbuf_drops', '-')} "
        f"-> {'PASS' if res['pass'] else 'FAIL ' + res['why']}")
    time.sleep(CFG["gap_s"])
    return res


# ------------------------------------------------------------------ the DUTs
def start_dut(name, raw):
    """-> dict(name, target, pid) or dict(name, error)"""
    rd = os.path.join(raw, name)
    os.makedirs(rd, exist_ok=True)
    if name == "direct":
        return {"name": name, "target": CFG["uas"], "pid": None}
    if udp_bound(CFG["dut"]):
        return {"name": name, "error": f"{CFG['dut']} is already bound by someone else"}
    logf = open(os.path.join(rd, "dut.log"), "a")
    if name in ("sbc", "sbc-base"):
        binary = CFG["sbc_bin"] if name == "sbc" else CFG["sbc_base_bin"]
        if not binary or not os.access(binary, os.X_OK):
            return {"name": name, "error": f"no SBC binary {binary!r} (build failed, or SBC_BASE_BIN unset?)"}
        cfg = CFG["sbc_base_cfg"] if name == "sbc-base" and CFG["sbc_base_cfg"] else CFG["sbc_cfg"]
        cmd = pin(CFG["dut_cpus"]) + [binary, "--config", cfg,
                                      "--workers", str(CFG["sbc_workers"])]
    elif name == "kamailio-sbc":
        cmd = pin(CFG["dut_cpus"]) + [
            "kamailio", "-DD", "-E", "-f", CFG["kam_cfg"], "-A", f"CHILDREN={CFG['kam_children']}",
            "-m", "4096", "-M", "32", "-x", CFG["kam_mem"], "-X", CFG["kam_mem"], "-Y", rd, "-w", rd]
    elif name == "bare-fwd":
        if not CFG["fwd_bin"] or not os.access(CFG["fwd_bin"], os.X_OK):
            return {"name": name, "error": "no udpfwd binary (FWD_BIN)"}
        cmd = pin(CFG["dut_cpus"]) + [CFG["fwd_bin"], CFG["dut"], CFG["uas"]]
    else:
        return {"name": name, "error": "unknown DUT"}
    with open(os.path.join(rd, "dut.cmd"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         cwd=rd, env=dict(os.environ, RUST_LOG=os.environ.get("SBC_LOG", "warn")))
    STARTED.append((p.pid, name))
    if not wait_bound(CFG["dut"], p.pid, 15):
        stop_pid(p.pid)
        with open(os.path.join(rd, "dut.log"), errors="replace") as f:
            tail = f.read()[-600:]
        return {"name": name, "error": f"did not bind {CFG['dut']}: {tail.strip()}"}
    time.sleep(1.0)  # let worker threads start (and pin themselves)
    info = {"name": name, "target": CFG["dut"], "pid": p.pid, "popen": p}
    if CFG["pin"]:
        # the SBC pins worker i to core i by itself (inside a taskset of core 1 that puts its
        # only worker on core 0, next to SIPp): re-pin every thread of the DUT to DUT_CPUS
        for pid in tree(p.pid):
            subprocess.run(["taskset", "-a", "-p", "-c", CFG["dut_cpus"], str(pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    aff = {}
    for pid in tree(p.pid):
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/status") as f:
                    for ln in f:
                        if ln.startswith("Cpus_allowed_list"):
                            c = ln.split()[1]
                            aff[c] = aff.get(c, 0) + 1
            except OSError:
                pass
    info["affinity"] = aff
    info["processes"] = len(tree(p.pid))
    log(f"{name}: pid {p.pid}, {info['processes']} process(es), thread affinity {aff}")
    return info


def stop_dut(dut):
    if dut.get("pid"):
        stop_pid(dut["pid"], 10)
        if dut.get("popen"):
            try:
                dut["popen"].wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        # kamailio: make sure no child of it is left
        wait_free(CFG["dut"], 10)


# -------------------------------------------------------------------- search
def verdict(steps, rate):
    reps = [s for s in steps if s["rate"] == rate]
    return bool(reps) and sum(1 for s in reps if s["pass"]) * 2 > len(reps)


def marginal(s):
    """a failure worth repeating (noise) rather than an obvious overload/breakage"""
    return ("error" not in s and s["fail_pct"] <= 5.0 and s["retrans_pct"] <= 20.0
            and (s["achieved"] or 0) >= 0.8 * s["rate"])


def search(dut, raw):
    steps, t_begin = [], time.time()
    R = CFG["repeats"]

    def over():
        return time.time() - t_begin > CFG["max_dut_s"]

    def step(rate, rep):
        s = run_step(dut, rate, rep, raw)
        if not s["pass"] and CFG["restart_after_fail"] and dut.get("pid"):
            log(f"{dut['name']}: restarting after the failed step (fresh state for the next one)")
            stop_dut(dut)
            fresh = start_dut(dut["name"], raw)
            dut.clear()
            dut.update(fresh)
            if fresh.get("error"):
                raise RuntimeError(fresh["error"])
        return s

    def run_rate(rate):
        """one run; a marginal failure is repeated up to REPEATS (majority decides)"""
        s = step(rate, 1)
        steps.append(s)
        if not s["pass"] and marginal(s):
            for rep in range(2, R + 1):
                steps.append(step(rate, rep))
                if verdict(steps, rate) or sum(1 for x in steps if x["rate"] == rate and not x["pass"]) * 2 > R:
                    break
        return verdict(steps, rate)

    last_pass, first_fail = 0, 0
    for rate in CFG["rates"]:
        if over():
            log(f"{dut['name']}: MAX_DUT_S={CFG['max_dut_s']} reached, stopping the ladder at {rate}")
            break
        if run_rate(rate):
            last_pass = rate
        else:
            first_fail = rate
            break
    for _ in range(CFG["refine"]):
        if not first_fail or over():
            break
        mid = (last_pass + first_fail) // 2 // 500 * 500
        if mid <= last_pass or mid >= first_fail:
            break
        if run_rate(mid):
            last_pass = mid
        else:
            first_fail = mid

    def confirm(rate):
        n = sum(1 for s in steps if s["rate"] == rate)
        for rep in range(n + 1, R + 1):
            steps.append(step(rate, rep))
        return verdict(steps, rate)

    # the best rate gets REPEATS runs (median); if the majority fails, step down
    passed = sorted({s["rate"] for s in steps if s["pass"]}, reverse=True)
    best = None
    for i, rate in enumerate(passed):
        if i >= 2 or (i and over()):
            # give up confirming: the highest rate whose runs so far mostly passed
            best = next((r for r in passed if verdict(steps, r)), None)
            break
        if confirm(rate):
            best = rate
            break
    # the common fixed rate for the per-core comparison, REPEATS runs too
    fr = CFG["fixed_rate"]
    if fr and not over() and best is not None and fr <= best:
        if not any(s["rate"] == fr for s in steps):
            steps.append(run_step(dut, fr, 1, raw))
        confirm(fr)
    return steps, best, first_fail


def med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


def row_for(steps, rate):
    reps = [s for s in steps if s["rate"] == rate]
    if not reps:
        return None
    r = {"rate": rate, "reps": len(reps), "passed": sum(1 for s in reps if s["pass"]),
         "pass": verdict(steps, rate)}
    for k in ("achieved", "fail_pct", "retrans_pct", "cpu_dut", "cpu_dut_sched", "per_core",
              "cpu_uac", "cpu_uas", "per_sipp_core", "cpu_machine", "steal", "udp_rcvbuf_drops",
              "p50_setup_ms_le", "p99_setup_ms_le"):
        v = med([s.get(k) for s in reps])
        if v is not None:
            r[k] = round(v, 3 if k.endswith("_pct") else 1)
    r["why"] = " / ".join(sorted({s["why"] for s in reps if s.get("why")}))
    return r


# ------------------------------------------------------------------- report
def fmt(v, nd=0):
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def report(results, out):
    ref = CFG["fixed_rate"]
    lines = [f"## SIP calls/s: {time.strftime('%Y-%m-%d %H:%M %Z')}", "",
             f"host {os.uname().nodename}, {NCPU} CPU ({cpu_model()}), "
             f"pinning {'DUT on core ' + CFG['dut_cpus'] + ', SIPp on core ' + CFG['sipp_cpus'] if CFG['pin'] else 'none'}; "
             f"{CFG['duration']} s per step, hold {CFG['hold_ms']} ms, medians of up to {CFG['repeats']} runs "
             f"(ladder steps that pass clearly run once; the max and {ref}/s run {CFG['repeats']} times)", "",
             f"| DUT | max sustained calls/s (achieved) | runs passed | DUT CPU % at max | calls/s per DUT core-s at max "
             f"| at {ref}/s: DUT CPU % | at {ref}/s: calls/s per DUT core-s | SIPp pair CPU % at max | p99 setup ms ≤ at max | first failing rate |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    summ = {"config": {k: v for k, v in CFG.items()}, "duts": {}}
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | not run: {r['error'][:200]} | | | | | | | | |")
            summ["duts"][name] = {"error": r["error"]}
            continue
        steps, best, ff = r["steps"], r["best"], r["first_fail"]
        b = row_for(steps, best) if best else None
        f = row_for(steps, ref)
        x = row_for(steps, ff) if ff else None
        pair = (b.get("cpu_uac", 0) + b.get("cpu_uas", 0)) if b else None
        if name == "direct":
            # no DUT: efficiency of the SIPp pair itself
            pc_max = b.get("per_sipp_core") if b else None
            pc_ref = f.get("per_sipp_core") if f else None
        else:
            pc_max = b.get("per_core") if b else None
            pc_ref = f.get("per_core") if (f and f["pass"]) else None
        lines.append("| " + " | ".join([
            name + (" (SIPp pair as DUT)" if name == "direct" else ""),
            fmt(b["achieved"]) if b else "none passed",
            f"{b['passed']}/{b['reps']}" if b else "",
            fmt(b.get("cpu_dut"), 1) if b else "",
            fmt(pc_max),
            fmt(f.get("cpu_dut"), 1) if f else "",
            fmt(pc_ref) + ("" if (f and f["pass"]) else " (failed)" if f else ""),
            fmt(pair, 1),
            fmt(b.get("p99_setup_ms_le")) if b else "",
            (f"{ff}: {x['passed']}/{x['reps']} passed, {x['why']}" if x else "(top of ladder passed)" if best else ""),
        ]) + " |")
        summ["duts"][name] = {"best_rate": best, "best": b, "fixed": f, "first_fail": x,
                              "per_core_max": pc_max, "per_core_fixed": pc_ref,
                              "affinity": r.get("affinity"), "processes": r.get("processes")}
    # ratios
    D = summ["duts"]

    def g(n, k):
        return (D.get(n) or {}).get(k)

    def ach(n):
        b = g(n, "best")
        return b.get("achieved") if b else None

    def ratio(a, b):
        return round(a / b, 3) if a and b else None

    ratios = {
        "sbc_max / direct_max": ratio(ach("sbc"), ach("direct")),
        "kamailio-sbc_max / direct_max": ratio(ach("kamailio-sbc"), ach("direct")),
        "bare-fwd_max / direct_max": ratio(ach("bare-fwd"), ach("direct")),
        "sbc_max / kamailio-sbc_max": ratio(ach("sbc"), ach("kamailio-sbc")),
        f"sbc per-core / kamailio-sbc per-core @{ref}": ratio(g("sbc", "per_core_fixed"), g("kamailio-sbc", "per_core_fixed")),
        "sbc per-core / kamailio-sbc per-core @max": ratio(g("sbc", "per_core_max"), g("kamailio-sbc", "per_core_max")),
        f"sbc per-core / direct SIPp-pair per-core @{ref}": ratio(g("sbc", "per_core_fixed"), g("direct", "per_core_fixed")),
        f"kamailio-sbc per-core / direct SIPp-pair per-core @{ref}": ratio(g("kamailio-sbc", "per_core_fixed"), g("direct", "per_core_fixed")),
        f"sbc per-core / bare-fwd per-core @{ref}": ratio(g("sbc", "per_core_fixed"), g("bare-fwd", "per_core_fixed")),
        f"sbc per-core / sbc-base per-core @{ref}": ratio(g("sbc", "per_core_fixed"), g("sbc-base", "per_core_fixed")),
        "sbc per-core / sbc-base per-core @max": ratio(g("sbc", "per_core_max"), g("sbc-base", "per_core_max")),
        f"kamailio-sbc per-core / bare-fwd per-core @{ref}": ratio(g("kamailio-sbc", "per_core_fixed"), g("bare-fwd", "per_core_fixed")),
    }
    summ["ratios"] = ratios
    lines += ["", "Ratios (same run; empty = a side has no figure):", ""]
    lines += [f"- {k}: {fmt(v) if v is None else v}" for k, v in ratios.items()]
    lines += ["", "Per-rate medians:", "",
              "| DUT | target/s | achieved/s | runs passed | fail % | retr % | DUT CPU % | per DUT core-s | UAC % | UAS % | per SIPp-pair core-s | drops | p99 ms ≤ | why |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "error" in r:
            continue
        for rate in sorted({s["rate"] for s in r["steps"]}):
            x = row_for(r["steps"], rate)
            lines.append("| " + " | ".join([name, str(rate), fmt(x.get("achieved")), f"{x['passed']}/{x['reps']}",
                                            fmt(x.get("fail_pct"), 3), fmt(x.get("retrans_pct"), 3),
                                            fmt(x.get("cpu_dut"), 1), fmt(x.get("per_core")),
                                            fmt(x.get("cpu_uac"), 1), fmt(x.get("cpu_uas"), 1),
                                            fmt(x.get("per_sipp_core")), fmt(x.get("udp_rcvbuf_drops")),
                                            fmt(x.get("p99_setup_ms_le")), x["why"]]) + " |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summ, f, indent=1, default=str)
    return md


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def main():
    out = CFG["out"] or os.path.join(HERE, "results", time.strftime("%Y%m%d-%H%M%S"))
    raw = os.path.join(out, "raw")
    os.makedirs(raw, exist_ok=True)
    for tool in ("sipp",) + (("taskset",) if CFG["pin"] else ()):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (apt-get install -y sip-tester util-linux)")

    def on_term(sig, _frm):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    log(f"results in {out}; DUTs {CFG['duts']}; ladder {CFG['rates']}; {CFG['duration']} s/step, "
        f"hold {CFG['hold_ms']} ms, repeats {CFG['repeats']}, fixed rate {CFG['fixed_rate']}")
    results, t0 = {}, time.time()
    try:
        for name in CFG["duts"]:
            dut = start_dut(name, raw)
            if "error" in dut:
                log(f"{name}: NOT RUN: {dut['error']}")
                results[name] = {"error": dut["error"]}
                continue
            try:
                steps, best, ff = search(dut, raw)
            finally:
                stop_dut(dut)
            results[name] = {"steps": steps, "best": best, "first_fail": ff,
                             "affinity": dut.get("affinity"), "processes": dut.get("processes")}
            with open(os.path.join(out, "steps.jsonl"), "a") as f:
                for s in steps:
                    f.write(json.dumps(s) + "\n")
            log(f"{name}: max sustained {best}/s (first failing {ff or '-'}), {time.time() - t0:.0f} s so far")
    except KeyboardInterrupt:
        log("interrupted: stopping what was started")
    finally:
        for pid, _ in STARTED:
            stop_pid(pid, 5)
    md = report(results, out)
    with open(os.path.join(out, "summary.md"), "a") as f:
        f.write(f"\nwall time {time.time() - t0:.0f} s; raw data under {raw}\n")
    print(md)
    print(f"wall time {time.time() - t0:.0f} s; results: {out}")


if __name__ == "__main__":
    main()
