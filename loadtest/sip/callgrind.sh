#!/usr/bin/env bash
# Instructions per call of an SBC build, noise-free: the binary runs under callgrind (one worker, the
# epoll driver) while the SIPp caller and callee of this folder place N1 calls at N1/30 per second,
# then N2 calls at N2/30 per second (30 s each, so the work driven by time cancels out); the result is
# (instructions of run 2 - instructions of run 1) / (N2 - N1).
#   loadtest/sip/callgrind.sh <sbc binary> <config> [N1=1500] [N2=3000]
# Uses 127.0.0.1:5060 (SBC), 127.0.0.2:5090 (callee), 127.0.0.3:5070 (caller), like run.sh.
set -euo pipefail
BIN=$1; CFG=$2; N1=${3:-1500}; N2=${4:-3000}
S=$(cd "$(dirname "$0")" && pwd)/scenarios
work=$(mktemp -d)
total() { # <calls> -> prints the instructions of the whole run
  local n=$1 d="$work/$1"; mkdir -p "$d"; cd "$d"
  valgrind --tool=callgrind --callgrind-out-file=cg.out "$BIN" --config "$CFG" --workers 1 \
    --driver epoll > sbc.log 2>&1 &
  local sbc=$!
  for _ in $(seq 1 100); do grep -q "sbc listening" sbc.log && break; sleep 0.2; done
  sipp -sf "$S/callee.xml" -i 127.0.0.2 -p 5090 -m "$n" -timeout 120s -nostdin -bg > uas.out 2>&1
  sleep 0.5
  sipp -sf "$S/caller.xml" 127.0.0.1:5060 -i 127.0.0.3 -p 5070 -s 1000 -d 100 -r $((n / 30)) \
    -m "$n" -timeout 120s -trace_stat -stf uac.csv -nostdin > uac.out 2>&1 || true
  sleep 1
  kill -INT "$sbc"; wait "$sbc" || true
  local uas; uas=$(grep -o 'PID=\[[0-9]*\]' uas.out | tr -dc 0-9 || true)
  [ -n "$uas" ] && kill "$uas" 2>/dev/null || true
  python3 - "$n" <<'PY' >&2
import csv, sys
rows = list(csv.reader(open('uac.csv'), delimiter=';'))
d = dict(zip(rows[0], rows[-1]))
print(f"{sys.argv[1]} calls: ok {d.get('SuccessfulCall(C)')} failed {d.get('FailedCall(C)')} "
      f"retransmissions {d.get('Retransmissions(C)')}")
PY
  grep '^summary:' cg.out | awk '{print $2}'
}
i1=$(total "$N1"); i2=$(total "$N2")
echo "instructions per call: $(( (i2 - i1) / (N2 - N1) ))  ($N1 calls: $i1, $N2 calls: $i2)"
rm -rf "$work"
