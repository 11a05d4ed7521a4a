# Sourced by the media load scripts: the tools they need, their release build, and the processes a
# run starts (PIDS), stopped by their PID only.
# shellcheck shell=bash

# need CMD HINT: stop (exit 2) when CMD is missing, saying how to install it.
need() { command -v "$1" >/dev/null || { echo "missing $1: $2" >&2; exit 2; }; }

# build_release WHAT CARGO-ARGS...: `cargo build --release CARGO-ARGS` in $REPO at niceness 19, its
# output in $OUT/build.log; stops the script (exit 2) when it fails.
build_release() {
	local what=$1
	shift
	echo "building $what (release, $CARGO_TARGET_DIR) ..." >&2
	(cd "$REPO" && nice -n 19 cargo build --release "$@") >"$OUT/build.log" 2>&1 ||
		{ echo "build FAILED, see $OUT/build.log" >&2; exit 2; }
}

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
