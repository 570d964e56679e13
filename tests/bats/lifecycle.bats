#!/usr/bin/env bats
# The daemon's life (DESIGN 6, 7): one daemon per socket, clean exits on
# SIGTERM, SIGINT and `waiter shutdown`, stale sockets, the socket's and its
# directory's modes, peer credentials, --max-clients, and auto-start.

load helpers

setup() {
	# Every test here starts (and stops) daemons of its own.
	unset WAITER_TEST_SOCKET
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	export TESTDIR
	export WAITER_SOCKET="$TESTDIR/w.sock"
	DAEMON_PID=
	FG_PID=
	HOLD_PID=
	AUTO_PID=
}

teardown() {
	local pid
	for pid in "${FG_PID:-}" "${HOLD_PID:-}" "${AUTO_PID:-}"; do
		[ -n "$pid" ] || continue
		kill -TERM "$pid" 2>/dev/null || true
		wait_gone "$pid" || true
	done
	FG_PID= HOLD_PID= AUTO_PID=
	daemon_teardown
}

# Start waiterd in the foreground as a job of this shell (so `wait` gives
# its exit status), logging to $TESTDIR/fg.log; return once it answers.
start_foreground() {
	$WAITERD_WRAPPER "$WAITERD" -S "$WAITER_SOCKET" "$@" \
		>"$TESTDIR/fg.out" 2>"$TESTDIR/fg.log" &
	FG_PID=$!
	for _ in $(seq $((1000 * WAITER_TEST_SLOW))); do
		"$WAITER" --no-autostart ping >/dev/null 2>&1 && return 0
		kill -0 "$FG_PID" 2>/dev/null || break
		sleep 0.02
	done
	echo "waiterd did not come up:" >&2
	cat "$TESTDIR/fg.log" >&2
	return 1
}

# Wait for the foreground daemon to exit; sets FG_STATUS.
wait_foreground() {
	wait_gone "$FG_PID"
	FG_STATUS=0
	wait "$FG_PID" || FG_STATUS=$?
	FG_PID=
	! grep -E 'AddressSanitizer|LeakSanitizer|runtime error|ERROR SUMMARY: [1-9]' \
		"$TESTDIR/fg.log" >&2 || false
}

# The daemon at $DAEMON_PID has exited on its own: forget it, but still
# fail on what a sanitizer or valgrind reported.
daemon_exited() {
	wait_gone "$DAEMON_PID"
	DAEMON_PID=
	! grep -E 'AddressSanitizer|LeakSanitizer|runtime error|ERROR SUMMARY: [1-9]' \
		"$DAEMON_LOG" >&2 || false
}

# Run a command as uid/gid 65534 (nobody).
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

@test "a second daemon on the same socket is refused" {
	start_daemon
	run timeout 30 $WAITERD_WRAPPER "$WAITERD" -S "$WAITER_SOCKET"
	assert_failure 1
	assert_output --partial "another waiterd (pid $DAEMON_PID)"
	assert_output --partial "$WAITER_SOCKET"
	run "$WAITER" ping
	assert_success
	assert_output pong
	[ "$(stat_value pid)" = "$DAEMON_PID" ]
	[ "$(head -n1 "$WAITER_SOCKET.lock")" = "$DAEMON_PID" ]
}

@test "SIGTERM: exit 0, no socket and no lock left behind" {
	start_foreground
	[ -S "$WAITER_SOCKET" ]
	[ -e "$WAITER_SOCKET.lock" ]
	kill -TERM "$FG_PID"
	wait_foreground
	[ "$FG_STATUS" -eq 0 ]
	[ ! -e "$WAITER_SOCKET" ]
	[ ! -e "$WAITER_SOCKET.lock" ]
	grep -q 'msg=shutdown reason=SIGTERM' "$TESTDIR/fg.log"
	grep -q 'msg=stopped' "$TESTDIR/fg.log"
	run "$WAITER" ping
	assert_failure 69
}

@test "SIGINT: exit 0, no socket and no lock left behind" {
	start_foreground
	[ -S "$WAITER_SOCKET" ]
	kill -INT "$FG_PID"
	wait_foreground
	[ "$FG_STATUS" -eq 0 ]
	[ ! -e "$WAITER_SOCKET" ]
	[ ! -e "$WAITER_SOCKET.lock" ]
	grep -q 'msg=shutdown reason=SIGINT' "$TESTDIR/fg.log"
	run "$WAITER" ping
	assert_failure 69
}

