#!/usr/bin/env bats
# Path watches: kinds, recursion, globs, settle, once, roots that go or come.

bats_require_minimum_version 1.5.0
load helpers

setup() {
	daemon_setup
	D="$TESTDIR/d"
	mkdir -p "$D"
	FOLLOWERS=()
}

teardown() {
	for p in "${FOLLOWERS[@]}"; do kill "$p" 2>/dev/null || true; done
	daemon_teardown
}

# follow OUT ARGS...: `waiter --json watch path ARGS --follow` in the
# background, writing to OUT; returns once the watch is in place (its id,
# the first line, is printed only then).
follow() {
	local out=$1
	shift
	"$WAITER" --json watch path "$@" --follow >"$out" 2>"$out.err" &
	FOLLOWERS+=($!)
	wait_for_line "$out" '"existed"'
}

# changes OUT: "kind path" per change seen so far.
changes() {
	grep '"path_changed"' "$1" | jq -r '.path_changed.changes[] | "\(.kind) \(.path)"'
}

@test "each kind: created, modified, deleted, moved (both names), attributes" {
	follow "$TESTDIR/out" "$D"
	echo hi >"$D/f"
	mv "$D/f" "$D/g"
	chmod 600 "$D/g"
	rm "$D/g"
	wait_for_line "$TESTDIR/out" '"deleted"'
	run changes "$TESTDIR/out"
	assert_line "created $D/f"
	assert_line "modified $D/f"
	assert_line "attributes $D/g"
	assert_line "deleted $D/g"
	moved=$(grep '"moved"' "$TESTDIR/out" | jq -r '.path_changed.changes[0] | "\(.old_path) \(.path)"')
	[ "$moved" = "$D/f $D/g" ]
	# The text form, as inotifywait's: KIND PATH.
	"$WAITER" watch path "$D" --follow >"$TESTDIR/text" &
	FOLLOWERS+=($!)
	wait_for_line "$TESTDIR/text" '^[0-9]+$'
	mkdir "$D/sub"
	wait_for_line "$TESTDIR/text" "^created $D/sub/\$"
}

@test "--on selects kinds" {
	follow "$TESTDIR/out" "$D" --on deleted
	touch "$D/a"
	rm "$D/a"
	wait_for_line "$TESTDIR/out" '"deleted"'
	[ "$(changes "$TESTDIR/out")" = "deleted $D/a" ]
	run "$WAITER" watch path "$D" --on bogus
	assert_failure 2
	assert_output --partial "unknown kind 'bogus'"
}

@test "recursive: a tree made in one go reports its deepest file" {
	follow "$TESTDIR/out" -r "$D"
	mkdir -p "$D/a/b/c" && touch "$D/a/b/c/f"
	wait_for_line "$TESTDIR/out" "\"$D/a/b/c/f\""
	# And the new directories are watched from then on.
	echo more >"$D/a/b/c/g"
	wait_for_line "$TESTDIR/out" "\"$D/a/b/c/g\""
	run "$WAITER" --json watches
	[ "$(echo "$output" | jq -r .watch.directories)" = 4 ]
}

@test "include and exclude globs" {
	mkdir -p "$D/src" "$D/.git"
	follow "$TESTDIR/out" -r "$D" --include '*.c' --exclude '.git'
	touch "$D/src/x.h" "$D/.git/y.c" "$D/src/x.c"
	wait_for_line "$TESTDIR/out" "\"$D/src/x.c\""
	touch "$D/z.c"
	wait_for_line "$TESTDIR/out" "\"$D/z.c\""
	run changes "$TESTDIR/out"
	refute_output --partial x.h
	refute_output --partial .git
}

@test "settle turns 100 rapid writes into one event" {
	follow "$TESTDIR/out" "$D" --settle 300ms --on modified
	for i in $(seq 1 100); do echo "$i" >"$D/conf"; done
	wait_for_line "$TESTDIR/out" '"path_changed"'
	[ "$(grep -c '"path_changed"' "$TESTDIR/out")" = 1 ]
	[ "$(changes "$TESTDIR/out")" = "modified $D/conf" ]
	# A later change is a new event.
	echo x >"$D/other"
	wait_for_line "$TESTDIR/out" "\"$D/other\""
	[ "$(grep -c '"path_changed"' "$TESTDIR/out")" = 2 ]
}

@test "once: the watch completes after its first event" {
	"$WAITER" watch path "$D" --once --wait >"$TESTDIR/id" &
	pid=$!
	wait_for_line "$TESTDIR/id" '^[0-9]+$'
	touch "$D/x"
	wait "$pid"
	id=$(cat "$TESTDIR/id")
	[ "$("$WAITER" --json show "$id" | jq -r .state)" = completed ]
}

@test "a deleted watch root ends the watch with a clear event" {
	follow "$TESTDIR/out" "$D"
	pid=${FOLLOWERS[0]}
	rmdir "$D"
	wait_for_line "$TESTDIR/out" '"watch_ended"'
	[ "$(grep watch_ended "$TESTDIR/out" | jq -r .watch_ended.reason)" = deleted ]
	# Not `run wait`: a subshell cannot wait for this shell's child.
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" = 1 ]
	grep -q "was deleted" "$TESTDIR/out.err"
}

@test "a watched file: edits, a rename over it, and its deletion" {
	echo 1 >"$D/conf"
	follow "$TESTDIR/out" "$D/conf"
	echo 2 >"$D/conf"
	echo 3 >"$D/new" && mv "$D/new" "$D/conf"   # how editors save
	touch "$D/unrelated"
	rm "$D/conf"
	wait_for_line "$TESTDIR/out" '"watch_ended"'
	run changes "$TESTDIR/out"
	assert_line --index 0 "modified $D/conf"
	assert_line --index 1 "modified $D/conf"
	assert_line "deleted $D/conf"
	refute_output --partial unrelated
}

