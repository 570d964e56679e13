#!/usr/bin/env bats
# Who may use the daemon, and what it does with files at its socket's path
# (DESIGN 7): --allow-group by primary and supplementary group, symlinks and
# files planted at the socket and lock paths, a socket directory someone
# else could write to, and the warning of a daemon that runs as root.
# Modes and --allow-uid are in lifecycle.bats. These tests run as root and
# use uid 65534 (nobody) and gid 4242 (no such group needed: gids are numbers
# to the kernel) for the other side.

load helpers

setup() {
	# Every test here starts (and stops) daemons of its own.
	unset WAITER_TEST_SOCKET
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	export TESTDIR         # valgrind's --log-file names it (WAITER_VALGRIND)
	export WAITER_SOCKET="$TESTDIR/w.sock"
	DAEMON_PID=
	NOBODY_PID=
}

teardown() {
	if [ -n "${NOBODY_PID:-}" ]; then
		kill -TERM "$NOBODY_PID" 2>/dev/null || true
		wait_gone "$NOBODY_PID" || true
		NOBODY_PID=
	fi
	daemon_teardown
}

# Run a command as uid 65534 with gid 65534 and no other group.
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# waiterd as nobody (no groups) in the foreground on $1 with --allow-group
# 4242, a group it is not in: it must refuse to start. Under valgrind its
# log goes to $TESTDIR/nobody, which nobody may write.
refuse_to_start_as_nobody() {
	TESTDIR="$TESTDIR/nobody" run timeout 30 setpriv --reuid=65534 --regid=65534 \
		--clear-groups $WAITERD_WRAPPER "$WAITERD" -S "$1" --allow-group 4242
	assert_failure 1
}

# waiterd in the foreground on $1, expected to refuse to start.
refuse_to_start() {
	run timeout 30 $WAITERD_WRAPPER "$WAITERD" -S "$1"
	assert_failure 1
}

@test "--allow-group: a member by primary or supplementary group is served, anyone else refused" {
	start_daemon --allow-group 4242
	# The socket is the group's to connect to; the directory it sits in
	# (private, so the daemon's to adjust) the group's to pass through.
	[ "$(stat -c '%a %g' "$WAITER_SOCKET")" = "660 4242" ]
	[ "$(stat -c '%a %g' "$TESTDIR")" = "710 4242" ]
	# A supplementary group is not in SO_PEERCRED (uid, gid, pid only):
	# the daemon reads the peer's groups with SO_PEERGROUPS.
	run setpriv --reuid=65534 --regid=65534 --groups=4242 "$WAITER" --no-autostart ping
	assert_success
	assert_output pong
	run setpriv --reuid=65534 --regid=4242 --clear-groups "$WAITER" --no-autostart ping
	assert_success
	assert_output pong
	# A member of many groups: more than a first guess of room holds
	# (the daemon took 256 and refused the peer past that).
	run setpriv --reuid=65534 --regid=65534 --groups="$(seq -s, 5000 5299),4242" \
		"$WAITER" --no-autostart ping
	assert_success
	assert_output pong
	# Outside the group, the file modes stop it before the daemon does...
	run as_nobody "$WAITER" --no-autostart ping
	assert_failure
	assert_output --partial "ermission denied"
	[ "$(stat_value connections_refused)" -eq 0 ]
	# ... and with them opened, the daemon's own check refuses it.
	chmod 711 "$TESTDIR"
	chmod 666 "$WAITER_SOCKET"
	run as_nobody "$WAITER" --no-autostart ping
	assert_failure 1
	assert_output --partial "uid 65534 may not use this waiterd"
	grep -q 'refused uid=65534 .*reason=not_allowed' "$DAEMON_LOG"
	[ "$(stat_value connections_refused)" -eq 1 ]
	run setpriv --reuid=65534 --regid=65534 --groups=4243,4242 "$WAITER" --no-autostart ping
	assert_success
	assert_output pong
}

