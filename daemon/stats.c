/* stats.c - counters, the loop-lag probe, and the Stats operation. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "watch_path.h"

struct stats stats;

/* The probe asks to run every 100 ms: 600 samples cover the last minute,
 * and an idle daemon wakes only ten times a second for it. */
#define LAG_PROBE_US 100000
#define LAG_SAMPLES 600

static struct event *lag_probe;
static int64_t lag_expected;
static uint32_t lag_samples[LAG_SAMPLES];
static size_t lag_count, lag_next;

static void
stats_probe_arm(void)
{
	struct timeval tv = clock_tv(LAG_PROBE_US);

	lag_expected = clock_mono_us() + LAG_PROBE_US;
	event_add(lag_probe, &tv);
}

static void
stats_probe_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t late = clock_mono_us() - lag_expected;

	(void)fd, (void)what, (void)arg;
	if (late < 0)
		late = 0;
	if (late > UINT32_MAX)
		late = UINT32_MAX;
	lag_samples[lag_next] = (uint32_t)late;
	lag_next = (lag_next + 1) % LAG_SAMPLES;
	if (lag_count < LAG_SAMPLES)
		lag_count++;
	stats_probe_arm();
}

void
stats_init(void)
{
	memset(&stats, 0, sizeof stats);
	stats.started_wall_us = clock_wall_us();
	stats.started_mono_us = clock_mono_us();
	lag_probe = evtimer_new(ev_base, stats_probe_cb, NULL);
	if (lag_probe == NULL)
		fatalx("evtimer_new failed");
	stats_probe_arm();
}

void
stats_free(void)
{
	if (lag_probe != NULL)
		event_free(lag_probe);
	lag_probe = NULL;
}

int64_t
stats_lap_begin(void)
{
	return clock_mono_us();
}

void
stats_lap_end(int64_t begin, const char *what, uint64_t conn_id)
{
	int64_t took = clock_mono_us() - begin;

	if (took < 0 || (uint64_t)took <= cfg.slow_lap_us)
		return;
	stats.slow_laps++;
	log_warn("slow_lap handler=%s conn=%llu took_us=%lld", what,
	    (unsigned long long)conn_id, (long long)took);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void
stats_lag(uint64_t *p50, uint64_t *p99, uint64_t *max)
{
	uint32_t sorted[LAG_SAMPLES];

	*p50 = *p99 = *max = 0;
	if (lag_count == 0)
		return;
	memcpy(sorted, lag_samples, lag_count * sizeof sorted[0]);
	qsort(sorted, lag_count, sizeof sorted[0], cmp_u32);
	*p50 = sorted[(lag_count - 1) / 2];
	*p99 = sorted[(lag_count - 1) * 99 / 100];
	*max = sorted[lag_count - 1];
}

enum op_result
stats_op_stats(struct conn *c, const Request *req, Reply *rep)
{
	Waiter__V1__StatsReply *s = arena_alloc(sizeof *s);

	(void)c, (void)req;
	waiter__v1__stats_reply__init(s);
	s->server_version = (char *)PACKAGE_VERSION;
	s->started_us = stats.started_wall_us;
	s->uptime_us = (uint64_t)(clock_mono_us() - stats.started_mono_us);
	s->pid = (uint32_t)getpid();
	s->connections = stats.connections;
	s->connections_total = stats.connections_total;
	s->connections_refused = stats.connections_refused;
	s->requests = stats.requests;
	s->bad_requests = stats.bad_requests;
	s->objects = stats.objects;
	s->timers = stats.active[WAITER__V1__OBJECT_KIND__OBJECT_KIND_TIMER];
	s->finished_objects = stats.finished_objects;
	s->events_published = stats.events_published;
	s->events_delivered = stats.events_delivered;
	s->events_lost = stats.events_lost;
	s->last_seq = events_last_seq();
	s->retained_events = events_retained();
	s->retain_limit = cfg.retain_events;
	s->retained_bytes = events_retained_bytes();
	s->retain_bytes_limit = cfg.retain_bytes;
	s->tasks = stats.active[WAITER__V1__OBJECT_KIND__OBJECT_KIND_TASK];
	s->watches = stats.active[WAITER__V1__OBJECT_KIND__OBJECT_KIND_WATCH];
	s->waits = stats.waits;
	s->kernel_watches = watch_path_kernel_watches();
	stats_lag(&s->loop_lag_p50_us, &s->loop_lag_p99_us, &s->loop_lag_max_us);
	s->slow_laps = stats.slow_laps;
	s->subscribers = stats.subscribers;
	s->output_bytes = server_output_bytes();
	rep->result_case = WAITER__V1__REPLY__RESULT_STATS;
	rep->stats = s;
	return OP_REPLY;
}
