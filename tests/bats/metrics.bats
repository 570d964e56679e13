#!/usr/bin/env bats
# Metrics (doc/metrics.md): `waiter stats --prometheus` and waiterd
# --metrics-listen. A small checker of the text exposition format reads
# every output: a TYPE before each family's samples, numeric values, names
# with the waiter_ (or process_) prefix, counters ending in _total, no
# series twice, and histograms with ascending, cumulative buckets whose +Inf
# bucket equals _count.

load helpers

setup() {
	# Each test starts the daemon it needs (with --metrics-listen).
	unset WAITER_TEST_SOCKET
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	export TESTDIR
	DAEMON_PID=
	OTHER_PID=
}

teardown() {
	if [ -n "${OTHER_PID:-}" ]; then
		kill -TERM "$OTHER_PID" 2>/dev/null || true
		wait_gone "$OTHER_PID" || true
	fi
	daemon_teardown
}

# Read the text format on stdin; fail with a sentence on the first fault;
# print each sample as `NAME{LABELS} VALUE` (labels sorted) on success.
prom_check() {
	/usr/bin/python3 -c '
import math, re, sys
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"\s*(,|$)")
types, helps, seen, done, out = {}, set(), set(), set(), []
hist = {}
last = None
def fail(n, why):
    sys.exit("line %d: %s" % (n, why))
def family(name):
    if name in types:
        return name
    for suf in ("_bucket", "_sum", "_count"):
        base = name[:-len(suf)]
        if name.endswith(suf) and types.get(base) == "histogram":
            return base
    return None
for n, line in enumerate(sys.stdin.read().split("\n")[:-1], 1):
    if line.startswith("#"):
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
            if not NAME.match(parts[2]):
                fail(n, "bad metric name %r" % parts[2])
            if parts[1] == "HELP":
                if parts[2] in helps:
                    fail(n, "a second HELP for " + parts[2])
                helps.add(parts[2])
            else:
                if parts[2] in types or parts[2] in done:
                    fail(n, "a second TYPE for " + parts[2])
                if len(parts) < 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    fail(n, "bad TYPE line")
                types[parts[2]] = parts[3]
        continue
    m = SAMPLE.match(line)
    if not m:
        fail(n, "not a sample: %r" % line)
    name, labels, value = m.groups()
    fam = family(name)
    if fam is None:
        fail(n, "%s has no TYPE before it" % name)
    if fam in done:
        fail(n, "%s: its samples are not together" % fam)
    if last is not None and last != fam:
        done.add(last)
    last = fam
    if not (fam.startswith("waiter_") or fam.startswith("process_")):
        fail(n, "%s lacks the waiter_ prefix" % fam)
    if types[fam] == "counter" and not fam.endswith("_total"):
        fail(n, "counter %s does not end in _total" % fam)
    lab, rest = {}, labels or ""
    while rest:
        lm = LABEL.match(rest)
        if not lm:
            fail(n, "bad labels %r" % labels)
        if lm.group(1) in lab:
            fail(n, "label %s twice" % lm.group(1))
        lab[lm.group(1)] = lm.group(2)
        rest = rest[lm.end():]
    try:
        v = float(value)
    except ValueError:
        fail(n, "value %r is not a number" % value)
    if math.isnan(v) or (v < 0 and types[fam] in ("counter", "histogram")):
        fail(n, "value %r out of range" % value)
    key = name + "{" + ",".join("%s=\"%s\"" % kv for kv in sorted(lab.items())) + "}"
    if key in seen:
        fail(n, "%s twice" % key)
    seen.add(key)
    out.append("%s %s" % (key, value))
    if types[fam] == "histogram":
        h = hist.setdefault(fam, {"buckets": [], "count": None, "sum": None})
        if name.endswith("_bucket"):
            if "le" not in lab:
                fail(n, "a bucket without le")
            h["buckets"].append((float(lab["le"]), v, n))
        elif name.endswith("_count"):
            h["count"] = v
        elif name.endswith("_sum"):
            h["sum"] = v
        else:
            fail(n, "histogram sample %s is not _bucket, _sum or _count" % name)
