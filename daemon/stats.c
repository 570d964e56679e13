/* stats.c - counters, the loop-lag probe, and the Stats operation. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "tasks.h"
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

/* The histogram's bucket bounds, µs: from what a quiet loop shows (tens of
 * µs) to the laps worth a page (a second); the probe's own period, 100 ms,
 * sits in the middle. */
static const uint32_t lag_bounds[] = {
	50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
	100000, 250000, 500000, 1000000
};
#define LAG_BUCKETS (sizeof lag_bounds / sizeof lag_bounds[0])
static uint64_t lag_hist[LAG_BUCKETS];  /* probes in (bound[i-1], bound[i]] */
static uint64_t lag_total, lag_sum_us;

static void
stats_lag_record(uint32_t late)
{
	size_t i = 0;

	while (i < LAG_BUCKETS && late > lag_bounds[i])
		i++;
	if (i < LAG_BUCKETS)
		lag_hist[i]++;
	lag_total++;
	lag_sum_us += late;
}

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
	stats_lag_record((uint32_t)late);
	lag_next = (lag_next + 1) % LAG_SAMPLES;
	if (lag_count < LAG_SAMPLES)
		lag_count++;
	stats_probe_arm();
}

void
stats_init(void)
{
	memset(&stats, 0, sizeof stats);
	memset(lag_hist, 0, sizeof lag_hist);
	lag_total = lag_sum_us = 0;
	lag_count = lag_next = 0;
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

/* The histogram, cumulative as Prometheus wants it. */
static void
stats_fill_lag(Waiter__V1__StatsReply *s)
{
	uint64_t sum = 0;

	s->loop_lag_bounds_us = arena_alloc(LAG_BUCKETS * sizeof *s->loop_lag_bounds_us);
	s->loop_lag_buckets = arena_alloc(LAG_BUCKETS * sizeof *s->loop_lag_buckets);
	for (size_t i = 0; i < LAG_BUCKETS; i++) {
		sum += lag_hist[i];
		s->loop_lag_bounds_us[i] = lag_bounds[i];
		s->loop_lag_buckets[i] = sum;
	}
	s->n_loop_lag_bounds_us = s->n_loop_lag_buckets = LAG_BUCKETS;
	s->loop_lag_count = lag_total;
	s->loop_lag_sum_us = lag_sum_us;
	stats_lag(&s->loop_lag_p50_us, &s->loop_lag_p99_us, &s->loop_lag_max_us);
}

/* Resident memory (from /proc/self/statm) and open descriptors (entries of
 * /proc/self/fd): procfs answers from memory, so neither blocks, and the
 * directory holds at most --max-clients and a few dozen entries. */
static void
stats_fill_process(Waiter__V1__StatsReply *s)
{
	struct rusage ru;
	struct rlimit rl;
	char buf[128];
	unsigned long long size, resident;
	ssize_t n;
	int fd;
	DIR *d;

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		s->cpu_us = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
		    (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		s->max_fds = rl.rlim_cur;
	if ((fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		if (sscanf(buf, "%llu %llu", &size, &resident) == 2)
			s->resident_bytes = resident * (uint64_t)sysconf(_SC_PAGESIZE);
	}
	if ((d = opendir("/proc/self/fd")) != NULL) {
		struct dirent *e;
		uint64_t count = 0;

		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				count++;
		closedir(d);
		s->open_fds = count > 0 ? count - 1 : 0;     /* not the one reading it */
	}
}

void
stats_fill(Waiter__V1__StatsReply *s)
{
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
	s->slow_laps = stats.slow_laps;
	s->subscribers = stats.subscribers;
	s->output_bytes = server_output_bytes();
	stats_fill_lag(s);
	tasks_count(&s->tasks_waiting, &s->tasks_queued, &s->tasks_running);
	s->task_output_kept_bytes = tasks_kept_output();
	s->task_output_kept_limit = cfg.max_kept_output;
	s->task_outputs_released = stats.task_outputs_released;
	s->tasks_succeeded = stats.tasks_ended[WAITER__V1__TASK_STATE__TASK_STATE_SUCCEEDED];
	s->tasks_failed = stats.tasks_ended[WAITER__V1__TASK_STATE__TASK_STATE_FAILED];
	s->tasks_timed_out = stats.tasks_ended[WAITER__V1__TASK_STATE__TASK_STATE_TIMED_OUT];
	s->tasks_cancelled = stats.tasks_ended[WAITER__V1__TASK_STATE__TASK_STATE_CANCELLED];
	s->tasks_dependency_failed =
	    stats.tasks_ended[WAITER__V1__TASK_STATE__TASK_STATE_DEPENDENCY_FAILED];
	s->tasks_lost = stats.tasks_ended[WAITER__V1__TASK_STATE__TASK_STATE_LOST];
	stats_fill_process(s);
}

enum op_result
stats_op_stats(struct conn *c, const Request *req, Reply *rep)
{
	Waiter__V1__StatsReply *s = arena_alloc(sizeof *s);

	(void)c, (void)req;
	stats_fill(s);
	rep->result_case = WAITER__V1__REPLY__RESULT_STATS;
	rep->stats = s;
	return OP_REPLY;
}
