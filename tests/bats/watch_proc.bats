#!/usr/bin/env bats
# Process watches: any pid through a pidfd, PROCESS_EXITED, lifetime, names.

bats_require_minimum_version 1.5.0
load helpers

setup() {
	daemon_setup
	MINE=()
}

# Kill only the processes this test started, then stop the daemon.
teardown() {
	local p
	for p in "${MINE[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	daemon_teardown
}

# Start `sleep 1000` in the background; its pid in SLEEPER.
start_sleeper() {
	sleep 1000 &
	SLEEPER=$!
	MINE+=("$SLEEPER")
}

# Without pidfds (valgrind 3.19 does not know pidfd_open; Linux before 5.3)
# the daemon says so in its log at start, and refuses every process watch
# as UNSUPPORTED. A test that needs a working watch then asserts that
# fallback instead: `if no_pidfd; then assert_watch_unsupported PID; return; fi`.
no_pidfd() {
	grep -q 'msg=pidfd_unavailable ' "$DAEMON_LOG"
}

# The fallback: a watch of pid $1 is refused with a sentence and the code
# UNSUPPORTED_OPERATION, nothing is left behind, the daemon still serves.
assert_watch_unsupported() {
	run "$WAITER" watch pid "$1"
	assert_failure 1
	assert_output --partial "waiter: this kernel cannot watch processes: pidfd_open needs Linux 5.3"
	# Request{id: 2, watch_pid{pid: 1}}.
	run "$WRAW" "$WAITER_SOCKET" hello read raw:000000070802ca02020801 read
	assert_success
	assert_line --index 1 --partial 'reply id=2 error ERROR_CODE_UNSUPPORTED_OPERATION: this kernel cannot watch processes'
	[ "$("$WAITER" --json watches | wc -l)" -eq 0 ]
	run "$WAITER" ping
	assert_success
	assert_output pong
}

# Wait (bounded) until id $1 is no longer among the active watches.
wait_unlisted() {
	local i
	for i in $(seq 1 $((500 * WAITER_TEST_SLOW))); do
		"$WAITER" --json watches | jq -r .id | grep -qx "$1" || return 0
		sleep 0.02
	done
	echo "watch $1 is still listed" >&2
	return 1
}

@test "watch pid --wait completes when the process exits" {
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	"$WAITER" watch pid "$SLEEPER" --wait >"$TESTDIR/out" 2>&1 &
	cli=$!
	MINE+=("$cli")
	wait_for_line "$TESTDIR/out" '^[0-9]+$'
	kill "$SLEEPER"
	rc=0
	wait "$cli" || rc=$?
	[ "$rc" -eq 0 ]
	[ "$(wc -l <"$TESTDIR/out")" -eq 1 ]
}

@test "--follow prints the process_exited event" {
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	"$WAITER" --json watch pid "$SLEEPER" --follow >"$TESTDIR/out" &
	cli=$!
	MINE+=("$cli")
	wait_for_line "$TESTDIR/out" '"existed"'
	id=$(head -n1 "$TESTDIR/out" | jq -r .object.id)
	[ "$(head -n1 "$TESTDIR/out" | jq -r .object.watch.type)" = pid ]
	[ "$(head -n1 "$TESTDIR/out" | jq -r .object.watch.pid)" = "$SLEEPER" ]
	kill "$SLEEPER"
	wait "$cli"
	ev=$(tail -n1 "$TESTDIR/out")
	[ "$(echo "$ev" | jq -r .kind)" = process_exited ]
	[ "$(echo "$ev" | jq -r .object_id)" = "$id" ]
	[ "$(echo "$ev" | jq -r .process_exited.pid)" = "$SLEEPER" ]
	# Not the daemon's child: the kernel does not tell it the status.
	[ "$(echo "$ev" | jq -r .process_exited.has_status)" = false ]
	run "$WAITER" --json show "$id"
	[ "$(echo "$output" | jq -r .state)" = completed ]
	[ "$(echo "$output" | jq -r .watch.events)" = 1 ]
}

@test "a pid with no process is NOT_FOUND, exit 1" {
	sh -c 'exit 0' &
	gone=$!
	wait "$gone"
	if no_pidfd; then assert_watch_unsupported "$gone"; return; fi
	run "$WAITER" watch pid "$gone"
	assert_failure 1
	assert_output --partial "no process with pid $gone"
	run "$WAITER" watch pid "$gone" --wait
	assert_failure 1
	assert_output --partial "no process with pid $gone"
	[ "$("$WAITER" --json watches | wc -l)" -eq 0 ]
}

@test "bad WatchPid fields are INVALID_ARGUMENT" {
	# Request{id: 2, watch_pid{}}: pid 0.
	run "$WRAW" "$WAITER_SOCKET" hello read raw:000000050802ca0200 read
	assert_success
	assert_line --index 1 'reply id=2 error ERROR_CODE_INVALID_ARGUMENT: pid must be 1 or more'
	# Request{id: 2, watch_pid{pid: 1, lifetime: 7}}.
	run "$WRAW" "$WAITER_SOCKET" hello read raw:000000090802ca020408011807 read
	assert_success
	assert_line --index 1 'reply id=2 error ERROR_CODE_INVALID_ARGUMENT: unknown lifetime'
	run "$WAITER" ping
	assert_success
}

