#!/usr/bin/env bats
# Durability (issue 8, doc/durability.md): with --state-dir, what a client
# handed over survives a crash (SIGKILL) and a stop; ids and seqs never
# repeat; a state file waiter cannot trust is refused and left untouched;
# a full disk refuses new work and loses nothing acknowledged.

bats_require_minimum_version 1.5.0
load helpers

setup() {
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	STATE="$TESTDIR/state"
}

teardown() {
	if [ -n "${MOUNTED:-}" ]; then
		stop_daemon || true
		umount "$MOUNTED" || true
	fi
	daemon_teardown
}

# SIGKILL the daemon: no shutdown code runs, as in a crash or an OOM kill.
crash() {
	kill -KILL "$DAEMON_PID"
	wait_gone "$DAEMON_PID"
	DAEMON_PID=
}

# Wait until the wall clock is past $1 (µs since the epoch), at most 20 s.
wait_past() {
	for _ in $(seq 1 1000); do
		[ "$(date +%s%6N)" -gt "$1" ] && return 0
		sleep 0.02
	done
	return 1
}

# Run waiterd in the foreground expecting it to refuse to start.
refused_start() {
	run timeout 20 "$WAITERD" -S "$TESTDIR/r.sock" --state-dir "$STATE" "$@"
	assert_failure
}

@test "timers of lifetime daemon come back after SIGKILL, with ids, names and schedules" {
	start_daemon --state-dir "$STATE"
	a=$("$WAITER" after 1h --name a)
	b=$("$WAITER" every 1h --name b)
	c=$("$WAITER" at "$(date -d '+2 hours' -Iseconds)" --name c)
	before=$("$WAITER" --json timers | jq -c '[.id, .name, .timer.next_us, .timer.every_us, .timer.wall_clock]')
	crash
	start_daemon --state-dir "$STATE"
	after=$("$WAITER" --json timers | jq -c '[.id, .name, .timer.next_us, .timer.every_us, .timer.wall_clock]')
	[ "$after" = "$before" ]
	[ "$(echo "$after" | wc -l)" -eq 3 ]
	run "$WAITER" --json show a
	assert_success
	[ "$(echo "$output" | jq -r .id)" = "$a" ]
	[ "$(echo "$output" | jq -r .lifetime)" = daemon ]
	# A retry by name finds the restored timer, not a new one.
	run "$WAITER" every 1h --name b
	assert_success
	assert_output "$b"
	[ -n "$c" ]
}

@test "ids and seqs continue past a crash, and a clean stop continues densely" {
	start_daemon --state-dir "$STATE"
	"$WAITER" after 1ms --wait >/dev/null
	id1=$("$WAITER" after 1h)
	seq1=$(stat_value last_seq)
	[ "$seq1" -ge 1 ]
	crash
	start_daemon --state-dir "$STATE"
	id2=$("$WAITER" after 1ms --wait)
	[ "$id2" -gt "$id1" ]
	seq2=$("$WAITER" --json events --since 0 --id "$id2" | jq -r 'select(.kind == "timer_fired") | .seq')
	[ "$seq2" -gt "$seq1" ]
	# SIGTERM: the next start takes up right after the last id and seq.
	id3=$("$WAITER" after 1h)
	seq3=$(stat_value last_seq)
	stop_daemon
	start_daemon --state-dir "$STATE"
	id4=$("$WAITER" after 1h)
	[ "$id4" -eq $((id3 + 1)) ]
	id5=$("$WAITER" after 1ms --wait)
	seq5=$("$WAITER" --json events --since 0 --id "$id5" | jq -r 'select(.kind == "timer_fired") | .seq')
	[ "$seq5" -gt "$seq3" ]
	[ "$seq5" -le $((seq3 + 3)) ]
}

@test "a stop does not cancel kept timers: waiters are told, the timers resume" {
	start_daemon --state-dir "$STATE"
	id=$("$WAITER" after 1h --name kept)
	"$WAITER" events --follow --id "$id" >"$TESTDIR/events" 2>&1 &
	follower=$!
	wait_stat subscribers 1
	stop_daemon
	wait_gone "$follower" || kill "$follower"
	run grep -c cancelled "$TESTDIR/events"
	assert_output 0
	start_daemon --state-dir "$STATE"
	run "$WAITER" --json show kept
	assert_success
	[ "$(echo "$output" | jq -r .state)" = active ]
}

