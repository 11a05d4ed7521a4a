#!/usr/bin/env bash
# loadtest/media/ops_overhead.sh -- what operations cost the relay: relayed pps per core-second of
# the SBC's relay worker with a scraper on /metrics (10 a second) and CDRs being written, against
# the same without, in one run, alternating the two cases (A B A B A B). See README.md.
#
#   ./loadtest/media/ops_overhead.sh                    # 3 pairs, 1500 calls, 15 s windows (~3 min)
#   PAIRS=5 CALLS=1200 STEP_S=20 ./loadtest/media/ops_overhead.sh
#
# A (plain): the SBC relays CALLS G.711 calls set up over ng (rtpload), the API is on and nobody
#   scrapes it, a trickle of SIP calls (SIPp, SIP_RATE calls/s, SIP_HOLD_MS each) goes through the
#   B2BUA, CDRs are off.
# B (ops): the same, plus a scraper GETting /metrics SCRAPE_HZ times a second and CDRs on (SQLite in
#   a temporary directory), so the CDR writer commits the trickle's records during the window.
# A and B differ only by the scraper and the CDR writing. Each case starts its own SBC (the same
# binary and config but `[cdr] enabled`), pinned to RELAY_CPU; its relay worker stays there and its
# other threads (control and API, CDR writer) are moved to OPS_CPU, with rtpload, SIPp and the
# scraper. Figures: relayed pps per core-second of the worker thread (rtpload --relay-tid, from
# /proc/PID/task/TID/stat over the measurement window) and of the whole process, loss.
#
# Everything stays on 127.53.0.0/16 (loopback); every process this script starts is stopped by its
# PID on exit; each case is bounded (rtpload --max-runtime-s, timeout).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TS=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$HERE/results/ops-$TS}

PAIRS=${PAIRS:-3}
CALLS=${CALLS:-1500}            # fixed load: below the relay's maximum on one core (results/LAST.md)
STEP_S=${STEP_S:-15}            # measurement window per case
WARMUP_S=${WARMUP_S:-4}         # traffic before the window (the relay learns the endpoints)
SIP_RATE=${SIP_RATE:-20}        # SIP calls per second in both cases
SIP_HOLD_MS=${SIP_HOLD_MS:-500}
SCRAPE_HZ=${SCRAPE_HZ:-10}      # case B only
GEN_CPU=${GEN_CPU:-0}           # rtpload, SIPp, the scraper
OPS_CPU=${OPS_CPU:-0}           # the SBC's threads other than its relay worker
RELAY_CPU=${RELAY_CPU:-1}       # the SBC's relay worker
BATCH=${BATCH:-16}
IP=${IP:-127.53.0}              # SBC .1, rtpload A .2 and B .3, SIPp caller .4 and callee .5
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$CARGO_TARGET_DIR/release
SBC_BIN=${SBC_BIN:-$BIN/sbc}

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/sbc-opsbench.XXXXXX)
TOKEN=opsbench-$$-$RANDOM

# shellcheck source=procs.sh
source "$HERE/procs.sh"
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

need taskset "apt-get install -y util-linux"
need sipp "apt-get install -y sip-tester"
need python3 "apt-get install -y python3"
need sqlite3 "apt-get install -y sqlite3"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
	build_release "sbc and rtpload" -p sbc --bin sbc -p loadtest --bin rtpload
fi
[ -x "$SBC_BIN" ] || { echo "no SBC binary at $SBC_BIN" >&2; exit 2; }

