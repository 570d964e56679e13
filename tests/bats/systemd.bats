#!/usr/bin/env bats
# waiterd under systemd (doc/systemd.md): readiness notification to a
# NOTIFY_SOCKET the test creates (tests/helpers/sdrecv.py stands in for
# systemd and records each datagram with its sender's pid), socket
# activation with a listening socket passed in LISTEN_FDS
# (tests/helpers/listenfd, and systemd-socket-activate where installed),
# the refusal of what a misconfigured unit would pass, the units themselves
# (systemd-analyze verify, and the user units' ExecStart run as written).
# The unit tests tests/unit/test_sdnotify{,_fallback} hold both builds of
# daemon/sdnotify.c (libsystemd and waiterd's own) to the same behaviour.

load helpers

LISTENFD="$WAITER_BUILDDIR/tests/helpers/listenfd"
SDRECV="$BATS_TEST_DIRNAME/../helpers/sdrecv.py"
UNITS="$BATS_TEST_DIRNAME/../../contrib/systemd"

setup() {
	unset WAITER_TEST_SOCKET NOTIFY_SOCKET LISTEN_PID LISTEN_FDS LISTEN_FDNAMES
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	export TESTDIR
	export WAITER_SOCKET="$TESTDIR/w.sock"
	NOTIFY="$TESTDIR/notify.out"
	DAEMON_PID=
	FG_PID=
	RECV_PID=
}

teardown() {
	local pid
	for pid in "${FG_PID:-}" "${RECV_PID:-}"; do
		[ -n "$pid" ] || continue
		kill -TERM "$pid" 2>/dev/null || true
		wait_gone "$pid" || true
	done
	FG_PID= RECV_PID=
	daemon_teardown
}

# Stand in for systemd: receive notifications at $1 (a path or @NAME) into
# $NOTIFY, one line "PID LINE" per line of each datagram.
start_receiver() {
	/usr/bin/python3 "$SDRECV" "$1" "$NOTIFY" 3>&- &
	RECV_PID=$!
	wait_for_line "$NOTIFY" '^bound$'
}

# Run a command (a waiterd, or what execs one) in the background, its
# output in $TESTDIR/fg.out and fg.log; FG_PID is its pid, which exec keeps.
start_fg() {
	"$@" >"$TESTDIR/fg.out" 2>"$TESTDIR/fg.log" 3>&- &
	FG_PID=$!
}

# Wait for the background daemon to exit; sets FG_STATUS.
wait_foreground() {
	wait_gone "$FG_PID"
	FG_STATUS=0
	wait "$FG_PID" || FG_STATUS=$?
	FG_PID=
	! grep -E 'AddressSanitizer|LeakSanitizer|runtime error|ERROR SUMMARY: [1-9]' \
		"$TESTDIR/fg.log" >&2 || false
}

# The line number of the first line of $NOTIFY matching the ERE $1.
notify_line() {
	grep -nE -- "$1" "$NOTIFY" | head -n1 | cut -d: -f1
}

# waiterd run by $@ (with fd 3 prepared by the caller), expected to refuse.
refuse_to_start() {
	run timeout 30 "$@"
	assert_failure 1
}

@test "READY=1 comes once the state is restored and the socket serves; STOPPING=1 at SIGTERM" {
	start_daemon --state-dir "$TESTDIR/state"
	"$WAITER" after 1h --name kept >/dev/null
	stop_daemon

	start_receiver "$TESTDIR/notify.sock"
	NOTIFY_SOCKET="$TESTDIR/notify.sock" start_fg $WAITERD_WRAPPER "$WAITERD" \
		-S "$WAITER_SOCKET" --state-dir "$TESTDIR/state"
	wait_for_line "$NOTIFY" "^$FG_PID READY=1\$"
	# Ready means serving, with what was handed over before the restart.
	run "$WAITER" --no-autostart timers
	assert_success
	assert_output --partial kept
	grep -qx "$FG_PID STATUS=serving $WAITER_SOCKET" "$NOTIFY"
	restoring=$(notify_line "^$FG_PID STATUS=restoring the state in $TESTDIR/state\$")
	ready=$(notify_line "^$FG_PID READY=1\$")
	[ -n "$restoring" ] && [ "$restoring" -lt "$ready" ]
	# Only one READY=1, and nothing about stopping yet.
	[ "$(grep -c 'READY=1$' "$NOTIFY")" -eq 1 ]
	! grep -q STOPPING "$NOTIFY" || false

	kill -TERM "$FG_PID"
	wait_for_line "$NOTIFY" "^$FG_PID STOPPING=1\$"
	grep -qx "$FG_PID STATUS=stopping: 0 running tasks to end" "$NOTIFY"
	wait_foreground
	[ "$FG_STATUS" -eq 0 ]
}

