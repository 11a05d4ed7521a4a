#!/usr/bin/env bash
# loadtest/media/srtp.sh -- what SRTP on one leg costs the relay (issue 19): relayed pps per relay
# core-second with leg B in SDES-SRTP (RTP<->SRTP calls: the relay decrypts and authenticates what B
# sends, encrypts what it sends B) against plain RTP<->RTP calls, for our SBC and for rtpengine, all
# four cases alternating in one run (rounds of sbc-rtp, sbc-srtp, rtpe-rtp, rtpe-srtp, the order
# rotated each round). See README.md.
#
#   ./loadtest/media/srtp.sh                         # 3 rounds, 300 calls, 10 s windows (~4 min)
#   ROUNDS=5 CALLS=1500 STEP_S=15 ./loadtest/media/srtp.sh
#
# Every case starts its relay fresh, pinned to RELAY_CPU (all its threads), and drives CALLS G.711
# calls through it with rtpload over ng from GEN_CPU: offer (endpoint A, RTP/AVP) and answer
# (endpoint B); for the SRTP cases the offer asks `transport-protocol: RTP/SAVP` for leg B, B answers
# RTP/SAVP with its own key, sends SRTP and authenticates what it receives (rtpload --srtp-leg b).
# rtpengine gets exactly the same ng requests. Fixed load below saturation: the figure is relayed pps
# ÷ the relay process's CPU share over the window (/proc/PID/stat), loss must stay under 0.1 %.
#
# Traffic stays on loopback (relay 127.0.0.1, endpoints 127.0.0.2/.3); every process this script
# starts is stopped by its PID on exit; each case is bounded (timeout, rtpload --max-runtime-s).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TS=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$HERE/results/srtp-$TS}

ROUNDS=${ROUNDS:-3}
CALLS=${CALLS:-300}             # fixed load: below every case's maximum, and what rtpload sustains on a busy box
STEP_S=${STEP_S:-10}            # measurement window per case
WARMUP_S=${WARMUP_S:-4}         # traffic before the window (rtpengine learns endpoints for 3 s)
CASES=${CASES:-"sbc-rtp sbc-srtp rtpe-rtp rtpe-srtp"}
GEN_CPU=${GEN_CPU:-0}
RELAY_CPU=${RELAY_CPU:-1}
BATCH=${BATCH:-16}
# Relay and rtpload run at this niceness, so that other processes on the box (builds) take CPU from
# them less often (root only; otherwise nice warns and runs them at 0). The figures are each
# relay's own CPU time, so they hold either way; the load and its latency hold better with it.
PRIO=${PRIO:--10}
A_IP=127.0.0.2
B_IP=127.0.0.3
EP_BASE=10000
SBC_NG=127.0.0.1:2223           # loadtest/media/sbc.toml
RTPE_NG=127.0.0.1:2224
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$CARGO_TARGET_DIR/release
SBC_BIN=${SBC_BIN:-$BIN/sbc}
SBC_ARGS=${SBC_ARGS:-"--config $HERE/sbc.toml --workers 1"}

mkdir -p "$OUT"
# shellcheck source=procs.sh
source "$HERE/procs.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

