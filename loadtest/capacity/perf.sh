#!/usr/bin/env bash
# loadtest/capacity/perf.sh -- where each device's time goes with N concurrent calls with media:
# the device (pinned to CPU 1) under `loadtest` (CPU 0) replaying pcaps/g711-ptime20.pcap, and
# `perf record` on all the device's processes for SECS seconds while every call carries media.
#   ./loadtest/capacity/perf.sh            # N=500, SECS=5, both devices
#   DEVICES=sbc N=800 ./loadtest/capacity/perf.sh
# Output: $OUT/<device>.txt (perf report by DSO, then by symbol). Loopback only; every process
# started is stopped by its PID.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=${N:-500}
SECS=${SECS:-5}
RAMP=${RAMP:-150}
DEVICES=${DEVICES:-"sbc kamailio-rtpengine"}
BIN=${BIN:-$REPO/target/release}
OUT=${OUT:-/tmp/capacity-perf}
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "missing perf (apt-get install -y linux-perf)" >&2; exit 2; }
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; PIDS=(); }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

ramp_s=$(python3 -c "print($N/$RAMP)")
hold=$(python3 -c "print($N/$RAMP + $SECS + 4)")
for dev in $DEVICES; do
	case $dev in
	sbc)
		taskset -c 1 "$BIN/sbc" --config "$HERE/sbc.toml" --workers 1 >"$OUT/sbc.log" 2>&1 &
		PIDS+=($!)
		sleep 3
		taskset -a -p -c 1 "${PIDS[0]}" >/dev/null
		target=127.47.0.10:5060
		dev_pids=${PIDS[0]}
		;;
	kamailio-rtpengine)
		taskset -c 1 rtpengine --foreground --log-stderr -L 3 --table=-1 --interface=127.47.0.21 \
			--listen-ng=127.47.0.21:2223 --num-threads=1 --port-min=10000 --port-max=27999 \
			--delete-delay=0 --timeout=60 >"$OUT/rtpengine.log" 2>&1 &
		PIDS+=($!)
		sleep 1
		taskset -c 1 kamailio -DD -E -f "$HERE/kamailio-rtpengine.cfg" -m 1024 -M 32 -x tlsf -X tlsf \
			-Y "$OUT" -w "$OUT" >"$OUT/kamailio.log" 2>&1 &
		PIDS+=($!)
		sleep 3
		target=127.47.0.20:5060
		dev_pids="${PIDS[0]},${PIDS[1]},$(pgrep -d, -P "${PIDS[1]}")"
		;;
	esac
	timeout $((N / RAMP * 2 + SECS + 60)) taskset -c 0 "$BIN/loadtest" --pcap "$REPO/pcaps/g711-ptime20.pcap" \
		--target "$target" --uas 127.47.0.2:5090 --local-ip 127.47.0.1 --calls "$N" --cps "$RAMP" \
		--hold "$hold" --threads 1 --max-concurrent "$N" --media-ports $((N * 4 + 64)) --timeout 5 \
		>"$OUT/$dev-loadtest.json" 2>"$OUT/$dev-loadtest.log" &
	lt=$!
	PIDS+=($lt)
	sleep "$(python3 -c "print($ramp_s + 1.5)")"
	perf record -g -o "$OUT/$dev.data" -p "$dev_pids" -- sleep "$SECS" 2>"$OUT/$dev-perf.log"
	wait "$lt"
	{
		jq -c '{answered, failed, rtp_loss_pct, mos_mean}' "$OUT/$dev-loadtest.json"
		perf report -i "$OUT/$dev.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
		perf report -i "$OUT/$dev.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
	} >"$OUT/$dev.txt"
	cleanup
	sleep 2
	echo "== $dev: $OUT/$dev.txt" >&2
	head -30 "$OUT/$dev.txt" >&2
done
