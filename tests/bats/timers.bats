#!/usr/bin/env bats
# Timers: after, at, every, count, names, lifetimes, cancel, wait, list.

load helpers

setup() { daemon_setup; }
teardown() { daemon_teardown; }

@test "after prints the new id alone" {
	run "$WAITER" after 1h
	assert_success
	assert_output --regexp '^[0-9]+$'
}

@test "after --wait returns when the timer fired" {
	run "$WAITER" after 50ms --wait
	assert_success
	id=$output
	run "$WAITER" --json events --since 0 --id "$id"
	assert_success
	[ "$(echo "$output" | jq -r .kind)" = timer_fired ]
	[ "$(echo "$output" | jq -r .timer_fired.last)" = true ]
}

@test "a timer never fires before its deadline" {
	run "$WAITER" --json after 30ms --wait
	assert_success
	created=$(echo "${lines[0]}" | jq -r .object.created_us)
	scheduled=$(echo "${lines[1]}" | jq -r .last_event.timer_fired.scheduled_us)
	fired=$(echo "${lines[1]}" | jq -r .last_event.timer_fired.fired_us)
	# The deadline is exactly 30ms after the instant the timer was made.
	[ $((scheduled - created)) -eq 30000 ]
	[ "$fired" -ge "$scheduled" ]
}

@test "timers fire in deadline order" {
	# Deadlines from one base, so slow submissions cannot reorder them; 5 s
	# ahead, so four CLI calls on a loaded machine end before the first.
	base=$(($(date +%s) + 5))
	a=$("$WAITER" at "@$base.3")
	b=$("$WAITER" at "@$base.1")
	c=$("$WAITER" at "@$base.2")
	d=$("$WAITER" at "@$base")
	[ "$(date +%s)" -lt "$base" ]
	run "$WAITER" wait "$a" "$b" "$c" "$d"
	assert_success
	run "$WAITER" --json events --since 0 --kind timer_fired
	assert_success
	order=$(echo "$output" | jq -r .object_id | tr '\n' ' ')
	[ "$order" = "$d $b $c $a " ]
}

@test "every does not drift over 50 periods" {
	run "$WAITER" --json every 20ms --count 50 --follow
	assert_success
	[ "${#lines[@]}" -eq 51 ]
	# Each deadline is the first plus whole periods (missed ones counted):
	# the arithmetic is exact, whatever the loop's lateness.
	echo "$output" | tail -n 50 | jq -s -e '
		. as $e | ($e[0].timer_fired.scheduled_us) as $t0 |
		[range(0; 50)] | all(. as $i |
			$e[$i].timer_fired.fire_count == $i + 1 and
			$e[$i].timer_fired.fired_us >= $e[$i].timer_fired.scheduled_us and
			($e[$i].timer_fired.scheduled_us - $t0) ==
				20000 * ($i + ([$e[0:$i + 1][].timer_fired.missed] | add)))'
	[ "$(echo "${lines[50]}" | jq -r .timer_fired.last)" = true ]
	[ "$(echo "${lines[49]}" | jq -r .timer_fired.last)" = false ]
}

@test "every --follow prints each fire, then completes" {
	run "$WAITER" every 10ms --count 3 --follow
	assert_success
	[ "${#lines[@]}" -eq 4 ]
	assert_line --index 1 --regexp 'kind=timer_fired .*fire_count=1 .*last=false'
	assert_line --index 3 --regexp 'fire_count=3 .*last=true'
}

@test "every --count without --follow returns; wait collects it" {
	id=$("$WAITER" every 10ms --count 3)
	run "$WAITER" wait "$id"
	assert_success
	run "$WAITER" --json timers --all
	assert_success
	row=$(echo "$output" | jq -c "select(.id == $id)")
	[ "$(echo "$row" | jq -r .state)" = completed ]
	[ "$(echo "$row" | jq -r .timer.fire_count)" = 3 ]
}

@test "at fires at a wall-clock time, given as @seconds or RFC 3339" {
	t=$(( $(date +%s) + 1 ))
	run "$WAITER" --json at "@$t" --wait
	assert_success
	[ "$(echo "${lines[1]}" | jq -r .last_event.timer_fired.scheduled_us)" = "${t}000000" ]
	[ "$(echo "${lines[1]}" | jq -r .object.timer.wall_clock)" = true ]
	iso=$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%SZ)
	run "$WAITER" --json at "$iso" --wait
	assert_success
	[ "$(echo "${lines[1]}" | jq -r .last_event.timer_fired.scheduled_us)" = "${t}000000" ]
}

@test "at in the past fires at once" {
	run "$WAITER" at 2020-01-01T00:00:00Z --wait
	assert_success
}

@test "at refuses what is not a time" {
	run "$WAITER" at tomorrow
	assert_failure 2
	assert_output --partial "RFC 3339"
	run "$WAITER" at 2026-11-26T10:00:00
	assert_failure 2
}

@test "a name is an idempotency key" {
	run "$WAITER" after 1h --name nightly-backup
	assert_success
	first=$output
	run "$WAITER" --json after 5m --name nightly-backup
	assert_success
	[ "$(echo "$output" | jq -r .object.id)" = "$first" ]
	[ "$(echo "$output" | jq -r .existed)" = true ]
	[ "$(echo "$output" | jq -r .object.name)" = nightly-backup ]
	[ "$(stat_value timers)" = 1 ]
}

