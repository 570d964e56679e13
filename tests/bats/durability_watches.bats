#!/usr/bin/env bats
# Durability of watches (issue 8, doc/durability.md): path, pid and endpoint
# watches of lifetime daemon survive a crash (SIGKILL) and a clean stop with
# their ids and names, and go on watching; what changed while the daemon was
# down is accounted for (a path watch says it may have missed changes, a
# process gone meanwhile ends the watch, a deadline passed meanwhile times
# it out); watches of lifetime connection do not come back. Every process
# and server is started here and stopped by pid.

bats_require_minimum_version 1.5.0
load helpers

PYTHON=/usr/bin/python3

setup() {
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	export TESTDIR
	STATE="$TESTDIR/state"
	MINE=()
	cat >"$TESTDIR/listen.py" <<'EOF'
# listen.py KIND ADDR GO: bind (tcp4: ADDR port 0, unix: path ADDR), print
# the port (or "bound"), listen once the file GO exists ("-": at once),
# print "listening", then accept and close forever. Bound but not
# listening, a tcp port refuses connections and no one else can take it.
import os, socket, sys, time
kind, addr, go = sys.argv[1:4]
fam = {"tcp4": socket.AF_INET, "unix": socket.AF_UNIX}[kind]
s = socket.socket(fam, socket.SOCK_STREAM)
s.bind(addr if kind == "unix" else (addr, 0))
print("bound" if kind == "unix" else s.getsockname()[1], flush=True)
while go != "-" and not os.path.exists(go):
    time.sleep(0.01)
s.listen(64)
print("listening", flush=True)
while True:
    s.accept()[0].close()
EOF
	cat >"$TESTDIR/edit_proc.py" <<'EOF'
# edit_proc.py DB ID boot|start: change the process watch record ID in the
# state file as if it came from another boot, or as if its pid now named
# another process (a different start time). Protobuf wire format by hand:
# StoredObject.proc_watch is field 14, in it proc_start 2 and boot_id 3.
import sqlite3, sys
db, oid, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def varint(b, i):
    v = s = 0
    while True:
        x = b[i]; i += 1; v |= (x & 0x7f) << s; s += 7
        if x < 0x80:
            return v, i
def enc(v):
    out = bytearray()
    while True:
        x, v = v & 0x7f, v >> 7
        out.append(x | (0x80 if v else 0))
        if not v:
            return bytes(out)
def fields(b):
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i)
        f, t = key >> 3, key & 7
        if t == 0:
            v, i = varint(b, i)
        elif t == 2:
            n, i = varint(b, i); v = b[i:i + n]; i += n
        else:
            n = 8 if t == 1 else 4; v = b[i:i + n]; i += n
        out.append([f, t, v])
    return out
def pack(fs):
    out = bytearray()
    for f, t, v in fs:
        out += enc(f << 3 | t)
        out += enc(v) if t == 0 else (enc(len(v)) + v if t == 2 else v)
    return bytes(out)
c = sqlite3.connect(db)
rec = c.execute("SELECT record FROM objects WHERE id = ?", (oid,)).fetchone()[0]
top = fields(rec)
for fld in top:
    if fld[0] == 14:
        inner = fields(fld[2])
        for g in inner:
            if what == "start" and g[0] == 2:
                g[2] += 1
            if what == "boot" and g[0] == 3:
                g[2] = b"00000000-0000-4000-8000-000000000000"
        fld[2] = pack(inner)
c.execute("UPDATE objects SET record = ? WHERE id = ?", (pack(top), oid))
c.commit()
c.close()
EOF
	cat >"$TESTDIR/order.py" <<'EOF'
# order.py SOCKET DIR N: create N watches of lifetime daemon of each kind,
# each on something that has an event for it at once (files written in
# DIR all along, a process that has exited, a socket that listens), and
# print how many events came before the reply that gives their id.
import os, socket, struct, sys, threading, time
from waiter import waiter_pb2 as pb
path, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
listening = os.path.realpath(os.path.join(d, "..", "order.sock"))
done = threading.Event()
def write():
    i = 0
    while not done.is_set():
        open(os.path.join(d, "f%d" % (i % 50)), "w").close()
        i += 1
        time.sleep(0.0005)      # paced, so that this reader keeps up
