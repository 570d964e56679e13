/*
 * prometheus.c - a StatsReply in the Prometheus text exposition format
 * (version 0.0.4), written once for both its readers: `waiter stats
 * --prometheus` and waiterd's --metrics-listen endpoint. doc/metrics.md
 * describes every series.
 *
 * Names carry the waiter_ prefix, counters end in _total, and durations are
 * seconds. The process_* series keep the names every Prometheus client
 * library gives them, so dashboards made for those work unchanged.
 */
#include "config.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>

#include "waiter.h"

typedef Waiter__V1__StatsReply StatsReply;

/* How a field's value is shown. */
enum unit {
	UNIT_COUNT,     /* uint64 as it is */
	UNIT_SECONDS,   /* uint64 µs as seconds */
	UNIT_INSTANT    /* int64 µs since the epoch as seconds */
};

/* One sample of a family: its labels (NULL: none) and its field. */
struct sample {
	const char *labels;
	size_t field;
};

/* One metric family, as a table row: HELP, TYPE, then its samples. */
struct family {
	const char *name;
	const char *type;
	const char *help;
	enum unit unit;
	struct sample samples[8];
};

#define F(field) offsetof(StatsReply, field)

static const struct family families[] = {
	{ "process_start_time_seconds", "gauge",
	  "When the daemon started, in seconds since the Unix epoch.",
	  UNIT_INSTANT, { { NULL, F(started_us) } } },
	{ "process_cpu_seconds_total", "counter",
	  "CPU time the daemon used (not its tasks), user and system, in seconds.",
	  UNIT_SECONDS, { { NULL, F(cpu_us) } } },
	{ "process_resident_memory_bytes", "gauge",
	  "Resident memory of the daemon, in bytes.",
	  UNIT_COUNT, { { NULL, F(resident_bytes) } } },
	{ "process_open_fds", "gauge",
	  "File descriptors the daemon has open.",
	  UNIT_COUNT, { { NULL, F(open_fds) } } },
	{ "process_max_fds", "gauge",
	  "The daemon's limit on open file descriptors (RLIMIT_NOFILE).",
	  UNIT_COUNT, { { NULL, F(max_fds) } } },
	{ "waiter_uptime_seconds", "gauge",
	  "Seconds since the daemon started, on the monotonic clock.",
	  UNIT_SECONDS, { { NULL, F(uptime_us) } } },
	{ "waiter_connections", "gauge",
	  "Client connections open now.",
	  UNIT_COUNT, { { NULL, F(connections) } } },
	{ "waiter_connections_accepted_total", "counter",
	  "Client connections accepted since start.",
	  UNIT_COUNT, { { NULL, F(connections_total) } } },
	{ "waiter_connections_refused_total", "counter",
	  "Connections refused since start: peer not allowed, or --max-clients reached.",
	  UNIT_COUNT, { { NULL, F(connections_refused) } } },
	{ "waiter_subscribers", "gauge",
	  "Connections with an event subscription.",
	  UNIT_COUNT, { { NULL, F(subscribers) } } },
	{ "waiter_output_bytes", "gauge",
	  "Bytes queued to clients, not yet written.",
	  UNIT_COUNT, { { NULL, F(output_bytes) } } },
	{ "waiter_requests_total", "counter",
	  "Requests received since start.",
	  UNIT_COUNT, { { NULL, F(requests) } } },
	{ "waiter_bad_requests_total", "counter",
	  "Requests refused as malformed or out of protocol since start (each closed its connection).",
	  UNIT_COUNT, { { NULL, F(bad_requests) } } },
	{ "waiter_objects", "gauge",
	  "Active objects (not yet completed or cancelled), by kind.",
	  UNIT_COUNT, {
		{ "kind=\"timer\"", F(timers) },
		{ "kind=\"task\"", F(tasks) },
		{ "kind=\"watch\"", F(watches) } } },
	{ "waiter_finished_objects", "gauge",
	  "Ended objects kept for wait and list (--keep-finished).",
	  UNIT_COUNT, { { NULL, F(finished_objects) } } },
	{ "waiter_waits", "gauge",
	  "Wait requests pending, all connections.",
	  UNIT_COUNT, { { NULL, F(waits) } } },
	{ "waiter_kernel_watches", "gauge",
	  "inotify watches (directories) the path watches hold.",
	  UNIT_COUNT, { { NULL, F(kernel_watches) } } },
	{ "waiter_tasks", "gauge",
	  "Active tasks by state.",
	  UNIT_COUNT, {
		{ "state=\"waiting\"", F(tasks_waiting) },
		{ "state=\"queued\"", F(tasks_queued) },
		{ "state=\"running\"", F(tasks_running) } } },
	{ "waiter_tasks_ended_total", "counter",
	  "Tasks that ended since start, by final state.",
	  UNIT_COUNT, {
		{ "state=\"succeeded\"", F(tasks_succeeded) },
		{ "state=\"failed\"", F(tasks_failed) },
		{ "state=\"timed_out\"", F(tasks_timed_out) },
		{ "state=\"cancelled\"", F(tasks_cancelled) },
		{ "state=\"dependency_failed\"", F(tasks_dependency_failed) },
		{ "state=\"lost\"", F(tasks_lost) } } },
	{ "waiter_events_published_total", "counter",
	  "Events published since start.",
	  UNIT_COUNT, { { NULL, F(events_published) } } },
	{ "waiter_events_delivered_total", "counter",
	  "Events written to connections since start (one event to two clients counts twice).",
	  UNIT_COUNT, { { NULL, F(events_delivered) } } },
	{ "waiter_events_lost_total", "counter",
	  "Events connections missed because they read too slowly (--max-output).",
	  UNIT_COUNT, { { NULL, F(events_lost) } } },
	{ "waiter_last_event_seq", "gauge",
	  "The newest event's sequence number.",
	  UNIT_COUNT, { { NULL, F(last_seq) } } },
	{ "waiter_retained_events", "gauge",
	  "Events the retention ring holds for replay.",
	  UNIT_COUNT, { { NULL, F(retained_events) } } },
	{ "waiter_retained_events_limit", "gauge",
	  "Events the retention ring may hold (--retain-events).",
	  UNIT_COUNT, { { NULL, F(retain_limit) } } },
	{ "waiter_retained_bytes", "gauge",
	  "Bytes the retention ring holds.",
	  UNIT_COUNT, { { NULL, F(retained_bytes) } } },
	{ "waiter_retained_bytes_limit", "gauge",
	  "Bytes the retention ring may hold (--retain-bytes).",
	  UNIT_COUNT, { { NULL, F(retain_bytes_limit) } } },
	{ "waiter_task_output_kept_bytes", "gauge",
	  "Bytes of ended tasks' output held in memory.",
	  UNIT_COUNT, { { NULL, F(task_output_kept_bytes) } } },
	{ "waiter_task_output_kept_bytes_limit", "gauge",
	  "Bytes of ended tasks' output that may be held (--max-kept-output).",
	  UNIT_COUNT, { { NULL, F(task_output_kept_limit) } } },
	{ "waiter_task_outputs_released_total", "counter",
	  "Ended tasks whose output was let go to stay under --max-kept-output.",
	  UNIT_COUNT, { { NULL, F(task_outputs_released) } } },
	{ "waiter_loop_lag_p50_seconds", "gauge",
	  "Median loop lag over the last minute.",
	  UNIT_SECONDS, { { NULL, F(loop_lag_p50_us) } } },
	{ "waiter_loop_lag_p99_seconds", "gauge",
	  "99th percentile of the loop lag over the last minute.",
	  UNIT_SECONDS, { { NULL, F(loop_lag_p99_us) } } },
	{ "waiter_loop_lag_max_seconds", "gauge",
	  "Largest loop lag over the last minute.",
	  UNIT_SECONDS, { { NULL, F(loop_lag_max_us) } } },
	{ "waiter_slow_laps_total", "counter",
	  "Callbacks that took longer than --slow-lap since start (each is logged).",
	  UNIT_COUNT, { { NULL, F(slow_laps) } } },
};
#define N_FAMILIES (sizeof families / sizeof families[0])

