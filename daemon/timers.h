/*
 * timers.h - the timer source: after (monotonic), at (wall clock, right
 * across clock changes), every (drift-free: each deadline is the previous
 * one plus the period; periods the loop missed are counted, not bunched),
 * an optional fire count, names and lifetimes. Each fire publishes a
 * TIMER_FIRED event; the last one completes the timer.
 */
#ifndef WAITERD_TIMERS_H
#define WAITERD_TIMERS_H

#include "state.h"
#include "waiterd.h"

/* The shortest period: a faster timer would keep the loop busy for one
 * client and tell it nothing a busy loop of its own could not. */
#define TIMER_MIN_PERIOD_US 1000

void timers_init(void);
void timers_free(void);

op_fn timers_op_create;
/* At start-up: put back a timer of the state file (state.c). */
void timers_restore(uint64_t id, const Waiter__State__V1__StoredObject *so);

#endif
