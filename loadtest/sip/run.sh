#!/usr/bin/env bash
# loadtest/sip/run.sh -- SIP signalling load run: calls/s and CPU per call of the SBC, in one run
# with the same SIPp pair talking directly, Kamailio's SBC profile and a bare UDP forwarder.
# See README.md. Every setting is an environment variable (defaults in sipload.py), e.g.
#   ./loadtest/sip/run.sh                          # all four DUTs, ~12 min
#   DUTS="direct bare-fwd" REPEATS=1 ./loadtest/sip/run.sh
#   HOLD_MS=0 RATES="2000 4000 8000" ./loadtest/sip/run.sh
# SKIP_BUILD=1 uses target/release/sbc as it is.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TS=$(date +%Y%m%d-%H%M%S)
export OUT=${OUT:-$HERE/results/$TS}
mkdir -p "$OUT"
DUTS=${DUTS:-"direct sbc kamailio-sbc bare-fwd"}
export DUTS

need() { command -v "$1" >/dev/null || { echo "missing $1: $2" >&2; exit 2; }; }
need sipp "apt-get install -y sip-tester"
need taskset "apt-get install -y util-linux"
case " $DUTS " in *" kamailio-sbc "*) need kamailio "apt-get install -y kamailio" ;; esac

if [[ " $DUTS " == *" sbc "* ]]; then
	if [ "${SKIP_BUILD:-0}" != 1 ]; then
		echo "building the SBC (cargo build --release --bin sbc) ..." >&2
		(cd "$REPO" && cargo build --release --bin sbc) >"$OUT/build.log" 2>&1 ||
			{ echo "SBC build FAILED (see $OUT/build.log): sbc is reported as not run" >&2; rm -f "$OUT/sbc-ok"; }
	fi
	SBC_BIN=${SBC_BIN:-$REPO/target/release/sbc}
	export SBC_BIN
	if [ -x "$SBC_BIN" ]; then
		"$SBC_BIN" --check-config "${SBC_CFG:-$HERE/sbc.toml}" >"$OUT/sbc-check.log" 2>&1 ||
			{ echo "sbc --check-config failed:" >&2; cat "$OUT/sbc-check.log" >&2; }
	fi
fi
if [[ " $DUTS " == *" bare-fwd "* ]]; then
	need gcc "apt-get install -y gcc"
	gcc -O2 -Wall -Wextra -o "$OUT/udpfwd" "$HERE/udpfwd.c" || exit 2
	export FWD_BIN=$OUT/udpfwd
fi

python3 "$HERE/sipload.py"
rc=$?
# the one tracked copy of a run: the latest summary
[ -s "$OUT/summary.md" ] && cp "$OUT/summary.md" "$HERE/results/LAST.md"
exit $rc
