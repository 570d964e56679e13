#!/usr/bin/env bats
# Tasks: exit statuses, output, queues, dependencies, timeouts, kill.

bats_require_minimum_version 1.5.0
load helpers

setup() { daemon_setup; }
teardown() { daemon_teardown; }

@test "run streams output and exits with the task's status" {
	run "$WAITER" run -- sh -c 'echo out; exit 3'
	assert_failure 3
	assert_output out
	run "$WAITER" run -- true
	assert_success
	assert_output ""
}

@test "a signal ends run with 128+N" {
	run "$WAITER" run --shell 'kill -KILL $$'
	assert_failure 137
}

@test "stdout and stderr stay separate and binary-safe" {
	run bash -c '"$0" run -- sh -c "printf \"a\\000b\"; printf e >&2" 2>"$1/err" | od -An -c' \
		"$WAITER" "$TESTDIR"
	assert_success
	assert_output --regexp 'a +\\0 +b'
	[ "$(cat "$TESTDIR/err")" = e ]
	id=$("$WAITER" submit -- sh -c 'printf "x\000y"; printf zz >&2')
	"$WAITER" wait "$id"
	[ "$("$WAITER" logs "$id" | od -An -c | tr -s ' ')" = " x \\0 y" ]
	[ "$("$WAITER" logs "$id" --stderr)" = zz ]
}

@test "submit prints the id; wait from another process gets the status later" {
	id=$("$WAITER" submit -- sh -c 'exit 7')
	[[ "$id" =~ ^[0-9]+$ ]]
	run "$WAITER" wait "$id"
	assert_failure 7
	run "$WAITER" wait "$id"
	assert_failure 7
	run "$WAITER" --json show "$id"
	[ "$(echo "$output" | jq -r .task.state)" = failed ]
	[ "$(echo "$output" | jq -r .task.exit_code)" = 7 ]
}

@test "the task runs in the caller's directory with its environment" {
	cd "$TESTDIR"
	run env WAITER_TEST_VAR=hello "$WAITER" run --env EXTRA=1 -- sh -c 'pwd; echo "$WAITER_TEST_VAR$EXTRA"'
	assert_success
	assert_line --index 0 "$TESTDIR"
	assert_line --index 1 hello1
	run env WAITER_TEST_VAR=hello "$WAITER" run --no-env --env A=b -- /usr/bin/env
	assert_output "A=b"
}

@test "output over the limit keeps the tail" {
	id=$("$WAITER" submit --output-limit 1000 -- sh -c 'seq 1 10000')
	"$WAITER" wait "$id"
	run "$WAITER" logs "$id"
	assert_output --partial "were dropped"
	[ "$("$WAITER" logs "$id" 2>/dev/null | tail -n1)" = 10000 ]
	[ "$("$WAITER" logs "$id" 2>/dev/null | wc -c)" -eq 1000 ]
	[ "$("$WAITER" --json show "$id" | jq -r .task.stdout_bytes)" = "$(seq 1 10000 | wc -c)" ]
}

@test "a task's output limit is at most 256 MiB" {
	run "$WAITER" run --output-limit 268435456 -- echo kept
	assert_success
	assert_output kept
	run "$WAITER" submit --output-limit 268435457 -- true
	assert_failure 2
	assert_output --partial "output limit is larger than 256 MiB"
	[ "$(stat_value tasks)" = 0 ]
}

