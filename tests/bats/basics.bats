#!/usr/bin/env bats
# The daemon commands, help, usage errors and exit statuses.

load helpers

setup() { daemon_setup; }
teardown() { daemon_teardown; }

@test "ping answers pong" {
	run "$WAITER" ping
	assert_success
	assert_output pong
}

@test "ping --json carries the daemon's clock" {
	run "$WAITER" --json ping
	assert_success
	now=$(date +%s)
	t=$(echo "$output" | jq -r .time_us)
	[ $((t / 1000000 - now)) -le 5 ] && [ $((now - t / 1000000)) -le 5 ]
}

@test "version reports the client and the running daemon" {
	run "$WAITER" version
	assert_success
	assert_line --regexp '^waiter [0-9.]+ \(protocol 1\)$'
	assert_line --regexp '^waiterd [0-9.]+$'
	run "$WAITER" --json version
	assert_success
	[ "$(echo "$output" | jq -r .protocol_version)" = 1 ]
	[ "$(echo "$output" | jq -r .server_version)" != null ]
}

@test "version does not start a daemon" {
	run "$WAITER" -S "$TESTDIR/none.sock" version
	assert_success
	assert_line "waiterd not running"
	[ ! -e "$TESTDIR/none.sock" ]
}

@test "stats shows counters and the loop lag" {
	run "$WAITER" stats
	assert_success
	assert_line --regexp '^connections=1$'
	assert_line --regexp '^loop_lag_p99=[0-9]'
	assert_line --regexp '^retain_limit=10000$'
	run "$WAITER" --json stats
	assert_success
	[ "$(echo "$output" | jq -r .pid)" = "$DAEMON_PID" ]
	[ "$(echo "$output" | jq -r .connections)" = 1 ]
}

@test "stats counts requests and objects" {
	before=$(stat_value requests)
	"$WAITER" after 1h >/dev/null
	"$WAITER" after 1h >/dev/null
	[ "$(stat_value timers)" = 2 ]
	[ "$(stat_value objects)" = 2 ]
	after=$(stat_value requests)
	[ "$after" -ge $((before + 4)) ]
}

@test "--help lists every command" {
	run "$WAITER" --help
	assert_success
	for c in ping stats version shutdown after every at timers submit run tasks show logs kill queue queues cancel wait events; do
		assert_line --regexp "^  $c "
	done
	assert_output --partial "69 daemon unreachable"
}

@test "every command has --help" {
	for c in ping stats version shutdown after every at timers submit run tasks show logs kill queue queues cancel wait events; do
		run "$WAITER" "$c" --help
		assert_success
		assert_line --index 0 --regexp "^usage: waiter $c"
	done
	run "$WAITER" help every
	assert_success
	assert_output --partial "--count N"
}

@test "usage errors exit 2 with a sentence" {
	run "$WAITER" frobnicate
	assert_failure 2
	assert_output --partial "unknown command 'frobnicate'"
	run "$WAITER" after
	assert_failure 2
	assert_output --partial "missing DURATION"
	run "$WAITER" after 5s --bogus
	assert_failure 2
	run "$WAITER" after 5x
	assert_failure 2
	assert_output --partial "unknown unit"
	run "$WAITER"
	assert_failure 2
}

@test "an unreachable daemon exits 69" {
	run "$WAITER" -S "$TESTDIR/nothing-here.sock" ping
	assert_failure 69
	assert_output --partial "no waiterd at $TESTDIR/nothing-here.sock"
	[ ! -e "$TESTDIR/nothing-here.sock" ]
}

@test "shutdown stops the daemon and removes its socket" {
	run "$WAITER" shutdown
	assert_success
	wait_gone "$DAEMON_PID"
	[ ! -e "$WAITER_SOCKET" ]
	[ ! -e "$WAITER_SOCKET.lock" ]
	grep -q 'msg=shutdown reason=request' "$DAEMON_LOG"
	run "$WAITER" ping
	assert_failure 69
}