@test "a timer due while the daemon was down fires at the next start" {
	start_daemon --state-dir "$STATE"
	# Stop the loop right after the create (3 s of margin on a loaded
	# machine), let the deadline pass, then crash: it cannot have fired.
	out=$("$WAITER" --json after 3s --name due)
	kill -STOP "$DAEMON_PID"
	id=$(echo "$out" | jq -r .object.id)
	next=$(echo "$out" | jq -r .object.timer.next_us)
	wait_past "$next"
	crash
	start_daemon --state-dir "$STATE"
	run "$WAITER" --json wait "$id"
	assert_success
	[ "$(echo "$output" | jq -r .object.state)" = completed ]
	[ "$(echo "$output" | jq -r .last_event.timer_fired.scheduled_us)" = "$next" ]
}

@test "an every timer counts the periods missed while down in one event" {
	start_daemon --state-dir "$STATE"
	id=$("$WAITER" every 100ms --name tick)
	crash
	start=$(date +%s%6N)
	wait_past $((start + 1000000))
	start_daemon --state-dir "$STATE"
	# It fires at once; wait for that, then read the event back.
	for _ in $(seq 1 1000); do
		[ "$("$WAITER" --json show tick | jq -r .timer.fire_count)" -ge 1 ] && break
		sleep 0.02
	done
	first=$("$WAITER" --json events --since 0 --id "$id" --kind timer_fired |
	    jq -c 'select(.kind == "timer_fired")' | head -n1)
	missed=$(echo "$first" | jq -r .timer_fired.missed)
	[ "$missed" -ge 5 ]
	# The count goes on from where it was, plus what was missed.
	[ "$(echo "$first" | jq -r .timer_fired.fire_count)" -ge 1 ]
}

@test "cancelled and finished timers come back ended after a crash, never to fire, until forgotten" {
	start_daemon --state-dir "$STATE"
	gone=$("$WAITER" after 1h --name gone)
	"$WAITER" cancel "$gone"
	done_id=$("$WAITER" after 1ms --name done)
	"$WAITER" wait "$done_id"
	# A create is answered once everything handed over before it is
	# durable, the finished timer's record included.
	"$WAITER" after 1h --name barrier >/dev/null
	crash
	start_daemon --state-dir "$STATE"
	run "$WAITER" timers
	assert_success
	refute_output --partial gone
	refute_output --partial done
	run "$WAITER" show "$gone"
	assert_success
	assert_line state=cancelled
	run "$WAITER" show "$done_id"
	assert_success
	assert_line state=completed
	assert_line fire_count=1
	# A wait on an ended object answers at once, as before the crash.
	run "$WAITER" wait "$done_id"
	assert_success
	# Forgetting (here: keep none) removes them from the file too.
	crash
	start_daemon --state-dir "$STATE" --keep-finished 0
	run "$WAITER" show "$gone"
	assert_failure
	crash
	start_daemon --state-dir "$STATE"
	run "$WAITER" show "$done_id"
	assert_failure
	assert_output --partial "no object"
}

@test "--no-state keeps nothing, even with --state-dir" {
	start_daemon --state-dir "$STATE" --no-state
	"$WAITER" after 1h --name x >/dev/null
	crash
	[ ! -e "$STATE" ]
	start_daemon --state-dir "$STATE"
	run "$WAITER" timers
	refute_output --partial x
}

@test "a corrupt state file is refused with a sentence and left as it was" {
	mkdir -m 700 "$STATE"
	head -c 8192 /dev/urandom >"$STATE/state.db"
	cp "$STATE/state.db" "$TESTDIR/copy"
	refused_start
	assert_output --partial "state.db is not a database waiter can read"
	assert_output --partial "left as it is"
	cmp "$STATE/state.db" "$TESTDIR/copy"
}

@test "a state file of a newer format is refused and left as it was" {
	start_daemon --state-dir "$STATE"
	"$WAITER" after 1h >/dev/null
	stop_daemon
	/usr/bin/python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA user_version = 7"); c.commit(); c.close()' "$STATE/state.db"
	cp "$STATE/state.db" "$TESTDIR/copy"
	refused_start
	assert_output --partial "has format 7, newer than this waiterd reads (1)"
	cmp "$STATE/state.db" "$TESTDIR/copy"
}

@test "a second daemon on the same state directory is refused" {
	start_daemon --state-dir "$STATE"
	refused_start
	assert_output --partial "is in use by another waiterd"
	run "$WAITER" ping
	assert_success
}