@test "--max-kept-output: the oldest ended tasks' output is let go, the newest keeps its own" {
	stop_daemon
	start_daemon --max-kept-output 100000
	[ "$(stat_value task_output_kept_limit)" = 100000 ]
	a=$("$WAITER" submit -- sh -c 'head -c 40000 /dev/zero; head -c 10000 /dev/zero >&2')
	"$WAITER" wait "$a"
	b=$("$WAITER" submit -- head -c 40000 /dev/zero)
	"$WAITER" wait "$b"
	# 90,000 bytes fit: both kept.
	[ "$(stat_value task_output_kept_bytes)" = 90000 ]
	[ "$("$WAITER" logs "$a" | wc -c)" = 40000 ]
	c=$("$WAITER" submit -- head -c 40000 /dev/zero)
	"$WAITER" wait "$c"
	# 130,000 do not: the oldest, a, lets its 50,000 go.
	[ "$(stat_value task_output_kept_bytes)" = 80000 ]
	[ "$(stat_value task_outputs_released)" = 1 ]
	run --separate-stderr "$WAITER" logs "$a"
	assert_success
	[ -z "$output" ]
	[[ "$stderr" == *"the output was let go after the task ended (it wrote 40000 bytes): the daemon holds the output of the most recently ended tasks, up to waiterd --max-kept-output in all"* ]]
	run "$WAITER" --json show "$a"
	[ "$(echo "$output" | jq -r .task.output_released)" = true ]
	[ "$(echo "$output" | jq -r .task.stdout_dropped)" = 40000 ]
	[ "$(echo "$output" | jq -r .task.stderr_dropped)" = 10000 ]
	[ "$(echo "$output" | jq -r .task.stdout_bytes)" = 40000 ]
	[ "$("$WAITER" logs "$b" | wc -c)" = 40000 ]
	[ "$("$WAITER" --json show "$b" | jq -r '.task.output_released // false')" = false ]
	# A task whose own output is over the limit keeps it while it is the
	# newest, and the rest let theirs go.
	d=$("$WAITER" submit -- head -c 150000 /dev/zero)
	"$WAITER" wait "$d"
	[ "$("$WAITER" logs "$d" | wc -c)" = 150000 ]
	[ "$(stat_value task_output_kept_bytes)" = 150000 ]
	[ "$(stat_value task_outputs_released)" = 3 ]
	# A task forgotten (--keep-finished) gives its share back, released
	# or not.
	stop_daemon
	start_daemon --keep-finished 1
	a=$("$WAITER" submit -- head -c 30000 /dev/zero)
	"$WAITER" wait "$a"
	[ "$(stat_value task_output_kept_bytes)" = 30000 ]
	b=$("$WAITER" submit -- head -c 20000 /dev/zero)
	"$WAITER" wait "$b"
	[ "$(stat_value task_output_kept_bytes)" = 20000 ]
	[ "$(stat_value task_outputs_released)" = 0 ]
	# Bad values are usage errors.
	run "$WAITERD" -S "$TESTDIR/x.sock" --max-kept-output -1
	assert_failure 2
	assert_output --partial "--max-kept-output"
}

@test "a missing program fails as 127 with a reason" {
	run -127 "$WAITER" run -- /nonexistent/prog
	assert_failure 127
	assert_output --partial "cannot run /nonexistent/prog: No such file or directory"
	run -126 "$WAITER" run -- "$TESTDIR"
	assert_failure 126
}

@test "a relative program path is the task's cwd's; a bad one fails with a reason" {
	mkdir "$TESTDIR/bin"
	printf '#!/bin/sh\necho "ran in $PWD"\n' >"$TESTDIR/bin/prog"
	chmod +x "$TESTDIR/bin/prog"
	# The daemon's own cwd is / (--daemonize): the path is the task's.
	run "$WAITER" run --cwd "$TESTDIR" -- bin/prog
	assert_success
	assert_output "ran in $TESTDIR"
	cd "$TESTDIR/bin"
	run "$WAITER" run -- ./prog
	assert_success
	assert_output "ran in $TESTDIR/bin"
	run -127 "$WAITER" run --cwd "$TESTDIR" -- bin/nothing
	assert_failure 127
	assert_output --partial "cannot run bin/nothing: No such file or directory"
	chmod -x "$TESTDIR/bin/prog"
	run -126 "$WAITER" run -- ./prog
	assert_failure 126
	assert_output --partial "cannot run ./prog: Permission denied"
	run -126 "$WAITER" run --cwd "$TESTDIR" -- ./bin
	assert_failure 126
	assert_output --partial "cannot run ./bin: Permission denied"
}