@test "two clients on one path share it; one cancelling leaves the other" {
	follow "$TESTDIR/a" "$D"
	follow "$TESTDIR/b" "$D"
	touch "$D/one"
	wait_for_line "$TESTDIR/a" '"created"'
	wait_for_line "$TESTDIR/b" '"created"'
	a=$(head -n1 "$TESTDIR/a" | jq -r .object.id)
	"$WAITER" cancel "$a"
	touch "$D/two"
	wait_for_line "$TESTDIR/b" "\"$D/two\""
	! grep -q "\"$D/two\"" "$TESTDIR/a" || false
}

@test "a missing path is an error, unless --create waits for it" {
	run "$WAITER" watch path "$D/later/file"
	assert_failure 1
	assert_output --partial "does not exist (--create waits for it)"
	"$WAITER" --json watch path "$D/later/file" --create --once --follow >"$TESTDIR/out" &
	pid=$!
	wait_for_line "$TESTDIR/out" '"existed"'
	mkdir "$D/later"
	echo x >"$D/later/file"
	wait "$pid"
	[ "$(changes "$TESTDIR/out")" = "created $D/later/file" ]
}

@test "--max-watched-dirs: a tree past it is refused, a new directory past it ends the watch" {
	stop_daemon
	start_daemon --max-watched-dirs 3
	mkdir -p "$D/a/b/c"
	run "$WAITER" watch path -r "$D"
	assert_failure 1
	assert_output --partial "the limit (waiterd --max-watched-dirs)"
	rm -r "$D/a/b"
	follow "$TESTDIR/out" -r "$D"
	mkdir "$D/a/x" "$D/a/y"
	wait_for_line "$TESTDIR/out" '"watch_ended"'
	[ "$(grep watch_ended "$TESTDIR/out" | jq -r .watch_ended.reason)" = limit ]
}

@test "bad requests get clear errors" {
	run "$WAITER" watch path
	assert_failure 2
	run "$WAITER" watch path "$D" --settle nonsense
	assert_failure 2
	run "$WAITER" watch frob
	assert_failure 2
	assert_output --partial "path, pid, tcp or unix"
	run "$WAITER" ping
	assert_output pong
}

@test "inotify queue overflow is reported to the watches, which go on" {
	follow "$TESTDIR/out" "$D"
	# With the daemon stopped, more events than the kernel queues
	# (fs.inotify.max_queued_events) pile up: each touch of a new file
	# queues created, attributes and modified.
	kill -STOP "$DAEMON_PID"
	n=$(($(cat /proc/sys/fs/inotify/max_queued_events) / 2 + 1))
	(cd "$D" && seq 1 "$n" | xargs touch)
	kill -CONT "$DAEMON_PID"
	wait_for_line "$TESTDIR/out" '"watch_overflow"'
	grep watch_overflow "$TESTDIR/out" | jq -r .watch_overflow.message | grep -q "changes were lost"
	touch "$D/after"
	wait_for_line "$TESTDIR/out" "\"$D/after\""
}

@test "kernel watches are shared between watches and released when the last goes" {
	mkdir -p "$D/sub"
	a=$("$WAITER" watch path "$D")
	b=$("$WAITER" watch path -r "$D")
	c=$("$WAITER" watch path "$D/sub")
	[ "$(stat_value kernel_watches)" = 2 ]
	[ "$(stat_value watches)" = 3 ]
	"$WAITER" cancel "$b"
	[ "$(stat_value kernel_watches)" = 2 ]
	"$WAITER" cancel "$c"
	for _ in $(seq 1 $((250 * WAITER_TEST_SLOW))); do
		[ "$(stat_value kernel_watches)" = 1 ] && break
		sleep 0.02
	done
	[ "$(stat_value kernel_watches)" = 1 ]
	touch "$D/still"
	"$WAITER" --json events --since 0 --id "$a" --follow >"$TESTDIR/a" &
	FOLLOWERS+=($!)
	wait_for_line "$TESTDIR/a" "\"$D/still\""
	"$WAITER" cancel "$a"
	for _ in $(seq 1 $((250 * WAITER_TEST_SLOW))); do
		[ "$(stat_value kernel_watches)" = 0 ] && break
		sleep 0.02
	done
	[ "$(stat_value kernel_watches)" = 0 ]
}

@test "a directory moved inside a recursive watch is still watched at its new place" {
	mkdir -p "$D/a/x"
	follow "$TESTDIR/out" -r "$D"
	mv "$D/a" "$D/b"
	echo 1 >"$D/b/file1"
	echo 2 >"$D/b/x/file2"
	wait_for_line "$TESTDIR/out" "\"$D/b/x/file2\""
	wait_for_line "$TESTDIR/out" "\"$D/b/file1\""
	moved=$(grep '"moved"' "$TESTDIR/out" | jq -r '.path_changed.changes[0] | "\(.old_path) \(.path)"')
	[ "$moved" = "$D/a $D/b" ]
	! grep -q "\"$D/a/x" "$TESTDIR/out" || false
}

@test "with --include, a rename into a matching name is reported (atomic save)" {
	follow "$TESTDIR/out" "$D" --include '*.txt'
	echo x >"$D/a.tmp"
	mv "$D/a.tmp" "$D/a.txt"
	wait_for_line "$TESTDIR/out" '"moved"'
	moved=$(grep '"moved"' "$TESTDIR/out" | jq -r '.path_changed.changes[0] | "\(.old_path) \(.path)"')
	[ "$moved" = "$D/a.tmp $D/a.txt" ]
	! grep -q '"created"' "$TESTDIR/out" || false
}
