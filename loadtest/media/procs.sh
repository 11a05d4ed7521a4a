# Sourced by the media load scripts: the processes a run starts (PIDS), stopped by their PID only.
# shellcheck shell=bash
PIDS=()
# Stop one started process: TERM, up to 5 s, then KILL; forget it either way.
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || { forget_pid "$pid"; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	forget_pid "$pid"
	return 0
}
forget_pid() {
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}
# Stop every process the run started.
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	PIDS=()
}
