/*
 * stats.h - the daemon's counters and the loop-lag monitor (DESIGN 4.1 rule 4).
 *
 * Counters are plain fields bumped where things happen. The lag monitor is
 * a probe timer that asks to run every LAG_PROBE_US and records how late it
 * ran; Stats reports p50, p99 and max over the last minute, and a histogram
 * of every probe since start (for --metrics-listen). Every callback
 * that may take long is bracketed by stats_lap_begin/end, and a lap over
 * --slow-lap is logged with what took it.
 */
#ifndef WAITERD_STATS_H
#define WAITERD_STATS_H

#include <stdint.h>

#include "waiterd.h"

struct stats {
	int64_t started_wall_us;
	int64_t started_mono_us;
	uint64_t connections;
	uint64_t connections_total;
	uint64_t connections_refused;
	uint64_t requests;
	uint64_t bad_requests;
	uint64_t objects;          /* active objects */
	uint64_t active[8];        /* active objects by Waiter__V1__ObjectKind */
	uint64_t waits;            /* pending Wait requests */
	uint64_t finished_objects;
	uint64_t events_published;
	uint64_t events_delivered;
	uint64_t events_lost;
	uint64_t subscribers;
	uint64_t slow_laps;
	uint64_t task_outputs_released;    /* --max-kept-output let them go */
	uint64_t tasks_ended[16];  /* ended since start, by Waiter__V1__TaskState */
};

extern struct stats stats;

void stats_init(void);
void stats_free(void);
int64_t stats_lap_begin(void);
void stats_lap_end(int64_t begin, const char *what, uint64_t conn_id);
/* Fill lag percentiles over the last minute. */
void stats_lag(uint64_t *p50, uint64_t *p99, uint64_t *max);

/* Fill s with every counter (repeated fields in the request arena): the
 * Stats operation's reply, and what --metrics-listen serves. */
void stats_fill(Waiter__V1__StatsReply *s);

op_fn stats_op_stats;

#endif