@test "a timeout kills the whole process group" {
	run "$WAITER" run --timeout 500ms --shell "sleep 1000 & echo \$! >$TESTDIR/child; wait"
	assert_failure 143
	child=$(cat "$TESTDIR/child")
	wait_gone "$child" 10
	id=$("$WAITER" --json tasks --state timed_out | jq -r .id)
	[ -n "$id" ]
}

@test "FIFO at parallelism 1, and never more than N running" {
	"$WAITER" queue set one --parallel 1
	ids=""
	for i in 1 2 3 4 5; do
		ids="$ids $("$WAITER" submit --queue one --shell "echo $i >>$TESTDIR/order; ls $TESTDIR/running.* 2>/dev/null | wc -l >>$TESTDIR/overlap; touch $TESTDIR/running.$i; sleep 0.05; rm $TESTDIR/running.$i")"
	done
	"$WAITER" wait $ids
	[ "$(tr '\n' ' ' <"$TESTDIR/order")" = "1 2 3 4 5 " ]
	[ "$(sort -u "$TESTDIR/overlap")" = 0 ]
	run "$WAITER" queues
	assert_line --regexp '^one +1 +0 +0$'
}

@test "after chains run in order; a failure ends the rest as dependency_failed" {
	a=$("$WAITER" submit -- sh -c "echo a >>$TESTDIR/chain")
	b=$("$WAITER" submit --after "$a" -- sh -c "echo b >>$TESTDIR/chain")
	c=$("$WAITER" submit --after "$b" -- sh -c "echo c >>$TESTDIR/chain")
	run "$WAITER" wait "$c"
	assert_success
	[ "$(tr '\n' ' ' <"$TESTDIR/chain")" = "a b c " ]
	f=$("$WAITER" submit -- false)
	g=$("$WAITER" submit --after "$f" -- touch "$TESTDIR/never")
	run "$WAITER" wait "$g"
	assert_failure 1
	assert_output --partial "did not run"
	[ "$("$WAITER" --json show "$g" | jq -r .task.state)" = dependency_failed ]
	[ ! -e "$TESTDIR/never" ]
	run "$WAITER" submit --after 999999 -- true
	assert_failure 1
	assert_output --partial "no task with id 999999"
}

@test "names are idempotency keys for tasks, and stand for ids" {
	a=$("$WAITER" submit --name build-42 -- sh -c 'echo built')
	b=$("$WAITER" submit --name build-42 -- false)
	[ "$a" = "$b" ]
	run "$WAITER" wait build-42
	assert_success
	run "$WAITER" logs build-42
	assert_output built
	c=$("$WAITER" submit --after build-42 -- true)
	run "$WAITER" wait "$c"
	assert_success
	run "$WAITER" show no-such-name
	assert_failure 1
	assert_output --partial "no object named no-such-name"
}

@test "kill and cancel: running and queued tasks end cancelled" {
	"$WAITER" queue set k --parallel 1
	r=$("$WAITER" submit --queue k -- sleep 1000)
	q=$("$WAITER" submit --queue k -- touch "$TESTDIR/never")
	wait_task_running "$r"
	pid=$("$WAITER" --json show "$r" | jq -r .task.pid)
	run "$WAITER" cancel "$q"
	assert_success
	run "$WAITER" kill "$r"
	assert_success
	run "$WAITER" wait "$r"
	assert_failure 143
	wait_gone "$pid" 10
	[ "$("$WAITER" --json show "$r" | jq -r .task.state)" = cancelled ]
	[ "$("$WAITER" --json show "$q" | jq -r .task.state)" = cancelled ]
	[ ! -e "$TESTDIR/never" ]
}

@test "--no-tasks refuses submissions" {
	stop_daemon
	start_daemon --no-tasks
	run "$WAITER" submit -- true
	assert_failure 1
	assert_output --partial "runs no tasks"
}

@test "--max-queued-tasks is a limit" {
	stop_daemon
	start_daemon --max-queued-tasks 2
	"$WAITER" queue set slow --parallel 1
	"$WAITER" submit --queue slow -- sleep 1000 >/dev/null
	"$WAITER" submit --queue slow -- true >/dev/null
	"$WAITER" submit --queue slow -- true >/dev/null
	run "$WAITER" submit --queue slow -- true
	assert_failure 1
	assert_output --partial "the limit (--max-queued-tasks)"
}

