#!/usr/bin/env bash
# Scrapes a running SBC with a real Prometheus server during a load run, and checks what issue 20
# asks of /metrics: `promtool check metrics` passes on the text taken under load, the query API shows
# a counter that grew, and a headless-Chromium screenshot of the graph page plots calls and packets.
#
#   loadtest/metrics/scrape.sh [URL] [SECONDS]
#
# URL: the SBC's metrics (default http://127.0.0.1:8080/metrics); the bearer token, if the API wants
# one, from $SBC_TOKEN. SECONDS: how long to scrape (default 60); start the load run (loadtest/sip,
# loadtest/media) before or right after this script. Prometheus listens on $PROM_ADDR
# (default 127.0.0.1:9091) and keeps its data under a temporary directory, removed at the end. Output:
# $OUT (default target/metrics-scrape): metrics.txt, promtool.txt, query.json, graph.png.
# Needs: prometheus and promtool (Debian package prometheus), curl, jq; chromium-headless-shell (or
# chromium) for the screenshot, $WINDOW pixels (default 1000,1480: both graphs).
# loadtest/metrics/screenshot.sh runs the whole thing: an SBC, a load with media, this script.
set -euo pipefail
URL=${1:-http://127.0.0.1:8080/metrics}
SECONDS_TO_RUN=${2:-60}
PROM_ADDR=${PROM_ADDR:-127.0.0.1:9091}
OUT=${OUT:-target/metrics-scrape}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
work=$(mktemp -d)
prom_pid=
cleanup() {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

scheme=${URL%%://*}
rest=${URL#*://}
target=${rest%%/*}
path=/${rest#*/}
[ "$rest" = "$target" ] && path=/metrics
printf '%s' "${SBC_TOKEN:-none}" > "$work/token"
sed -e "s|__PATH__|$path|" -e "s|__SCHEME__|$scheme|" -e "s|__TARGET__|$target|" \
    -e "s|__TOKEN_FILE__|$work/token|" "$HERE/prometheus.yml" > "$work/prometheus.yml"
promtool check config "$work/prometheus.yml" >/dev/null

auth=()
[ -n "${SBC_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $SBC_TOKEN")

prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="$PROM_ADDR" --log.level=warn > "$OUT/prometheus.log" 2>&1 &
prom_pid=$!
api="http://$PROM_ADDR/api/v1"
for _ in $(seq 50); do
  curl -sf "$api/status/buildinfo" >/dev/null && break
  sleep 0.2
done

query() { curl -sfG "$api/query" --data-urlencode "query=$1" | jq -r '.data.result[0].value[1] // "none"'; }

first=none
for _ in $(seq 30); do
  first=$(query 'sum(sbc_b2bua_calls_started_total)')
  [ "$first" != none ] && break
  sleep 0.5
done
echo "calls started at the first look: $first"
sleep $((SECONDS_TO_RUN / 2))
# The text taken under load, checked by promtool.
curl -sf -k "${auth[@]}" "$URL" > "$OUT/metrics.txt"
if promtool check metrics < "$OUT/metrics.txt" > "$OUT/promtool.txt" 2>&1; then
  echo "promtool check metrics: ok ($(grep -vc '^#' "$OUT/metrics.txt") series)"
else
  echo "promtool check metrics FAILED:"; cat "$OUT/promtool.txt"; exit 1
fi
sleep $((SECONDS_TO_RUN - SECONDS_TO_RUN / 2))
curl -sfG "$api/query" --data-urlencode 'query=sum(sbc_b2bua_calls_started_total)' > "$OUT/query.json"
last=$(jq -r '.data.result[0].value[1] // "none"' "$OUT/query.json")
echo "calls started at the last look: $last"
if [ "$first" = none ] || [ "$last" = none ] || [ "$last" -le "$first" ]; then
  echo "FAILED: the counter did not grow (is the SBC scraped and loaded? see $OUT/prometheus.log)"
  exit 1
fi
echo "the counter grew: $first -> $last"

# The graph page: the classic UI at /classic/graph on Debian's 2.x build, /graph otherwise (2.x
# React UI, 3.x); both read g<N>.expr, g<N>.tab (0: graph) and g<N>.range_input.
graph=/graph
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$PROM_ADDR/classic/graph")" = 200 ] && graph=/classic/graph
browser=$(command -v chromium-headless-shell || command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "no chromium: screenshot left out (apt-get install chromium-headless-shell)"
  exit 0
fi
range=$((SECONDS_TO_RUN + 10))s
g="g0.expr=sum(rate(sbc_b2bua_calls_started_total%5B5s%5D))&g0.tab=0&g0.range_input=$range"
g="$g&g1.expr=sum(rate(sbc_media_forwarded_total%5B5s%5D))&g1.tab=0&g1.range_input=$range"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="${WINDOW:-1000,1480}" \
    --virtual-time-budget=10000 --screenshot="$OUT/graph.png" "http://$PROM_ADDR$graph?$g" \
    >"$OUT/browser.log" 2>&1
[ -s "$OUT/graph.png" ] || { echo "FAILED: no screenshot (see $OUT/browser.log)"; exit 1; }
echo "screenshot: $OUT/graph.png (calls started per second, media datagrams relayed per second)"