@test "waiter shutdown stops the daemon and removes its socket" {
	start_daemon
	run "$WAITER" shutdown
	assert_success
	[ ! -e "$WAITER_SOCKET" ]
	daemon_exited
	[ ! -e "$WAITER_SOCKET.lock" ]
	grep -q 'msg=shutdown reason=request' "$DAEMON_LOG"
	run "$WAITER" ping
	assert_failure 69
}

@test "a stale socket file is replaced" {
	start_daemon
	old=$DAEMON_PID
	kill -KILL "$old"
	wait_gone "$old"
	DAEMON_PID=
	[ -S "$WAITER_SOCKET" ]
	run "$WAITER" ping
	assert_failure 69
	start_daemon
	[ "$DAEMON_PID" != "$old" ]
	grep -q "stale_socket path=$WAITER_SOCKET action=removed" "$DAEMON_LOG"
	run "$WAITER" ping
	assert_success
	assert_output pong
	[ "$(stat_value pid)" = "$DAEMON_PID" ]
}

@test "a regular file at the socket path is refused and left untouched" {
	echo "precious, not a socket" >"$WAITER_SOCKET"
	cp "$WAITER_SOCKET" "$TESTDIR/copy"
	run timeout 30 $WAITERD_WRAPPER "$WAITERD" -S "$WAITER_SOCKET"
	assert_failure 1
	assert_output --partial "not a socket"
	[ -f "$WAITER_SOCKET" ]
	cmp "$WAITER_SOCKET" "$TESTDIR/copy"
	run "$WAITER" ping
	assert_failure
}

@test "another uid is refused, unless allowed with --allow-uid" {
	start_daemon
	chmod 755 "$TESTDIR"
	chmod 666 "$WAITER_SOCKET"
	refused=$(stat_value connections_refused)
	run as_nobody "$WAITER" --no-autostart ping
	assert_failure 1
	assert_output --partial "uid 65534 may not use this waiterd"
	[ "$(stat_value connections_refused)" -ge $((refused + 1)) ]
	[ "$(stat_value connections_refused)" -ge 1 ]
	grep -q 'refused uid=65534 .*reason=not_allowed' "$DAEMON_LOG"
	run "$WAITER" ping
	assert_success
	assert_output pong

	stop_daemon
	start_daemon --allow-uid 65534
	[ "$(stat -c %a "$WAITER_SOCKET")" = 666 ]
	chmod 755 "$TESTDIR"
	run as_nobody "$WAITER" --no-autostart ping
	assert_success
	assert_output pong
	[ "$(stat_value connections_refused)" -eq 0 ]
}

@test "the socket is 0600 and a socket directory it creates is 0700" {
	umask 000    # the modes must be the daemon's doing, not the umask's
	start_daemon
	[ "$(stat -c %a "$WAITER_SOCKET")" = 600 ]
	stop_daemon

	[ ! -e "$TESTDIR/sub" ]
	DAEMON_LOG="$TESTDIR/sub.log"
	$WAITERD_WRAPPER "$WAITERD" -S "$TESTDIR/sub/w.sock" --daemonize --log-file "$DAEMON_LOG"
	DAEMON_PID=$(head -n1 "$TESTDIR/sub/w.sock.lock")
	[ -n "$DAEMON_PID" ]
	[ "$(stat -c %a "$TESTDIR/sub")" = 700 ]
	[ "$(stat -c %a "$TESTDIR/sub/w.sock")" = 600 ]
	run "$WAITER" -S "$TESTDIR/sub/w.sock" ping
	assert_success
	assert_output pong
}

@test "a socket directory owned by another user is refused; root's and ours are used" {
	# nobody owns the directory: it could rename our socket away and
	# serve our clients a socket of its own
	mkdir "$TESTDIR/theirs"
	chown 65534:65534 "$TESTDIR/theirs"
	run timeout 30 $WAITERD_WRAPPER "$WAITERD" -S "$TESTDIR/theirs/w.sock"
	assert_failure 1
	assert_output --partial "$TESTDIR/theirs belongs to uid 65534, who could replace the socket"
	[ ! -e "$TESTDIR/theirs/w.sock" ]
	[ ! -e "$TESTDIR/theirs/w.sock.lock" ]

	# a directory of ours is used, and so is root's (/tmp, a shared volume)
	chown 0:0 "$TESTDIR/theirs"
	export WAITER_SOCKET="$TESTDIR/theirs/w.sock"
	start_daemon
	run "$WAITER" ping
	assert_success
	assert_output pong
}