@test "--allow-group of a group the daemon cannot give files to: refused at start, nothing left behind" {
	# nobody is not in group 4242, so its chown to it fails (EPERM). With
	# only --allow-group the group bits are all that let members in, so
	# the daemon refuses to start instead of serving no one.
	chmod 711 "$TESTDIR"
	mkdir -m 755 "$TESTDIR/nobody"
	chown 65534:65534 "$TESTDIR/nobody"
	# A private directory it makes: the directory's chown fails.
	refuse_to_start_as_nobody "$TESTDIR/nobody/run/w.sock"
	assert_output --partial "cannot give $TESTDIR/nobody/run to group 4242 for --allow-group: Operation not permitted (waiterd must run as root or as a member of that group)"
	[ ! -e "$TESTDIR/nobody/run" ]
	# A shared directory it leaves alone (0755): the socket's chown fails,
	# and the socket it bound is removed.
	refuse_to_start_as_nobody "$TESTDIR/nobody/w.sock"
	assert_output --partial "cannot give $TESTDIR/nobody/w.sock to group 4242 for --allow-group"
	[ ! -e "$TESTDIR/nobody/w.sock" ]
	[ ! -e "$TESTDIR/nobody/w.sock.lock" ]
	# A member of the group may give it: served.
	TESTDIR="$TESTDIR/nobody" setpriv --reuid=65534 --regid=65534 --groups=4242 \
		$WAITERD_WRAPPER "$WAITERD" -S "$TESTDIR/nobody/run/w.sock" \
		--allow-group 4242 --daemonize --log-file "$TESTDIR/nobody/log"
	NOBODY_PID=$(head -n1 "$TESTDIR/nobody/run/w.sock.lock")
	[ -n "$NOBODY_PID" ]
	[ "$(stat -c '%a %g' "$TESTDIR/nobody/run/w.sock")" = "660 4242" ]
	[ "$(stat -c '%a %g' "$TESTDIR/nobody/run")" = "710 4242" ]
	run setpriv --reuid=65533 --regid=4242 --clear-groups "$WAITER" \
		-S "$TESTDIR/nobody/run/w.sock" ping
	assert_success
	assert_output pong
	# With --allow-uid too the modes let anyone through and the
	# credential check decides: a failed chown is only logged.
	kill -TERM "$NOBODY_PID"
	wait_gone "$NOBODY_PID"
	TESTDIR="$TESTDIR/nobody" as_nobody $WAITERD_WRAPPER "$WAITERD" \
		-S "$TESTDIR/nobody/w.sock" --allow-group 4242 --allow-uid 65533 \
		--daemonize --log-file "$TESTDIR/nobody/log"
	NOBODY_PID=$(head -n1 "$TESTDIR/nobody/w.sock.lock")
	grep -q "chown path=$TESTDIR/nobody/w.sock gid=4242 errno=1" "$TESTDIR/nobody/log"
	run setpriv --reuid=65533 --regid=65533 --clear-groups "$WAITER" \
		-S "$TESTDIR/nobody/w.sock" ping
	assert_success
	assert_output pong
	kill -TERM "$NOBODY_PID"
	wait_gone "$NOBODY_PID"
	NOBODY_PID=
	! grep -E 'AddressSanitizer|LeakSanitizer|runtime error|ERROR SUMMARY: [1-9]' \
		"$TESTDIR/nobody/log" >&2 || false
}

@test "a symlink at the socket path is neither followed nor removed" {
	echo "precious, not a socket" >"$TESTDIR/target"
	cp "$TESTDIR/target" "$TESTDIR/copy"
	ln -s "$TESTDIR/target" "$WAITER_SOCKET"
	refuse_to_start "$WAITER_SOCKET"
	assert_output --partial "$WAITER_SOCKET exists and is not a socket; not touching it"
	[ -L "$WAITER_SOCKET" ]
	[ "$(readlink "$WAITER_SOCKET")" = "$TESTDIR/target" ]
	cmp "$TESTDIR/target" "$TESTDIR/copy"

	# Dangling: the daemon creates nothing where it points.
	rm "$WAITER_SOCKET"
	ln -s "$TESTDIR/elsewhere.sock" "$WAITER_SOCKET"
	refuse_to_start "$WAITER_SOCKET"
	assert_output --partial "not touching it"
	[ -L "$WAITER_SOCKET" ]
	[ ! -e "$TESTDIR/elsewhere.sock" ]

	# At the lock file's path: not followed either (O_NOFOLLOW).
	rm "$WAITER_SOCKET"
	ln -s "$TESTDIR/target" "$WAITER_SOCKET.lock"
	refuse_to_start "$WAITER_SOCKET"
	assert_output --partial "cannot open $WAITER_SOCKET.lock"
	cmp "$TESTDIR/target" "$TESTDIR/copy"
	[ ! -e "$WAITER_SOCKET" ]
}

@test "a socket or a file another user planted at the socket path is left alone" {
	# A shared directory, like /tmp: anyone may create, only owners remove.
	chmod 1777 "$TESTDIR"
	# Debian's python3 (a shim in root's PATH may not be nobody's to run).
	as_nobody /usr/bin/python3 -c 'import socket, sys
socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$WAITER_SOCKET"
	[ "$(stat -c '%F %u' "$WAITER_SOCKET")" = "socket 65534" ]
	refuse_to_start "$WAITER_SOCKET"
	assert_output --partial "$WAITER_SOCKET belongs to uid 65534; not touching it"
	[ "$(stat -c '%F %u' "$WAITER_SOCKET")" = "socket 65534" ]

	rm "$WAITER_SOCKET"
	as_nobody sh -c 'echo planted >"$1"' sh "$WAITER_SOCKET"
	refuse_to_start "$WAITER_SOCKET"
	assert_output --partial "not a socket; not touching it"
	[ "$(cat "$WAITER_SOCKET")" = planted ]
}

