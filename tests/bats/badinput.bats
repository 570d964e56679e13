#!/usr/bin/env bats
# Malformed input (DESIGN 3, 7): bad lengths, truncated frames, invalid
# protobuf, unknown operations, absurd values. Each gets an error and at
# most the close of that one connection; the daemon goes on serving others.

load helpers

setup() {
	HOLD_PID=
	daemon_setup
}

teardown() {
	if [ -n "${HOLD_PID:-}" ]; then
		kill -KILL "$HOLD_PID" 2>/dev/null || true
		wait_gone "$HOLD_PID" || true
		HOLD_PID=
	fi
	daemon_teardown
}

# The daemon still answers a well-behaved client.
assert_still_serves() {
	run "$WAITER" ping
	assert_success
	assert_output pong
}

# Wait (bounded) until `connections` in stats is $1 again: a close the
# daemon notices is handled asynchronously.
wait_connections() {
	local want=$1 n
	for _ in $(seq $((250 * WAITER_TEST_SLOW))); do
		n=$(stat_value connections)
		[ "$n" = "$want" ] && return 0
		sleep 0.02
	done
	echo "connections is $n, expected $want" >&2
	return 1
}

@test "random bytes get an error and a close" {
	before=$(stat_value bad_requests)
	errors=0
	for _ in $(seq 10); do
		run "$WRAW" "$WAITER_SOCKET" garbage:1000 readall
		assert_success
		# Closed after an error; "timeout" only in the rare case where the
		# random length prefix is small and the daemon waits for the rest.
		# A failure prints "garbage seed=S": WRAW_SEED=S sends the same.
		assert_line --regexp '^(closed|timeout)$'
		if [[ "$output" == *"error ERROR_CODE_"* ]]; then
			errors=$((errors + 1))
		fi
	done
	[ "$errors" -ge 1 ]
	after=$(stat_value bad_requests)
	[ "$after" -ge $((before + errors)) ]
	assert_still_serves
}

@test "a 2^31 length prefix is refused with the limit, then closed" {
	before=$(stat_value bad_requests)
	run "$WRAW" "$WAITER_SOCKET" len:2147483648 readall
	assert_success
	assert_line --index 0 --regexp \
		'^reply id=0 error ERROR_CODE_FRAME_TOO_LARGE: .*2147483648.*limit of 1048576 bytes'
	assert_line --index 1 closed
	[ "${#lines[@]}" -eq 2 ]
	[ "$(stat_value bad_requests)" -eq $((before + 1)) ]
	assert_still_serves
}

@test "a frame over a configured --max-frame is refused; one at it is served" {
	# This needs a daemon of its own, even with WAITER_TEST_SOCKET set.
	stop_daemon
	unset WAITER_TEST_SOCKET
	start_daemon --max-frame 100
	# Exactly 100 bytes: id=7, then unknown field 99 holding 95 bytes.
	body=08079a065f$(printf '00%.0s' $(seq 95))
	run "$WRAW" "$WAITER_SOCKET" hello read raw:00000064$body read
	assert_success
	assert_line --index 0 'reply id=1 ok hello'
	assert_line --index 1 --regexp '^reply id=7 error ERROR_CODE_UNSUPPORTED_OPERATION: '

	before=$(stat_value bad_requests)
	run "$WRAW" "$WAITER_SOCKET" hello read len:101 readall
	assert_success
	assert_line --index 0 'reply id=1 ok hello'
	assert_line --index 1 --regexp \
		'^reply id=0 error ERROR_CODE_FRAME_TOO_LARGE: frame of 101 bytes .*limit of 100 bytes'
	assert_line --index 2 closed
	[ "$(stat_value bad_requests)" -eq $((before + 1)) ]
	assert_still_serves
}

@test "a truncated frame then close costs only that connection" {
	base=$(stat_value connections)
	run "$WRAW" "$WAITER_SOCKET" hello read len:50 raw:0102 close
	assert_success
	assert_output 'reply id=1 ok hello'
	assert_still_serves
	wait_connections "$base"
}

@test "a frame split into 1-byte writes is reassembled" {
	before=$(stat_value bad_requests)
	run "$WRAW" "$WAITER_SOCKET" split hello ping read read
	assert_success
	assert_line --index 0 'reply id=1 ok hello'
	assert_line --index 1 'reply id=2 ok pong'
	[ "${#lines[@]}" -eq 2 ]
	[ "$(stat_value bad_requests)" -eq "$before" ]
	assert_still_serves
}

@test "a valid frame holding invalid protobuf is a protocol error, then closed" {
	before=$(stat_value bad_requests)
	run "$WRAW" "$WAITER_SOCKET" badproto readall
	assert_success
	assert_line --index 0 --regexp '^reply id=0 error ERROR_CODE_PROTOCOL_ERROR: .+'
	assert_line --index 1 closed
	[ "${#lines[@]}" -eq 2 ]
	[ "$(stat_value bad_requests)" -eq $((before + 1)) ]
	assert_still_serves
}

@test "invalid protobuf after Hello is a protocol error too" {
	before=$(stat_value bad_requests)
	run "$WRAW" "$WAITER_SOCKET" hello read badproto readall
	assert_success
	assert_line --index 0 'reply id=1 ok hello'
	assert_line --index 1 --regexp '^reply id=0 error ERROR_CODE_PROTOCOL_ERROR: '
	assert_line --index 2 closed
	[ "$(stat_value bad_requests)" -eq $((before + 1)) ]
	assert_still_serves
}

