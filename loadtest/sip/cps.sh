#!/usr/bin/env bash
# loadtest/sip/cps.sh -- calls per second of sipp (uac on core 0 -> uas on core 1) and of `loadtest`
# (UAC and UAS in one thread on core 0) for the same call shape (pcaps/sipp-basic.pcap: sipp's
# built-in uac/uas call), in one run, as BENCHMARKS.md "Issue 21" states. Loopback only; every
# process started here is stopped by its PID; each run is bounded by `timeout`.
#
#   ./loadtest/sip/cps.sh                                  # sipp at 4000/s, loadtest at 8000 12000 14000/s
#   LOADTESTS="/tmp/before /tmp/after" RATES="12000" ./loadtest/sip/cps.sh
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SIPP_RATE=${SIPP_RATE:-4000}
RATES=${RATES-"8000 12000 14000"}
SECS=${SECS:-5}
LOADTESTS=${LOADTESTS-$REPO/target/release/loadtest}
OUT=${OUT:-/tmp/cps-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| tool | offered /s | calls | succeeded | achieved /s | setup to 200 p50 / p99 ms |"
echo "|---|---|---|---|---|---|"
# sipp: its uas on core 1, its uac on core 0 for SECS seconds of calls; a call not answered within
# 2 s fails (-recv_timeout) so that lost messages do not hold the run open for sipp's 32 s timers.
# Achieved = successful calls / (time of its last statistics row - its start), from -trace_stat.
N=$((SIPP_RATE * SECS))
cd "$OUT" || exit 2
taskset -c 1 timeout $((SECS + 60)) sipp -sn uas -i 127.46.0.2 -p 5070 -nostdin >/dev/null 2>&1 &
UAS=$!
sleep 1
rm -f "$OUT/sipp-uac.csv"
taskset -c 0 timeout $((SECS + 50)) sipp -sn uac -i 127.46.0.1 -p 5071 -r "$SIPP_RATE" -m "$N" \
	-nostdin -recv_timeout 2000 -trace_stat -stf "$OUT/sipp-uac.csv" -fd 1 127.46.0.2:5070 -s callee \
	>/dev/null 2>&1
kill "$UAS" 2>/dev/null
wait "$UAS" 2>/dev/null
sleep 2 # the UAS port is free again
python3 - "$OUT/sipp-uac.csv" "$SIPP_RATE" "$N" <<'PY'
import sys
rows = [l.rstrip("\n").split(";") for l in open(sys.argv[1]) if l.strip()]
head, last = rows[0], rows[-1]
col = {n: i for i, n in enumerate(head)}
t = lambda f: float(f.split()[-1])
ok, failed = int(last[col["SuccessfulCall(C)"]]), int(last[col["FailedCall(C)"]])
el = t(last[col["CurrentTime"]]) - t(last[col["StartTime"]])
print(f"| sipp uac (core 0) -> sipp uas (core 1) | {int(sys.argv[2]):,} | {int(sys.argv[3]):,} | "
      f"{ok:,} ({failed} failed) | {ok / el:,.0f} | - |")
PY
cd "$REPO" || exit 2
for bin in $LOADTESTS; do
	for r in $RATES; do
		n=$((r * SECS))
		timeout 120 taskset -c 0 "$bin" --pcap "$REPO/pcaps/sipp-basic.pcap" --uas 127.46.0.2:5070 \
			--local-ip 127.46.0.1 --calls "$n" --cps "$r" --threads 1 --timeout 5 --media-ports 2000 \
			--max-concurrent 400 2>"$OUT/lt.err" >"$OUT/lt.json" ||
			echo "| loadtest ($bin) at $r/s: exit $?: $(tail -1 "$OUT/lt.err") |"
		jq -r --arg b "$bin" --arg r "$r" '"| loadtest (\($b)), one thread, core 0 | \($r|tonumber) | \(.attempted) | \(.answered) | \(.achieved_cps|floor) | \(.setup_200_ms.p50) / \(.setup_200_ms.p99) |"' "$OUT/lt.json"
		sleep 1
	done
done