need taskset "apt-get install -y util-linux"
need python3 "apt-get install -y python3"
RTPENGINE=$(command -v rtpengine || ls /usr/sbin/rtpengine /usr/bin/rtpengine 2>/dev/null | head -1)
[ -n "$RTPENGINE" ] || { echo "missing rtpengine: apt-get install -y rtpengine-daemon" >&2; exit 2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
	build_release "sbc and rtpload" -p sbc --bin sbc -p loadtest --bin rtpload
fi
[ -x "$SBC_BIN" ] || { echo "no SBC binary at $SBC_BIN" >&2; exit 2; }

# start_relay sbc|rtpe LOG: the relay pinned to RELAY_CPU, answering ng; sets RELAY_PID, NG.
start_relay() {
	local kind=$1 log=$2 i
	if [ "$kind" = sbc ]; then
		NG=$SBC_NG
		# shellcheck disable=SC2086
		nice -n "$PRIO" taskset -c "$RELAY_CPU" "$SBC_BIN" $SBC_ARGS >"$log" 2>&1 &
	else
		NG=$RTPE_NG
		# Userspace only (no kernel table), one worker thread, foreground, no config file.
		nice -n "$PRIO" taskset -c "$RELAY_CPU" "$RTPENGINE" --config-file=none --table=-1 --foreground --log-stderr \
			--log-level=4 --num-threads=1 --interface=127.0.0.1 --listen-ng="$RTPE_NG" \
			--port-min=20000 --port-max=29999 --timeout=600 --silent-timeout=600 \
			--final-timeout=3600 --delete-delay=0 >"$log" 2>&1 &
	fi
	RELAY_PID=$!
	PIDS+=("$RELAY_PID")
	for i in $(seq 40); do
		"$BIN/rtpload" --ng "$NG" --ping --ng-timeout-ms 200 >/dev/null 2>&1 && return 0
		kill -0 "$RELAY_PID" 2>/dev/null || break
		sleep 0.25
	done
	echo "$kind does not answer ng on $NG: $(tail -2 "$log")" >&2
	stop_pid "$RELAY_PID"
	return 1
}

# run_case ROUND CASE: one relay, one rtpload window at CALLS.
run_case() {
	local round=$1 c=$2 tag=$1-$2 kind=${2%%-*} srtp=()
	[ "${2##*-}" = srtp ] && srtp=(--srtp-leg b)
	if ! start_relay "$kind" "$OUT/$tag.relay.log"; then
		return 1
	fi
	sleep 0.5
	timeout 120 nice -n "$PRIO" taskset -c "$GEN_CPU" "$BIN/rtpload" --ng "$NG" --relay-pid "$RELAY_PID" \
		--label "$c" --mode "round$round" --a-ip "$A_IP" --b-ip "$B_IP" --ep-base "$EP_BASE" \
		--batch "$BATCH" "${srtp[@]}" --calls "$CALLS" --refine 0 --step-s "$STEP_S" \
		--warmup-s "$WARMUP_S" --warmup-new-s "$WARMUP_S" --retries 0 --max-runtime-s 240 \
		>"$OUT/$tag.jsonl" 2>"$OUT/$tag.rtpload.log"
	local rc=$?
	[ $rc -ne 0 ] && echo "$tag: rtpload exited $rc: $(tail -1 "$OUT/$tag.rtpload.log")" >&2
	grep -h "^rtpload: $c #" "$OUT/$tag.rtpload.log" >&2
	stop_pid "$RELAY_PID"
	RELAY_PID=
	return 0
}

{
	echo "date=$(date -u +%FT%TZ)"
	echo "host=$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
	echo "commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+changes')"
	echo "rtpengine=$("$RTPENGINE" --version 2>&1 | head -1)"
	echo "settings=rounds $ROUNDS, calls $CALLS, window ${STEP_S} s, warm-up ${WARMUP_S} s, relay CPU $RELAY_CPU (all threads), rtpload CPU $GEN_CPU, niceness $PRIO, sbc: $SBC_BIN $SBC_ARGS"
	echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.txt"

read -r -a order <<<"$CASES"
n=${#order[@]}
for r in $(seq "$ROUNDS"); do
	for k in $(seq 0 $((n - 1))); do
		c=${order[$(((k + r - 1) % n))]}
		echo "== round $r: $c, $CALLS calls, ${STEP_S} s" >&2
		run_case "$r" "$c"
	done
done
echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"

python3 - "$OUT" "$ROUNDS" >"$OUT/summary.md" <<'EOF'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
meta = open(os.path.join(out, "meta.txt")).read().strip().splitlines()
cases = ["sbc-rtp", "sbc-srtp", "rtpe-rtp", "rtpe-srtp"]
def load(r, c):
    t, totals = None, None
    try:
        for line in open(os.path.join(out, f"{r}-{c}.jsonl")):
            d = json.loads(line)
            if d.get("summary"):
                totals = d.get("totals")
            elif "trial" in d:
                t = d
    except (OSError, ValueError):
        pass
    if t is not None:
        t["_totals"] = totals
    return t
print("# Relay with SRTP on one leg (issue 19)\n")
for m in meta:
    print(f"- {m}")
print("\npps/core = relayed pps ÷ the relay process's CPU share over the window (all threads, pinned to one core).\n")
print("| round | case | relayed pps | loss % | relay CPU % | pps/core | µs CPU/pkt | p50 µs | p99 µs | other CPU % | pass |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
ppc = {c: [] for c in cases}
per_round = []
for r in range(1, rounds + 1):
    row = {}
    for c in cases:
        t = load(r, c)
        if t is None:
            print(f"| {r} | {c} | no result |||||||||")
            continue
        row[c] = t
        lat = t.get("latency_us") or {}
        v = t.get("relay_pps_per_core") or 0
        us = 1e6 / v if v else 0
        print(f"| {r} | {c} | {t['relayed_pps']:,.0f} | {t['loss_pct']:.4f} | {t.get('relay_cpu_pct')} | {v:,.0f} | {us:.2f} | "
              f"{lat.get('p50', '–')} | {lat.get('p99', '–')} | {t.get('other_cpu_pct')} | {'yes' if t.get('pass') else 'no'} |")
        if v:
            ppc[c].append(v)
    per_round.append(row)
def ratio(row, a, b):
    x, y = row.get(a), row.get(b)
    if x and y and x.get("relay_pps_per_core") and y.get("relay_pps_per_core"):
        return x["relay_pps_per_core"] / y["relay_pps_per_core"]
    return None
print("\n| ratio (pps per relay core-second) | per round | median | target |")
print("|---|---|---|---|")
for name, a, b, target in (
    ("ours: RTP↔SRTP / RTP↔RTP", "sbc-srtp", "sbc-rtp", 0.85),
    ("rtpengine: RTP↔SRTP / RTP↔RTP", "rtpe-srtp", "rtpe-rtp", None),
    ("RTP↔SRTP: ours / rtpengine", "sbc-srtp", "rtpe-srtp", 1.5),
    ("RTP↔RTP: ours / rtpengine", "sbc-rtp", "rtpe-rtp", None),
):
    rs = [x for x in (ratio(row, a, b) for row in per_round) if x is not None]
    med = statistics.median(rs) if rs else None
    verdict = ""
    if target is not None and med is not None:
        verdict = f"≥ {target}: " + ("met" if med >= target else "**missed**")
    print(f"| {name} | {', '.join(f'{x:.3f}' for x in rs)} | {'' if med is None else f'**{med:.3f}**'} | {verdict} |")
print("\nMedians of pps/core: " + ", ".join(f"{c} {statistics.median(v):,.0f}" for c, v in ppc.items() if v))
print("\nrtpload totals (SRTP auth failures count as loss):")
for r, row in enumerate(per_round, 1):
    for c, t in row.items():
        if "srtp" in c:
            print(f"- round {r} {c}: {t.get('_totals')}")
EOF
cp "$OUT/summary.md" "$HERE/results/SRTP-LAST.md"
cat "$OUT/summary.md"
echo "results: $OUT" >&2