@test "a socket directory another user owns or others may write to is refused; a sticky one is used as it is" {
	dir="$TESTDIR/d"
	mkdir -m 700 "$dir"
	chown 65534 "$dir"
	refuse_to_start "$dir/w.sock"
	assert_output --partial "$dir belongs to uid 65534, who could replace the socket; refusing"
	[ ! -e "$dir/w.sock" ]

	chown 0 "$dir"
	for mode in 777 770 707; do
		chmod "$mode" "$dir"
		refuse_to_start "$dir/w.sock"
		assert_output --partial "$dir is writable by others; refusing"
		[ ! -e "$dir/w.sock" ]
	done

	# Sticky, like /tmp: no one may remove our socket. Served, and the
	# directory keeps its mode even with --allow-uid (it is not ours to
	# close: the daemon adjusts only a private directory).
	chmod 1777 "$dir"
	export WAITER_SOCKET="$dir/w.sock"
	DAEMON_LOG="$TESTDIR/d.log"
	$WAITERD_WRAPPER "$WAITERD" -S "$WAITER_SOCKET" --daemonize --log-file "$DAEMON_LOG" \
		--allow-uid 65534
	DAEMON_PID=$(head -n1 "$WAITER_SOCKET.lock")
	[ -n "$DAEMON_PID" ]
	run "$WAITER" ping
	assert_output pong
	[ "$(stat -c %a "$dir")" = 1777 ]
	[ "$(stat -c %a "$WAITER_SOCKET")" = 666 ]
}

@test "a daemon running as root warns unless told who may connect" {
	start_daemon
	grep -q 'level=warn msg=running_as_root detail="its tasks run as root; name who may connect with --allow-uid or --allow-group"' "$DAEMON_LOG"
	stop_daemon
	: >"$DAEMON_LOG"
	start_daemon --allow-uid 65534
	grep -q 'msg=started' "$DAEMON_LOG"
	! grep -q 'msg=running_as_root' "$DAEMON_LOG" || false
	stop_daemon
	: >"$DAEMON_LOG"
	start_daemon --allow-group 4242
	grep -q 'msg=started' "$DAEMON_LOG"
	! grep -q 'msg=running_as_root' "$DAEMON_LOG" || false
	stop_daemon

	# Another user's daemon has nothing to warn about.
	chmod 711 "$TESTDIR"
	mkdir -m 700 "$TESTDIR/nobody"
	chown 65534 "$TESTDIR/nobody"
	# Under valgrind, its log goes where nobody may write.
	TESTDIR="$TESTDIR/nobody" as_nobody $WAITERD_WRAPPER "$WAITERD" \
		-S "$TESTDIR/nobody/w.sock" --daemonize --log-file "$TESTDIR/nobody/log"
	NOBODY_PID=$(head -n1 "$TESTDIR/nobody/w.sock.lock")
	[ -n "$NOBODY_PID" ]
	grep -q 'msg=started' "$TESTDIR/nobody/log"
	! grep -q 'msg=running_as_root' "$TESTDIR/nobody/log" || false
	kill -TERM "$NOBODY_PID"
	wait_gone "$NOBODY_PID"
	NOBODY_PID=
	! grep -E 'AddressSanitizer|LeakSanitizer|runtime error|ERROR SUMMARY: [1-9]' \
		"$TESTDIR/nobody/log" >&2 || false
}

@test "at the default socket the CLI talks only to a daemon of its own uid or root" {
	# Another user got the default socket's place first (as under /tmp) and
	# serves a daemon there that would accept us.
	unset WAITER_SOCKET
	chmod 711 "$TESTDIR"
	export XDG_RUNTIME_DIR="$TESTDIR/xdg"
	mkdir -m 700 "$XDG_RUNTIME_DIR"
	chown 65534:65534 "$XDG_RUNTIME_DIR"
	sock="$XDG_RUNTIME_DIR/waiter/waiterd.sock"
	# Not under valgrind: its log could not be written as nobody.
	as_nobody "$WAITERD" -S "$sock" --allow-uid 0 --daemonize \
		--log-file "$XDG_RUNTIME_DIR/nobody.log"
	NOBODY_PID=$(head -n1 "$sock.lock")
	run "$WAITER" ping
	assert_failure 1
	assert_output --partial "the daemon at $sock runs as uid 65534, not as you or root"
	# Named explicitly, the same daemon is the user's choice and answers.
	run "$WAITER" -S "$sock" ping
	assert_success
	assert_output pong
}