@test "an abstract NOTIFY_SOCKET (@name) gets READY=1, and STOPPING=1 at waiter shutdown" {
	name="@waiter-test-$$-$RANDOM"
	start_receiver "$name"
	NOTIFY_SOCKET="$name" start_fg $WAITERD_WRAPPER "$WAITERD" -S "$WAITER_SOCKET"
	wait_for_line "$NOTIFY" "^$FG_PID READY=1\$"
	run "$WAITER" --no-autostart shutdown
	assert_success
	wait_for_line "$NOTIFY" "^$FG_PID STOPPING=1\$"
	wait_foreground
	[ "$FG_STATUS" -eq 0 ]
}

@test "--daemonize: the parent hands over the daemon's pid (MAINPID) with READY=1" {
	start_receiver "$TESTDIR/notify.sock"
	NOTIFY_SOCKET="$TESTDIR/notify.sock" start_daemon
	# start_daemon returned once the parent exited: its message is in.
	wait_for_line "$NOTIFY" " MAINPID=$DAEMON_PID\$"
	parent=$(grep -E " MAINPID=$DAEMON_PID\$" "$NOTIFY" | cut -d' ' -f1)
	[ "$parent" != "$DAEMON_PID" ]
	grep -qx "$parent READY=1" "$NOTIFY"
	grep -qx "$parent STATUS=serving $WAITER_SOCKET" "$NOTIFY"
	# The daemon itself says nothing until it stops, then says that.
	! grep -q "^$DAEMON_PID " "$NOTIFY" || false
	pid=$DAEMON_PID
	stop_daemon
	grep -qx "$pid STOPPING=1" "$NOTIFY"
}

@test "a NOTIFY_SOCKET nobody listens on, or that names no socket, is logged and waiterd serves" {
	for target in "$TESTDIR/nobody.sock" "relative/notify.sock"; do
		NOTIFY_SOCKET="$target" start_fg $WAITERD_WRAPPER "$WAITERD" -S "$WAITER_SOCKET"
		wait_for_line "$TESTDIR/fg.log" 'msg=started'
		grep -q "msg=sd_notify state=READY socket=$target error=" "$TESTDIR/fg.log"
		run "$WAITER" --no-autostart ping
		assert_output pong
		kill -TERM "$FG_PID"
		wait_foreground
		[ "$FG_STATUS" -eq 0 ]
	done
}

@test "socket activation: waiterd serves the socket passed in LISTEN_FDS and leaves it in place" {
	mkdir -m 700 "$TESTDIR/run"
	sock="$TESTDIR/run/waiterd.sock"
	start_receiver "$TESTDIR/notify.sock"
	# As waiterd.service runs it: -S names the socket waiterd.socket passes.
	NOTIFY_SOCKET="$TESTDIR/notify.sock" start_fg "$LISTENFD" --name waiterd.socket \
		"$sock" -- $WAITERD_WRAPPER "$WAITERD" -S "$sock"
	wait_for_line "$NOTIFY" "^$FG_PID READY=1\$"
	grep -qx "$FG_PID STATUS=serving $sock" "$NOTIFY"
	grep -q "msg=listening path=$sock pid=$FG_PID activated=yes fd=3 fdname=\"waiterd.socket\"" \
		"$TESTDIR/fg.log"
	[ "$(head -n1 "$sock.lock")" = "$FG_PID" ]
	run "$WAITER" -S "$sock" ping
	assert_success
	assert_output pong

	kill -TERM "$FG_PID"
	wait_for_line "$NOTIFY" "^$FG_PID STOPPING=1\$"
	wait_foreground
	[ "$FG_STATUS" -eq 0 ]
	# The socket is the service manager's: still there for the next start.
	# The lock was ours.
	[ -S "$sock" ]
	[ ! -e "$sock.lock" ]
}

@test "socket activation: tasks inherit neither the listening socket nor LISTEN_*" {
	sock="$TESTDIR/a.sock"
	start_receiver "$TESTDIR/notify.sock"
	NOTIFY_SOCKET="$TESTDIR/notify.sock" start_fg "$LISTENFD" "$sock" -- \
		$WAITERD_WRAPPER "$WAITERD"
	wait_for_line "$NOTIFY" "^$FG_PID READY=1\$"
	# Descriptor 3 was the socket in waiterd; in a task it is not open.
	run "$WAITER" -S "$sock" run -- sh -c \
		'if [ -e /proc/self/fd/3 ]; then echo fd3=open; else echo fd3=closed; fi'
	assert_success
	assert_output fd3=closed
	run "$WAITER" -S "$sock" run --no-env -- /usr/bin/env
	assert_success
	assert_output ""
	run "$WAITER" -S "$sock" run -- /usr/bin/env
	assert_success
	refute_output --partial LISTEN_
	kill -TERM "$FG_PID"
	wait_foreground
	[ "$FG_STATUS" -eq 0 ]
}

