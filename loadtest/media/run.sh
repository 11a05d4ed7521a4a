#!/usr/bin/env bash
# loadtest/media/run.sh -- the media load run: the bare forwarder, rtpengine and (when it answers ng)
# the SBC, each pinned to one core and driven by rtpload from the other, in one run. See README.md.
#
#   ./loadtest/media/run.sh                     # ladder for every device, then a soak of each at 80 %
#   ./loadtest/media/run.sh soak DEVICE CALLS   # SOAK_S (60) s at SOAK_PCT (80) % of CALLS on DEVICE
#   DEVICES="barefwd rtpengine" SOAK_S=0 STEP_S=3 ./loadtest/media/run.sh
#
# Every setting is an environment variable (defaults below). Traffic stays on loopback; every process
# this script starts is stopped by its PID on exit; each step is bounded in time.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
MODE=${1:-ladder}
TS=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$HERE/results/$TS}

DEVICES=${DEVICES:-"barefwd rtpengine sbc"}
CALLS=${CALLS:-"500,1000,1500,2000,2500,3000,3500,4000,4500,5000"}
REFINE=${REFINE:-2}              # bisection trials after the first failing step
STEP_S=${STEP_S:-3}              # measurement window per step
WARMUP_S=${WARMUP_S:-1}          # traffic before a window
WARMUP_NEW_S=${WARMUP_NEW_S:-4}  # ... when the step added calls (relays learn new endpoints)
SOAK_S=${SOAK_S:-60}             # 0: no soak after the ladder
SOAK_PCT=${SOAK_PCT:-80}
GEN_CPU=${GEN_CPU:-0}
RELAY_CPU=${RELAY_CPU:-1}
BATCH=${BATCH:-16}
FWD_LISTEN=${FWD_LISTEN:-127.0.0.4:10000}
A_IP=127.0.0.2
B_IP=127.0.0.3
EP_BASE=10000
RTPE_NG=${RTPE_NG:-127.0.0.1:2224}
RTPE_PORT_MIN=${RTPE_PORT_MIN:-20000}
RTPE_PORT_MAX=${RTPE_PORT_MAX:-29999}
SBC_BIN=${SBC_BIN:-}              # the SBC to measure; skipped (with a note) when unset
SBC_BASE_BIN=${SBC_BASE_BIN:-}    # device "sbc-base": a second SBC build (e.g. the commit before a change)
SBC_ARGS=${SBC_ARGS:-"--workers 1"}
SBC_NG=${SBC_NG:-127.0.0.1:2223}
IDLE_WAIT_S=${IDLE_WAIT_S:-300}  # wait this long at most for the box to be quiet before a device
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-media}
BIN=$CARGO_TARGET_DIR/release

mkdir -p "$OUT"
NOTES=$OUT/notes.txt
: >"$NOTES"
note() { echo "$*" | tee -a "$NOTES" >&2; }

# shellcheck source=procs.sh
source "$HERE/procs.sh"
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

need taskset "apt-get install -y util-linux"
need jq "apt-get install -y jq"
need python3 "apt-get install -y python3"
RTPENGINE=$(command -v rtpengine || ls /usr/sbin/rtpengine /usr/bin/rtpengine 2>/dev/null | head -1)

build_release "rtpload and barefwd" -p loadtest -p benches --bin rtpload --bin barefwd

# Busy share of all CPUs over 2 s, from /proc/stat.
box_busy() {
	local a b
	a=($(head -1 /proc/stat))
	sleep 2
	b=($(head -1 /proc/stat))
	local t0=0 t1=0 i
	for i in 1 2 3 4 5 6 7 8; do t0=$((t0 + a[i])); t1=$((t1 + b[i])); done
	local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
	echo $((100 * (t1 - t0 - idle) / (t1 - t0 > 0 ? t1 - t0 : 1)))
}
# Another load on this 2-core box distorts everything: wait for it to end (bounded). Quiet means
# three 2 s samples in a row under 15 % busy, so that a pause between another run's steps does not
# pass for the end of it.
wait_idle() {
	local waited=0 busy quiet=0
	while :; do
		busy=$(box_busy)
		if [ "$busy" -lt 15 ]; then
			quiet=$((quiet + 1))
			[ "$quiet" -ge 3 ] && return 0
			continue
		fi
		quiet=0
		if [ "$waited" -ge "$IDLE_WAIT_S" ]; then
			note "warning: box still ${busy}% busy after ${waited} s of waiting; measured anyway"
			return 0
		fi
		echo "box ${busy}% busy (load: $(cut -d' ' -f1-3 /proc/loadavg)); waiting ..." >&2
		sleep 15
		waited=$((waited + 17))
	done
}

