#!/usr/bin/env bash
# Records the captures made between two baresip instances on loopback (caller 127.46.0.1:5070,
# callee 127.46.0.2:5070, RTP ports from 41000-41099 / 42000-42099, RTCP on RTP + 1): a 440 Hz tone
# from the caller and 1000 Hz from the callee (`ausine` for Opus, an 8 kHz WAV played by `aufile`
# for PCMA), 20 ms packets, ~8 s of audio; the caller
# hangs up when its `-t` runs out. tshark on lo; each capture gets its text twin.
#   opus-baresip:  Opus (opus/48000/2) both ways, plain RTP
#   srtp-sdes:     PCMA both ways, SDES-SRTP (AES_CM_128_HMAC_SHA1_80, `mediaenc=srtp-mand`)
# Usage: pcaps/record_baresip.sh [NAME...]   (tshark on lo needs root or the wireshark group)
set -euo pipefail
cd "$(dirname "$0")"
UAC=127.46.0.1 UAS=127.46.0.2
MODULES=/usr/lib/baresip/modules
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(opus-baresip srtp-sdes)
conf() { # dir ip audio-source rtp-ports codec-modules account-params
  mkdir -p "$1"
  cat > "$1/config" <<EOF
poll_method	epoll
sip_listen	$2:5070
net_interface	$2
call_local_timeout	10
audio_player	aubridge,nil
audio_source	$3
audio_alert	aubridge,nil
audio_level	no
rtp_ports	$4
rtcp_mux	no
module_path	$MODULES
$(for m in $5; do printf 'module\t%s\n' "$m"; done)
module	ausine.so
module	aufile.so
module	aubridge.so
module	srtp.so
module_tmp	account.so
module_app	menu.so
EOF
  echo "<sip:$2@$2>;regint=0;answermode=auto;$6" > "$1/accounts"
}
# A tone as an 8 kHz mono WAV (ausine makes 48 kHz stereo only: for Opus).
tone() { # file hz
  python3 - "$1" "$2" <<'EOF'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
hz = float(sys.argv[2])
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * n / 8000)))
                       for n in range(8000 * 12)))
EOF
}
record() { # name codec-modules account-params source(sine|wav)
  local name=$1 out=$1.pcap tmp src1 src2
  tmp=$(mktemp -d)
  if [ "$4" = wav ]; then
    tone "$tmp/440.wav" 440; tone "$tmp/1000.wav" 1000
    src1="aufile,$tmp/440.wav" src2="aufile,$tmp/1000.wav"
  else
    src1=ausine,440 src2=ausine,1000
  fi
  conf "$tmp/uac" $UAC "$src1" 41000-41099 "$2" "$3"
  conf "$tmp/uas" $UAS "$src2" 42000-42099 "$2" "$3"
  rm -f "$out"
  tshark -q -i lo -F pcap -w "$out" -f "host $UAC or host $UAS" 2>/dev/null &
  local shark=$!
  sleep 2
  baresip -f "$tmp/uas" -t 14 >"$tmp/uas.log" 2>&1 </dev/null &
  local uas=$!
  sleep 1
  baresip -f "$tmp/uac" -t 8 -e "/dial sip:$UAS@$UAS:5070" >"$tmp/uac.log" 2>&1 </dev/null \
    || echo "$name: the caller failed (see $tmp/uac.log)" >&2
  sleep 1
  kill "$uas" 2>/dev/null || true
  wait "$uas" 2>/dev/null || true
  sleep 1
  kill "$shark"; wait "$shark" 2>/dev/null || true
  tshark -r "$out" -o rtp.heuristic_rtp:TRUE -o rtcp.heuristic_rtcp:TRUE > "$name.txt" 2>/dev/null
  chmod 644 "$out"
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
  echo "$name: $(wc -l < "$name.txt") packets ($tmp)"
}
for n in "${names[@]}"; do
  case $n in
    opus-baresip) record $n opus.so "audio_codecs=opus/48000/2" sine ;;
    srtp-sdes)    record $n g711.so "audio_codecs=PCMA;mediaenc=srtp-mand" wav ;;
    *) echo "unknown capture $n" >&2; exit 2 ;;
  esac
done
