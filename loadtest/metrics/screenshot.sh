#!/usr/bin/env bash
# A load run with media watched by Prometheus, ending in a screenshot of its graph page: starts the
# SBC (control API with a token, media anchored), replays pcaps/g711-rtcp.pcap through it with the
# `loadtest` binary (its own UAC and UAS, RTP both ways), and runs scrape.sh beside the load
# (promtool check metrics, the calls counter growing in the query API, the headless-Chromium
# screenshot of the rate of calls started and of media datagrams relayed), with a look at one
# call's media figures over the API halfway ($OUT/media-sessions.json).
#
#   loadtest/metrics/screenshot.sh [PNG]
#
# PNG: where to copy the screenshot (default: only $OUT/graph.png). Settings (environment): CPS (10),
# HOLD (6 s per call), SECONDS_TO_RUN (40: the load lasts as long, Prometheus scrapes as long),
# PROFILE (debug or release: which build of sbc and loadtest, built first), OUT
# (target/metrics-screenshot). Everything runs on 127.49.0.x: `.1:5060` the SBC outside and `.1:8080`
# its API, `.11` inside, `.21` its media relay, `.2:5090` the load's UAS, `.3` its UAC, `.5:9091`
# Prometheus. Every process started here is stopped by its PID at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PNG=${1:-}
CPS=${CPS:-10}
HOLD=${HOLD:-6}
SECONDS_TO_RUN=${SECONDS_TO_RUN:-40}
PROFILE=${PROFILE:-debug}
OUT=${OUT:-$REPO/target/metrics-screenshot}
TOKEN=screenshot-token-0123456789
mkdir -p "$OUT"
cd "$REPO"

flag=()
[ "$PROFILE" = release ] && flag=(--release)
cargo build -q "${flag[@]}" -p sbc -p loadtest
bin=${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE

work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/sbc.toml" <<EOF
workers = 2
[sip]
udp = ["127.49.0.1:5060"]
tcp = []
[inside]
address = "127.49.0.11"
port = 5080
targets = ["pbx"]
[[target_group]]
name = "pbx"
targets = [{ address = "127.49.0.2:5090", transport = "udp" }]
options_interval_secs = 0
[[route]]
name = "to-pbx"
from = "outside"
prefix = ""
target_group = "pbx"
[media]
address = "127.49.0.21"
port_min = 30000
port_max = 31999
[guard]
inside_networks = ["127.49.0.2"]
# The load's one caller holds more calls at once than an untrusted source may (50 per worker).
[fraud]
untrusted_max_calls = 0
[cdr]
sqlite_path = "$work/cdr.sqlite"
[api]
enabled = true
listen = "127.49.0.1:8080"
token = "$TOKEN"
EOF
RUST_LOG=info "$bin/sbc" --config "$work/sbc.toml" > "$OUT/sbc.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -qs "sbc listening" "$OUT/sbc.log" && break; sleep 0.1; done
grep -qs "sbc listening" "$OUT/sbc.log" || { echo "the SBC did not start: see $OUT/sbc.log"; exit 1; }

SBC_TOKEN=$TOKEN PROM_ADDR=127.49.0.5:9091 OUT=$OUT \
    "$HERE/scrape.sh" http://127.49.0.1:8080/metrics "$SECONDS_TO_RUN" > "$OUT/scrape.out" 2>&1 &
scrape=$!
pids+=($scrape)
# Prometheus is up and scraping before the first call.
sleep 3
calls=$((CPS * (SECONDS_TO_RUN - HOLD - 5)))
timeout $((SECONDS_TO_RUN + 60)) "$bin/loadtest" --pcap pcaps/g711-rtcp.pcap \
    --target 127.49.0.1:5060 --uas 127.49.0.2:5090 --local-ip 127.49.0.3 \
    --calls "$calls" --cps "$CPS" --hold "$HOLD" --threads 1 --timeout 5 --out "$OUT/load" \
    > "$OUT/load.out" 2>&1 &
load=$!
pids+=($load)
# A look at the calls' media over the API halfway through: each leg's figures and MOS.
sleep $((SECONDS_TO_RUN / 2))
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.49.0.1:8080/api/v1/media/sessions?limit=1" \
    > "$OUT/media-sessions.json" || true
load_rc=0
wait "$load" || load_rc=$?
scrape_rc=0
wait "$scrape" || scrape_rc=$?
cat "$OUT/scrape.out"
echo "load: $(tail -1 "$OUT/load.out" | jq -c '{attempted, answered, failed, rtp_sent, rtp_received}' 2>/dev/null || tail -1 "$OUT/load.out")"
echo "media session halfway: $(jq -c '[.items[0].legs[] | {packets_rx, lost, jitter_ms, mos}]' "$OUT/media-sessions.json" 2>/dev/null)"
[ "$load_rc" = 0 ] || { echo "loadtest FAILED ($load_rc, see $OUT/load.out)"; exit 1; }
[ "$scrape_rc" = 0 ] || { echo "scrape.sh FAILED ($scrape_rc)"; exit 1; }
if [ -n "$PNG" ] && [ -s "$OUT/graph.png" ]; then
  cp "$OUT/graph.png" "$PNG"
  echo "copied to $PNG ($(stat -c %s "$PNG") bytes)"
fi