/* µs as seconds, exactly: 1500000 -> "1.5", 50 -> "0.00005". */
static void
fmt_seconds(char *buf, size_t len, uint64_t us, int negative)
{
	int n = snprintf(buf, len, "%s%" PRIu64 ".%06" PRIu64, negative ? "-" : "",
	    us / 1000000, us % 1000000);

	if (n <= 0 || (size_t)n >= len)
		return;
	while (buf[n - 1] == '0')
		buf[--n] = '\0';
	if (buf[n - 1] == '.')
		buf[n - 1] = '\0';
}

static void
fmt_value(char *buf, size_t len, const StatsReply *s, size_t field, enum unit unit)
{
	const char *p = (const char *)s + field;
	uint64_t u = *(const uint64_t *)p;

	switch (unit) {
	case UNIT_COUNT:
		snprintf(buf, len, "%" PRIu64, u);
		break;
	case UNIT_SECONDS:
		fmt_seconds(buf, len, u, 0);
		break;
	case UNIT_INSTANT: {
		int64_t v = *(const int64_t *)p;

		fmt_seconds(buf, len, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, v < 0);
		break;
	}
	}
}

static void
family_head(FILE *fp, const char *name, const char *type, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format asks: backslash, quote, newline. */
static void
label_value(FILE *fp, const char *v)
{
	for (; v != NULL && *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(fp, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", fp);
		else
			fputc(*v, fp);
	}
}

static void
build_info(FILE *fp, const StatsReply *s)
{
	family_head(fp, "waiter_build_info", "gauge",
	    "Always 1; the daemon's version is in the label.");
	fputs("waiter_build_info{version=\"", fp);
	label_value(fp, s->server_version);
	fputs("\"} 1\n", fp);
}

/* The loop lag histogram: cumulative buckets by their bound, then +Inf,
 * _sum and _count. */
static void
lag_histogram(FILE *fp, const StatsReply *s)
{
	const char *name = "waiter_loop_lag_seconds";
	size_t n = s->n_loop_lag_bounds_us < s->n_loop_lag_buckets ?
	    s->n_loop_lag_bounds_us : s->n_loop_lag_buckets;
	char le[32], sum[32];

	family_head(fp, name, "histogram",
	    "How late the loop ran its probe timer, every probe since start.");
	for (size_t i = 0; i < n; i++) {
		fmt_seconds(le, sizeof le, s->loop_lag_bounds_us[i], 0);
		fprintf(fp, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, le,
		    s->loop_lag_buckets[i]);
	}
	fmt_seconds(sum, sizeof sum, s->loop_lag_sum_us, 0);
	fprintf(fp, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, s->loop_lag_count);
	fprintf(fp, "%s_sum %s\n", name, sum);
	fprintf(fp, "%s_count %" PRIu64 "\n", name, s->loop_lag_count);
}

int
waiter_stats_prometheus(FILE *fp, const Waiter__V1__StatsReply *s)
{
	char v[48];

	build_info(fp, s);
	for (size_t i = 0; i < N_FAMILIES; i++) {
		const struct family *f = &families[i];

		family_head(fp, f->name, f->type, f->help);
		for (size_t k = 0; k < 8 && (k == 0 || f->samples[k].labels != NULL); k++) {
			const struct sample *sm = &f->samples[k];

			fmt_value(v, sizeof v, s, sm->field, f->unit);
			if (sm->labels != NULL)
				fprintf(fp, "%s{%s} %s\n", f->name, sm->labels, v);
			else
				fprintf(fp, "%s %s\n", f->name, v);
		}
	}
	lag_histogram(fp, s);
	return ferror(fp) ? -1 : 0;
}