@test "daemon SIGTERM with running tasks leaves no process behind" {
	id=$("$WAITER" submit --shell "sleep 1000 & echo \$! >$TESTDIR/child; sleep 1000")
	wait_task_running "$id"
	pid=$("$WAITER" --json show "$id" | jq -r .task.pid)
	wait_for_line "$TESTDIR/child" '^[0-9]+$'
	stop_daemon
	wait_gone "$pid" 10
	wait_gone "$(cat "$TESTDIR/child")" 10
}

@test "while a task writes 200 MB, ping still answers" {
	id=$("$WAITER" submit -- sh -c 'head -c 200000000 /dev/zero')
	run "$WAITER" ping
	assert_output pong
	run "$WAITER" wait "$id"
	assert_success
	[ "$("$WAITER" --json show "$id" | jq -r .task.stdout_bytes)" = 200000000 ]
	# The daemon kept a bounded tail and a bounded ring, not 200 MB.
	[ "$("$WAITER" --json show "$id" | jq -r .task.stdout_dropped)" = $((200000000 - 1048576)) ]
	[ "$(stat_value retained_bytes)" -le "$(stat_value retain_bytes_limit)" ]
}

@test "the retention ring is bounded in bytes; replay reports what it dropped" {
	stop_daemon
	start_daemon --retain-bytes 65536
	run "$WAITER" run -- head -c 1000000 /dev/zero
	assert_success
	[ "$(stat_value retained_bytes)" -le 65536 ]
	run "$WAITER" --json events --since 0
	assert_line --index 0 --regexp 'events 1 to [0-9]+ were lost'
	[ "$(echo "$output" | grep '^{' | tail -n1 | jq -r .kind)" = task_done ]
}

@test "a dependency forgotten by --keep-finished still counts as succeeded" {
	stop_daemon
	start_daemon --keep-finished 0
	a=$("$WAITER" submit --shell "until [ -e $TESTDIR/go ]; do sleep 0.02; done")
	"$WAITER" submit --after "$a" -- sh -c "echo ran >$TESTDIR/ran.tmp; mv $TESTDIR/ran.tmp $TESTDIR/ran"
	touch "$TESTDIR/go"
	# a is forgotten the moment it ends (and b too): only its file tells.
	wait_for_line "$TESTDIR/ran" '^ran$'
}

@test "a timed-out task that exits 0 on TERM still fails, and its group is killed" {
	run "$WAITER" run --timeout 500ms --shell "trap 'exit 0' TERM; sleep 1000 & echo \$! >$TESTDIR/child; wait"
	assert_failure 124
	assert_output --partial "timed out"
	wait_gone "$(cat "$TESTDIR/child")" 10
}

@test "daemon shutdown lets running tasks end and tells their followers" {
	stop_daemon
	start_daemon --kill-grace 5s
	id=$("$WAITER" submit --shell "trap 'echo bye; exit 0' TERM; sleep 1000 & wait")
	wait_task_running "$id"
	"$WAITER" --json events --follow --id "$id" >"$TESTDIR/follow" &
	follower=$!
	wait_stat subscribers 1
	kill -TERM "$DAEMON_PID"
	rc=0
	wait "$follower" || rc=$?
	[ "$rc" -eq 0 ]
	jq -r .kind "$TESTDIR/follow" | grep -qx task_done
	[ "$(jq -r 'select(.kind == "task_done") | .task_done.task.state' "$TESTDIR/follow")" = cancelled ]
	jq -r .kind "$TESTDIR/follow" | tail -n1 | grep -qx shutdown
	wait_gone "$DAEMON_PID"
	DAEMON_PID=
}