@test "without --wait the watch lives on; wait collects it later" {
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	id=$("$WAITER" watch pid "$SLEEPER")
	[[ "$id" =~ ^[0-9]+$ ]]
	run "$WAITER" --json watches
	assert_success
	row=$(echo "$output" | jq -c "select(.id == $id)")
	[ "$(echo "$row" | jq -r .watch.type)" = pid ]
	[ "$(echo "$row" | jq -r .watch.pid)" = "$SLEEPER" ]
	[ "$(echo "$row" | jq -r .state)" = active ]
	[ "$(echo "$row" | jq -r .lifetime)" = daemon ]
	run "$WAITER" watches
	assert_success
	assert_line --regexp "^$id +pid +- +active +0 +$SLEEPER\$"
	kill "$SLEEPER"
	run "$WAITER" wait "$id"
	assert_success
	run "$WAITER" wait "$id"
	assert_success
	wait_unlisted "$id"
	run "$WAITER" --json events --since 0 --id "$id"
	[ "$(echo "$output" | jq -r .process_exited.pid)" = "$SLEEPER" ]
}

@test "cancel ends a process watch and answers its waiters" {
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	id=$("$WAITER" watch pid "$SLEEPER")
	run "$WAITER" cancel "$id"
	assert_success
	run "$WAITER" wait "$id"
	assert_failure 1
	assert_output --partial "was cancelled"
	wait_unlisted "$id"
	# The process is untouched by the watch's end.
	kill -0 "$SLEEPER"
}

@test "two watches on one pid both complete" {
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	a=$("$WAITER" watch pid "$SLEEPER")
	b=$("$WAITER" watch pid "$SLEEPER")
	[ "$a" != "$b" ]
	kill "$SLEEPER"
	run "$WAITER" wait "$a" "$b"
	assert_success
	run "$WAITER" --json events --since 0 --kind process_exited
	[ "$(echo "$output" | jq -r .object_id | sort -n | tr '\n' ' ')" = "$a $b " ]
}

@test "a --follow watch whose client is killed is cancelled" {
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	"$WAITER" watch pid "$SLEEPER" --follow >"$TESTDIR/out" &
	cli=$!
	MINE+=("$cli")
	wait_for_line "$TESTDIR/out" '^[0-9]+$'
	id=$(head -n1 "$TESTDIR/out")
	[ "$("$WAITER" --json watches | jq -r "select(.id == $id) | .lifetime")" = connection ]
	kill "$cli"
	wait "$cli" || true
	wait_unlisted "$id"
	run "$WAITER" --json events --since 0 --id "$id"
	[ "$(echo "$output" | jq -r .cancelled.reason)" = connection_closed ]
	kill -0 "$SLEEPER"
}

@test "a name returns the existing watch; a name of another kind is refused" {
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	first=$("$WAITER" watch pid "$SLEEPER" --name pw)
	run "$WAITER" --json watch pid "$SLEEPER" --name pw
	assert_success
	[ "$(echo "$output" | jq -r .object.id)" = "$first" ]
	[ "$(echo "$output" | jq -r .existed)" = true ]
	t=$("$WAITER" after 1h --name tm)
	run "$WAITER" watch pid "$SLEEPER" --name tm
	assert_failure 1
	assert_output --partial "the name tm belongs to timer $t"
}

@test "a watch on a task's process completes; the task keeps its status" {
	id=$("$WAITER" submit -- sleep 1000)
	for i in $(seq 1 $((500 * WAITER_TEST_SLOW))); do
		pid=$("$WAITER" --json show "$id" | jq -r .task.pid)
		[ "$pid" != 0 ] && break
		sleep 0.02
	done
	[ "$pid" != 0 ]
	if no_pidfd; then assert_watch_unsupported "$pid"; return; fi
	w=$("$WAITER" watch pid "$pid")
	"$WAITER" kill "$id" --signal 9
	run "$WAITER" wait "$w"
	assert_success
	run "$WAITER" wait "$id"
	assert_failure 137
	# The status is given when the watch saw the child before tasks.c
	# reaped it; whenever it is given, it is the true one.
	ev=$("$WAITER" --json events --since 0 --id "$w" --kind process_exited)
	[ "$(echo "$ev" | jq -r .process_exited.pid)" = "$pid" ]
	if [ "$(echo "$ev" | jq -r .process_exited.has_status)" = true ]; then
		[ "$(echo "$ev" | jq -r .process_exited.signal)" = 9 ]
	fi
}

@test "the daemon still serves after process watches came and went" {
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	for i in 1 2 3; do "$WAITER" watch pid "$SLEEPER" >/dev/null; done
	[ "$("$WAITER" --json watches | wc -l)" -eq 3 ]
	kill "$SLEEPER"
	for i in $(seq 1 $((500 * WAITER_TEST_SLOW))); do
		[ "$("$WAITER" --json watches | wc -l)" -eq 0 ] && break
		sleep 0.02
	done
	[ "$("$WAITER" --json watches | wc -l)" -eq 0 ]
	run "$WAITER" ping
	assert_success
}