@test "socket activation with systemd-socket-activate: the first client starts waiterd and is served" {
	if ! command -v systemd-socket-activate >/dev/null; then
		{ echo "systemd-socket-activate is not installed (Debian package systemd): .ci/deps installs it" >&2; return 1; }
	fi
	sock="$TESTDIR/s.sock"
	start_receiver "$TESTDIR/notify.sock"
	# It binds, waits for the first connection, then execs waiterd (no -S:
	# the socket's own name is the path) with only the environment it is
	# told to pass (TESTDIR for valgrind's log).
	start_fg systemd-socket-activate -l "$sock" --fdname=waiterd.socket \
		-E NOTIFY_SOCKET="$TESTDIR/notify.sock" -E WAITER_SOCKET=/nonexistent/x.sock \
		-E TESTDIR="$TESTDIR" $WAITERD_WRAPPER "$WAITERD"
	wait_for_line "$TESTDIR/fg.log" "Listening on $sock"
	! grep -q ' READY=1$' "$NOTIFY" || false
	run "$WAITER" -S "$sock" ping
	assert_success
	assert_output pong
	grep -qx "$FG_PID READY=1" "$NOTIFY"
	grep -q "activated=yes fd=3 fdname=\"waiterd.socket\"" "$TESTDIR/fg.log"
	kill -TERM "$FG_PID"
	wait_foreground
	[ "$FG_STATUS" -eq 0 ]
	[ -S "$sock" ]
}

@test "socket activation: what a misconfigured unit would pass is refused with a sentence" {
	sock="$TESTDIR/bad.sock"
	refuse_to_start "$LISTENFD" --dgram "$sock" -- $WAITERD_WRAPPER "$WAITERD"
	assert_output --partial "descriptor 3 passed by the service manager (LISTEN_FDS) is a datagram socket; waiterd needs a stream socket (ListenStream=, not ListenDatagram=)"
	refuse_to_start "$LISTENFD" --connected --name waiterd.socket "$sock" -- \
		$WAITERD_WRAPPER "$WAITERD"
	assert_output --partial "descriptor 3 (\"waiterd.socket\") passed by the service manager (LISTEN_FDS) is a connected, not a listening socket (the .socket unit must not set Accept=yes)"
	refuse_to_start "$LISTENFD" --abstract "waiter-test-$$" -- $WAITERD_WRAPPER "$WAITERD"
	assert_output --partial "is an abstract socket (@NAME); waiter's clients connect to a path: use ListenStream=/PATH"
	refuse_to_start "$LISTENFD" --count 2 "$sock" -- $WAITERD_WRAPPER "$WAITERD"
	assert_output --partial "the service manager passed 2 sockets (LISTEN_FDS); waiterd serves one"
	refuse_to_start "$LISTENFD" "$sock" -- $WAITERD_WRAPPER "$WAITERD" -S "$TESTDIR/other.sock"
	assert_output --partial "-S names $TESTDIR/other.sock, but the service manager passed the socket $sock (LISTEN_FDS)"

	echo "not a socket" >"$TESTDIR/file"
	refuse_to_start sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"' sh \
		$WAITERD_WRAPPER "$WAITERD" 3<"$TESTDIR/file"
	assert_output --partial "descriptor 3 passed by the service manager (LISTEN_FDS) is a regular file, not a socket"
	# Not under valgrind, which opens files of its own where 3 is free.
	refuse_to_start sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"' sh "$WAITERD" 3<&-
	assert_output --partial "the sockets passed by the service manager cannot be used (LISTEN_PID='"
	assert_output --partial "LISTEN_FDS='1', LISTEN_FDNAMES=unset; this is pid"
	assert_output --partial "a descriptor they name is not open"
	refuse_to_start sh -c 'LISTEN_PID=$$ LISTEN_FDS=two exec "$@"' sh \
		$WAITERD_WRAPPER "$WAITERD" 3</dev/null
	assert_output --partial "LISTEN_FDS='two'"
	assert_output --partial "the values are malformed or do not agree"
	# Nothing was served, locked or left behind at the default socket.
	[ ! -e "$sock.lock" ]
	[ ! -e "$WAITER_SOCKET" ]
}