@test "logs --follow prints what is kept, then the rest as it comes, once" {
	id=$("$WAITER" submit --shell "echo one; while [ ! -e $TESTDIR/go ]; do sleep 0.02; done; echo two")
	wait_logs "$id" one
	"$WAITER" logs --follow "$id" >"$TESTDIR/out" &
	pid=$!
	touch "$TESTDIR/go"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	[ "$(cat "$TESTDIR/out")" = "$(printf 'one\ntwo')" ]
}

@test "at most N tasks run at once at parallelism N" {
	"$WAITER" queue set two --parallel 2
	ids=""
	for i in 1 2 3 4 5 6; do
		ids="$ids $("$WAITER" submit --queue two --shell "touch $TESTDIR/r.$i; ls $TESTDIR | grep -c '^r\.' >>$TESTDIR/seen; sleep 0.1; rm $TESTDIR/r.$i")"
	done
	"$WAITER" wait $ids
	[ "$(sort -n "$TESTDIR/seen" | tail -n1)" -le 2 ]
	[ "$(wc -l <"$TESTDIR/seen")" -eq 6 ]
}

@test "--stdin feeds the task; by default its stdin is empty" {
	printf 'line1\nline2\n' >"$TESTDIR/in"
	run "$WAITER" run --stdin "$TESTDIR/in" -- wc -l
	assert_success
	assert_output 2
	run bash -c 'printf abc | "$0" run --stdin - -- cat' "$WAITER"
	assert_output abc
	run "$WAITER" run -- cat
	assert_success
	assert_output ""
}

@test "tasks per client: a connection past --max-objects-per-client is refused" {
	stop_daemon
	start_daemon --max-objects-per-client 2
	run "$WRAW" "$WAITER_SOCKET" hello read tasks:3
	assert_success
	[ "$(echo "$output" | grep -c 'ok task_submit')" -eq 2 ]
	assert_line --partial 'ERROR_CODE_RESOURCE_EXHAUSTED: this connection has 2 active objects'
	# Its tasks had lifetime connection: they are killed when it goes.
	for _ in $(seq 1 $((250 * WAITER_TEST_SLOW))); do
		[ "$(stat_value tasks)" = 0 ] && break
		sleep 0.02
	done
	[ "$(stat_value tasks)" = 0 ]
}

@test "--keep-finished-for forgets results after that long" {
	stop_daemon
	start_daemon --keep-finished-for 200ms
	# Submit and wait on one connection: a separate `wait` could come
	# after the 200 ms.
	id=$("$WAITER" submit --wait -- true)
	for _ in $(seq 1 $((250 * WAITER_TEST_SLOW))); do
		[ "$(stat_value finished_objects)" = 0 ] && break
		sleep 0.02
	done
	[ "$(stat_value finished_objects)" = 0 ]
	run "$WAITER" wait "$id"
	assert_failure 1
	assert_output --partial "no object with id $id"
}

@test "run paces a fast task to a slow reader: nothing is lost" {
	stop_daemon
	start_daemon --max-output 65536 --retain-bytes 262144
	# The reader starts late: without pacing the daemon would read on and
	# the ring (256 KiB) would drop most of the 20 MB before it is read.
	"$WAITER" run -- seq 1 3000000 2>"$TESTDIR/err" | { sleep 1; cksum; } >"$TESTDIR/sum"
	[ "$(cat "$TESTDIR/sum")" = "$(seq 1 3000000 | cksum)" ]
	[ ! -s "$TESTDIR/err" ]
	[ "$(stat_value retained_bytes)" -le 262144 ]
}