@test "--max-clients 3 refuses a fourth client with a clear error" {
	start_daemon --max-clients 3
	refused=$(stat_value connections_refused)
	"$WRAW" "$WAITER_SOCKET" hold:3 >"$TESTDIR/hold.out" 2>&1 &
	HOLD_PID=$!
	wait_for_line "$TESTDIR/hold.out" '^holding 3'
	run "$WAITER" ping
	assert_failure 1
	assert_output --partial "too many clients"
	assert_output --partial "--max-clients"
	kill -TERM "$HOLD_PID"
	wait_gone "$HOLD_PID"
	HOLD_PID=
	# The daemon notices the three closes asynchronously.
	for _ in $(seq $((250 * WAITER_TEST_SLOW))); do
		"$WAITER" ping >/dev/null 2>&1 && break
		sleep 0.02
	done
	run "$WAITER" ping
	assert_success
	assert_output pong
	[ "$(stat_value connections_refused)" -ge $((refused + 1)) ]
	grep -q "refused uid=$(id -u) .*reason=max_clients" "$DAEMON_LOG"
}

@test "waiter starts a daemon at the default socket and reuses it" {
	unset WAITER_SOCKET WAITER_STATE_DIR
	export XDG_RUNTIME_DIR="$TESTDIR/xdg" XDG_STATE_HOME="$TESTDIR/xdgstate"
	mkdir -m 700 "$XDG_RUNTIME_DIR"
	sock="$XDG_RUNTIME_DIR/waiter/waiterd.sock"
	# The CLI starts $WAITERD: under a wrapper (valgrind), a script that
	# puts the wrapper before the real one.
	if [ -n "$WAITERD_WRAPPER" ]; then
		printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$WAITERD_WRAPPER" "$WAITERD" \
			>"$TESTDIR/waiterd"
		chmod +x "$TESTDIR/waiterd"
		export WAITERD="$TESTDIR/waiterd"
	fi
	run "$WAITER" ping
	# Remember the daemon first, so teardown stops it whatever happens next.
	if [ -e "$sock.lock" ]; then
		AUTO_PID=$(head -n1 "$sock.lock")
	fi
	assert_success
	assert_output pong
	[ -S "$sock" ]
	[ -n "$AUTO_PID" ]
	kill -0 "$AUTO_PID"
	[ "$(stat -c %a "$XDG_RUNTIME_DIR/waiter")" = 700 ]
	# It keeps its state in the per-user state directory.
	[ -f "$XDG_STATE_HOME/waiter/state.db" ]
	[ "$(stat -c %a "$XDG_STATE_HOME/waiter")" = 700 ]
	run "$WAITER" ping
	assert_success
	assert_output pong
	[ "$(head -n1 "$sock.lock")" = "$AUTO_PID" ]
	[ "$("$WAITER" stats | sed -n 's/^pid=//p')" = "$AUTO_PID" ]
	kill -TERM "$AUTO_PID"
	wait_gone "$AUTO_PID"
	AUTO_PID=
	[ ! -e "$sock" ]
}

@test "--no-autostart and an explicit socket never start a daemon" {
	unset WAITER_SOCKET
	export XDG_RUNTIME_DIR="$TESTDIR/xdg"
	mkdir -m 700 "$XDG_RUNTIME_DIR"
	run "$WAITER" --no-autostart ping
	assert_failure 69
	assert_output --partial "$XDG_RUNTIME_DIR/waiter/waiterd.sock"
	[ ! -e "$XDG_RUNTIME_DIR/waiter" ]
	run "$WAITER" -S /nonexistent/x.sock ping
	assert_failure 69
	assert_output --partial /nonexistent/x.sock
	[ ! -e /nonexistent ]
	[ ! -e "$XDG_RUNTIME_DIR/waiter" ]
	export WAITER_SOCKET="$TESTDIR/none.sock"
	run "$WAITER" ping
	assert_failure 69
	[ ! -e "$TESTDIR/none.sock" ]
}

@test "waiterd --help and a bad flag" {
	run $WAITERD_WRAPPER "$WAITERD" --help
	assert_success
	assert_output --partial "--max-clients"
	assert_output --partial "usage: waiterd"
	run $WAITERD_WRAPPER "$WAITERD" --bogus
	assert_failure 2
	assert_output --partial "waiterd --help"
	[ ! -e "$WAITER_SOCKET" ]
}