max_calls() { echo "$CALLS" | tr ',' '\n' | sort -n | tail -1; }

# start_relay DEVICE PHASE: starts the device pinned to RELAY_CPU; sets RELAY_PID and SETUP.
start_relay() {
	local dev=$1 phase=$2 log="$OUT/$1-$2.relay.log" i
	RELAY_PID=
	SETUP=
	case $dev in
	barefwd)
		taskset -c "$RELAY_CPU" "$BIN/barefwd" --calls "$(max_calls)" --listen "$FWD_LISTEN" \
			--dst-a "$A_IP:$EP_BASE" --dst-b "$B_IP:$EP_BASE" --duration 1200 >"$log" 2>&1 &
		RELAY_PID=$!
		PIDS+=("$RELAY_PID")
		for i in $(seq 100); do grep -qs "^barefwd pid" "$log" && break; sleep 0.1; done
		grep -qs "^barefwd pid" "$log" || { note "$dev: did not start: $(tail -2 "$log")"; return 1; }
		SETUP="--fixed $FWD_LISTEN"
		;;
	rtpengine)
		[ -n "$RTPENGINE" ] || { note "rtpengine: skipped: not installed (apt-get install -y rtpengine-daemon)"; return 1; }
		if "$BIN/rtpload" --ng "$RTPE_NG" --ping --ng-timeout-ms 300 >/dev/null 2>&1; then
			note "rtpengine: skipped: something already answers ng on $RTPE_NG"
			return 1
		fi
		# Userspace only (no kernel table), one worker thread, foreground, no config file.
		taskset -c "$RELAY_CPU" "$RTPENGINE" --config-file=none --table=-1 --foreground --log-stderr \
			--log-level=4 --num-threads=1 --interface=127.0.0.1 --listen-ng="$RTPE_NG" \
			--port-min="$RTPE_PORT_MIN" --port-max="$RTPE_PORT_MAX" --timeout=600 \
			--silent-timeout=600 --final-timeout=3600 --delete-delay=0 >"$log" 2>&1 &
		RELAY_PID=$!
		PIDS+=("$RELAY_PID")
		SETUP="--ng $RTPE_NG"
		;;
	sbc | sbc-base)
		local bin=$SBC_BIN
		[ "$dev" = sbc-base ] && bin=$SBC_BASE_BIN
		if [ -z "$bin" ]; then
			note "$dev: skipped: no SBC binary given (SBC_BIN / SBC_BASE_BIN=path SBC_ARGS='...' to measure one)"
			return 1
		fi
		if [ ! -x "$bin" ]; then
			note "$dev: skipped: $bin is not an executable"
			return 1
		fi
		if "$BIN/rtpload" --ng "$SBC_NG" --ping --ng-timeout-ms 300 >/dev/null 2>&1; then
			note "$dev: skipped: something already answers ng on $SBC_NG (not started by this run)"
			return 1
		fi
		# shellcheck disable=SC2086
		taskset -c "$RELAY_CPU" "$bin" $SBC_ARGS >"$log" 2>&1 &
		RELAY_PID=$!
		PIDS+=("$RELAY_PID")
		SETUP="--ng $SBC_NG"
		;;
	*)
		note "$dev: unknown device (barefwd, rtpengine, sbc, sbc-base)"
		return 1
		;;
	esac
	if [ "${SETUP%% *}" = "--ng" ]; then
		local addr=${SETUP#--ng }
		for i in $(seq 20); do
			"$BIN/rtpload" --ng "$addr" --ping --ng-timeout-ms 300 >/dev/null 2>&1 && break
			kill -0 "$RELAY_PID" 2>/dev/null || break
			sleep 0.25
		done
		if ! "$BIN/rtpload" --ng "$addr" --ping --ng-timeout-ms 500 >/dev/null 2>&1; then
			note "$dev: skipped: $(case $dev in sbc) echo "$SBC_BIN $SBC_ARGS" ;; sbc-base) echo "$SBC_BASE_BIN $SBC_ARGS" ;; *) echo "$RTPENGINE" ;; esac) does not answer ng ping on $addr ($(tail -1 "$log" 2>/dev/null))"
			stop_pid "$RELAY_PID"
			return 1
		fi
	fi
	sleep 0.5
	return 0
}

