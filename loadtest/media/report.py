#!/usr/bin/env python3
"""Markdown summary of one media load run: report.py RESULTS_DIR > summary.md

Reads what run.sh left in RESULTS_DIR: <device>-ladder.jsonl and <device>-soak.jsonl (rtpload's
JSON lines: one per trial, then a summary), meta.txt and notes.txt.
"""
import json
import os
import sys

DEVICES = ["barefwd", "rtpengine", "sbc", "sbc-base"]
NAMES = {
    "barefwd": "bare forwarder (benches `barefwd`: 1 socket per leg, epoll, no logic)",
    "rtpengine": "rtpengine (userspace, 1 thread)",
    "sbc": "sbc",
    "sbc-base": "sbc (base build, SBC_BASE_BIN)",
}
SOAK_MAX_STALL_MS = 5.0
SOAK_MAX_P999_US = 1000.0
TARGET_VS_FWD = 0.9
TARGET_VS_RTPE = 1.5


def load(path):
    trials, summary = [], None
    if not os.path.exists(path):
        return trials, summary
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if d.get("summary"):
                summary = d
            else:
                trials.append(d)
    return trials, summary


def fmt(x, digits=0, unit=""):
    if x is None:
        return "–"
    if isinstance(x, float) and digits == 0:
        return f"{x:,.0f}{unit}"
    return f"{x:,.{digits}f}{unit}"


def limited_by(t):
    """Who limited a failing step: the generator when it could not offer the load, else whose core
    was saturated (both: a joint limit of this 2-core box), else the relay."""
    if t.get("pass"):
        return None
    if t.get("limited_by") == "setup":
        return "setup"
    if any(f.startswith("offered") for f in t.get("fail", [])):
        return "generator"
    gen = (t.get("gen_cpu_pct") or 0) >= 95
    relay = (t.get("relay_cpu_pct") or 100) >= 95
    return {(True, True): "generator+relay", (True, False): "generator"}.get((gen, relay), "relay")


def lat(t, key):
    l = t.get("latency_us") or {}
    return l.get(key)


