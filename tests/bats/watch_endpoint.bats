#!/usr/bin/env bats
# Endpoint watches: tcp and unix, up now or later or never, names, bad
# endpoints, many at once, listing and cancelling. Every server is started
# here, on loopback, and stopped by pid.

bats_require_minimum_version 1.5.0
load helpers

PYTHON=/usr/bin/python3

setup() {
	daemon_setup
	LISTENER_PIDS=()
	cat >"$TESTDIR/listen.py" <<'EOF'
# listen.py KIND ADDR GO: bind (tcp4/tcp6: ADDR port 0, unix: path ADDR),
# print the port (or "bound"), listen once the file GO exists ("-": at
# once), print "listening", then accept and close forever. Bound but not
# listening, a tcp port refuses connections and no one else can take it.
import os, socket, sys, time
kind, addr, go = sys.argv[1:4]
fam = {"tcp4": socket.AF_INET, "tcp6": socket.AF_INET6, "unix": socket.AF_UNIX}[kind]
s = socket.socket(fam, socket.SOCK_STREAM)
s.bind(addr if kind == "unix" else (addr, 0))
print("bound" if kind == "unix" else s.getsockname()[1], flush=True)
while go != "-" and not os.path.exists(go):
    time.sleep(0.01)
s.listen(4096)
print("listening", flush=True)
while True:
    s.accept()[0].close()
EOF
}

teardown() {
	for pid in "${LISTENER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	daemon_teardown
}

# start_listener KIND ADDR GO: a listen.py in the background; sets LPORT
# (tcp), LOUT (its output) and adds its pid to LISTENER_PIDS. With GO "-"
# it returns once the listener listens.
start_listener() {
	LOUT=$(mktemp "$TESTDIR/listener.XXXXXX")
	"$PYTHON" "$TESTDIR/listen.py" "$@" >"$LOUT" 3>&- &
	LISTENER_PIDS+=("$!")
	wait_for_line "$LOUT" '^([0-9]+|bound)$'
	LPORT=$(head -n1 "$LOUT")
	if [ "$3" = - ]; then
		wait_for_line "$LOUT" '^listening$'
	fi
}

# The attempts watch $1 has made so far.
attempts() {
	"$WAITER" --json show "$1" | jq -r .watch.attempts
}

# Wait until watch $1 has made at least $2 attempts (at most 20 s).
wait_attempts() {
	local n=0
	until [ "$(attempts "$1")" -ge "$2" ]; do
		sleep 0.02
		n=$((n + 1))
		[ "$n" -lt $((1000 * WAITER_TEST_SLOW)) ] || { echo "watch $1 made fewer than $2 attempts" >&2; return 1; }
	done
}

@test "a tcp endpoint that is up: --wait exits 0, --follow shows where it connected" {
	start_listener tcp4 127.0.0.1 -
	run "$WAITER" watch tcp "127.0.0.1:$LPORT" --wait
	assert_success
	assert_output --regexp '^[0-9]+$'
	run "$WAITER" --json watch tcp "127.0.0.1:$LPORT" --follow
	assert_success
	ready=$(echo "$output" | grep '"endpoint_ready"')
	[ "$(echo "$ready" | jq -r .endpoint_ready.address)" = "127.0.0.1:$LPORT" ]
	[ "$(echo "$ready" | jq -r .endpoint_ready.endpoint)" = "tcp:127.0.0.1:$LPORT" ]
	[ "$(echo "$ready" | jq -r .endpoint_ready.attempts)" = 1 ]
	id=$(echo "$ready" | jq -r .object_id)
	run "$WAITER" --json show "$id"
	[ "$(echo "$output" | jq -r .state)" = completed ]
	[ "$(echo "$output" | jq -r .watch.type)" = tcp ]
	[ "$(echo "$output" | jq -r .watch.events)" = 1 ]
}

@test "a tcp endpoint that comes up later completes the watch" {
	start_listener tcp4 127.0.0.1 "$TESTDIR/go"
	"$WAITER" watch tcp "127.0.0.1:$LPORT" --wait >"$TESTDIR/out" 2>&1 3>&- &
	wpid=$!
	wait_for_line "$TESTDIR/out" '^[0-9]+$'
	id=$(head -n1 "$TESTDIR/out")
	wait_attempts "$id" 2
	[ "$("$WAITER" --json show "$id" | jq -r .watch.last_error)" = "Connection refused" ]
	touch "$TESTDIR/go"
	wait "$wpid"
	[ "$("$WAITER" --json show "$id" | jq -r .state)" = completed ]
	[ "$(attempts "$id")" -ge 3 ]
}

