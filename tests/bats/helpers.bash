# helpers.bash - each test file starts its own waiterd on a private socket in
# a temporary directory and stops it by pid (DESIGN 8, STYLE "Tests").
#
# Environment:
#   WAITER_BUILDDIR   where waiterd, waiter and tests/helpers/wraw were built
#   WAITERD_WRAPPER   a command to run waiterd under (e.g. "valgrind -q
#                     --error-exitcode=1 --leak-check=full")
#   WAITER_TEST_SOCKET  use an already running daemon at this socket instead

bats_load_library bats-support
bats_load_library bats-assert

: "${WAITER_BUILDDIR:=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}"
WAITER="$WAITER_BUILDDIR/waiter"
WAITERD="$WAITER_BUILDDIR/waiterd"
WRAW="$WAITER_BUILDDIR/tests/helpers/wraw"
export WAITERD
# A daemon the waiter command starts keeps no state unless a test asks for
# it (else it would write under the real $HOME/.local/state).
export WAITER_STATE_DIR=

# Start a daemon for this test with extra flags; sets TESTDIR, WAITER_SOCKET,
# DAEMON_PID, DAEMON_LOG. --daemonize returns exactly when the socket serves.
start_daemon() {
	TESTDIR=${TESTDIR:-$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")}
	export WAITER_SOCKET="$TESTDIR/w.sock"
	DAEMON_LOG="$TESTDIR/waiterd.log"
	if [ -n "${WAITER_TEST_SOCKET:-}" ]; then
		export WAITER_SOCKET="$WAITER_TEST_SOCKET"
		DAEMON_PID=
		return 0
	fi
	$WAITERD_WRAPPER "$WAITERD" -S "$WAITER_SOCKET" --daemonize \
		--log-file "$DAEMON_LOG" "$@"
	DAEMON_PID=$(head -n1 "$WAITER_SOCKET.lock")
	[ -n "$DAEMON_PID" ]
}

# Wait until process $1 has exited (at most ${2:-20} s).
wait_gone() {
	timeout "${2:-20}" tail --pid="$1" -f /dev/null
}

# Stop the daemon with SIGTERM, wait for it, and fail if a sanitizer or
# valgrind complained in its log.
stop_daemon() {
	[ -n "${DAEMON_PID:-}" ] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null || true
	wait_gone "$DAEMON_PID"
	DAEMON_PID=
	if grep -E 'AddressSanitizer|LeakSanitizer|runtime error|ERROR SUMMARY: [1-9]' \
		"$DAEMON_LOG" >&2; then
		echo "waiterd reported memory errors (see above)" >&2
		return 1
	fi
}

# Common setup/teardown for files that need one daemon per test.
daemon_setup() {
	start_daemon "$@"
}

daemon_teardown() {
	local rc=0
	stop_daemon || rc=$?
	[ -n "${TESTDIR:-}" ] && rm -rf "$TESTDIR"
	TESTDIR=
	return $rc
}

# Wait until FILE has a line matching the ERE PATTERN (at most ${3:-20} s):
# tests wait for an event, never for a guessed time.
wait_for_line() {
	local file=$1 pattern=$2 limit=${3:-20} waited=0
	until grep -qE -- "$pattern" "$file" 2>/dev/null; do
		sleep 0.02
		waited=$((waited + 1))
		if [ "$waited" -ge $((limit * 50)) ]; then
			echo "timed out waiting for /$pattern/ in $file:" >&2
			cat "$file" >&2 || true
			return 1
		fi
	done
}

# The value of KEY in `waiter stats`.
# Wait until task $1 runs (at most 20 s).
wait_task_running() {
	for _ in $(seq 1 1000); do
		[ "$("$WAITER" --json show "$1" | jq -r .task.state)" = running ] && return 0
		sleep 0.02
	done
	echo "task $1 never ran" >&2
	return 1
}

stat_value() {
	"$WAITER" stats | sed -n "s/^$1=//p"
}

# jq-free JSON field extraction for flat numeric/string fields.
json_field() {
	sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}