@test "waiting dependents: cancelled ones are skipped, the rest run; failure goes down the chain" {
	gate=$("$WAITER" submit --shell "until [ -e $TESTDIR/go ]; do sleep 0.02; done")
	ids=()
	for i in $(seq 1 60); do
		ids+=("$("$WAITER" submit --after "$gate" -- touch "$TESTDIR/d.$i")")
	done
	"$WAITER" cancel "${ids[@]:0:10}"
	[ "$("$WAITER" --json tasks --state waiting | jq -s length)" = 50 ]
	touch "$TESTDIR/go"
	"$WAITER" wait "${ids[@]:10}"
	[ "$(ls "$TESTDIR"/d.* | wc -l)" = 50 ]
	[ ! -e "$TESTDIR/d.1" ] && [ -e "$TESTDIR/d.60" ]
	# A failure ends its dependents, theirs, and so on, without running any.
	f=$("$WAITER" submit --shell "until [ -e $TESTDIR/fail ]; do sleep 0.02; done; exit 1")
	x=$("$WAITER" submit --after "$f" -- touch "$TESTDIR/x")
	y=$("$WAITER" submit --after "$x" --after "$gate" -- touch "$TESTDIR/y")
	z=$("$WAITER" submit --after "$y" -- touch "$TESTDIR/z")
	touch "$TESTDIR/fail"
	run "$WAITER" wait "$z"
	assert_failure 1
	for t in "$x" "$y" "$z"; do
		[ "$("$WAITER" --json show "$t" | jq -r .task.state)" = dependency_failed ]
	done
	[ ! -e "$TESTDIR/x" ] && [ ! -e "$TESTDIR/y" ] && [ ! -e "$TESTDIR/z" ]
}

@test "--no-pidfd: exits, signals, timeouts and many tasks are noticed by SIGCHLD" {
	stop_daemon
	start_daemon --no-pidfd
	run "$WAITER" run -- sh -c 'echo out; exit 3'
	assert_failure 3
	assert_output out
	run "$WAITER" run --shell 'kill -KILL $$'
	assert_failure 137
	run "$WAITER" run --timeout 500ms --shell "sleep 1000 & echo \$! >$TESTDIR/child; wait"
	assert_failure 143
	wait_gone "$(cat "$TESTDIR/child")" 10
	"$WAITER" queue set four --parallel 4
	ids=()
	for i in $(seq 1 40); do
		ids+=("$("$WAITER" submit --queue four -- sh -c "echo $i >$TESTDIR/n.$i")")
	done
	"$WAITER" wait "${ids[@]}"
	[ "$(cat "$TESTDIR"/n.* | wc -l)" = 40 ]
	id=$("$WAITER" submit --shell "sleep 1000 & echo \$! >$TESTDIR/child2; sleep 1000")
	wait_task_running "$id"
	pid=$("$WAITER" --json show "$id" | jq -r .task.pid)
	wait_for_line "$TESTDIR/child2" '^[0-9]+$'
	stop_daemon
	wait_gone "$pid" 10
	wait_gone "$(cat "$TESTDIR/child2")" 10
}

@test "--max-tasks-per-user bounds one uid's unfinished tasks, not another's" {
	stop_daemon
	start_daemon --max-tasks-per-user 2 --allow-uid 65534
	chmod 755 "$TESTDIR"
	a=$("$WAITER" submit -- sleep 1000)
	"$WAITER" submit --after "$a" -- true >/dev/null
	run "$WAITER" submit -- true
	assert_failure 1
	assert_output --partial "uid 0 has 2 tasks not yet ended, the limit (--max-tasks-per-user)"
	# Another user is counted apart.
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$WAITER" --no-autostart \
		run --cwd / -- echo nobody
	assert_success
	assert_output nobody
	# Ended tasks no longer count.
	"$WAITER" kill "$a"
	run "$WAITER" run -- echo again
	assert_success
	assert_output again
}

@test "stdin is at most 16 MiB: the CLI refuses more, and so does the daemon" {
	# 16 MiB of stdin does not fit the default 1 MiB frame: raise it.
	stop_daemon
	start_daemon --max-frame 20971520
	head -c 16777216 /dev/zero >"$TESTDIR/in"
	run "$WAITER" run --stdin "$TESTDIR/in" -- wc -c
	assert_success
	assert_output 16777216
	echo x >>"$TESTDIR/in"
	run "$WAITER" submit --stdin "$TESTDIR/in" -- wc -c
	assert_failure 2
	assert_output --partial -- "--stdin: more than 16 MiB"
	# A client that sends it anyway is refused, and served on.
	run "$WRAW" "$WAITER_SOCKET" hello read stdin:16777217 read ping read
	assert_success
	assert_line --index 1 "reply id=400 error ERROR_CODE_INVALID_ARGUMENT: stdin is larger than 16 MiB"
	assert_line --index 2 "reply id=2 ok pong"
}