writer = threading.Thread(target=write)
writer.start()
server = socket.socket(socket.AF_UNIX)
server.bind(listening)
server.listen(4096)
s = socket.socket(socket.AF_UNIX)
s.connect(path)
buf, known, seen = b"", set(), []
def call(req):
    global buf
    b = req.SerializeToString()
    s.sendall(struct.pack(">I", len(b)) + b)
    early = 0
    while True:
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
            buf += s.recv(65536)
        k = struct.unpack(">I", buf[:4])[0]
        m = pb.ServerMessage()
        m.ParseFromString(buf[4:4 + k])
        buf = buf[4 + k:]
        if m.HasField("reply") and m.reply.id == req.id:
            return m.reply, early
        # Markers (EVENTS_LOST: this slow reader fell behind) are about no object.
        if m.HasField("event") and m.event.object_id not in known | {0}:
            early += 1
            seen.append("%d:%s" % (m.event.object_id, m.event.WhichOneof("body")))
def zombie():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    # Exited, not reaped: its pidfd is readable at once.
    while open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.001)
    return pid
early, rid = 0, 1
call(pb.Request(id=rid, hello=pb.Hello(protocol_version=1, client_name="order")))
for i in range(n):
    pid = zombie()
    for req in [pb.Request(watch_path=pb.WatchPath(paths=[d], lifetime=pb.LIFETIME_DAEMON)),
                pb.Request(watch_pid=pb.WatchPid(pid=pid, lifetime=pb.LIFETIME_DAEMON)),
                pb.Request(watch_endpoint=pb.WatchEndpoint(endpoint="unix:" + listening,
                                                           lifetime=pb.LIFETIME_DAEMON))]:
        rid += 1
        req.id = rid
        rep, e = call(req)
        early += e
        which = rep.WhichOneof("result")
        if which == "error":    # no pidfd (valgrind): process watches refused
            assert rep.error.code == pb.ERROR_CODE_UNSUPPORTED_OPERATION, rep
            continue
        known.add(getattr(rep, which).object.id)
    os.waitpid(pid, 0)
done.set()
writer.join()
print("early=%d watches=%d" % (early, len(known)))
if seen:
    print("early events:", " ".join(seen[:20]))
EOF
}

teardown() {
	local p
	for p in "${MINE[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	daemon_teardown
}

# SIGKILL the daemon: no shutdown code runs, as in a crash or an OOM kill.
crash() {
	kill -KILL "$DAEMON_PID"
	wait_gone "$DAEMON_PID"
	DAEMON_PID=
}

# A clean stop by `waiter shutdown`; fail if a sanitizer complained.
clean_stop() {
	"$WAITER" shutdown
	wait_gone "$DAEMON_PID"
	DAEMON_PID=
	! grep -E 'AddressSanitizer|LeakSanitizer|runtime error' "$DAEMON_LOG" >&2 || false
}

restart() {
	start_daemon --state-dir "$STATE"
}

# Wait until the wall clock is past $1 (µs since the epoch), at most 20 s.
wait_past() {
	for _ in $(seq 1 1000); do
		[ "$(date +%s%6N)" -gt "$1" ] && return 0
		sleep 0.02
	done
	return 1
}

# Start `sleep 1000` in the background; its pid in SLEEPER.
start_sleeper() {
	sleep 1000 &
	SLEEPER=$!
	MINE+=("$SLEEPER")
}

# Without pidfds (valgrind does not know pidfd_open) process watches are
# refused as UNSUPPORTED, so there is nothing to keep (watch_proc.bats).
no_pidfd() {
	grep -q 'msg=pidfd_unavailable ' "$DAEMON_LOG"
}

assert_watch_unsupported() {
	run "$WAITER" watch pid "$1"
	assert_failure 1
	assert_output --partial "this kernel cannot watch processes"
}

# start_listener KIND ADDR GO (listen.py); sets LPORT (tcp) and LOUT, and
# returns once it is bound (with GO "-": once it listens).
start_listener() {
	LOUT=$(mktemp "$TESTDIR/listener.XXXXXX")
	"$PYTHON" "$TESTDIR/listen.py" "$@" >"$LOUT" 3>&- &
	MINE+=("$!")
	wait_for_line "$LOUT" '^([0-9]+|bound)$'
	LPORT=$(head -n1 "$LOUT")
	if [ "$3" = - ]; then
		wait_for_line "$LOUT" '^listening$'
	fi
}

# Follow the events of object $1 (replayed from the daemon's start, then
# live) into $TESTDIR/ev.$1.
follow() {
	"$WAITER" --json events --since 0 --follow --id "$1" >"$TESTDIR/ev.$1" 2>/dev/null &
	MINE+=("$!")
}