for fam, h in hist.items():
    b = h["buckets"]
    if not b or b[-1][0] != math.inf:
        fail(0, "%s: no +Inf bucket last" % fam)
    for (le0, c0, n0), (le1, c1, n1) in zip(b, b[1:]):
        if le1 <= le0:
            fail(n1, "%s: bucket bounds not ascending" % fam)
        if c1 < c0:
            fail(n1, "%s: buckets not cumulative" % fam)
    if h["count"] is None or h["sum"] is None:
        fail(0, "%s: _count or _sum missing" % fam)
    if b[-1][1] != h["count"]:
        fail(0, "%s: +Inf bucket %s differs from _count %s" % (fam, b[-1][1], h["count"]))
print("\n".join(out))
'
}

# The value of one sample (NAME{LABELS} as prom_check prints it) on stdin.
sample() {
	prom_check | awk -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }'
}

# The port a daemon logged for --metrics-listen (log file $1).
metrics_port() {
	wait_for_line "$1" 'msg=metrics_listening'
	sed -n 's/.*msg=metrics_listening address=[^ ]*:\([0-9]*\) .*/\1/p' "$1" | tail -n1
}

# How many listening TCP sockets process $1 holds.
tcp_listeners() {
	local inodes
	inodes=$(find /proc/"$1"/fd -lname 'socket:*' -printf '%l\n' 2>/dev/null |
		sed 's/socket:\[\([0-9]*\)\]/\1/')
	awk -v list=" $(echo $inodes) " '$4 == "0A" && index(list, " " $10 " ") { n++ }
		END { print n + 0 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

start_metrics_daemon() {
	start_daemon --metrics-listen 127.0.0.1:0 "$@"
	PORT=$(metrics_port "$DAEMON_LOG")
	[ -n "$PORT" ] && [ "$PORT" -gt 0 ]
	URL=http://127.0.0.1:$PORT
}

@test "the format checker rejects what it should" {
	# Each of these is a fault the checker exists to find.
	run prom_check <<< 'waiter_x 1'
	assert_failure
	assert_output --partial 'has no TYPE'
	printf '# TYPE waiter_c counter\nwaiter_c 1\n' | { run prom_check; assert_failure; }
	printf '# TYPE waiter_g gauge\nwaiter_g one\n' | { run prom_check; assert_failure; }
	printf '# TYPE waiter_g gauge\nwaiter_g 1\nwaiter_g 2\n' | { run prom_check; assert_failure; }
	printf '# TYPE other_g gauge\nother_g 1\n' | { run prom_check; assert_failure; }
	printf '%s\n' '# TYPE waiter_h histogram' 'waiter_h_bucket{le="1"} 5' \
		'waiter_h_bucket{le="2"} 4' 'waiter_h_bucket{le="+Inf"} 5' \
		'waiter_h_sum 1' 'waiter_h_count 5' | { run prom_check; assert_failure; \
		assert_output --partial 'not cumulative'; }
	printf '%s\n' '# TYPE waiter_h histogram' 'waiter_h_bucket{le="1"} 5' \
		'waiter_h_bucket{le="+Inf"} 6' 'waiter_h_sum 1' 'waiter_h_count 7' |
		{ run prom_check; assert_failure; assert_output --partial 'differs from _count'; }
	printf '%s\n' '# TYPE waiter_h histogram' 'waiter_h_bucket{le="1"} 5' \
		'waiter_h_bucket{le="+Inf"} 5' 'waiter_h_sum 1' 'waiter_h_count 5' |
		{ run prom_check; assert_success; }
}

@test "stats --prometheus prints every series in the text format" {
	start_daemon
	"$WAITER" stats --prometheus >"$TESTDIR/out"
	run prom_check <"$TESTDIR/out"
	assert_success
	# prom_check prints NAME{LABELS} VALUE for every sample.
	for s in 'waiter_build_info\{version="[0-9.]+"\} 1' \
		'process_start_time_seconds\{\} [0-9]{10}\.[0-9]+' \
		'process_cpu_seconds_total\{\} [0-9.]+' \
		'process_resident_memory_bytes\{\} [1-9][0-9]*' 'process_open_fds\{\} [1-9][0-9]*' \
		'process_max_fds\{\} [1-9][0-9]*' 'waiter_uptime_seconds\{\} [0-9.]+' \
		'waiter_connections\{\} 1' 'waiter_connections_accepted_total\{\} [1-9][0-9]*' \
		'waiter_connections_refused_total\{\} 0' 'waiter_requests_total\{\} [1-9][0-9]*' \
		'waiter_bad_requests_total\{\} 0' 'waiter_subscribers\{\} 0' \
		'waiter_output_bytes\{\} [0-9]+' \
		'waiter_objects\{kind="timer"\} 0' 'waiter_objects\{kind="task"\} 0' \
		'waiter_objects\{kind="watch"\} 0' 'waiter_finished_objects\{\} 0' \
		'waiter_waits\{\} 0' 'waiter_kernel_watches\{\} 0' \
		'waiter_tasks\{state="waiting"\} 0' 'waiter_tasks\{state="queued"\} 0' \
		'waiter_tasks\{state="running"\} 0' \
		'waiter_tasks_ended_total\{state="(succeeded|failed|timed_out|cancelled|dependency_failed|lost)"\} 0' \
		'waiter_events_published_total\{\} [0-9]+' 'waiter_events_delivered_total\{\} [0-9]+' \
		'waiter_events_lost_total\{\} 0' 'waiter_last_event_seq\{\} [0-9]+' \
		'waiter_retained_events\{\} [0-9]+' 'waiter_retained_events_limit\{\} 10000' \
		'waiter_retained_bytes\{\} [0-9]+' 'waiter_retained_bytes_limit\{\} 16777216' \
		'waiter_task_output_kept_bytes\{\} 0' \
		'waiter_task_output_kept_bytes_limit\{\} 268435456' \
		'waiter_task_outputs_released_total\{\} 0' \
		'waiter_loop_lag_seconds_bucket\{le="0.00005"\} [0-9]+' \
		'waiter_loop_lag_seconds_bucket\{le="1"\} [0-9]+' \
		'waiter_loop_lag_seconds_bucket\{le="\+Inf"\} [0-9]+' \
		'waiter_loop_lag_seconds_sum\{\} [0-9.]+' 'waiter_loop_lag_seconds_count\{\} [0-9]+' \
		'waiter_loop_lag_(p50|p99|max)_seconds\{\} [0-9.]+' 'waiter_slow_laps_total\{\} 0'; do
		assert_line --regexp "^$s\$"
	done
	[ "$(echo "$output" | grep -c '^waiter_tasks_ended_total')" = 6 ]
	# Text format 0.0.4: HELP and TYPE lines; seconds, not µs.
	grep -q '^# HELP waiter_loop_lag_seconds [A-Z]' "$TESTDIR/out"
	grep -q '^# TYPE waiter_loop_lag_seconds histogram$' "$TESTDIR/out"
	grep -q '^# TYPE waiter_tasks_ended_total counter$' "$TESTDIR/out"
	grep -q '^# TYPE waiter_tasks gauge$' "$TESTDIR/out"
	! grep -q '_us' "$TESTDIR/out" || false
}

@test "the gauges and counters follow timers and tasks" {
	start_daemon
	"$WAITER" after 1h >/dev/null
	"$WAITER" after 2h >/dev/null
	"$WAITER" queue set one --parallel 1 >/dev/null
	run1=$("$WAITER" submit --queue one -- sleep 600)
	next=$("$WAITER" submit --queue one -- true)
	dep=$("$WAITER" submit --after "$run1" -- true)
	wait_task_running "$run1"
	"$WAITER" stats --prometheus >"$TESTDIR/out"
	[ "$(sample 'waiter_objects{kind="timer"}' <"$TESTDIR/out")" = 2 ]
	[ "$(sample 'waiter_objects{kind="task"}' <"$TESTDIR/out")" = 3 ]
	[ "$(sample 'waiter_tasks{state="running"}' <"$TESTDIR/out")" = 1 ]
	[ "$(sample 'waiter_tasks{state="queued"}' <"$TESTDIR/out")" = 1 ]
	[ "$(sample 'waiter_tasks{state="waiting"}' <"$TESTDIR/out")" = 1 ]

	# Each task ends in its own way; the counters say how.
	"$WAITER" kill "$run1"
	ok=$("$WAITER" submit -- true)
	bad=$("$WAITER" submit -- false)
	slow=$("$WAITER" submit --timeout 100ms -- sleep 600)
	run "$WAITER" wait "$run1" "$next" "$dep" "$ok" "$bad" "$slow"
	"$WAITER" stats --prometheus >"$TESTDIR/out"
	[ "$(sample 'waiter_tasks_ended_total{state="cancelled"}' <"$TESTDIR/out")" = 1 ]
	[ "$(sample 'waiter_tasks_ended_total{state="dependency_failed"}' <"$TESTDIR/out")" = 1 ]
	[ "$(sample 'waiter_tasks_ended_total{state="succeeded"}' <"$TESTDIR/out")" = 2 ]
	[ "$(sample 'waiter_tasks_ended_total{state="failed"}' <"$TESTDIR/out")" = 1 ]
	[ "$(sample 'waiter_tasks_ended_total{state="timed_out"}' <"$TESTDIR/out")" = 1 ]
	[ "$(sample 'waiter_tasks_ended_total{state="lost"}' <"$TESTDIR/out")" = 0 ]
	[ "$(sample 'waiter_tasks{state="running"}' <"$TESTDIR/out")" = 0 ]
	[ "$(sample 'waiter_tasks{state="queued"}' <"$TESTDIR/out")" = 0 ]
	[ "$(sample 'waiter_objects{kind="task"}' <"$TESTDIR/out")" = 0 ]
	[ "$(sample 'waiter_objects{kind="timer"}' <"$TESTDIR/out")" = 2 ]
	[ "$(sample 'waiter_finished_objects{}' <"$TESTDIR/out")" = 6 ]
	# The same numbers as `waiter stats` shows.
	[ "$(stat_value tasks_succeeded)" = 2 ]
	[ "$(stat_value tasks_timed_out)" = 1 ]
	[ "$(stat_value timers)" = 2 ]
}

@test "the loop lag histogram fills as the probe runs" {
	start_daemon
	# The probe runs ten times a second: wait for five of its laps.
	for _ in $(seq 1 $((500 * WAITER_TEST_SLOW))); do
		n=$("$WAITER" stats --prometheus | sample 'waiter_loop_lag_seconds_count{}')
		[ "$n" -ge 5 ] && break
		sleep 0.02
	done
	[ "$n" -ge 5 ]
	"$WAITER" stats --prometheus >"$TESTDIR/out"
	prom_check <"$TESTDIR/out" >/dev/null
	count=$(sample 'waiter_loop_lag_seconds_count{}' <"$TESTDIR/out")
	[ "$(sample 'waiter_loop_lag_seconds_bucket{le="+Inf"}' <"$TESTDIR/out")" = "$count" ]
	# 14 bounds, 50 µs to 1 s, and +Inf.
	[ "$(grep -c '^waiter_loop_lag_seconds_bucket' "$TESTDIR/out")" = 15 ]
	# The protocol carries the same histogram.
	run "$WAITER" --json stats
	[ "$(echo "$output" | jq -c .loop_lag_bounds_us)" = \
		'[50,100,250,500,1000,2500,5000,10000,25000,50000,100000,250000,500000,1000000]' ]
	[ "$(echo "$output" | jq '.loop_lag_buckets | length')" = 14 ]
	[ "$(echo "$output" | jq '.loop_lag_count >= '"$count")" = true ]
}

@test "stats --prometheus with --json is refused" {
	start_daemon
	run "$WAITER" --json stats --prometheus
	assert_failure 2
	assert_output --partial '--prometheus and --json are two formats; give one of them'
	run "$WAITER" stats --bogus
	assert_failure 2
	run "$WAITER" stats --prometheus extra
	assert_failure 2
	assert_output --partial "unexpected argument 'extra'"
}

@test "--metrics-listen serves /metrics with the same series" {
	start_metrics_daemon
	grep -q "msg=metrics_listening address=127.0.0.1:$PORT url=$URL/metrics" "$DAEMON_LOG"
	run curl -sS -D "$TESTDIR/headers" "$URL/metrics"
	assert_success
	printf '%s\n' "$output" >"$TESTDIR/http"
	grep -qi '^HTTP/1.1 200' "$TESTDIR/headers"
	grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$TESTDIR/headers"
	prom_check <"$TESTDIR/http" | cut -d' ' -f1 >"$TESTDIR/http.series"
	"$WAITER" stats --prometheus | prom_check | cut -d' ' -f1 >"$TESTDIR/cli.series"
	[ "$(wc -l <"$TESTDIR/http.series")" -ge 40 ]
	diff "$TESTDIR/cli.series" "$TESTDIR/http.series"
	[ "$(tcp_listeners "$DAEMON_PID")" = 1 ]
	# The endpoint reads the counters afresh at each scrape.
	"$WAITER" after 1h >/dev/null
	[ "$(curl -sS "$URL/metrics" | sample 'waiter_objects{kind="timer"}')" = 1 ]
	# HEAD answers the headers alone.
	run curl -sS -I "$URL/metrics"
	assert_success
	assert_line --regexp '^HTTP/1.1 200'
}

@test "--metrics-listen answers 404 to other paths and 405 to other methods" {
	start_metrics_daemon
	run curl -sS -o "$TESTDIR/body" -w '%{http_code}' "$URL/other"
	assert_output 404
	grep -q 'waiterd serves its metrics at /metrics' "$TESTDIR/body"
	run curl -sS -o /dev/null -w '%{http_code}' "$URL/"
	assert_output 404
	run curl -sS -o /dev/null -w '%{http_code}' "$URL/metrics/x"
	assert_output 404
	run curl -sS -D "$TESTDIR/headers" -o /dev/null -w '%{http_code}' -X POST \
		--data x "$URL/metrics"
	assert_output 405
	grep -qi '^Allow: GET, HEAD' "$TESTDIR/headers"
	run curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$URL/metrics"
	assert_output 405
	# A query string is not part of the path.
	run curl -sS -o /dev/null -w '%{http_code}' "$URL/metrics?x=1"
	assert_output 200
	"$WAITER" ping
}

@test "--metrics-listen bounds headers and bodies" {
	start_metrics_daemon
	big=$(head -c 9000 /dev/zero | tr '\0' a)
	run curl -sS -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$URL/metrics"
	assert_output 400
	head -c 4096 /dev/zero | tr '\0' a >"$TESTDIR/body"
	run curl -sS -o /dev/null -w '%{http_code}' --data-binary @"$TESTDIR/body" "$URL/metrics"
	assert_output 413
	run curl -sS -o /dev/null -w '%{http_code}' "$URL/metrics"
	assert_output 200
	"$WAITER" ping
}

@test "--metrics-listen holds at most 16 connections, then takes the next" {
	start_metrics_daemon
	# Sixteen idle connections, kept open by a helper that closes one when
	# $TESTDIR/release appears.
	/usr/bin/python3 -c '
import os, socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(16)]
open(sys.argv[2] + "/held", "w").close()
while not os.path.exists(sys.argv[2] + "/release"):
    time.sleep(0.02)
socks.pop().close()
while not os.path.exists(sys.argv[2] + "/done"):
    time.sleep(0.02)
' "$PORT" "$TESTDIR" &
	OTHER_PID=$!
	wait_for_line "$DAEMON_LOG" 'msg=metrics_busy connections=16 limit=16'
	# The seventeenth waits in the backlog: the daemon itself still serves.
	curl -sS -o "$TESTDIR/late" -w '%{http_code}' "$URL/metrics" >"$TESTDIR/late.code" &
	late=$!
	"$WAITER" ping
	kill -0 "$late"
	touch "$TESTDIR/release"
	wait "$late"
	[ "$(cat "$TESTDIR/late.code")" = 200 ]
	prom_check <"$TESTDIR/late" >/dev/null
	touch "$TESTDIR/done"
	wait "$OTHER_PID"
	OTHER_PID=
}

@test "--metrics-listen closes an idle connection after 10 seconds" {
	start_metrics_daemon
	# The server closes it (an empty read), well before the helper gives up.
	run timeout $((60 * WAITER_TEST_SLOW)) /usr/bin/python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /metr")
print("closed" if s.recv(100) == b"" else "answered")
' "$PORT"
	assert_success
	assert_output closed
	"$WAITER" ping
	run curl -sS -o /dev/null -w '%{http_code}' "$URL/metrics"
	assert_output 200
}

@test "--metrics-listen takes an IPv6 address in brackets" {
	[ -e /proc/net/if_inet6 ] || skip "no IPv6 here"
	start_daemon --metrics-listen '[::1]:0'
	wait_for_line "$DAEMON_LOG" 'msg=metrics_listening address=\[::1\]:[1-9]'
	port=$(sed -n 's/.*address=\[::1\]:\([0-9]*\) .*/\1/p' "$DAEMON_LOG")
	run curl -sS -o /dev/null -w '%{http_code}' "http://[::1]:$port/metrics"
	assert_output 200
}

@test "--metrics-listen refuses what is not a numeric ADDRESS:PORT" {
	for bad in localhost:9100 127.0.0.1 127.0.0.1: :9100 127.0.0.1:65536 \
		127.0.0.1:-1 127.0.0.1:9x '::1:9100' '[::1]' '[127.0.0.1]:9100' \
		'1.2.3:9100' ''; do
		run $WAITERD_WRAPPER "$WAITERD" -S "$TESTDIR/w.sock" --metrics-listen "$bad"
		assert_failure 2
		assert_output --partial "--metrics-listen: '$bad' is not ADDRESS:PORT with a numeric address"
	done
	[ ! -e "$TESTDIR/w.sock" ]
}

@test "--metrics-listen on a port in use refuses to start" {
	start_metrics_daemon
	# In the foreground: the log line says why, and no socket is left.
	run timeout 30 $WAITERD_WRAPPER "$WAITERD" -S "$TESTDIR/b.sock" \
		--metrics-listen "127.0.0.1:$PORT"
	assert_failure 1
	assert_output --partial "--metrics-listen 127.0.0.1:$PORT: cannot listen there: Address already in use"
	[ ! -e "$TESTDIR/b.sock" ]
	# --daemonize: the parent reports the same sentence.
	run timeout 30 $WAITERD_WRAPPER "$WAITERD" -S "$TESTDIR/c.sock" --daemonize \
		--log-file "$TESTDIR/c.log" --metrics-listen "127.0.0.1:$PORT"
	assert_failure 1
	assert_output --partial "waiterd: --metrics-listen 127.0.0.1:$PORT: cannot listen there: Address already in use"
	[ ! -e "$TESTDIR/c.sock" ]
	# The first daemon is unharmed.
	run curl -sS -o /dev/null -w '%{http_code}' "$URL/metrics"
	assert_output 200
}

@test "without --metrics-listen nothing listens for HTTP" {
	start_daemon
	run grep -c msg=metrics_listening "$DAEMON_LOG"
	assert_output 0
	[ "$(tcp_listeners "$DAEMON_PID")" = 0 ]
}
