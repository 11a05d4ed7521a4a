#!/usr/bin/env bash
# loadtest/media/capacity.sh -- media capacity of the load tester beside rtpload, in one run:
#
#   A. `loadtest` replays pcaps/g711-ptime20.pcap (G.711, 20 ms packets both ways; the recorded 7 s of
#      audio looped over --hold) as CALLS concurrent calls against its own UAS: every call carries RTP
#      both ways the whole time, CALLS x 100 packets/s in all. Reported over the busiest 5 s: RTP
#      sent and received per second, loss over the run, the process's CPU and packets (sent +
#      received) per CPU-second, and the legs' one-way latency (RTCP round trip / 2) p50 / p99.
#   B. `rtpload` drives the same number of G.711 calls (two 20 ms streams each) through the bare
#      forwarder (benches' barefwd, pinned to the other core) for STEP_S seconds: its packets (sent
#      + received) per CPU-second of its own, and its one-way latency through the forwarder (send
#      time carried in the payload), from the same trial.
#
#   ./loadtest/media/capacity.sh                   # 3 rounds of A then B, then the medians
#   RUNS=1 CALLS=1000 ./loadtest/media/capacity.sh
#   MODES="plain sdes" RTPLOAD=0 ./loadtest/media/capacity.sh   # A plain and A with --srtp sdes
#                                                  # (both legs SRTP), alternating, no B
#
# Everything stays on loopback (127.46.0.1/.2 for A, 127.0.0.2-4 for B); every process this script
# starts is stopped by its PID; each run is bounded by `timeout`.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CALLS=${CALLS:-1500}
CPS=${CPS:-150}                 # A: calls started per second (CALLS / CPS seconds of starts)
HOLD=${HOLD:-25}                # A: each call's length from the answer to the BYE, seconds
THREADS=${THREADS:-1}           # A: loadtest threads
LT_CPUS=${LT_CPUS:-0}           # A: CPUs loadtest may use (taskset list)
STEP_S=${STEP_S:-10}            # B: rtpload's measurement window
GEN_CPU=${GEN_CPU:-0}           # B: rtpload's CPU
RELAY_CPU=${RELAY_CPU:-1}       # B: barefwd's CPU
RUNS=${RUNS:-3}
MODES=${MODES:-plain}           # A's media: plain RTP, and/or sdes (SDES-SRTP both ways)
RTPLOAD=${RTPLOAD:-1}           # 0: no B
BIN=${BIN:-$REPO/target/release}
OUT=${OUT:-/tmp/capacity-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

PIDS=()
stop_all() {
	local p
	for p in "${PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PIDS=()
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

command -v jq >/dev/null || { echo "missing jq (apt-get install -y jq)" >&2; exit 2; }
if [ -z "${NO_BUILD:-}" ]; then
	echo "building loadtest, rtpload, barefwd (release) ..." >&2
	(cd "$REPO" && cargo build --release -p loadtest -p benches --bin loadtest --bin rtpload --bin barefwd) \
		>"$OUT/build.log" 2>&1 || { echo "build failed: $OUT/build.log" >&2; exit 2; }
fi
PORTS=$(((CALLS + THREADS - 1) / THREADS * 4 + 64))

run_loadtest() { # round mode
	local mode=${2:-plain} tool=loadtest extra=()
	if [ "$mode" = sdes ]; then tool=loadtest-sdes; extra=(--srtp sdes); fi
	local f=$OUT/$tool-$1.json
	timeout $((CALLS / CPS + HOLD + 60)) taskset -c "$LT_CPUS" "$BIN/loadtest" \
		--pcap "$REPO/pcaps/g711-ptime20.pcap" --uas 127.46.0.2:5060 --local-ip 127.46.0.1 \
		--calls "$CALLS" --cps "$CPS" --hold "$HOLD" --threads "$THREADS" --max-concurrent "$CALLS" \
		--media-port 20000 --media-ports "$PORTS" --timeout 5 "${extra[@]}" >"$f" 2>"$OUT/$tool-$1.log" &
	local pid=$!
	PIDS+=("$pid")
	wait "$pid"
	PIDS=()
	jq -c --arg r "$1" --arg t "$tool" '{round: ($r|tonumber), tool: $t, calls: .attempted, answered, failed,
		pps_sent: .media_peak.rtp_sent_pps, pps_received: .media_peak.rtp_received_pps,
		loss_pct: .rtp_loss_pct, cpu_pct: .media_peak.cpu_pct,
		packets_per_core_s: .media_peak.packets_per_core_s,
		lat_p50: .latency_ms.p50, lat_p99: .latency_ms.p99, lat_legs: .latency_ms.count,
		srtp_legs, srtp_rejected, srtp_early_dropped, mismatches: .rtp_payload_mismatches}' "$f"
}

run_rtpload() { # round
	local log=$OUT/barefwd-$1.log
	taskset -c "$RELAY_CPU" "$BIN/barefwd" --calls "$CALLS" --listen 127.0.0.4:10000 \
		--dst-a 127.0.0.2:10000 --dst-b 127.0.0.3:10000 --duration $((STEP_S + 60)) >"$log" 2>&1 &
	local fwd=$! i
	PIDS+=("$fwd")
	for i in $(seq 100); do grep -qs "^barefwd pid" "$log" && break; sleep 0.1; done
	timeout $((STEP_S + 60)) taskset -c "$GEN_CPU" "$BIN/rtpload" --fixed 127.0.0.4:10000 \
		--relay-pid "$fwd" --label barefwd --calls "$CALLS" --refine 0 --step-s "$STEP_S" \
		--warmup-s 2 --warmup-new-s 4 --a-ip 127.0.0.2 --b-ip 127.0.0.3 --ep-base 10000 \
		--retries 0 >"$OUT/rtpload-$1.jsonl" 2>"$OUT/rtpload-$1.log"
	stop_all
	grep -v '"summary":true' "$OUT/rtpload-$1.jsonl" | head -1 | jq -c --arg r "$1" '{round: ($r|tonumber),
		tool: "rtpload", calls, answered: .calls, failed: 0, pps_sent: .offered_pps,
		pps_received: .relayed_pps, loss_pct, cpu_pct: .gen_cpu_pct,
		packets_per_core_s: ((.offered_pps + .relayed_pps) / (.gen_cpu_pct / 100)),
		lat_p50: (.latency_us.p50 / 1000), lat_p99: (.latency_us.p99 / 1000)}'
}