@test "argv and env are at most 4096 entries each" {
	run "$WAITER" submit -- /bin/true $(seq 1 4095)
	assert_success
	run "$WAITER" submit -- /bin/true $(seq 1 4096)
	assert_failure 2
	assert_output "waiter: too many arguments or environment entries (at most 4096)"
	# The environment sent is the caller's: give it exactly N entries.
	run env -i $(for i in $(seq 1 4096); do echo "V$i=1"; done) \
		"$WAITER" -S "$WAITER_SOCKET" submit -- /bin/true
	assert_success
	run env -i $(for i in $(seq 1 4097); do echo "V$i=1"; done) \
		"$WAITER" -S "$WAITER_SOCKET" submit -- /bin/true
	assert_failure 2
	assert_output "waiter: too many arguments or environment entries (at most 4096)"
}

@test "a task names at most 256 after dependencies" {
	id=$("$WAITER" submit -- sleep 1000)
	# The CLI takes at most 256 --after; a raw client sends 257.
	run "$WRAW" "$WAITER_SOCKET" hello read "after:$id:256" read "after:$id:257" read
	assert_success
	assert_line --index 1 "reply id=401 ok task_submit"
	assert_line --index 2 "reply id=401 error ERROR_CODE_INVALID_ARGUMENT: at most 256 after dependencies"
	[ "$("$WAITER" --json tasks --state waiting | jq -s length)" = 1 ]
}

@test "at most 1024 queues; a queue name is at most 64 characters" {
	# A fresh daemon has one queue, "default": 1023 more fit.
	run "$WRAW" "$WAITER_SOCKET" hello read \
		$(for i in $(seq 1 1024); do echo "queue-set:q$i:1 read"; done)
	assert_success
	[ "$(grep -c '^reply id=402 ok queue_set$' <<<"$output")" = 1023 ]
	assert_line --index 1024 "reply id=402 error ERROR_CODE_RESOURCE_EXHAUSTED: there are 1024 queues, the limit"
	[ "$("$WAITER" --json queues | jq -s length)" = 1024 ]
	run "$WAITER" submit --queue new -- /bin/true
	assert_failure 1
	assert_output "waiter: there are 1024 queues, the limit"
	# The existing ones still serve.
	"$WAITER" queue set q1023 --parallel 2
	run "$WAITER" submit --queue q1023 --wait -- /bin/true
	assert_success
	stop_daemon
	start_daemon
	q64=$(printf 'q%.0s' $(seq 1 64))
	run "$WAITER" queue set "$q64" --parallel 1
	assert_success
	run "$WAITER" submit --queue "$q64" --wait -- /bin/true
	assert_success
	run "$WAITER" queue set "${q64}x" --parallel 1
	assert_failure 2
	assert_output "waiter: a queue name is 1 to 64 characters of letters, digits and ._:@/+-"
	run "$WAITER" submit --queue "${q64}x" -- /bin/true
	assert_failure 2
	assert_output "waiter: a queue name is 1 to 64 characters of letters, digits and ._:@/+-"
}

@test "queue parallelism is 1 to 100000" {
	run "$WAITER" queue set q --parallel 100000
	assert_success
	run "$WAITER" queue set q --parallel 100001
	assert_failure 2
	assert_output "waiter: parallel must be from 1 to 100000"
	# The CLI refuses 0 itself; a raw client sends it.
	run "$WRAW" "$WAITER_SOCKET" hello read queue-set:q:0 read queue-set:q:1 read
	assert_line --index 1 "reply id=402 error ERROR_CODE_INVALID_ARGUMENT: parallel must be from 1 to 100000"
	assert_line --index 2 "reply id=402 ok queue_set"
	[ "$("$WAITER" --json queues | jq -r 'select(.name == "q") | .parallel')" = 1 ]
}