@test "a tcp endpoint never up times out with 124 and says why" {
	start_listener tcp4 127.0.0.1 "$TESTDIR/never"
	run -124 "$WAITER" watch tcp "127.0.0.1:$LPORT" --timeout 300ms --wait
	assert_output --regexp 'watch [0-9]+ timed out after [0-9]+ attempts; the last one: Connection refused'
	id=$(echo "$output" | head -n1)
	run "$WAITER" --json show "$id"
	[ "$(echo "$output" | jq -r .state)" = failed ]
	[ "$(echo "$output" | jq -r .watch.last_error)" = "Connection refused" ]
	run -124 "$WAITER" --json watch tcp "127.0.0.1:$LPORT" --timeout 200ms --follow
	[ "$(echo "$output" | grep '"watch_timed_out"' | jq -r .watch_timed_out.last_error)" = \
		"Connection refused" ]
}

@test "a unix socket that appears later, one bound but not listening, one never there" {
	sock=$TESTDIR/app.sock
	"$WAITER" watch unix "$sock" --wait >"$TESTDIR/out" 2>&1 3>&- &
	wpid=$!
	wait_for_line "$TESTDIR/out" '^[0-9]+$'
	id=$(head -n1 "$TESTDIR/out")
	wait_attempts "$id" 2
	[ "$("$WAITER" --json show "$id" | jq -r .watch.last_error)" = "No such file or directory" ]
	start_listener unix "$sock" -
	wait "$wpid"
	run "$WAITER" --json watch unix "$sock" --follow
	assert_success
	[ "$(echo "$output" | grep '"endpoint_ready"' | jq -r .endpoint_ready.address)" = "$sock" ]

	start_listener unix "$TESTDIR/bound.sock" "$TESTDIR/never"
	run -124 "$WAITER" watch unix "$TESTDIR/bound.sock" --timeout 200ms --wait
	assert_output --partial "the last one: Connection refused"
	run -124 "$WAITER" watch unix "$TESTDIR/none.sock" --timeout 200ms --wait
	assert_output --partial "the last one: No such file or directory"
}

@test "names are resolved (localhost), IPv6 goes in brackets" {
	start_listener tcp4 127.0.0.1 -
	run "$WAITER" --json watch tcp "localhost:$LPORT" --follow
	assert_success
	[ "$(echo "$output" | grep '"endpoint_ready"' | jq -r .endpoint_ready.address)" = \
		"127.0.0.1:$LPORT" ]
	# A name that does not resolve is retried until the timeout; the loop
	# is not held up meanwhile, however slow the resolver is.
	run -124 "$WAITER" watch tcp nosuch.invalid:80 --timeout 300ms --wait
	assert_output --partial "cannot resolve nosuch.invalid"
	if ! grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6; then
		skip "no ::1 on this machine"
	fi
	start_listener tcp6 ::1 -
	run "$WAITER" --json watch tcp "[::1]:$LPORT" --follow
	assert_success
	[ "$(echo "$output" | grep '"endpoint_ready"' | jq -r .endpoint_ready.address)" = \
		"[::1]:$LPORT" ]
}

@test "bad endpoints are refused with a clear message, and the daemon serves on" {
	run -2 "$WAITER" watch tcp 127.0.0.1:0
	assert_output --partial "endpoint 'tcp:127.0.0.1:0': the port must be a number from 1 to 65535"
	run -2 "$WAITER" watch tcp 127.0.0.1:70000
	assert_output --partial "the port must be a number from 1 to 65535"
	run -2 "$WAITER" watch tcp localhost:http
	assert_output --partial "the port must be a number from 1 to 65535"
	run -2 "$WAITER" watch tcp '[]:80'
	assert_output --partial "the host is empty"
	run -2 "$WAITER" watch tcp :80
	assert_output --partial "is not HOST:PORT"
	run -2 "$WAITER" watch tcp ::1:80
	assert_output --partial "an IPv6 address goes in brackets"
	run -2 "$WAITER" watch tcp '[nope]:80'
	assert_output --partial "not an IPv6 address"
	run -2 "$WAITER" watch tcp 'a b:80'
	assert_output --partial "characters a host name cannot have"
	run -2 "$WAITER" watch unix "/$(printf 'x%.0s' $(seq 120))"
	assert_output --partial "shorter than 108 bytes"
	run "$WAITER" ping
	assert_success
	[ "$("$WAITER" watches --all | wc -l)" -eq 1 ]
}

@test "500 endpoint watches at once all complete; the daemon answers meanwhile" {
	start_listener tcp4 127.0.0.1 "$TESTDIR/go"
	# Created on one connection (lifetime daemon); half by name, so 250
	# resolutions go through the workers.
	run "$WRAW" "$WAITER_SOCKET" hello read "endpoints:250:tcp:localhost:$LPORT" \
		"endpoints:250:tcp:127.0.0.1:$LPORT"
	[ "$(echo "$output" | grep -c 'ok watch_endpoint$')" -eq 500 ]
	mapfile -t ids < <("$WAITER" --json watches | jq -r .id)
	[ "${#ids[@]}" -eq 500 ]
	wait_attempts "${ids[0]}" 2
	wait_attempts "${ids[499]}" 2
	run "$WAITER" ping
	assert_success
	touch "$TESTDIR/go"
	run "$WAITER" wait --timeout 30s "${ids[@]}"
	assert_success
	[ "$("$WAITER" watches | grep -c ' active ')" -eq 0 ]
	[ "$("$WAITER" --json watches --all | jq -r .state | grep -c completed)" -eq 500 ]
	run "$WAITER" ping
	assert_success
}