@test "a full disk refuses the new timer with a sentence; nothing acknowledged is lost" {
	mkdir -m 700 "$STATE"
	mount -t tmpfs -o size=512k,mode=0700 waiter-test "$STATE"
	MOUNTED=$STATE
	start_daemon --state-dir "$STATE"
	a=$("$WAITER" after 1h --name a)
	b=$("$WAITER" every 1h --name b)
	# Fill the disk; the next commit cannot grow the write-ahead log.
	dd if=/dev/zero of="$STATE/fill" bs=4k 2>/dev/null || true
	run "$WAITER" after 1h --name c
	assert_failure
	assert_output --partial "could not be written"
	wait_for_line "$DAEMON_LOG" 'msg=store_commit_failed'
	# The daemon still serves; the refused timer is not there.
	run "$WAITER" timers
	assert_success
	refute_output --partial " c "
	rm -f "$STATE/fill"
	d=$("$WAITER" after 1h --name d)
	crash
	start_daemon --state-dir "$STATE"
	run "$WAITER" --json timers
	assert_success
	[ "$(echo "$output" | jq -r .name | sort | tr '\n' ' ')" = "a b d " ]
	[ -n "$a$b$d" ]
}

@test "wait rides out a crash and a restart of a daemon that keeps state" {
	start_daemon --state-dir "$STATE"
	id=$("$WAITER" after 2s)
	timeout 60 "$WAITER" wait "$id" >"$TESTDIR/out" 2>"$TESTDIR/err" &
	waiter_pid=$!
	wait_stat waits 1
	crash
	start_daemon --state-dir "$STATE"
	rc=0
	wait "$waiter_pid" || rc=$?
	[ "$rc" -eq 0 ]
	grep -q "reconnecting to wait for $id" "$TESTDIR/err"
}

@test "wait on a daemon restarted without state says the object is gone" {
	start_daemon
	id=$("$WAITER" after 1h)
	timeout 60 "$WAITER" wait "$id" >"$TESTDIR/out" 2>"$TESTDIR/err" &
	waiter_pid=$!
	wait_stat waits 1
	crash
	start_daemon
	rc=0
	wait "$waiter_pid" || rc=$?
	[ "$rc" -eq 1 ]
	grep -q "restarted without its state (no --state-dir): $id is gone" "$TESTDIR/err"
}

@test "wait gives up after WAITER_RECONNECT_TIMEOUT when no daemon comes back" {
	start_daemon --state-dir "$STATE"
	id=$("$WAITER" after 1h)
	WAITER_RECONNECT_TIMEOUT=300ms timeout 60 "$WAITER" wait "$id" \
		>"$TESTDIR/out" 2>"$TESTDIR/err" &
	waiter_pid=$!
	wait_stat waits 1
	crash
	rc=0
	wait "$waiter_pid" || rc=$?
	[ "$rc" -eq 69 ]
	grep -q "no daemon came back to answer for $id" "$TESTDIR/err"
}