# What a restart must keep of each watch: id, name, state, lifetime and
# what is watched (not the events count: a path watch says it may have
# missed changes after it).
watch_list() {
	"$WAITER" --json watches --all | jq -c '[.id, .name, .state, .lifetime, .watch.type,
	    .watch.paths, .watch.recursive, .watch.on, .watch.include, .watch.exclude,
	    .watch.settle_us, .watch.once, .watch.create, .watch.pid, .watch.endpoint,
	    .watch.timeout_us]'
}

# One watch of each kind (a pid watch only where pidfds work), all of
# lifetime daemon, with every option a path watch takes.
make_watches() {
	mkdir -p "$TESTDIR/tree/sub" "$TESTDIR/file-dir"
	touch "$TESTDIR/file-dir/f"
	"$WAITER" watch path "$TESTDIR/tree" --recursive --on created,modified \
		--include '*.c' --include 'sub/*' --exclude '.git' --settle 50ms \
		--name tree >/dev/null
	"$WAITER" watch path "$TESTDIR/file-dir/f" --once --name file >/dev/null
	"$WAITER" watch path "$TESTDIR/later/x" --create --name later >/dev/null
	start_listener tcp4 127.0.0.1 "$TESTDIR/never"
	"$WAITER" watch tcp "127.0.0.1:$LPORT" --timeout 1h --name tcp >/dev/null
	"$WAITER" watch unix "$TESTDIR/nothing.sock" --name unix >/dev/null
	if ! no_pidfd; then
		start_sleeper
		"$WAITER" watch pid "$SLEEPER" --name pid >/dev/null
	fi
}

@test "watches of every kind come back after SIGKILL with their ids, names and options" {
	restart
	make_watches
	before=$(watch_list)
	[ "$(echo "$before" | wc -l)" -ge 5 ]
	crash
	restart
	after=$(watch_list)
	[ "$after" = "$before" ]
	grep -q 'msg=state_open .* watches=[56] ' "$DAEMON_LOG"
	# A retry by name finds the restored watch, not a new one.
	id=$("$WAITER" --json show tcp | jq -r .id)
	run "$WAITER" watch tcp "127.0.0.1:$LPORT" --timeout 1h --name tcp
	assert_success
	assert_output "$id"
	# `waiter watches` lists them as before, once the recursive one has
	# walked its tree again (it says so with watch_overflow).
	tree=$("$WAITER" --json show tree | jq -r .id)
	follow "$tree"
	wait_for_line "$TESTDIR/ev.$tree" '"watch_overflow"'
	run "$WAITER" watches
	assert_success
	assert_line --regexp "^[0-9]+ +path +tree +active .* $TESTDIR/tree \(recursive, 2 dirs\)$"
	assert_line --regexp "^[0-9]+ +path +later +active "
	assert_line --regexp "^[0-9]+ +tcp +tcp +active .* tcp:127.0.0.1:$LPORT "
	assert_line --regexp "^[0-9]+ +unix +unix +active .* unix:$TESTDIR/nothing.sock "
	if ! no_pidfd; then
		assert_line --regexp "^[0-9]+ +pid +pid +active +0 +$SLEEPER$"
	fi
}

@test "watches of every kind come back after waiter shutdown, and resume" {
	restart
	make_watches
	# The unix watch has tried at least once: the stop keeps the count.
	for _ in $(seq 1 $((500 * WAITER_TEST_SLOW))); do
		[ "$("$WAITER" --json show unix | jq -r .watch.attempts)" -ge 1 ] && break
		sleep 0.02
	done
	before=$(watch_list)
	clean_stop
	restart
	after=$(watch_list)
	[ "$after" = "$before" ]
	# The endpoint watches probe again: their attempts go on from the count
	# kept at the stop.
	kept=$("$WAITER" --json show unix | jq -r .watch.attempts)
	[ "$kept" -ge 1 ]
	for _ in $(seq 1 $((500 * WAITER_TEST_SLOW))); do
		[ "$("$WAITER" --json show unix | jq -r .watch.attempts)" -gt "$kept" ] && break
		sleep 0.02
	done
	[ "$("$WAITER" --json show unix | jq -r .watch.attempts)" -gt "$kept" ]
	[ "$("$WAITER" --json show unix | jq -r .watch.last_error)" = "No such file or directory" ]
}