@test "LISTEN_PID of another process: the descriptors are not ours, and waiterd binds -S" {
	start_receiver "$TESTDIR/notify.sock"
	NOTIFY_SOCKET="$TESTDIR/notify.sock" LISTEN_PID=1 LISTEN_FDS=1 \
		start_fg $WAITERD_WRAPPER "$WAITERD" -S "$WAITER_SOCKET"
	wait_for_line "$NOTIFY" "^$FG_PID READY=1\$"
	grep -q "msg=listening path=$WAITER_SOCKET pid=$FG_PID mode=0600" "$TESTDIR/fg.log"
	! grep -q activated "$TESTDIR/fg.log" || false
	run "$WAITER" --no-autostart ping
	assert_output pong
	kill -TERM "$FG_PID"
	wait_foreground
	[ ! -e "$WAITER_SOCKET" ]
}

@test "socket activation as the system unit does it: another user's waiterd, no lock, the group served" {
	# /run/waiter as systemd makes it for waiterd.socket: root's, 0755;
	# the socket 0660 and in the group (here gid 4242) --allow-group names.
	# waiterd runs as uid 65534, which may not write there: no lock file.
	chmod 711 "$TESTDIR"
	mkdir -m 755 "$TESTDIR/run"
	sock="$TESTDIR/run/waiterd.sock"
	start_receiver "$TESTDIR/notify.sock"
	chmod 666 "$TESTDIR/notify.sock"
	# Not under valgrind: its log could not be written as uid 65534.
	NOTIFY_SOCKET="$TESTDIR/notify.sock" start_fg "$LISTENFD" --mode 660 --group 4242 \
		"$sock" -- setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$WAITERD" -S "$sock" --allow-group 4242
	wait_for_line "$NOTIFY" "^$FG_PID READY=1\$"
	grep -q "msg=lock_skipped path=$sock.lock" "$TESTDIR/fg.log"
	[ ! -e "$sock.lock" ]
	! grep -q 'msg=activated_socket' "$TESTDIR/fg.log" || false
	run setpriv --reuid=65533 --regid=4242 --clear-groups "$WAITER" -S "$sock" ping
	assert_success
	assert_output pong
	run setpriv --reuid=65533 --regid=65533 --clear-groups "$WAITER" -S "$sock" ping
	assert_failure
	assert_output --partial "Permission denied"
	kill -TERM "$FG_PID"
	wait_for_line "$NOTIFY" "^$FG_PID STOPPING=1\$"
	wait_foreground
	[ "$FG_STATUS" -eq 0 ]
	[ -S "$sock" ]
}

@test "a passed socket whose mode shuts out --allow-group or --allow-uid is warned about" {
	sock="$TESTDIR/m.sock"
	start_receiver "$TESTDIR/notify.sock"
	NOTIFY_SOCKET="$TESTDIR/notify.sock" start_fg "$LISTENFD" --mode 600 "$sock" -- \
		$WAITERD_WRAPPER "$WAITERD" --allow-group 4242 --allow-uid 65534
	wait_for_line "$NOTIFY" "^$FG_PID READY=1\$"
	grep -q "msg=activated_socket path=$sock mode=0600 gid=0 detail=\"--allow-group names gid 4242, whose members cannot connect: set SocketGroup= and SocketMode=0660" \
		"$TESTDIR/fg.log"
	grep -q "msg=activated_socket path=$sock mode=0600 detail=\"--allow-uid names users who cannot connect: set SocketMode=0666" \
		"$TESTDIR/fg.log"
	# The mode stays the unit's: waiterd does not change it.
	[ "$(stat -c %a "$sock")" = 600 ]
	kill -TERM "$FG_PID"
	wait_foreground
}

@test "waiter run by a service's script starts a daemon that does not report to that service" {
	# A script under a Type=notify service has NOTIFY_SOCKET; the daemon the
	# waiter command starts is not that service's main process.
	unset WAITER_SOCKET
	export XDG_RUNTIME_DIR="$TESTDIR/xdg"
	mkdir -m 700 "$XDG_RUNTIME_DIR"
	start_receiver "$TESTDIR/notify.sock"
	NOTIFY_SOCKET="$TESTDIR/notify.sock" run "$WAITER" ping
	assert_success
	assert_output pong
	sock="$XDG_RUNTIME_DIR/waiter/waiterd.sock"
	DAEMON_PID=$(head -n1 "$sock.lock")
	DAEMON_LOG="$sock.log"
	# Datagrams arrive in order: once ours is in, any from the daemon's
	# start (sent before the command returned) would be before it.
	/usr/bin/python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"SENTINEL=1", sys.argv[1])' "$TESTDIR/notify.sock"
	wait_for_line "$NOTIFY" ' SENTINEL=1$'
	[ "$(grep -cv -e '^bound$' -e ' SENTINEL=1$' -e ' --$' "$NOTIFY")" -eq 0 ]
}