# Wait until process $1 is gone or a zombie (an orphan's reaper may be
# slow, or none), at most 20 s.
wait_dead() {
	for _ in $(seq 1 $((1000 * WAITER_TEST_SLOW))); do
		[ -e "/proc/$1/stat" ] || return 0
		[ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" = Z ] && return 0
		sleep 0.02
	done
	echo "process $1 still runs" >&2
	return 1
}

@test "tasks after SIGKILL: queued ones run, results stay readable, running ones are lost with no process left" {
	start_daemon --state-dir "$STATE"
	"$WAITER" queue set one --parallel 1 >/dev/null
	mkdir "$TESTDIR/work"
	printf 'from stdin\n' >"$TESTDIR/in"
	# A: running, with a child in its process group.
	a=$("$WAITER" submit --queue one --name a -- sh -c \
	    "sleep 1000 & echo \$! >'$TESTDIR/child'; wait")
	wait_task_running "$a"
	wait_for_line "$TESTDIR/child" '[0-9]'
	a_pid=$("$WAITER" --json show "$a" | jq -r .task.pid)
	child=$(cat "$TESTDIR/child")
	# B: queued behind A, with stdin, environment and working directory.
	b=$("$WAITER" submit --queue one --name b --stdin "$TESTDIR/in" --env FOO=bar \
	    --cwd "$TESTDIR/work" -- sh -c 'cat; echo "$FOO"; pwd')
	# C: finished, its output kept. D: waits for A.
	c=$("$WAITER" submit -- sh -c 'echo out; echo err >&2; exit 3')
	run "$WAITER" wait "$c"
	[ "$status" -eq 3 ]
	d=$("$WAITER" submit --after "$a" -- echo never)
	[ "$("$WAITER" --json show "$d" | jq -r .task.state)" = waiting ]
	crash
	start_daemon --state-dir "$STATE"
	# A is lost, and nothing of it runs on.
	run "$WAITER" wait "$a"
	[ "$status" -eq 1 ]
	assert_output --partial "task $a was lost: the daemon stopped while it ran (pid $a_pid)"
	assert_output --partial "were killed"
	wait_dead "$a_pid"
	wait_dead "$child"
	# B runs now, as it was submitted.
	run "$WAITER" wait "$b"
	assert_success
	run "$WAITER" logs "$b"
	assert_output "from stdin
bar
$TESTDIR/work"
	# C's result and output are as they were.
	run "$WAITER" --json show "$c"
	[ "$(echo "$output" | jq -r .task.state)" = failed ]
	[ "$(echo "$output" | jq -r .task.exit_code)" = 3 ]
	[ "$("$WAITER" logs "$c" 2>/dev/null)" = out ]
	[ "$("$WAITER" logs "$c" --stderr)" = err ]
	# D never runs: what it waited for was lost.
	[ "$("$WAITER" --json show "$d" | jq -r .task.state)" = dependency_failed ]
	# The queue keeps its parallelism; names and ids go on.
	run "$WAITER" --json queues
	[ "$(echo "$output" | jq -r 'select(.name == "one") | .parallel')" = 1 ]
	[ "$("$WAITER" submit --name a -- true)" = "$a" ]
	e=$("$WAITER" submit -- true)
	[ "$e" -gt "$d" ]
	# The lost task's event is in the log of events, for followers.
	"$WAITER" --json events --since 0 --id "$a" --kind task_done |
	    jq -r 'select(.kind == "task_done") | .task_done.task.state' | grep -qx lost
}

@test "a lost task whose processes had already exited is lost, and nothing is killed" {
	start_daemon --state-dir "$STATE"
	a=$("$WAITER" submit -- sh -c "echo \$\$ >'$TESTDIR/pid'; exec sleep 1000")
	wait_task_running "$a"
	wait_for_line "$TESTDIR/pid" '[0-9]'
	kill -STOP "$DAEMON_PID"
	kill -KILL "$(cat "$TESTDIR/pid")"
	wait_dead "$(cat "$TESTDIR/pid")"
	kill -KILL "$DAEMON_PID"
	wait_gone "$DAEMON_PID"
	start_daemon --state-dir "$STATE"
	run "$WAITER" wait "$a"
	[ "$status" -eq 1 ]
	assert_output --partial "had ended before the restart; its exit status is unknown"
	grep -q "msg=task_lost task=$a .*killed=no" "$DAEMON_LOG"
}

@test "a task waiting on two: the one that succeeded before the crash still counts after it is forgotten" {
	start_daemon --state-dir "$STATE"
	"$WAITER" queue set hold --parallel 1 >/dev/null
	h=$("$WAITER" submit --queue hold -- sleep 1000)
	wait_task_running "$h"
	x=$("$WAITER" submit --queue hold -- true)
	a=$("$WAITER" submit -- true)
	"$WAITER" wait "$a"
	b=$("$WAITER" submit --after "$a" --after "$x" -- echo ran)
	[ "$("$WAITER" --json show "$b" | jq -r .task.state)" = waiting ]
	"$WAITER" after 1h >/dev/null       # everything before it is durable
	crash
	# Keep one finished object: A, which ended first, is forgotten.
	start_daemon --state-dir "$STATE" --keep-finished 1
	run "$WAITER" show "$a"
	assert_failure
	run "$WAITER" wait "$b"
	assert_success
	[ "$("$WAITER" logs "$b")" = ran ]
}

@test "a clean stop ends running tasks as cancelled and keeps queued ones for the next start" {
	start_daemon --state-dir "$STATE"
	"$WAITER" queue set one --parallel 1 >/dev/null
	a=$("$WAITER" submit --queue one -- sleep 1000)
	wait_task_running "$a"
	b=$("$WAITER" submit --queue one -- echo later)
	"$WAITER" shutdown
	wait_gone "$DAEMON_PID"
	start_daemon --state-dir "$STATE"
	[ "$("$WAITER" --json show "$a" | jq -r .task.state)" = cancelled ]
	run "$WAITER" wait "$b"
	assert_success
	[ "$("$WAITER" logs "$b")" = later ]
}

@test "ended tasks' output comes back after a crash; --max-kept-output lets the oldest go by end time, for good" {
	start_daemon --state-dir "$STATE"
	"$WAITER" queue set one --parallel 2 >/dev/null
	# b ends before a, though submitted after it.
	a=$("$WAITER" submit --queue one -- sh -c "head -c 30000 /dev/zero; until [ -e '$TESTDIR/go' ]; do sleep 0.01; done")
	b=$("$WAITER" submit --queue one -- head -c 30000 /dev/zero)
	"$WAITER" wait "$b"
	touch "$TESTDIR/go"
	"$WAITER" wait "$a"
	crash
	start_daemon --state-dir "$STATE"
	[ "$("$WAITER" logs "$a" | wc -c)" = 30000 ]
	[ "$("$WAITER" logs "$b" | wc -c)" = 30000 ]
	[ "$(stat_value task_output_kept_bytes)" = 60000 ]
	stop_daemon
	start_daemon --state-dir "$STATE" --max-kept-output 40000
	# b ended first: its output goes, a's stays.
	[ "$(stat_value task_outputs_released)" = 1 ]
	[ "$(stat_value task_output_kept_bytes)" = 30000 ]
	[ "$("$WAITER" logs "$a" | wc -c)" = 30000 ]
	run --separate-stderr "$WAITER" logs "$b"
	[ -z "$output" ]
	[[ "$stderr" == *"the output was let go after the task ended (it wrote 30000 bytes)"* ]]
	# The release was written down: a larger limit does not bring the
	# output back, even after a crash.
	"$WAITER" after 1h >/dev/null       # everything before it is durable
	crash
	start_daemon --state-dir "$STATE" --max-kept-output 1000000
	[ "$("$WAITER" --json show "$b" | jq -r .task.output_released)" = true ]
	[ "$("$WAITER" --json show "$b" | jq -r .task.stdout_dropped)" = 30000 ]
	[ "$("$WAITER" logs "$b" 2>/dev/null | wc -c)" = 0 ]
	[ "$("$WAITER" logs "$a" | wc -c)" = 30000 ]
	[ "$(stat_value task_output_kept_bytes)" = 30000 ]
}

@test "a full disk refuses a task, which never runs; the daemon goes on" {
	mkdir -m 700 "$STATE"
	mount -t tmpfs -o size=512k,mode=0700 waiter-test "$STATE"
	MOUNTED=$STATE
	start_daemon --state-dir "$STATE"
	dd if=/dev/zero of="$STATE/fill" bs=4k 2>/dev/null || true
	run "$WAITER" submit -- touch "$TESTDIR/ran"
	assert_failure
	assert_output --partial "could not be written"
	[ ! -e "$TESTDIR/ran" ]
	rm -f "$STATE/fill"
	id=$("$WAITER" submit -- touch "$TESTDIR/ok")
	"$WAITER" wait "$id"
	[ -e "$TESTDIR/ok" ]
	[ ! -e "$TESTDIR/ran" ]
}

@test "SIGKILL three times in a busy workload of tasks, timers and watches: every acknowledged object is back, every task ends, no process is left" {
	start_daemon --state-dir "$STATE"
	"$WAITER" queue set busy --parallel 3 >/dev/null
	mkdir "$TESTDIR/pids"
	: >"$TESTDIR/tasks"
	: >"$TESTDIR/timers"
	: >"$TESTDIR/watches"
	for round in 1 2 3; do
		# A client submitting tasks and timers, appending each id once
		# it is acknowledged; it stops at the first refusal (the crash).
		(
			for i in $(seq 1 60); do
				id=$("$WAITER" submit --queue busy -- sh -c \
				    "echo \$\$ >'$TESTDIR/pids/'\$\$; sleep 0.$((i % 4))") || exit 0
				echo "$id" >>"$TESTDIR/tasks"
				id=$("$WAITER" after "$((i % 3))s") || exit 0
				echo "$id" >>"$TESTDIR/timers"
				mkdir -p "$TESTDIR/watched/$round.$i"
				id=$("$WAITER" watch path "$TESTDIR/watched/$round.$i") || exit 0
				echo "$id" >>"$TESTDIR/watches"
			done
		) &
		load=$!
		for _ in $(seq 1 $((1000 * WAITER_TEST_SLOW))); do
			[ "$(wc -l <"$TESTDIR/tasks")" -ge $((round * 12)) ] && break
			sleep 0.02
		done
		crash
		wait "$load" || true
		start_daemon --state-dir "$STATE"
		while read -r id; do
			run "$WAITER" --json show "$id"
			[ "$status" -eq 0 ] || { echo "task $id was acknowledged, then lost: $output"; false; }
		done <"$TESTDIR/tasks"
		while read -r id; do
			run "$WAITER" --json show "$id"
			[ "$status" -eq 0 ] || { echo "timer $id was acknowledged, then lost: $output"; false; }
		done <"$TESTDIR/timers"
		while read -r id; do
			run "$WAITER" --json show "$id"
			[ "$status" -eq 0 ] || { echo "watch $id was acknowledged, then lost: $output"; false; }
			[ "$(echo "$output" | jq -r .state)" = active ]
		done <"$TESTDIR/watches"
	done
	# Every task ends: it ran, or it was running at a crash and is lost.
	while read -r id; do
		"$WAITER" wait "$id" 2>/dev/null || true
		state=$("$WAITER" --json show "$id" | jq -r .task.state)
		case $state in succeeded|lost) ;; *) echo "task $id: $state"; false ;; esac
	done <"$TESTDIR/tasks"
	for f in "$TESTDIR"/pids/*; do
		wait_dead "$(basename "$f")"
	done
	# Ids never repeat across the crashes.
	[ "$(sort "$TESTDIR/tasks" "$TESTDIR/timers" "$TESTDIR/watches" | uniq -d | wc -l)" -eq 0 ]
}

@test "a task started but not yet written down as started when the daemon dies is found by WAITER_TASK, killed and lost" {
	mkdir -m 700 "$STATE"
	mount -t tmpfs -o size=512k,mode=0700 waiter-test "$STATE"
	MOUNTED=$STATE
	start_daemon --state-dir "$STATE"
	"$WAITER" queue set one --parallel 1 >/dev/null
	h=$("$WAITER" submit --queue one -- sh -c "echo \$\$ >'$TESTDIR/h'; exec sleep 1000")
	wait_task_running "$h"
	wait_for_line "$TESTDIR/h" '[0-9]'
	x=$("$WAITER" submit --queue one -- sh -c \
	    "echo \"\$WAITER_TASK\" >'$TESTDIR/mark'; echo \$\$ >'$TESTDIR/x'; exec sleep 1000")
	# The disk fills: X's start cannot be written down.
	dd if=/dev/zero of="$STATE/fill" bs=4k 2>/dev/null || true
	kill "$(cat "$TESTDIR/h")"
	wait_task_running "$x"
	wait_for_line "$TESTDIR/x" '[0-9]'
	x_pid=$(cat "$TESTDIR/x")
	[ "$(cut -d/ -f2 "$TESTDIR/mark")" = "$x" ]
	crash
	rm -f "$STATE/fill"
	start_daemon --state-dir "$STATE"
	wait_dead "$x_pid"
	run "$WAITER" wait "$x"
	[ "$status" -eq 1 ]
	assert_output --partial "before it wrote that down (pid $x_pid)"
	grep -q "msg=task_orphan task=$x pid=$x_pid" "$DAEMON_LOG"
}

@test "a durable timer's create is answered before it fires, however short" {
	start_daemon --state-dir "$STATE"
	cat >"$TESTDIR/order.py" <<'PY'
# Create N durable 1 µs timers, one at a time, and count the events that
# come before the reply that gives their id.
import socket, struct, sys
from waiter import waiter_pb2 as pb
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
buf, early = b"", 0
def call(req):
    global buf, early
    b = req.SerializeToString()
    s.sendall(struct.pack(">I", len(b)) + b)
    while True:
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
            buf += s.recv(65536)
        k = struct.unpack(">I", buf[:4])[0]
        m = pb.ServerMessage()
        m.ParseFromString(buf[4:4 + k])
        buf = buf[4 + k:]
        if m.HasField("reply") and m.reply.id == req.id:
            return m.reply
        if m.HasField("event") and m.event.object_id not in known:
            early += 1
known = {0}
call(pb.Request(id=1, hello=pb.Hello(protocol_version=1, client_name="order")))
for i in range(int(sys.argv[2])):
    r = call(pb.Request(id=i + 2, timer_create=pb.TimerCreate(after_us=1,
                        lifetime=pb.LIFETIME_DAEMON)))
    known.add(r.timer_create.object.id)
print("early=%d" % early)
PY
	run env PYTHONPATH="$WAITER_BUILDDIR/python" "$PYTHON" "$TESTDIR/order.py" \
		"$WAITER_SOCKET" 200
	assert_success
	assert_output early=0
}