# write_config CASE CDR_ENABLED: the SBC's config for one case.
write_config() {
	local dir=$WORK/$1
	mkdir -p "$dir"
	cat >"$dir/sbc.toml" <<EOF
# ops_overhead.sh case $1: relay for rtpload over ng, B2BUA for the SIPp trickle, API, CDRs.
workers = 1

[sip]
udp = ["$IP.1:5060"]
tcp = []

[transport]
# SIP over UDP only; fewer descriptors kept for TCP leave room for the media ports (hard limit 20,000)
tcp_max_connections = 16

[outside]
advertised_address = "$IP.1"

[inside]
address = "$IP.1"
port = 5082
targets = ["pbx"]

[[target_group]]
name = "pbx"
targets = [{ address = "$IP.5:5090", transport = "udp" }]
options_interval_secs = 0

[[route]]
name = "all-to-pbx"
from = "outside"
prefix = ""
target_group = "pbx"

[guard]
allow = ["$IP.4"]

[fraud]
untrusted_max_calls = 0

[media]
address = "$IP.1"
port_min = 10000
port_max = 27999
ng_listen = "$IP.1:2223"

[api]
enabled = true
listen = "$IP.1:8080"
token = "$TOKEN"

[cdr]
enabled = $2
sqlite_path = "$dir/cdr.sqlite"
EOF
	"$SBC_BIN" --check-config "$dir/sbc.toml" >"$OUT/check-$1.log" 2>&1 ||
		{ echo "sbc --check-config failed:" >&2; cat "$OUT/check-$1.log" >&2; exit 2; }
}
write_config A false
write_config B true

# The scraper: GET /metrics at a fixed schedule (keep-alive, as Prometheus does) for S seconds;
# prints one JSON line: scrapes, errors, render+transfer time per scrape.
cat >"$WORK/scrape.py" <<'EOF'
import http.client, json, signal, sys, time
host, port, token, hz, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
conn, ok, err, times, size = None, 0, 0, [], 0
start = time.monotonic()
k = 0
stopped = []
signal.signal(signal.SIGTERM, lambda *_: stopped.append(1))
try:
    while True:
        due = start + k / hz
        now = time.monotonic()
        if due - start > secs or stopped:
            break
        if due > now:
            time.sleep(due - now)
        k += 1
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + token})
            r = conn.getresponse()
            body = r.read()
            if r.status == 200:
                ok += 1
                size = len(body)
                times.append(time.monotonic() - t0)
            else:
                err += 1
        except (OSError, http.client.HTTPException):
            err += 1
            conn = None
except KeyboardInterrupt:
    pass