@test "a restored path watch says it may have missed changes, then reports new ones, recursively" {
	restart
	mkdir -p "$TESTDIR/d/sub"
	id=$("$WAITER" watch path "$TESTDIR/d" --recursive --name d)
	crash
	echo down >"$TESTDIR/d/made-while-down"
	restart
	follow "$id"
	wait_for_line "$TESTDIR/ev.$id" '"watch_overflow"'
	grep '"watch_overflow"' "$TESTDIR/ev.$id" | jq -r .watch_overflow.message |
		grep -q '^waiterd restarted: changes made while it was down were not seen; rescan'
	# Armed before it said so: a change right after it is seen, in a
	# subdirectory too, and in a directory made after the restart.
	echo after >"$TESTDIR/d/sub/after"
	wait_for_line "$TESTDIR/ev.$id" "\"modified\",\"path\":\"$TESTDIR/d/sub/after\""
	mkdir "$TESTDIR/d/sub/new"
	echo f >"$TESTDIR/d/sub/new/f"
	wait_for_line "$TESTDIR/ev.$id" "\"path\":\"$TESTDIR/d/sub/new/f\""
	run grep -c made-while-down "$TESTDIR/ev.$id"
	assert_output 0
	run "$WAITER" --json show "$id"
	[ "$(echo "$output" | jq -r .watch.directories)" = 3 ]
	[ "$(echo "$output" | jq -r .state)" = active ]
}

@test "a path watch whose root went while the daemon was down ends; a --create one waits again" {
	restart
	mkdir -p "$TESTDIR/gone" "$TESTDIR/back"
	gone=$("$WAITER" watch path "$TESTDIR/gone" --name gone)
	back=$("$WAITER" watch path "$TESTDIR/back" --create --name back)
	crash
	rmdir "$TESTDIR/gone" "$TESTDIR/back"
	restart
	run "$WAITER" wait "$gone"
	assert_failure 1
	assert_output --partial "$TESTDIR/gone is gone: it went while waiterd was down"
	run "$WAITER" --json show "$gone"
	[ "$(echo "$output" | jq -r .state)" = failed ]
	# The --create watch awaits its root as at its creation.
	follow "$back"
	wait_for_line "$TESTDIR/ev.$back" '"watch_overflow"'
	mkdir "$TESTDIR/back"
	wait_for_line "$TESTDIR/ev.$back" "\"created\",\"path\":\"$TESTDIR/back\""
	[ "$("$WAITER" --json show "$back" | jq -r .state)" = active ]
}

@test "a pid watch whose process exits while the daemon is down ends after the restart" {
	restart
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	id=$("$WAITER" watch pid "$SLEEPER" --name p)
	crash
	kill "$SLEEPER"
	wait "$SLEEPER" || true
	restart
	run "$WAITER" --json wait "$id"
	assert_success
	[ "$(echo "$output" | jq -r .object.state)" = completed ]
	[ "$(echo "$output" | jq -r .last_event.kind)" = process_exited ]
	[ "$(echo "$output" | jq -r .last_event.process_exited.pid)" = "$SLEEPER" ]
	[ "$(echo "$output" | jq -r .last_event.process_exited.has_status)" = false ]
}

@test "a pid watch whose process still runs reports its exit after the restart" {
	restart
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	id=$("$WAITER" watch pid "$SLEEPER" --name p)
	crash
	restart
	clean_stop
	restart
	[ "$("$WAITER" --json show "$id" | jq -r .state)" = active ]
	"$WAITER" wait "$id" >"$TESTDIR/out" 2>&1 &
	waiter_pid=$!
	MINE+=("$waiter_pid")
	for _ in $(seq 1 $((500 * WAITER_TEST_SLOW))); do
		[ "$(stat_value waits)" = 1 ] && break
		sleep 0.02
	done
	[ "$(stat_value waits)" = 1 ]
	kill "$SLEEPER"
	rc=0
	wait "$waiter_pid" || rc=$?
	[ "$rc" -eq 0 ]
	[ "$("$WAITER" --json show "$id" | jq -r .state)" = completed ]
}

@test "a restored pid watch does not follow a pid that names another process now" {
	restart
	start_sleeper
	if no_pidfd; then assert_watch_unsupported "$SLEEPER"; return; fi
	boot=$("$WAITER" watch pid "$SLEEPER" --name other-boot)
	start=$("$WAITER" watch pid "$SLEEPER" --name reused)
	crash
	# The same pid, still running, but the records say they saw it in
	# another boot, or with another start time: not the process watched.
	"$PYTHON" "$TESTDIR/edit_proc.py" "$STATE/state.db" "$boot" boot
	"$PYTHON" "$TESTDIR/edit_proc.py" "$STATE/state.db" "$start" start
	restart
	for id in "$boot" "$start"; do
		run "$WAITER" --json wait "$id"
		assert_success
		[ "$(echo "$output" | jq -r .last_event.kind)" = process_exited ]
		[ "$(echo "$output" | jq -r .last_event.process_exited.has_status)" = false ]
	done
	kill -0 "$SLEEPER"
}