@test "a bad name is refused" {
	run "$WAITER" after 1h --name 'has space'
	assert_failure 2
	assert_output --partial "a name is 1 to 200 characters"
}

@test "the CLI's timers outlive it; lifetime daemon" {
	id=$("$WAITER" after 1h)
	run "$WAITER" --json timers
	assert_success
	[ "$(echo "$output" | jq -r "select(.id == $id) | .lifetime")" = daemon ]
	[ "$(echo "$output" | jq -r "select(.id == $id) | .owner_connection")" = 0 ]
}

@test "a --wait timer is cancelled when its client goes away" {
	"$WAITER" after 1h --wait >"$TESTDIR/out" &
	pid=$!
	wait_for_line "$TESTDIR/out" '^[0-9]+$'
	id=$(cat "$TESTDIR/out")
	kill "$pid"
	wait "$pid" || true
	run "$WAITER" wait "$id"
	assert_failure 1
	assert_output --partial "was cancelled"
	run "$WAITER" --json events --since 0 --id "$id"
	[ "$(echo "$output" | jq -r .cancelled.reason)" = connection_closed ]
}

@test "cancel ends a timer and answers its waiters" {
	id=$("$WAITER" after 1h)
	"$WAITER" wait "$id" >"$TESTDIR/out" 2>&1 &
	pid=$!
	run "$WAITER" cancel "$id"
	assert_success
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 1 ]
	grep -q "timer $id was cancelled" "$TESTDIR/out"
	[ "$(stat_value timers)" = 0 ]
}

@test "wait on a cancelled timer exits 1" {
	id=$("$WAITER" after 1h)
	"$WAITER" cancel "$id"
	run "$WAITER" wait "$id"
	assert_failure 1
	assert_output "waiter: timer $id was cancelled"
}

@test "cancel of an unknown or finished id is an error" {
	run "$WAITER" cancel 999999
	assert_failure 1
	assert_output --partial "no object with id 999999"
	id=$("$WAITER" after 0 --wait)
	run "$WAITER" cancel "$id"
	assert_failure 1
	assert_output --partial "has already completed"
	a=$("$WAITER" after 1h)
	run "$WAITER" cancel 999999 "$a"
	assert_failure 1
	run "$WAITER" wait "$a"
	assert_failure 1
	assert_output --partial "was cancelled"
}

@test "wait --timeout exits 124" {
	id=$("$WAITER" after 1h)
	run "$WAITER" wait "$id" --timeout 50ms
	assert_failure 124
	assert_output --partial "did not complete within the timeout"
}

@test "wait on several ids, and on an unknown one" {
	a=$("$WAITER" after 10ms)
	b=$("$WAITER" after 20ms)
	run "$WAITER" wait "$a" "$b"
	assert_success
	run "$WAITER" wait 424242
	assert_failure 1
	assert_output --partial "no object with id 424242"
}

@test "timers lists pending timers, --all the finished too" {
	a=$("$WAITER" after 1h --name lister)
	b=$("$WAITER" every 1m --count 5)
	c=$("$WAITER" after 0 --wait)
	run "$WAITER" timers
	assert_success
	assert_line --index 0 --regexp '^ID +NAME +STATE +NEXT +EVERY +FIRES +LIFETIME$'
	assert_line --regexp "^$a +lister +active "
	assert_line --regexp "^$b +- +active .* 1m +0/5 +daemon$"
	refute_line --regexp "^$c "
	run "$WAITER" timers --all
	assert_line --regexp "^$c +- +completed "
}

@test "timers pages through more than one List reply" {
	# 1,100 timers need two pages of 1,000.
	for i in $(seq 1 1100); do "$WAITER" after 1h >/dev/null || break; done
	run "$WAITER" --json timers
	assert_success
	[ "${#lines[@]}" -eq 1100 ]
}

@test "a closing client's 3,000 timers are all cancelled, and others are served meanwhile" {
	run "$WRAW" "$WAITER_SOCKET" hello read timers:3000 close
	assert_success
	[ "$(echo "$output" | grep -c 'ok timer_create')" -eq 3000 ]
	run "$WAITER" ping
	assert_output pong
	# The daemon releases them a bounded number per lap; wait for the end.
	for _ in $(seq 1 $((500 * WAITER_TEST_SLOW))); do
		[ "$(stat_value timers)" = 0 ] && break
		sleep 0.02
	done
	[ "$(stat_value timers)" = 0 ]
	run "$WAITER" --json events --kind cancelled
	[ "$(echo "$output" | jq -r .cancelled.reason | sort | uniq -c | tr -s ' ')" = " 3000 connection_closed" ]
}

@test "a half-closed client still gets its Wait answered" {
	id=$("$WAITER" after 100ms)
	run "$WRAW" "$WAITER_SOCKET" hello read "wait:$id" shut readall
	assert_success
	assert_line --index 1 'reply id=5 ok wait'
	assert_line --index 2 closed
}
