#!/usr/bin/env bats
# The retention ring across a restart (issue 8, doc/durability.md): with
# --state-dir, `waiter events --since SEQ` replays what happened before a
# stop or a crash, with the same seqs; new events continue past them; a
# jump in seqs after a crash is no loss, events really dropped are.

load helpers

setup() {
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	STATE="$TESTDIR/state"
}

teardown() { daemon_teardown; }

# SIGKILL the daemon: no shutdown code runs, as in a crash or an OOM kill.
crash() {
	kill -KILL "$DAEMON_PID"
	wait_gone "$DAEMON_PID"
	DAEMON_PID=
}

# N timers that fire at once; each --wait returns once its event is out.
fire() {
	for _ in $(seq 1 "$1"); do "$WAITER" after 0 --wait >/dev/null; done
}

# The events a replay from $1 prints, one JSON line each (the events_lost
# marker included; its sentence on stderr is dropped).
replay() {
	"$WAITER" --json events --since "$1" 2>/dev/null
}

# seq of each event line, space-separated ("0" for a marker).
seqs() {
	jq -r .seq | tr '\n' ' '
}

@test "a clean stop keeps the ring: the replay shows the same events and seqs, new ones continue" {
	start_daemon --state-dir "$STATE"
	fire 3
	before=$(replay 0)
	[ "$(echo "$before" | seqs)" = "1 2 3 " ]
	"$WAITER" shutdown
	wait_gone "$DAEMON_PID"
	stop_daemon             # gone already: checks its log
	start_daemon --state-dir "$STATE"
	run replay 0
	assert_success
	assert_output "$before"
	[ "$(stat_value retained_events)" = 3 ]
	# The stop's SHUTDOWN event had seq 4 and is not kept: no loss either.
	id=$("$WAITER" after 0 --wait)
	run replay 0
	assert_success
	refute_output --partial events_lost
	[ "$(echo "$output" | seqs)" = "1 2 3 5 " ]
	[ "$(echo "${lines[3]}" | jq -r .object_id)" = "$id" ]
	# Through a Subscribe that follows, too: the replay, then live events.
	"$WAITER" --json events --follow --since 2 >"$TESTDIR/follow" &
	follower=$!
	wait_for_line "$TESTDIR/follow" '"seq":5,'
	id=$("$WAITER" after 0 --wait)
	wait_for_line "$TESTDIR/follow" "\"object_id\":$id,"
	kill "$follower"
	wait "$follower" || true
	[ "$(seqs <"$TESTDIR/follow")" = "3 5 6 " ]
}

@test "after SIGKILL, events committed before a durable create are replayed; seqs jump with no EVENTS_LOST" {
	start_daemon --state-dir "$STATE"
	t=$("$WAITER" every 1ms --count 5)
	"$WAITER" wait "$t" >/dev/null
	fire 1
	# A create is answered once everything handed over before it is
	# committed, events included: the six fires are on disk now.
	"$WAITER" after 1h >/dev/null
	before=$(replay 0)
	[ "$(echo "$before" | seqs)" = "1 2 3 4 5 6 " ]
	crash
	start_daemon --state-dir "$STATE"
	run replay 0
	assert_success
	assert_output "$before"
	id=$("$WAITER" after 0 --wait)
	seq=$(replay 6 | jq -r .seq)
	# The jump past the block the crashed run had reserved (2^20 seqs).
	[ "$seq" -gt $((6 + 524288)) ]
	run "$WAITER" --json events --since 0
	assert_success
	refute_output --partial events_lost
	[ "$(echo "$output" | seqs)" = "1 2 3 4 5 6 $seq " ]
	[ "$(echo "${lines[6]}" | jq -r .object_id)" = "$id" ]
	# From within the old run, across the jump: no marker either.
	run "$WAITER" --json events --since 4
	assert_success
	[ "$(echo "$output" | seqs)" = "5 6 $seq " ]
	[ "$(stat_value events_lost)" = 0 ]
}

@test "across the jump, EVENTS_LOST is for the events really dropped, not for the seqs never given" {
	start_daemon --state-dir "$STATE" --retain-events 4
	fire 3
	"$WAITER" after 1h >/dev/null   # the three fires are committed
	crash
	start_daemon --state-dir "$STATE" --retain-events 4
	fire 3                          # the ring of 4 lets go of seqs 1 and 2
	new=$(replay 3 | seqs)
	set -- $new
	[ "$#" -eq 3 ] && [ "$1" -gt 524288 ]
	run "$WAITER" --json events --since 0
	assert_success
	assert_line --index 0 --partial 'waiter: events 1 to 2 were lost'
	[ "$(echo "${lines[1]}" | jq -r '"\(.kind) \(.events_lost.from_seq) \(.events_lost.to_seq)"')" = "events_lost 1 2" ]
	[ "$(echo "$output" | grep '^{' | seqs)" = "0 3 $new" ]
	# A reader that had seen 2, or 3, lost nothing.
	[ "$(replay 2 | seqs)" = "3 $new" ]
	[ "$(replay 3 | seqs)" = "$new" ]
	[ "$(stat_value retained_events)" = 4 ]
	# One more lets go of 3, the last before the jump: only a reader
	# behind 3 lost something; one at 3 goes on across the jump.
	fire 1
	newer=$(replay 3 | seqs)
	set -- $newer
	[ "$#" -eq 4 ] && [ "$newer" = "$new$4 " ]
	[ "$(replay 2 | seqs)" = "0 $newer" ]
}

@test "a restart with a smaller --retain-events keeps only the newest; the rest is reported lost" {
	start_daemon --state-dir "$STATE"
	fire 6
	stop_daemon
	start_daemon --state-dir "$STATE" --retain-events 3
	[ "$(stat_value retained_events)" = 3 ]
	run "$WAITER" --json events --since 0
	assert_success
	assert_line --index 0 --partial 'waiter: events 1 to 3 were lost'
	[ "$(echo "$output" | grep '^{' | seqs)" = "0 4 5 6 " ]
	# New events push the restored ones out in turn.
	fire 2
	[ "$(replay 0 | seqs)" = "0 6 8 9 " ]
}

@test "a state file without stored events (an older waiterd's): a replay from before says EVENTS_LOST" {
	start_daemon --state-dir "$STATE"
	fire 3
	stop_daemon
	# As an older waiterd left it: no events table (it is created again).
	/usr/bin/python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("DROP TABLE events"); c.commit(); c.close()' "$STATE/state.db"
	start_daemon --state-dir "$STATE"
	[ "$(stat_value retained_events)" = 0 ]
	# Seqs 1-3 were fires, 4 the stop's SHUTDOWN: none is there now.
	run "$WAITER" --json events --since 1
	assert_success
	assert_line --index 0 --partial 'waiter: events 2 to 4 were lost'
	id=$("$WAITER" after 0 --wait)
	[ "$(replay 0 | jq -r '"\(.seq) \(.object_id)"' | tr '\n' ' ')" = "0 0 5 $id " ]
	[ "$(replay 4 | seqs)" = "5 " ]
}
