# helpers.bash - each test file starts its own waiterd on a private socket in
# a temporary directory and stops it by pid (DESIGN 8, STYLE "Tests").
#
# Environment:
#   WAITER_BUILDDIR   where waiterd, waiter and tests/helpers/wraw were built
#   WAITERD_WRAPPER   a command to run waiterd under; every test that starts
#                     a waiterd puts $WAITERD_WRAPPER before "$WAITERD"
#   WAITER_VALGRIND   1: run every waiterd under valgrind (make
#                     check-valgrind, doc/testing.md); sets WAITERD_WRAPPER,
#                     and a test fails if a log $TESTDIR/vg.PID shows errors
#   WAITER_TEST_SLOW  multiply the tests' bounded waits by this (default 1;
#                     10 under valgrind)
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

# Under valgrind each process logs to its own file in the test's directory
# (valgrind expands %q{TESTDIR} and %p itself, so the wrapper is one fixed
# string and also serves `timeout 30 $WAITERD_WRAPPER ...`). Only definite
# and indirect leaks count: what a daemon killed by a test still holds is
# not a leak of the daemon's. pidfd_open is unknown to valgrind 3.19: the
# daemon falls back to SIGCHLD for tasks and answers process watches with
# UNSUPPORTED (no_pidfd in watch_proc.bats).
if [ "${WAITER_VALGRIND:-0}" = 1 ]; then
	WAITERD_WRAPPER="${VALGRIND:-valgrind} --log-file=%q{TESTDIR}/vg.%p \
--leak-check=full --errors-for-leak-kinds=definite,indirect \
--error-exitcode=1 --track-fds=no --num-callers=30 \
--suppressions=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/valgrind.supp"
	: "${WAITER_TEST_SLOW:=10}"
fi
: "${WAITER_TEST_SLOW:=1}"
# The Python that has google.protobuf (Debian's python3-protobuf), for
# tests that talk the protocol directly; not the first python3 on PATH.
: "${PYTHON:=/usr/bin/python3}"
: "${WAITERD_WRAPPER:=}"

# Start a daemon for this test with extra flags; sets TESTDIR, WAITER_SOCKET,
# DAEMON_PID, DAEMON_LOG. --daemonize returns exactly when the socket serves.
start_daemon() {
	TESTDIR=${TESTDIR:-$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")}
	export TESTDIR
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

# Wait until process $1 has exited (at most ${2:-20} s, times WAITER_TEST_SLOW).
wait_gone() {
	timeout $((${2:-20} * WAITER_TEST_SLOW)) tail --pid="$1" -f /dev/null
}

# Fail if valgrind found errors or definite/indirect leaks in any waiterd
# this test ran (its logs $TESTDIR/vg.PID); print each such log once (it is
# renamed vg.PID.reported).
valgrind_check() {
	local log rc=0
	[ "${WAITER_VALGRIND:-0}" = 1 ] && [ -n "${TESTDIR:-}" ] || return 0
	for log in "$TESTDIR"/vg.*; do
		case $log in *.reported) rc=1; continue ;; esac
		[ -e "$log" ] || continue
		if grep -qE 'ERROR SUMMARY: [1-9]|(definitely|indirectly) lost: [1-9]' "$log"; then
			echo "valgrind found errors in a waiterd: $log" >&2
			cat "$log" >&2
			mv "$log" "$log.reported"
			rc=1
		fi
	done
	return $rc
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
	valgrind_check
}

# Common setup/teardown for files that need one daemon per test.
daemon_setup() {
	start_daemon "$@"
}

daemon_teardown() {
	local rc=0
	stop_daemon || rc=$?
	valgrind_check || rc=1
	[ -n "${TESTDIR:-}" ] && rm -rf "$TESTDIR"
	TESTDIR=
	return $rc
}

# Wait until FILE has a line matching the ERE PATTERN (at most ${3:-20} s,
# times WAITER_TEST_SLOW): tests wait for an event, never for a guessed time.
wait_for_line() {
	local file=$1 pattern=$2 limit=$((${3:-20} * WAITER_TEST_SLOW)) waited=0
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

# Wait until task $1 runs (at most 20 s, times WAITER_TEST_SLOW).
wait_task_running() {
	for _ in $(seq 1 $((1000 * WAITER_TEST_SLOW))); do
		[ "$("$WAITER" --json show "$1" | jq -r .task.state)" = running ] && return 0
		sleep 0.02
	done
	echo "task $1 never ran" >&2
	return 1
}

# The value of KEY in `waiter stats`.
stat_value() {
	"$WAITER" stats | sed -n "s/^$1=//p"
}

# Wait until `waiter stats` shows KEY=VALUE (at most 20 s, times
# WAITER_TEST_SLOW).
wait_stat() {
	for _ in $(seq 1 $((1000 * WAITER_TEST_SLOW))); do
		[ "$(stat_value "$1")" = "$2" ] && return 0
		sleep 0.02
	done
	echo "$1 is $(stat_value "$1"), expected $2" >&2
	return 1
}

# Wait until task $1's kept stdout is $2 (at most 20 s, times
# WAITER_TEST_SLOW).
wait_logs() {
	for _ in $(seq 1 $((1000 * WAITER_TEST_SLOW))); do
		[ "$("$WAITER" logs "$1")" = "$2" ] && return 0
		sleep 0.02
	done
	echo "task $1's output is $("$WAITER" logs "$1"), expected $2" >&2
	return 1
}

# jq-free JSON field extraction for flat numeric/string fields.
json_field() {
	sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}
