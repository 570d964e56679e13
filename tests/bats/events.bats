#!/usr/bin/env bats
# The event bus: seq, replay with --since, filters, live following, the
# retention ring, and a slow subscriber that must not hurt anyone else.

load helpers

teardown() { daemon_teardown; }

@test "events replays what is retained, in seq order, and exits" {
	start_daemon
	a=$("$WAITER" after 0 --wait)
	b=$("$WAITER" after 0 --wait)
	run "$WAITER" --json events
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	[ "$(echo "${lines[0]}" | jq -r '"\(.seq) \(.object_id) \(.kind)"')" = "1 $a timer_fired" ]
	[ "$(echo "${lines[1]}" | jq -r '"\(.seq) \(.object_id) \(.kind)"')" = "2 $b timer_fired" ]
}

@test "events --since replays only what a client missed" {
	start_daemon
	"$WAITER" after 0 --wait >/dev/null
	seen=$("$WAITER" --json events | tail -n1 | jq -r .seq)
	b=$("$WAITER" after 0 --wait)
	c=$("$WAITER" after 0 --wait)
	run "$WAITER" --json events --since "$seen"
	assert_success
	[ "$(echo "$output" | jq -r .object_id | tr '\n' ' ')" = "$b $c " ]
	run "$WAITER" events --since 999
	assert_success
	assert_output ""
}

@test "events --kind and --id filter" {
	start_daemon
	a=$("$WAITER" after 0 --wait)
	b=$("$WAITER" after 1h)
	"$WAITER" cancel "$b"
	run "$WAITER" --json events --kind cancelled
	assert_success
	[ "$(echo "$output" | jq -r '"\(.object_id) \(.cancelled.reason)"')" = "$b requested" ]
	run "$WAITER" --json events --id "$a"
	assert_success
	[ "$(echo "$output" | jq -r .kind)" = timer_fired ]
	run "$WAITER" events --kind bogus
	assert_failure 2
	assert_output --partial "unknown event kind 'bogus'"
}

@test "events --follow streams live events, replay first" {
	start_daemon
	a=$("$WAITER" after 0 --wait)
	"$WAITER" --json events --follow --since 0 >"$TESTDIR/out" &
	pid=$!
	wait_for_line "$TESTDIR/out" "\"object_id\":$a,"
	b=$("$WAITER" after 10ms)
	wait_for_line "$TESTDIR/out" "\"object_id\":$b,"
	kill "$pid"
	wait "$pid" || true
	[ "$(jq -r .object_id "$TESTDIR/out" | tr '\n' ' ')" = "$a $b " ]
}

@test "a follower sees the daemon shut down" {
	start_daemon
	"$WAITER" events --follow >"$TESTDIR/out" &
	pid=$!
	wait_for_line "$DAEMON_LOG" 'msg=started'
	# the follower is subscribed once its connection counts
	wait_stat subscribers 1
	"$WAITER" shutdown
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	grep -q 'kind=shutdown' "$TESTDIR/out"
}

@test "the retention ring keeps the newest events; older ones are reported lost" {
	start_daemon --retain-events 5
	for i in 1 2 3 4 5 6 7 8; do "$WAITER" after 0 --wait >/dev/null; done
	[ "$(stat_value retained_events)" = 5 ]
	[ "$(stat_value last_seq)" = 8 ]
	run "$WAITER" --json events --since 0
	assert_success
	assert_line --index 0 --partial 'waiter: events 1 to 3 were lost'
	[ "$(echo "${lines[1]}" | jq -r '"\(.kind) \(.events_lost.from_seq) \(.events_lost.to_seq)"')" = "events_lost 1 3" ]
	[ "$(echo "$output" | grep '^{' | tail -n 5 | jq -r .seq | tr '\n' ' ')" = "4 5 6 7 8 " ]
}

@test "a subscriber that never reads loses events; everyone else is served" {
	start_daemon --max-output 4096 --retain-events 200
	"$WAITER" events --follow >"$TESTDIR/out" &
	pid=$!
	wait_stat subscribers 1
	kill -STOP "$pid"
	# 2,000 events: far more than the socket buffers, the 4 KiB output
	# limit and the 200-event ring hold together.
	id=$("$WAITER" every 1ms --count 2000)
	run "$WAITER" wait "$id"
	assert_success
	# While it is stopped, other clients work and its output stays bounded.
	run "$WAITER" ping
	assert_output pong
	[ "$(stat_value output_bytes)" -le 8192 ]
	marker=$("$WAITER" after 0 --wait)
	kill -CONT "$pid"
	wait_for_line "$TESTDIR/out" "object_id=$marker "
	grep -q 'kind=events_lost' "$TESTDIR/out"
	[ "$(stat_value events_lost)" -gt 0 ]
	# It received the fires it kept up with, then the newest ones, in order.
	seqs=$(grep -o '^seq=[0-9]*' "$TESTDIR/out" | cut -d= -f2 | grep -v '^0$')
	[ "$(echo "$seqs" | sort -n | tr '\n' ' ')" = "$(echo "$seqs" | tr '\n' ' ')" ]
	kill "$pid"
	wait "$pid" || true
}

@test "events of a connection's own objects reach it without subscribing" {
	start_daemon
	run "$WAITER" --json every 5ms --count 2 --follow
	assert_success
	[ "$(echo "${lines[2]}" | jq -r .timer_fired.last)" = true ]
}
