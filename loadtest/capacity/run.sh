#!/usr/bin/env bash
# loadtest/capacity/run.sh -- the capacity run of whole calls with media: our SBC (media anchored)
# against Kamailio + rtpengine, both driven by the same `loadtest` UAC and UAS in one run, rounds
# alternating the devices, medians of 3 (capacity.py has the method; README.md the figures).
#
#   ./loadtest/capacity/run.sh              # 3 rounds, about 25 minutes
#   QUICK=1 ./loadtest/capacity/run.sh      # 1 round, short trials: checks that everything works
#   DEVICES=sbc ROUNDS=1 ./loadtest/capacity/run.sh
#
# Settings are environment variables (defaults in capacity.py): TESTER_CPU (0), DEVICE_CPU (1),
# CPS_START, CPS_SECS, CPS_HOLD, CONC_START, CONC_RAMP, CONC_WINDOW, MAX_TRIALS, COMMON_CPS,
# COMMON_CONC, SEARCH (0: the same-load trials only), OUT. SKIP_BUILD=1 uses target/release/{sbc,loadtest} as they are.
# Everything stays on loopback (127.47.0.0/24); every process started is stopped by its PID.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export OUT=${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

need() { command -v "$1" >/dev/null || { echo "missing $1: $2" >&2; exit 2; }; }
need taskset "apt-get install -y util-linux"
need python3 "apt-get install -y python3"
case " ${DEVICES:-kamailio-rtpengine} " in
*" kamailio-rtpengine "*)
	need kamailio "apt-get install -y kamailio"
	need rtpengine "apt-get install -y rtpengine-daemon"
	[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/rtpengine.so ] ||
		{ echo "missing Kamailio's rtpengine module (package kamailio)" >&2; exit 2; }
	;;
esac
if [ "${SKIP_BUILD:-0}" != 1 ]; then
	echo "building sbc and loadtest (release) ..." >&2
	(cd "$REPO" && cargo build --release -p sbc -p loadtest --bin sbc --bin loadtest) >"$OUT/build.log" 2>&1 ||
		{ echo "build failed: $OUT/build.log" >&2; exit 2; }
fi
"$REPO/target/release/sbc" --check-config "$HERE/sbc.toml" >"$OUT/sbc-check.log" 2>&1 ||
	{ echo "sbc --check-config failed:" >&2; cat "$OUT/sbc-check.log" >&2; exit 2; }
kamailio -c -f "$HERE/kamailio-rtpengine.cfg" >"$OUT/kamailio-check.log" 2>&1 ||
	{ echo "kamailio -c failed:" >&2; tail -20 "$OUT/kamailio-check.log" >&2; exit 2; }

python3 "$HERE/capacity.py"
rc=$?
# the one tracked copy of a run: its summary
[ -s "$OUT/summary.md" ] && cp "$OUT/summary.md" "$HERE/results/LAST.md"
exit $rc