@test "watches lists an active one with its attempts; a name returns it; cancel stops it" {
	start_listener tcp4 127.0.0.1 "$TESTDIR/go"
	id=$("$WAITER" watch tcp "127.0.0.1:$LPORT" --name db-up)
	wait_attempts "$id" 2
	run "$WAITER" watches
	assert_line --regexp "^$id +tcp +db-up +active +0 +tcp:127.0.0.1:$LPORT \([0-9]+ attempts\)$"
	[ "$("$WAITER" watch tcp "127.0.0.1:$LPORT" --name db-up)" = "$id" ]

	"$WAITER" --json watch tcp "127.0.0.1:$LPORT" --follow >"$TESTDIR/f" 2>"$TESTDIR/ferr" 3>&- &
	fpid=$!
	wait_for_line "$TESTDIR/f" '"object"'
	fid=$(head -n1 "$TESTDIR/f" | jq -r .object.id)
	wait_attempts "$fid" 1
	"$WAITER" cancel "$fid" "$id"
	rc=0
	wait "$fpid" || rc=$?
	[ "$rc" -eq 1 ]
	grep -q '"cancelled"' "$TESTDIR/f"
	run grep endpoint_ready "$TESTDIR/f"
	assert_failure

	touch "$TESTDIR/go"
	wait_for_line "$LOUT" '^listening$'
	run "$WAITER" watch tcp "127.0.0.1:$LPORT" --wait
	assert_success
	for w in "$id" "$fid"; do
		[ "$("$WAITER" --json show "$w" | jq -r .state)" = cancelled ]
		run "$WAITER" events --id "$w"
		refute_output --partial endpoint_ready
	done
	run "$WAITER" watches
	refute_output --partial "db-up"
}

@test "watches cancelled while resolving or connecting, and at shutdown, leak nothing" {
	start_listener tcp4 127.0.0.1 "$TESTDIR/never"
	for i in $(seq 20); do
		id=$("$WAITER" watch tcp "localhost:$LPORT")
		"$WAITER" cancel "$id"
	done
	for i in $(seq 5); do
		"$WAITER" watch tcp "localhost:$LPORT" >/dev/null
		"$WAITER" watch unix "$TESTDIR/none.sock" >/dev/null
	done
	[ "$("$WAITER" watches | grep -c ' active ')" -eq 10 ]
	# teardown stops the daemon with them active; sanitizers check the log.
}

@test "a round tries at most 16 of a name's addresses" {
	# A name with 17 addresses, in a private /etc/hosts that only this
	# test's daemon sees (a mount namespace; the machine's file is not
	# touched).
	stop_daemon
	cp /etc/hosts "$TESTDIR/hosts"
	for i in $(seq 1 17); do echo "127.0.0.$i many.waiter.test"; done >>"$TESTDIR/hosts"
	in_ns() {
		unshare --mount --propagation private \
			sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$TESTDIR/hosts" "$@"
	}
	# getaddrinfo's order, as the daemon will get it.
	mapfile -t addrs < <(in_ns "$PYTHON" -c 'import socket
for a in socket.getaddrinfo("many.waiter.test", 1, socket.AF_UNSPEC, socket.SOCK_STREAM):
    print(a[4][0])')
	[ "${#addrs[@]}" = 17 ]
	in_ns $WAITERD_WRAPPER "$WAITERD" -S "$WAITER_SOCKET" --daemonize --log-file "$DAEMON_LOG"
	DAEMON_PID=$(head -n1 "$WAITER_SOCKET.lock")
	# The 16th refuses until told; the 17th listens on the same port.
	start_listener tcp4 "${addrs[15]}" "$TESTDIR/go"
	"$PYTHON" -c 'import socket, sys
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("listening", flush=True)
while True:
    s.accept()[0].close()' "${addrs[16]}" "$LPORT" >"$TESTDIR/l17" &
	LISTENER_PIDS+=("$!")
	wait_for_line "$TESTDIR/l17" '^listening$'
	id=$("$WAITER" watch tcp "many.waiter.test:$LPORT")
	# Three rounds of 16 refusals, and the 17th, which serves, never tried.
	wait_attempts "$id" 48
	[ "$("$WAITER" --json show "$id" | jq -r .state)" = active ]
	touch "$TESTDIR/go"
	run "$WAITER" --json wait "$id"
	assert_success
	run "$WAITER" --json watch tcp "many.waiter.test:$LPORT" --follow
	assert_success
	ready=$(echo "$output" | grep '"endpoint_ready"')
	[ "$(echo "$ready" | jq -r .endpoint_ready.address)" = "${addrs[15]}:$LPORT" ]
	[ "$(echo "$ready" | jq -r .endpoint_ready.attempts)" = 16 ]
	run grep -c many.waiter.test /etc/hosts
	assert_output 0
}