times.sort()
q = lambda p: round(1e3 * times[min(len(times) - 1, int(p * len(times)))], 3) if times else None
print(json.dumps({"scrapes": ok, "errors": err, "seconds": round(time.monotonic() - start, 2),
                  "bytes": size, "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0)}))
EOF

# sipp_bg NAME ARGS...: SIPp in background mode on GEN_CPU; prints its PID.
sipp_bg() {
	local name=$1 out
	shift
	out=$(cd "$WORK" && taskset -c "$GEN_CPU" sipp "$@" -nostdin -bg 2>&1)
	echo "$out" >"$OUT/$name.sipp.out"
	echo "$out" | sed -n 's/.*PID=\[\([0-9]*\)\].*/\1/p' | head -1
}

# run_case PAIR CASE: one SBC, the trickle, (the scraper), one rtpload window; appends to results.
run_case() {
	local pair=$1 c=$2 dir=$WORK/$2 tag=$1$2 i sbc tid t uas uac scr=
	rm -f "$dir"/cdr.sqlite*
	taskset -c "$RELAY_CPU" "$SBC_BIN" --config "$dir/sbc.toml" --workers 1 >"$OUT/$tag.sbc.log" 2>&1 &
	sbc=$!
	PIDS+=("$sbc")
	for i in $(seq 40); do
		"$BIN/rtpload" --ng "$IP.1:2223" --ping --ng-timeout-ms 200 >/dev/null 2>&1 && break
		kill -0 "$sbc" 2>/dev/null || break
		sleep 0.25
	done
	if ! "$BIN/rtpload" --ng "$IP.1:2223" --ping --ng-timeout-ms 500 >/dev/null 2>&1; then
		echo "$tag: the SBC does not answer ng on $IP.1:2223: $(tail -2 "$OUT/$tag.sbc.log")" >&2
		stop_pid "$sbc"
		return 1
	fi
	tid=
	for t in /proc/"$sbc"/task/*; do
		if [ "$(cat "$t/comm" 2>/dev/null)" = sbc-worker-0 ]; then
			tid=${t##*/}
		else
			taskset -p -c "$OPS_CPU" "${t##*/}" >/dev/null
		fi
	done
	[ -n "$tid" ] || { echo "$tag: no sbc-worker-0 thread" >&2; stop_pid "$sbc"; return 1; }
	taskset -p "$tid" >>"$OUT/$tag.affinity"
	# The trickle runs longer than setup + warm-up + window; stopped by PID after the window.
	local secs=$((STEP_S + WARMUP_S + 60))
	uas=$(sipp_bg "$tag.uas" -sf "$REPO/loadtest/sip/scenarios/callee.xml" -i "$IP.5" -p 5090 \
		-timeout "${secs}s")
	[ -n "$uas" ] && PIDS+=("$uas")
	uac=$(sipp_bg "$tag.uac" -sf "$REPO/loadtest/sip/scenarios/caller.xml" "$IP.1:5060" -i "$IP.4" \
		-p 5070 -s 1000 -d "$SIP_HOLD_MS" -r "$SIP_RATE" -m $((SIP_RATE * secs)) -timeout "${secs}s" \
		-trace_stat -stf "$OUT/$tag.uac.csv" -fd 1)
	[ -n "$uac" ] && PIDS+=("$uac")
	[ -n "$uas" ] && [ -n "$uac" ] || echo "$tag: SIPp did not start (see $OUT/$tag.*.sipp.out)" >&2
	if [ "$c" = B ]; then
		# Scrapes from the start, so that it covers the ng setup, the warm-up and the window.
		timeout $((secs + 10)) taskset -c "$GEN_CPU" python3 "$WORK/scrape.py" "$IP.1" 8080 "$TOKEN" \
			"$SCRAPE_HZ" "$secs" >"$OUT/$tag.scrape.json" 2>"$OUT/$tag.scrape.err" &
		scr=$!
		PIDS+=("$scr")
	fi
	sleep 1
	timeout 300 taskset -c "$GEN_CPU" "$BIN/rtpload" --ng "$IP.1:2223" --relay-pid "$sbc" --relay-tid "$tid" \
		--label "$c" --mode "pair$pair" --a-ip "$IP.2" --b-ip "$IP.3" --ep-base 10000 --batch "$BATCH" \
		--calls "$CALLS" --refine 0 --step-s "$STEP_S" --warmup-s "$WARMUP_S" --warmup-new-s "$WARMUP_S" \
		--retries 0 --max-runtime-s 240 >"$OUT/$tag.jsonl" 2>"$OUT/$tag.rtpload.log"
	local rc=$?
	[ $rc -ne 0 ] && echo "$tag: rtpload exited $rc: $(tail -1 "$OUT/$tag.rtpload.log")" >&2
	grep -h "^rtpload: $c #" "$OUT/$tag.rtpload.log" >&2
	if [ -n "$scr" ]; then
		stop_pid "$scr"
	fi
	[ -n "$uac" ] && stop_pid "$uac"
	[ -n "$uas" ] && stop_pid "$uas"
	local cdrs=0
	[ "$c" = B ] && cdrs=$(sqlite3 "$dir/cdr.sqlite" 'select count(*) from cdr' 2>/dev/null || echo 0)
	stop_pid "$sbc"
	local sip ok fail
	sip=$(tail -1 "$OUT/$tag.uac.csv" 2>/dev/null | cut -d';' -f16,18)
	ok=${sip%;*} fail=${sip#*;}
	echo "{\"pair\":$pair,\"case\":\"$c\",\"cdrs_at_end\":${cdrs:-0},\"sip_ok\":${ok:-0},\"sip_failed\":${fail:-0}}" \
		>"$OUT/$tag.extra.json"
	return 0
}

{
	echo "date=$(date -u +%FT%TZ)"
	echo "host=$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
	echo "commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+changes')"
	echo "settings=pairs $PAIRS, calls $CALLS, window ${STEP_S} s, warm-up ${WARMUP_S} s, SIP ${SIP_RATE}/s hold ${SIP_HOLD_MS} ms, scrapes ${SCRAPE_HZ}/s (B), worker CPU $RELAY_CPU, other SBC threads CPU $OPS_CPU, rtpload/SIPp/scraper CPU $GEN_CPU"
	echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.txt"

for p in $(seq "$PAIRS"); do
	for c in A B; do
		echo "== pair $p case $c: $CALLS calls, ${STEP_S} s" >&2
		run_case "$p" "$c"
	done
done
echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"

python3 - "$OUT" >"$OUT/summary.md" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
meta = open(os.path.join(out, "meta.txt")).read().strip().splitlines()
def load(tag):
    t, x, s = None, {}, {}
    try:
        for line in open(os.path.join(out, tag + ".jsonl")):
            d = json.loads(line)
            if "trial" in d and not d.get("summary"):
                t = d
    except OSError:
        pass
    for name, dst in ((".extra.json", x), (".scrape.json", s)):
        try:
            dst.update(json.loads(open(os.path.join(out, tag + name)).read().strip().splitlines()[-1]))
        except (OSError, ValueError, IndexError):
            pass
    return t, x, s
pairs = sorted({int(os.path.basename(f).split("A")[0]) for f in glob.glob(os.path.join(out, "*A.jsonl"))})
print("# Operations overhead on the relay (issue 20)\n")
for m in meta:
    print(f"- {m}")
print("\nA: relaying + SIP trickle, API on but not scraped, CDRs off. B: the same + /metrics scraped + CDRs written.")
print("pps/core = relayed pps per core-second of the relay worker thread (sbc-worker-0); process = of all the SBC's threads.\n")
print("| pair | case | relayed pps | loss % | worker CPU % | pps/worker core | process CPU % | pps/process core | p50 µs | p99 µs | other CPU % | pass | scrapes (p50/max ms) | CDRs | SIP calls ok/failed |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
ratios, pratios, clean = [], [], []
for p in pairs:
    row = {}
    for c in "AB":
        t, x, s = load(f"{p}{c}")
        row[c] = t
        if t is None:
            print(f"| {p} | {c} | no result |||||||||||")
            continue
        lat = t.get("latency_us") or {}
        scr = f"{s.get('scrapes')} in {s.get('seconds')} s ({s.get('p50_ms')}/{s.get('max_ms')})" if s else "–"
        cdr = x.get("cdrs_at_end", 0) if c == "B" else "off"
        print(f"| {p} | {c} | {t['relayed_pps']:,.0f} | {t['loss_pct']:.4f} | {t.get('relay_thread_cpu_pct')} | "
              f"{t.get('relay_pps_per_thread_core') or 0:,.0f} | {t.get('relay_cpu_pct')} | {t.get('relay_pps_per_core') or 0:,.0f} | "
              f"{lat.get('p50', '–')} | {lat.get('p99', '–')} | {t.get('other_cpu_pct')} | {'yes' if t.get('pass') else 'no'} | {scr} | {cdr} | {x.get('sip_ok', '?')}/{x.get('sip_failed', '?')} |")
    a, b = row.get("A"), row.get("B")
    if a and b and a.get("relay_pps_per_thread_core") and b.get("relay_pps_per_thread_core"):
        ratios.append(b["relay_pps_per_thread_core"] / a["relay_pps_per_thread_core"])
        if a.get("pass") and b.get("pass"):
            clean.append(ratios[-1])
    if a and b and a.get("relay_pps_per_core") and b.get("relay_pps_per_core"):
        pratios.append(b["relay_pps_per_core"] / a["relay_pps_per_core"])
print()
if ratios:
    med = statistics.median(ratios)
    print("B/A per pair, worker thread: " + ", ".join(f"{r:.3f}" for r in ratios))
    print(f"\n**Median B/A (pps per worker core-second): {med:.3f}** -> "
          + ("within 2 %" if med >= 0.98 else f"NOT within 2 % ({100 * (1 - med):.1f} % lower)"))
if clean:
    print(f"\nPairs where both cases passed (loss < 0.1 %, p50 < 5 ms, offered >= 98 %: no backlog, which would "
          f"batch more and cost less per packet): {len(clean)}, B/A " + ", ".join(f"{r:.3f}" for r in clean)
          + f"; median {statistics.median(clean):.3f}")
if pratios:
    print("\nB/A per pair, whole process (ops threads included): " + ", ".join(f"{r:.3f}" for r in pratios)
          + f"; median {statistics.median(pratios):.3f}")
EOF
cat "$OUT/summary.md"
echo "results: $OUT" >&2