@test "the units pass systemd-analyze verify, and sysusers makes their user" {
	if ! command -v systemd-analyze >/dev/null; then
		{ echo "systemd-analyze is not installed (Debian package systemd): .ci/deps installs it" >&2; return 1; }
	fi
	# As make writes them, but with this build's waiterd (verify checks
	# that ExecStart= names an executable).
	mkdir -p "$TESTDIR/system/user" "$TESTDIR/xdg"
	for f in waiterd.service waiterd.socket user/waiterd.service user/waiterd.socket; do
		sed "s|@bindir@|$WAITER_BUILDDIR|g" "$UNITS/$f.in" >"$TESTDIR/system/$f"
	done
	run systemd-analyze verify --man=no "$TESTDIR/system/waiterd.service" \
		"$TESTDIR/system/waiterd.socket"
	assert_success
	assert_output ""
	XDG_RUNTIME_DIR="$TESTDIR/xdg" run systemd-analyze --user verify --man=no \
		"$TESTDIR/system/user/waiterd.service" "$TESTDIR/system/user/waiterd.socket"
	assert_success
	assert_output ""
	# make wrote the units with the installed waiterd's path.
	grep -qE '^ExecStart=/[^ ]*/waiterd ' "$WAITER_BUILDDIR/contrib/systemd/waiterd.service"
	grep -qE '^ExecStart=/[^ ]*/waiterd ' "$WAITER_BUILDDIR/contrib/systemd/user/waiterd.service"
	! grep -q '@bindir@' "$WAITER_BUILDDIR/contrib/systemd/waiterd.service" || false

	if ! command -v systemd-sysusers >/dev/null; then
		{ echo "systemd-sysusers is not installed (Debian package systemd): .ci/deps installs it" >&2; return 1; }
	fi
	mkdir -p "$TESTDIR/root/etc"
	run systemd-sysusers --root="$TESTDIR/root" "$UNITS/waiterd.sysusers"
	assert_success
	grep -q '^waiter:x:[0-9]*:[0-9]*:waiter daemon:/var/lib/waiter:/usr/sbin/nologin$' \
		"$TESTDIR/root/etc/passwd"
	grep -q '^waiter:x:' "$TESTDIR/root/etc/group"
}

@test "the user units as written: their ExecStart on their socket is the daemon waiter finds without -S" {
	# %t is $XDG_RUNTIME_DIR and %h is $HOME in a user unit.
	unset WAITER_SOCKET
	export XDG_RUNTIME_DIR="$TESTDIR/xdg" HOME="$TESTDIR/home"
	mkdir -m 700 "$XDG_RUNTIME_DIR" "$HOME"
	listen=$(sed -n 's/^ListenStream=//p' "$UNITS/user/waiterd.socket.in")
	exec=$(sed -n 's/^ExecStart=//p' "$UNITS/user/waiterd.service.in")
	mode=$(sed -n 's/^SocketMode=//p' "$UNITS/user/waiterd.socket.in")
	dirmode=$(sed -n 's/^DirectoryMode=//p' "$UNITS/user/waiterd.socket.in")
	expand() {
		local s=$1
		s=${s//@bindir@/$WAITER_BUILDDIR}
		s=${s//%t/$XDG_RUNTIME_DIR}
		s=${s//%h/$HOME}
		printf '%s\n' "$s"
	}
	sock=$(expand "$listen")
	[ "$sock" = "$XDG_RUNTIME_DIR/waiter/waiterd.sock" ]
	# What systemd does for the .socket unit, then the service's command.
	mkdir -m "$dirmode" "$(dirname "$sock")"
	read -r -a argv <<<"$(expand "$exec")"
	start_receiver "$TESTDIR/notify.sock"
	NOTIFY_SOCKET="$TESTDIR/notify.sock" start_fg "$LISTENFD" --mode "$mode" "$sock" -- \
		$WAITERD_WRAPPER "${argv[@]}"
	wait_for_line "$NOTIFY" "^$FG_PID READY=1\$"
	# The plain command: no -S, no auto-start; it finds this daemon.
	run "$WAITER" --no-autostart stats
	assert_success
	assert_output --partial "pid=$FG_PID"
	# Its state is where the waiter command's own daemon keeps it.
	[ -f "$HOME/.local/state/waiter/state.db" ]
	kill -TERM "$FG_PID"
	wait_foreground
	[ "$FG_STATUS" -eq 0 ]
}
