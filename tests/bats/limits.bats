#!/usr/bin/env bats
# Every limit is hit once, answered with a clear error, and the daemon goes
# on serving (DESIGN 7). Frame size, clients, output and retention are hit in
# badinput.bats, lifecycle.bats and events.bats.

load helpers

teardown() { daemon_teardown; }

@test "--max-objects-per-client: the connection past it gets resource exhausted" {
	start_daemon --max-objects-per-client 3
	run "$WRAW" "$WAITER_SOCKET" hello read timers:4
	assert_success
	[ "$(echo "$output" | grep -c 'ok timer_create')" -eq 3 ]
	assert_line --index 4 --partial 'ERROR_CODE_RESOURCE_EXHAUSTED: this connection has 3 active objects, the limit (--max-objects-per-client)'
	# Its timers had lifetime connection: they went with it.
	[ "$(stat_value timers)" = 0 ]
	run "$WAITER" ping
	assert_output pong
}

@test "--max-objects: the daemon-wide limit, and it frees up on cancel" {
	start_daemon --max-objects 3
	a=$("$WAITER" after 1h)
	"$WAITER" after 1h --name second >/dev/null
	"$WAITER" after 1h >/dev/null
	run "$WAITER" after 1h
	assert_failure 1
	assert_output "waiter: the daemon has 3 active objects, the limit (--max-objects)"
	# An existing name still answers: retries succeed at the limit.
	run "$WAITER" after 1h --name second
	assert_success
	"$WAITER" cancel "$a"
	run "$WAITER" after 1h
	assert_success
}

@test "--keep-finished: the oldest finished objects are forgotten" {
	start_daemon --keep-finished 2
	a=$("$WAITER" after 0 --wait)
	b=$("$WAITER" after 0 --wait)
	c=$("$WAITER" after 0 --wait)
	[ "$(stat_value finished_objects)" = 2 ]
	run "$WAITER" wait "$a"
	assert_failure 1
	assert_output --partial "no object with id $a"
	run "$WAITER" wait "$b" "$c"
	assert_success
}

@test "pending waits per connection are bounded" {
	start_daemon
	id=$("$WAITER" after 1h)
	run "$WRAW" "$WAITER_SOCKET" hello read "waits:$id:10001"
	assert_success
	assert_line "reply id=11000 error ERROR_CODE_RESOURCE_EXHAUSTED: this connection has 10000 pending waits, the limit"
	[ "$(echo "$output" | grep -c 'error')" -eq 1 ]
	run "$WAITER" ping
	assert_output pong
}

@test "a subscription names at most 1024 ids" {
	start_daemon
	run "$WRAW" "$WAITER_SOCKET" hello read subscribe-ids:1024 read subscribe-ids:1025 read
	assert_success
	assert_line --index 1 'reply id=4 ok subscribe'
	assert_line --index 2 --partial 'ERROR_CODE_RESOURCE_EXHAUSTED: a subscription may name at most 1024 ids, not 1025'
}

@test "names are at most 200 characters" {
	start_daemon
	n200=$(printf 'n%.0s' $(seq 1 200))
	run "$WAITER" after 1h --name "$n200"
	assert_success
	run "$WAITER" after 1h --name "${n200}x"
	assert_failure 2
	assert_output --partial "a name is 1 to 200 characters"
}

@test "--slow-lap: a callback over the threshold is logged with its handler" {
	start_daemon --slow-lap 1us
	"$WAITER" after 0 --wait >/dev/null
	[ "$(stat_value slow_laps)" -gt 0 ]
	grep -qE 'level=warn msg=slow_lap handler=(conn_read|timer|accept) ' "$DAEMON_LOG"
}

@test "5,000 waiters on one timer are all answered, a lap at a time, even with --keep-finished 0" {
	start_daemon --keep-finished 0
	id=$("$WAITER" after 1h)
	"$WRAW" "$WAITER_SOCKET" hello read "waits:$id:5000" >"$TESTDIR/out" &
	wraw=$!
	# Fire it only once all 5,000 wait (an `after` could fire first).
	for _ in $(seq 1 $((1500 * WAITER_TEST_SLOW))); do
		[ "$(stat_value waits)" = 5000 ] && break
		sleep 0.02
	done
	[ "$(stat_value waits)" = 5000 ]
	"$WAITER" cancel "$id"
	wait "$wraw"
	[ "$(grep -c '^reply id=[0-9]* ok wait$' "$TESTDIR/out")" -eq 5000 ]
	[ "$(stat_value waits)" = 0 ]
	# Once answered, the finished timer is forgotten as configured.
	[ "$(stat_value finished_objects)" = 0 ]
	run "$WAITER" wait "$id"
	assert_failure 1
	assert_output --partial "no object with id $id"
}