@test "an endpoint whose server starts while the daemon is down is ready after the restart" {
	restart
	start_listener tcp4 127.0.0.1 "$TESTDIR/go"
	tcp=$("$WAITER" watch tcp "127.0.0.1:$LPORT" --timeout 1h --name t)
	tcp_out=$LOUT
	port=$LPORT
	unix=$("$WAITER" watch unix "$TESTDIR/s.sock" --name u)
	crash
	touch "$TESTDIR/go"
	wait_for_line "$tcp_out" '^listening$'
	start_listener unix "$TESTDIR/s.sock" -
	restart
	run "$WAITER" --json wait "$tcp"
	assert_success
	[ "$(echo "$output" | jq -r .last_event.endpoint_ready.address)" = "127.0.0.1:$port" ]
	run "$WAITER" --json wait "$unix"
	assert_success
	[ "$(echo "$output" | jq -r .last_event.endpoint_ready.address)" = "$TESTDIR/s.sock" ]
	# Finished, they come back finished, with what they ended with.
	"$WAITER" after 1h --name barrier >/dev/null
	crash
	restart
	run "$WAITER" --json show "$tcp"
	[ "$(echo "$output" | jq -r .state)" = completed ]
	[ "$(echo "$output" | jq -r .watch.events)" = 1 ]
	run "$WAITER" wait "$unix"
	assert_success
	run "$WAITER" watches
	refute_output --partial tcp:
}

@test "an endpoint whose deadline passed while the daemon was down times out at once" {
	restart
	start_listener tcp4 127.0.0.1 "$TESTDIR/go"
	out=$("$WAITER" --json watch tcp "127.0.0.1:$LPORT" --timeout 2s --name late)
	# Stop the loop right after the create, let the deadline pass, crash.
	kill -STOP "$DAEMON_PID"
	id=$(echo "$out" | jq -r .object.id)
	created=$(echo "$out" | jq -r .object.created_us)
	wait_past $((created + 2000000))
	crash
	# The server is up now, but was not in time: no attempt may say ready.
	touch "$TESTDIR/go"
	wait_for_line "$LOUT" '^listening$'
	restart
	run "$WAITER" --json wait "$id"
	assert_failure 124
	[ "$(echo "$output" | jq -r .object.state)" = failed ]
	[ "$(echo "$output" | jq -r .last_event.kind)" = watch_timed_out ]
	# A deadline not yet passed is kept as wall-clock time.
	long=$("$WAITER" --json watch tcp "127.0.0.1:1" --timeout 1h --name long)
	crash
	restart
	[ "$("$WAITER" --json show long | jq -r .state)" = active ]
	[ -n "$long" ]
}

@test "watches of lifetime connection (--wait, --follow) do not come back" {
	restart
	mkdir -p "$TESTDIR/d"
	"$WAITER" watch path "$TESTDIR/d" --follow >"$TESTDIR/follow" 2>&1 &
	MINE+=("$!")
	"$WAITER" watch unix "$TESTDIR/none.sock" --wait >"$TESTDIR/wait" 2>&1 &
	waiting=$!
	MINE+=("$waiting")
	wait_for_line "$TESTDIR/follow" '^[0-9]+$'
	wait_for_line "$TESTDIR/wait" '^[0-9]+$'
	[ "$("$WAITER" --json watches | jq -r .lifetime | sort -u)" = connection ]
	kept=$("$WAITER" watch path "$TESTDIR/d" --name kept)
	crash
	restart
	run "$WAITER" --json watches --all
	assert_success
	[ "$(echo "$output" | jq -r .id)" = "$kept" ]
	# The --wait client reconnects to ask again, and learns it is gone.
	rc=0
	wait "$waiting" || rc=$?
	[ "$rc" -eq 1 ]
	grep -q "no object with id $(head -n1 "$TESTDIR/wait")" "$TESTDIR/wait"
}

@test "a watch of lifetime daemon is answered before any event about it" {
	restart
	mkdir -p "$TESTDIR/busy"
	# Its create is answered once its record is durable; a watch with
	# something to report at once (a directory being written to, a process
	# that has exited, a socket that listens) must not report it before
	# (doc/protocol.md: a CreateReply comes before the first event).
	run env PYTHONPATH="$WAITER_BUILDDIR/python" "$PYTHON" "$TESTDIR/order.py" \
		"$WAITER_SOCKET" "$TESTDIR/busy" 20
	assert_success
	assert_output --regexp '^early=0 watches=(40|60)$'
}