stop_relay() {
	[ -n "${RELAY_PID:-}" ] && stop_pid "$RELAY_PID"
	RELAY_PID=
}

# run_load DEVICE PHASE ARGS...: rtpload pinned to GEN_CPU against the started relay.
run_load() {
	local dev=$1 phase=$2
	shift 2
	# shellcheck disable=SC2086
	timeout 1500 taskset -c "$GEN_CPU" "$BIN/rtpload" $SETUP --relay-pid "$RELAY_PID" --label "$dev" \
		--mode "$phase" --a-ip "$A_IP" --b-ip "$B_IP" --ep-base "$EP_BASE" --batch "$BATCH" "$@" \
		>"$OUT/$dev-$phase.jsonl" 2>"$OUT/$dev-$phase.log" &
	local pid=$!
	PIDS+=("$pid")
	wait "$pid"
	local rc=$?
	forget_pid "$pid"
	[ $rc -ne 0 ] && note "$dev $phase: rtpload exited $rc: $(tail -1 "$OUT/$dev-$phase.log")"
	grep -h "^rtpload: $dev #" "$OUT/$dev-$phase.log" >&2
	return $rc
}

ladder() {
	local dev=$1
	wait_idle
	echo "== $dev: ladder $CALLS calls, ${STEP_S} s steps" >&2
	start_relay "$dev" ladder || return 0
	run_load "$dev" ladder --calls "$CALLS" --refine "$REFINE" --step-s "$STEP_S" \
		--warmup-s "$WARMUP_S" --warmup-new-s "$WARMUP_NEW_S"
	stop_relay
}

soak() {
	local dev=$1 max=$2 calls
	calls=$((max * SOAK_PCT / 100))
	[ "$calls" -gt 0 ] || { note "$dev: no soak (no maximum)"; return 0; }
	wait_idle
	echo "== $dev: soak ${SOAK_S} s at $calls calls (${SOAK_PCT}% of $max)" >&2
	start_relay "$dev" soak || return 0
	run_load "$dev" soak --calls "$calls" --refine 0 --step-s "$SOAK_S" --warmup-s "$WARMUP_NEW_S"
	stop_relay
}

{
	echo "date=$(date -u +%FT%TZ)"
	echo "host=$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
	echo "commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+changes')"
	echo "rtpengine=$([ -n "$RTPENGINE" ] && "$RTPENGINE" --version 2>&1 | head -1)"
	echo "settings=calls $CALLS, step ${STEP_S} s, warm-up ${WARMUP_S}/${WARMUP_NEW_S} s, refine $REFINE, soak ${SOAK_S} s at ${SOAK_PCT}%, rtpload CPU $GEN_CPU, relay CPU $RELAY_CPU, batch $BATCH"
	echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.txt"

# The platform's own noise on both CPUs (timer overshoot, stalls of a spinning thread).
probe() {
	local cpu
	for cpu in "$GEN_CPU" "$RELAY_CPU"; do
		taskset -c "$cpu" "$BIN/rtpload" --probe-s 3 | sed "s/^{/{\"when\":\"$1\",/" >>"$OUT/probe.jsonl"
	done
}
wait_idle
probe before

case $MODE in
ladder)
	for dev in $DEVICES; do ladder "$dev"; done
	if [ "$SOAK_S" != 0 ]; then
		for dev in $DEVICES; do
			f=$OUT/$dev-ladder.jsonl
			[ -s "$f" ] || continue
			max=$(jq -r 'select(.summary == true) | .max_calls // empty' "$f")
			[ -n "$max" ] && soak "$dev" "$max"
		done
	fi
	;;
soak)
	[ $# -ge 3 ] || { echo "usage: $0 soak DEVICE MAX_CALLS" >&2; exit 2; }
	soak "$2" "$3"
	;;
*)
	echo "usage: $0 [ladder] | $0 soak DEVICE MAX_CALLS" >&2
	exit 2
	;;
esac
cleanup
probe after

python3 "$HERE/report.py" "$OUT" >"$OUT/summary.md" || { echo "report failed" >&2; exit 1; }
cp "$OUT/summary.md" "$HERE/results/LAST.md"
cat "$OUT/summary.md"
echo "results: $OUT" >&2
