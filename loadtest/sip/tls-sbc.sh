#!/usr/bin/env bash
# SIP over TLS toward the SBC: the loadtest caller opens one TLS connection per call to the SBC's TLS
# listener (certificate verified by name against a leaf made here), the SBC relays to a loadtest
# callee over UDP. For each rate: calls answered, TLS connections opened, setup delay, and the
# SBC's CPU time (utime + stime from /proc) while the calls ran.
#
#   RATES="500 1000 2000" SECS=5 ./loadtest/sip/tls-sbc.sh
#
# SKIP_BUILD=1 uses target/release/{sbc,loadtest} as they are. Loopback only (127.46.27.x), bounded:
# each step stops by itself after SECS seconds of calls; only processes it started are stopped.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RATES=${RATES:-"500 1000 2000"}
SECS=${SECS:-5}
OUT=${OUT:-$(mktemp -d /tmp/tls-sbc.XXXXXX)}
mkdir -p "$OUT"
BIN="$REPO/target/release"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
	(cd "$REPO" && cargo build --release -p sbc -p loadtest --bin sbc --bin loadtest) >"$OUT/build.log" 2>&1
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=sbc.test \
	-addext subjectAltName=DNS:sbc.test -addext basicConstraints=critical,CA:FALSE \
	-keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
sed "s#@CERT@#$OUT/cert.pem#; s#@KEY@#$OUT/key.pem#" "$HERE/sbc-tls.toml" >"$OUT/sbc.toml"
PCAP="$REPO/pcaps/sipp-basic.pcap"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "| offered /s | calls | answered | failed | achieved /s | TLS connections (failed) | setup p50 / p99 ms | SBC CPU s | TLS calls per SBC core-second |" | tee "$OUT/summary.md"
echo "|---|---|---|---|---|---|---|---|---|" | tee -a "$OUT/summary.md"
for R in $RATES; do
	N=$((R * SECS))
	"$BIN/sbc" --config "$OUT/sbc.toml" >"$OUT/sbc-$R.log" 2>&1 &
	SBC=$!
	for _ in $(seq 50); do grep -q "sbc listening" "$OUT/sbc-$R.log" && break; sleep 0.1; done
	"$BIN/loadtest" --pcap "$PCAP" --uas-only --uas 127.46.27.2:5090 --local-ip 127.46.27.2 \
		--calls "$N" --cps "$R" --threads 1 --timeout 5 --media-port 20000 --media-ports 9000 \
		--max-concurrent 2000 >"$OUT/uas-$R.json" 2>"$OUT/uas-$R.err" &
	UAS=$!
	sleep 0.5
	T0=$(cpu "$SBC")
	"$BIN/loadtest" --pcap "$PCAP" --uac-only --target 127.46.27.1:5061 --transport tls \
		--tls-name sbc.test --tls-ca "$OUT/cert.pem" --local-ip 127.46.27.3 --media-port 30000 \
		--calls "$N" --cps "$R" --threads 1 --timeout 5 --media-ports 9000 --max-concurrent 2000 \
		--hold 0.2 >"$OUT/uac-$R.json" 2>"$OUT/uac-$R.err" || true
	T1=$(cpu "$SBC")
	kill "$UAS" "$SBC" 2>/dev/null || true
	wait "$UAS" "$SBC" 2>/dev/null || true
	python3 - "$OUT/uac-$R.json" "$R" "$N" "$T0" "$T1" <<'PY' | tee -a "$OUT/summary.md"
import json, sys
path, r, n, t0, t1 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
s = json.loads(open(path).read().strip().splitlines()[-1])
cpu = (t1 - t0) / 100
per = s["answered"] / cpu if cpu > 0 else 0
print(f"| {r} | {n} | {s['answered']} | {s['failed']} {s['failures'] or ''} | {s['achieved_cps']:.0f} | "
      f"{s['tls_connections']} ({s['tls_failures']}) | {s['setup_200_ms']['p50']:.1f} / "
      f"{s['setup_200_ms']['p99']:.1f} | {cpu:.2f} | {per:,.0f} |")
PY
done
echo "results: $OUT"