@test "the client name kept is its first 64 bytes, logged at hello, and cannot forge a log line" {
	start_daemon -v
	run "$WRAW" "$WAITER_SOCKET" hello-name:100 read
	assert_line "reply id=1 ok hello"
	a64=$(printf 'a%.0s' $(seq 1 64))
	grep -qE "level=debug msg=hello conn=[0-9]+ client=\"$a64\"$" "$DAEMON_LOG"
	run "$WRAW" "$WAITER_SOCKET" "hello-as:x\"y\\z"$'\n''time=forged' read
	assert_line "reply id=1 ok hello"
	grep -qE 'msg=hello conn=[0-9]+ client="x\?y\?z\?time=forged"$' "$DAEMON_LOG"
	run grep -c '^time=forged' "$DAEMON_LOG"
	assert_output 0
}

@test "--allow-uid is given at most 32 times" {
	args=()
	for i in $(seq 1 32); do args+=(--allow-uid "$((1000 + i))"); done
	start_daemon "${args[@]}"
	run "$WAITER" ping
	assert_output pong
	stop_daemon
	run timeout 30 $WAITERD_WRAPPER "$WAITERD" -S "$TESTDIR/other.sock" "${args[@]}" --allow-uid 2000
	assert_failure 2
	assert_line --index 0 "waiterd: at most 32 --allow-uid options"
	[ ! -e "$TESTDIR/other.sock" ]
}

@test "a closing connection that never reads is closed 5 s after its error, and others are served meanwhile" {
	start_daemon -v
	# 40 Lists of 1000 timers queue far more than the socket holds; the
	# bad frame behind them closes the connection, which never reads.
	"$WRAW" "$WAITER_SOCKET" hello read timers:1000 lists:40 len:0x7fffffff sleep:60000 \
		>"$TESTDIR/wraw.out" &
	wraw=$!
	wait_for_line "$DAEMON_LOG" 'msg=close conn=[0-9]+ how=flush why="frame of 2147483647 bytes'
	run "$WAITER" ping
	assert_output pong
	wait_for_line "$DAEMON_LOG" 'msg=close conn=[0-9]+ how=now why="flush timed out"' 15
	kill "$wraw"
	# The deadline is 5 s after the close began (log times, in ms; the
	# loop's cached clock may be behind by the lap that queued the Lists).
	ms() {
		grep -E "$1" "$DAEMON_LOG" | head -n1 |
			sed -E 's/^time=([^ ]*)Z .*/\1/' | xargs -I{} date -u -d {} +%s%3N
	}
	began=$(ms 'how=flush why="frame of')
	ended=$(ms 'why="flush timed out"')
	[ $((ended - began)) -ge 4000 ]
	[ $((ended - began)) -lt $((5000 + 2000 * WAITER_TEST_SLOW)) ]
	[ "$(stat_value connections)" = 1 ]
}

@test "a settled path event lists at most 1024 changes, and counts the rest in more" {
	start_daemon
	mkdir "$TESTDIR/d"
	"$WAITER" --json watch path "$TESTDIR/d" --settle 2s --on created --follow \
		>"$TESTDIR/out" 2>"$TESTDIR/out.err" &
	follower=$!
	wait_for_line "$TESTDIR/out" '"existed"'
	# The daemon is stopped while the files are made, so the 1500 changes
	# wait in the inotify queue and reach it as one burst: a slow, loaded
	# machine cannot split them with a 2 s pause of its own.
	kill -STOP "$DAEMON_PID"
	(cd "$TESTDIR/d" && touch $(seq 1 1500))
	kill -CONT "$DAEMON_PID"
	wait_for_line "$TESTDIR/out" '"path_changed"' 30
	kill "$follower"
	[ "$(grep -c '"path_changed"' "$TESTDIR/out")" = 1 ]
	[ "$(grep '"path_changed"' "$TESTDIR/out" | jq '.path_changed.changes | length')" = 1024 ]
	[ "$(grep '"path_changed"' "$TESTDIR/out" | jq -r '.path_changed.more')" = 476 ]
}