def main():
    out_dir = sys.argv[1]
    meta = {}
    if os.path.exists(os.path.join(out_dir, "meta.txt")):
        for line in open(os.path.join(out_dir, "meta.txt")):
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    notes = []
    if os.path.exists(os.path.join(out_dir, "notes.txt")):
        notes = [l.rstrip("\n") for l in open(os.path.join(out_dir, "notes.txt")) if l.strip()]

    probes = []
    if os.path.exists(os.path.join(out_dir, "probe.jsonl")):
        for line in open(os.path.join(out_dir, "probe.jsonl")):
            try:
                probes.append(json.loads(line))
            except ValueError:
                pass

    ladders, soaks = {}, {}
    for dev in DEVICES:
        trials, summary = load(os.path.join(out_dir, f"{dev}-ladder.jsonl"))
        if trials:
            ladders[dev] = (trials, summary)
        trials, summary = load(os.path.join(out_dir, f"{dev}-soak.jsonl"))
        if trials:
            soaks[dev] = (trials, summary)

    # The trial at each device's maximum: the largest passing call count.
    best = {}
    for dev, (trials, summary) in ladders.items():
        passing = [t for t in trials if t.get("pass")]
        if passing:
            best[dev] = max(passing, key=lambda t: t["calls"])

    p = print
    p("# Media load run")
    p()
    p(f"Run {meta.get('date', '?')} on {meta.get('host', '?')}; commit {meta.get('commit', '?')}; "
      f"{meta.get('rtpengine', '')}.")
    p(f"Settings: {meta.get('settings', '?')}. Load average before: {meta.get('loadavg_before', '?')}.")
    p()
    p("Each call is two G.711 streams (PT 0, 172-byte packets every 20 ms, one UDP port per leg on "
      "each side), so **calls = relayed pps / 100**. A step passes when loss < 0.1 %, p50 one-way "
      "latency < 5 ms and rtpload really sent ≥ 98 % of the packets due. Relay pinned to one core, "
      "rtpload to the other; latency is kernel receive timestamp minus send time.")
    p()
    p("## Maximum per device")
    p()
    p("| device | max calls | relayed pps at max | relay CPU % | relayed pps per relay core-second "
      "| rtpload CPU % | p50 µs | p99 µs | p99.9 µs | max µs | stopped by (first failing step) |")
    p("|---|---|---|---|---|---|---|---|---|---|---|")
    for dev in DEVICES:
        if dev not in ladders:
            continue
        trials, summary = ladders[dev]
        b = best.get(dev)
        stop = "–"
        if summary:
            why = summary.get("limited_by")
            ff = summary.get("first_failure")
            fail_t = [t for t in trials if t["calls"] == ff and not t.get("pass") and not t.get("retried")]
            reason = "; ".join(fail_t[0]["fail"]) if fail_t else ""
            if fail_t:
                why = limited_by(fail_t[0]) or why
                reason += (f" (rtpload CPU {fmt(fail_t[0].get('gen_cpu_pct'), 0)} %, relay CPU "
                           f"{fmt(fail_t[0].get('relay_cpu_pct'), 0)} %)")
            stop = f"{why} at {ff} calls: {reason}" if ff else "none (every step passed)"
        if b is None:
            p(f"| {NAMES[dev]} | none | | | | | | | | | {stop} |")
            continue
        p(f"| {NAMES[dev]} | **{b['calls']:,}** | {fmt(b['relayed_pps'])} | {fmt(b.get('relay_cpu_pct'), 1)} "
          f"| **{fmt(b.get('relay_pps_per_core'))}** | {fmt(b.get('gen_cpu_pct'), 1)} | {fmt(lat(b, 'p50'), 1)} "
          f"| {fmt(lat(b, 'p99'), 1)} | {fmt(lat(b, 'p999'), 1)} | {fmt(lat(b, 'max'), 1)} | {stop} |")
    p()

    def ratio(a, b, key):
        if a is None or b is None:
            return None
        x, y = a.get(key), b.get(key)
        if not x or not y:
            return None
        return x / y

    fwd, rtpe = best.get("barefwd"), best.get("rtpengine")
    rows = [d for d in DEVICES if d in best and d != "barefwd"]
    if rows:
        p("## Ratios")
        p()
        p("| device | max relayed pps ÷ bare forwarder | per relay core ÷ bare forwarder "
          "| max relayed pps ÷ rtpengine | per relay core ÷ rtpengine |")
        p("|---|---|---|---|---|")
        for dev in rows:
            b = best[dev]
            cells = [ratio(b, fwd, "relayed_pps"), ratio(b, fwd, "relay_pps_per_core")]
            if dev == "rtpengine":
                cells += [None, None]
            else:
                cells += [ratio(b, rtpe, "relayed_pps"), ratio(b, rtpe, "relay_pps_per_core")]
            p(f"| {NAMES[dev]} | " + " | ".join(fmt(c, 2) for c in cells) + " |")
        p()
        if "sbc" in best:
            b = best["sbc"]
            r1 = ratio(b, fwd, "relay_pps_per_core")
            r2 = ratio(b, rtpe, "relay_pps_per_core")
            ok1 = r1 is not None and r1 >= TARGET_VS_FWD
            ok2 = r2 is not None and r2 >= TARGET_VS_RTPE
            if "sbc-base" in best:
                r3 = ratio(b, best["sbc-base"], "relay_pps_per_core")
                p(f"sbc ÷ sbc-base per relay core (same run): {fmt(r3, 3)}.")
                p()
            p(f"Targets for the SBC: ≥ {TARGET_VS_FWD} of the bare forwarder per core: "
              f"{'met' if ok1 else 'NOT met'} ({fmt(r1, 2)}); ≥ {TARGET_VS_RTPE}× rtpengine per core: "
              f"{'met' if ok2 else 'NOT met'} ({fmt(r2, 2)}).")
            p()

    # Same offered load on every device: relay CPU per packet, where efficiency does not depend on
    # how far each device was pushed (a relay batches more, and so costs less per packet, near its
    # maximum).
    common = None
    for dev, (trials, _) in ladders.items():
        ok = {t["calls"] for t in trials if t.get("pass") and t.get("relay_cpu_pct")}
        common = ok if common is None else common & ok
    if common and len(ladders) > 1:
        devs = [d for d in DEVICES if d in ladders]
        p("## Same load on every device")
        p()
        p("Relay CPU µs per relayed packet at the call counts every device passed (lower is better); "
          "ratio = bare forwarder's cost ÷ the device's (1.0 = as cheap as the bare forwarder).")
        p()
        head = " | ".join(f"{d} µs/pkt" for d in devs)
        ratios = " | ".join(f"{d} ratio" for d in devs if d != "barefwd")
        p(f"| calls | {head} | {ratios} |")
        p("|---|" + "---|" * (len(devs) + len([d for d in devs if d != 'barefwd'])))
        for calls in sorted(common):
            cost = {}
            for d in devs:
                t = [t for t in ladders[d][0] if t["calls"] == calls and t.get("pass")][-1]
                cost[d] = t["relay_cpu_pct"] / 100.0 * 1e6 / t["relayed_pps"] if t["relayed_pps"] else None
            cells = [fmt(cost[d], 2) for d in devs]
            rcells = []
            for d in devs:
                if d == "barefwd":
                    continue
                rcells.append(fmt(cost.get("barefwd") / cost[d], 2) if cost.get("barefwd") and cost[d] else "–")
            p(f"| {calls:,} | " + " | ".join(cells + rcells) + " |")
        p()

    if soaks:
        p("## Soak")
        p()
        p(f"Target: no stall over {SOAK_MAX_STALL_MS:g} ms and p99.9 < {SOAK_MAX_P999_US / 1000:g} ms. "
          "*Stall* = largest gap between two arrivals of one stream minus 20 ms; *relay stall* = largest "
          "amount by which an arrival gap exceeded the send gap of the same two packets (the relay's "
          "part, without the generator's own send delays, shown as *send lag*). The target is judged "
          "on the relay stall.")
        p()
        p("| device | calls | s | relayed pps | loss % | relay CPU % | p50 µs | p99 µs | p99.9 µs | max µs "
          "| max gap ms | stall ms | relay stall ms | send lag ms | other CPU % | pass rule | soak target |")
        p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for dev in DEVICES:
            if dev not in soaks:
                continue
            for t in soaks[dev][0]:
                target = (t.get("max_relay_stall_ms", 1e9) <= SOAK_MAX_STALL_MS
                          and (lat(t, "p999") or 1e12) < SOAK_MAX_P999_US and t.get("pass"))
                p(f"| {NAMES[dev]} | {t['calls']:,} | {fmt(t['window_s'], 0)} | {fmt(t['relayed_pps'])} "
                  f"| {fmt(t['loss_pct'], 4)} | {fmt(t.get('relay_cpu_pct'), 1)} | {fmt(lat(t, 'p50'), 1)} "
                  f"| {fmt(lat(t, 'p99'), 1)} | {fmt(lat(t, 'p999'), 1)} | {fmt(lat(t, 'max'), 1)} "
                  f"| {fmt(t['max_gap_ms'], 2)} | {fmt(t['max_stall_ms'], 2)} | {fmt(t.get('max_relay_stall_ms'), 2)} "
                  f"| {fmt(t['max_send_lag_ms'], 2)} | {fmt(t.get('other_cpu_pct'), 1)} "
                  f"| {'pass' if t.get('pass') else 'FAIL'}{' (not counted: other processes busy, run again)' if t.get('retried') else ''} "
                  f"| {'met' if target else 'NOT met'} |")
        p()

    p("## Every step")
    p()
    p("| device | # | calls | offered % | relayed pps | loss % | p50 µs | p99 µs | p99.9 µs | max µs "
      "| max gap ms | relay CPU % | pps per relay core | rtpload CPU % | other CPU % | verdict |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for dev in DEVICES:
        if dev not in ladders:
            continue
        for t in ladders[dev][0]:
            verdict = "pass" if t.get("pass") else "FAIL: " + "; ".join(t.get("fail", []))
            if t.get("retried"):
                verdict = "not counted (other processes were busy; step run again): " + verdict
            p(f"| {dev} | {t['trial']} | {t['calls']:,} | {fmt(t['offered_pct'], 1)} | {fmt(t['relayed_pps'])} "
              f"| {fmt(t['loss_pct'], 3)} | {fmt(lat(t, 'p50'), 1)} | {fmt(lat(t, 'p99'), 1)} "
              f"| {fmt(lat(t, 'p999'), 1)} | {fmt(lat(t, 'max'), 1)} | {fmt(t['max_gap_ms'], 1)} "
              f"| {fmt(t.get('relay_cpu_pct'), 1)} | {fmt(t.get('relay_pps_per_core'))} "
              f"| {fmt(t.get('gen_cpu_pct'), 1)} | {fmt(t.get('other_cpu_pct'), 1)} | {verdict} |")
    p()
    p("*other CPU %*: CPU used during the window by processes other than rtpload and the relay "
      "(percent of one core); more than a few percent means another load distorted the step. A step "
      "that failed with more than 15 % is not counted and is run again after 20 s (at most twice).")
    p()
    if probes:
        p("## Platform noise")
        p()
        p("`rtpload --probe-s 3` pinned to each CPU: 100 µs sleeps (worst overshoot, overshoots over "
          "1 ms per second) and a spinning thread (longest time between two clock reads, gaps over 1 ms "
          "per second). The higher these are, the more the latency tails and gaps above are the "
          "platform's rather than the relay's.")
        p()
        p("| when | CPU | sleep: worst overshoot µs | sleep: > 1 ms per s | spin: worst gap µs | spin: > 1 ms per s |")
        p("|---|---|---|---|---|---|")
        for pr in probes:
            p(f"| {pr.get('when', '')} | {pr.get('cpu')} | {fmt(pr.get('sleep_overshoot_max_us'))} "
              f"| {fmt(pr.get('sleep_overshoots_over_1ms_per_s'), 1)} | {fmt(pr.get('spin_gap_max_us'))} "
              f"| {fmt(pr.get('spin_gaps_over_1ms_per_s'), 1)} |")
        p()
    if notes:
        p("## Notes from the run")
        p()
        for n in notes:
            p(f"- {n}")
        p()
    p("Raw data: one JSON line per step in `<device>-ladder.jsonl` / `<device>-soak.jsonl`, logs beside "
      "them (`loadtest/media/results/<timestamp>/`, not tracked).")


if __name__ == "__main__":
    main()