@test "an unknown operation is unsupported and the connection stays open" {
	run "$WRAW" "$WAITER_SOCKET" hello read op:99 read ping read
	assert_success
	assert_line --index 0 'reply id=1 ok hello'
	assert_line --index 1 --regexp \
		'^reply id=7 error ERROR_CODE_UNSUPPORTED_OPERATION: .*does not know'
	assert_line --index 2 'reply id=2 ok pong'
	[ "${#lines[@]}" -eq 3 ]
	assert_still_serves
}

@test "a request before Hello is a protocol error, then closed" {
	before=$(stat_value bad_requests)
	run "$WRAW" "$WAITER_SOCKET" ping readall
	assert_success
	assert_line --index 0 --regexp \
		'^reply id=2 error ERROR_CODE_PROTOCOL_ERROR: .*must be Hello'
	assert_line --index 1 closed
	[ "${#lines[@]}" -eq 2 ]
	[ "$(stat_value bad_requests)" -eq $((before + 1)) ]
	assert_still_serves
}

@test "a protocol version the daemon does not speak is refused, then closed" {
	run "$WRAW" "$WAITER_SOCKET" hello:7 readall
	assert_success
	assert_line --index 0 --regexp \
		'^reply id=1 error ERROR_CODE_UNSUPPORTED_VERSION: .*version 1.*asked for 7'
	assert_line --index 1 closed
	[ "${#lines[@]}" -eq 2 ]
	assert_still_serves
}

@test "a zero-length frame after Hello is an empty Request: unsupported" {
	run "$WRAW" "$WAITER_SOCKET" hello read len:0 read ping read
	assert_success
	assert_line --index 0 'reply id=1 ok hello'
	assert_line --index 1 --regexp '^reply id=0 error ERROR_CODE_UNSUPPORTED_OPERATION: '
	assert_line --index 2 'reply id=2 ok pong'
	[ "${#lines[@]}" -eq 3 ]
	assert_still_serves
}

@test "negative and absurd durations are usage errors" {
	objects=$(stat_value objects)
	run "$WAITER" after -5s
	assert_failure 2
	assert_output --partial 'usage: waiter after'
	run "$WAITER" after -- -5s
	assert_failure 2
	assert_output --partial 'cannot be negative'
	run "$WAITER" after 3651d
	assert_failure 2
	assert_output --partial 'longer than 10 years'
	run "$WAITER" every 0
	assert_failure 2
	assert_output --partial 'longer than 0'
	# Parsed by the CLI, refused by the daemon: INVALID_ARGUMENT maps to 2.
	run "$WAITER" every 500us
	assert_failure 2
	assert_output --partial 'at least 1ms'
	run "$WAITER" at 1969-01-01T00:00:00Z
	assert_failure 2
	assert_output --partial 'not a time'
	run "$WAITER" at @99999999999
	assert_failure 2
	assert_output --partial 'more than 10 years away'
	run "$WAITER" wait 0
	assert_failure 2
	assert_output --partial 'not an object id'
	run "$WAITER" wait abc
	assert_failure 1
	assert_output --partial 'no object named abc'
	run "$WAITER" wait 'a b'
	assert_failure 1
	# None of them created anything.
	[ "$(stat_value objects)" -eq "$objects" ]
	assert_still_serves
}

@test "2,000 concurrent connections are served" {
	base=$(stat_value connections)
	"$WRAW" "$WAITER_SOCKET" hold:2000 >"$TESTDIR/hold.out" 2>&1 &
	HOLD_PID=$!
	wait_for_line "$TESTDIR/hold.out" '^holding 2000' 60
	assert_still_serves
	[ "$(stat_value connections)" -ge $((base + 2000)) ]
	[ "$(stat_value connections)" -ge 2001 ]
	kill -TERM "$HOLD_PID"
	wait_gone "$HOLD_PID"
	HOLD_PID=
	wait_connections "$base"
	assert_still_serves
}

@test "a client killed mid-frame costs only its connection" {
	base=$(stat_value connections)
	"$WRAW" "$WAITER_SOCKET" hello read len:100 raw:01 sleep:100000 \
		>"$TESTDIR/mid.out" 2>&1 &
	HOLD_PID=$!
	wait_for_line "$TESTDIR/mid.out" '^reply id=1 ok hello$'
	# Both partial writes are done once it sleeps.
	for _ in $(seq $((250 * WAITER_TEST_SLOW))); do
		grep -q nanosleep "/proc/$HOLD_PID/wchan" 2>/dev/null && break
		sleep 0.02
	done
	grep -q nanosleep "/proc/$HOLD_PID/wchan"
	[ "$(stat_value connections)" -eq $((base + 1)) ]
	kill -KILL "$HOLD_PID"
	wait_gone "$HOLD_PID"
	HOLD_PID=
	assert_still_serves
	wait_connections "$base"
}

@test "--frame-timeout: half a frame and silence closes that connection, with a reason" {
	stop_daemon
	start_daemon --frame-timeout 300ms
	base=$(stat_value connections)
	run "$WRAW" "$WAITER_SOCKET" hello read len:100 raw:0102 readall
	assert_success
	assert_line --index 0 'reply id=1 ok hello'
	assert_line --index 1 --regexp \
		'^reply id=0 error ERROR_CODE_PROTOCOL_ERROR: a frame begun [0-9]+ ms ago is still not whole'
	assert_line --index 2 closed
	wait_connections "$base"
	# A client that takes its time between whole frames is not at fault.
	run "$WRAW" "$WAITER_SOCKET" hello read sleep:1500 ping read
	assert_success
	assert_line --index 1 --regexp '^reply id=[0-9]+ ok pong$'
	run $WAITERD_WRAPPER "$WAITERD" --frame-timeout 0
	assert_failure 2
	assert_output --partial "--frame-timeout: must be longer than 0"
	assert_still_serves
}
