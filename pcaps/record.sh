#!/usr/bin/env bash
# Re-records the captures of pcaps/ on loopback (127.46.0.1 caller, 127.46.0.2 callee): sipp on both
# sides (its G.711 and RFC 4733 audio played with play_pcap_audio, which needs root), tshark on lo.
# Each capture gets its text twin (tshark -r x.pcap > x.txt). Usage: sudo pcaps/record.sh [NAME...]
set -euo pipefail
cd "$(dirname "$0")"
UAC=127.46.0.1 UAS=127.46.0.2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(g711-rtcp hold-resume dtmf-rfc4733 register-digest cancel sipp-basic)
record() { # name uac-scenario uas-scenario rtcp(0/1) seconds
  local name=$1 out=$1.pcap
  local uas_args uac_args
  if [ "$3" = builtin ]; then
    uas_args="-sn uas" uac_args="-sn uac"
  else
    uas_args="-sf scenarios/$3" uac_args="-sf scenarios/$2"
  fi
  rm -f "$out"
  tshark -q -i lo -F pcap -w "$out" -f "host $UAC and host $UAS" 2>/dev/null &
  local shark=$!
  sleep 2
  sipp $uas_args -i $UAS -p 5060 -mi $UAS -mp 20000 -m 1 -bg -nostdin >/dev/null 2>&1 || true
  sleep 0.3
  local rtcp=()
  if [ "$4" = 1 ]; then
    python3 scenarios/rtcp_peer.py $UAC 10001 $UAS 20001 "$5" dee0ee8f & rtcp+=($!)
    python3 scenarios/rtcp_peer.py $UAS 20001 $UAC 10001 "$5" dee0ee8f & rtcp+=($!)
  fi
  timeout 40 sipp $uac_args -i $UAC -p 5060 -mi $UAC -mp 10000 -s callee -m 1 -nostdin \
    $UAS:5060 >/dev/null 2>&1 || { echo "$name: the caller failed" >&2; }
  for p in "${rtcp[@]}"; do wait "$p" || true; done
  sleep 1
  kill "$shark"; wait "$shark" 2>/dev/null || true
  tshark -r "$out" -d udp.port==10000,rtp -d udp.port==20000,rtp -d udp.port==10001,rtcp \
    -d udp.port==20001,rtcp > "$1.txt" 2>/dev/null
  chmod 644 "$out"
  echo "$name: $(wc -l < "$1.txt") packets"
}
for n in "${names[@]}"; do
  case $n in
    g711-rtcp)       record $n uac_g711.xml uas_call.xml 1 7 ;;
    hold-resume)     record $n uac_hold.xml uas_hold.xml 0 0 ;;
    dtmf-rfc4733)    record $n uac_dtmf.xml uas_call.xml 0 0 ;;
    register-digest) record $n uac_register.xml uas_register.xml 0 0 ;;
    cancel)          record $n uac_cancel.xml uas_cancel.xml 0 0 ;;
    sipp-basic)      record $n builtin builtin 0 0 ;;
    *) echo "unknown capture $n" >&2; exit 2 ;;
  esac
done