ROWS=$OUT/rows.jsonl
: >"$ROWS"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/notes.txt" >&2
for r in $(seq "$RUNS"); do
	# The modes' order alternates from round to round.
	modes=($MODES)
	if [ $((r % 2)) = 0 ]; then modes=($(printf '%s\n' "${modes[@]}" | tac)); fi
	for mode in "${modes[@]}"; do
		echo "round $r: loadtest ($mode), $CALLS calls, hold $HOLD s ..." >&2
		run_loadtest "$r" "$mode" | tee -a "$ROWS" >&2
	done
	if [ "$RTPLOAD" = 1 ]; then
		echo "round $r: rtpload through barefwd, $CALLS calls, $STEP_S s ..." >&2
		run_rtpload "$r" | tee -a "$ROWS" >&2
	fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/notes.txt" >&2

python3 - "$ROWS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| tool | round | calls | answered | RTP sent /s | RTP received /s | loss % | CPU % of a core | packets (sent+received) per core-second | one-way latency p50 / p99 ms |")
print("|---|---|---|---|---|---|---|---|---|---|")
lat = lambda r: ("-" if r.get("lat_p50") is None else f"{r['lat_p50']:.2f} / {r['lat_p99']:.2f}")
for r in rows:
    print(f"| {r['tool']} | {r['round']} | {r['calls']} | {r['answered']} | {r['pps_sent']:,.0f} | "
          f"{r['pps_received']:,.0f} | {r['loss_pct']:.4f} | {r['cpu_pct']:.1f} | {r['packets_per_core_s']:,.0f} | {lat(r)} |")
for tool in ("loadtest", "loadtest-sdes", "rtpload"):
    rs = [r for r in rows if r["tool"] == tool]
    if not rs:
        continue
    med = lambda k: statistics.median(r[k] for r in rs)
    print(f"| **{tool} median of {len(rs)}** | | {rs[0]['calls']} | {med('answered'):.0f} | "
          f"{med('pps_sent'):,.0f} | {med('pps_received'):,.0f} | {med('loss_pct'):.4f} | "
          f"{med('cpu_pct'):.1f} | **{med('packets_per_core_s'):,.0f}** | "
          + ("-" if any(r.get("lat_p50") is None for r in rs) else f"{med('lat_p50'):.2f} / {med('lat_p99'):.2f}") + " |")
EOF
echo "rows: $ROWS" >&2
