/* timers.c - the timer source (see timers.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <event2/event_struct.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "objects.h"
#include "server.h"
#include "stats.h"
#include "timers.h"

struct timer {
	struct object obj;
	struct event ev;
	int64_t deadline;       /* next fire: wall clock if wall, else monotonic */
	int64_t wall_offset;    /* wall - monotonic when created (reports) */
	uint64_t every_us;      /* period, 0 for one-shot */
	uint64_t count;         /* fires to do, 0 = unlimited */
	uint64_t fire_count;
	bool wall;              /* deadline is on the wall clock (at) */
	bool armed;
	LIST_ENTRY(timer) wall_link;
};

static LIST_HEAD(, timer) wall_timers = LIST_HEAD_INITIALIZER(wall_timers);
static int clock_fd = -1;
static struct event *clock_ev;

static void timer_fire_cb(evutil_socket_t, short, void *);

static void
timer_arm(struct timer *t)
{
	int64_t now = t->wall ? clock_wall_us() : clock_mono_us();
	struct timeval tv;

	/* libevent adds the delay to its cached time of this lap; refresh
	 * it after reading our clock so the timer can never fire early. */
	event_base_update_cache_time(ev_base);
	tv = clock_tv(t->deadline - now);
	evtimer_add(&t->ev, &tv);
	t->armed = true;
}

static void
timer_stop(struct object *o)
{
	struct timer *t = (struct timer *)o;

	if (!t->armed)
		return;
	event_del(&t->ev);
	if (t->wall)
		LIST_REMOVE(t, wall_link);
	t->armed = false;
}

static void
timer_describe(struct object *o, ObjectInfo *info)
{
	struct timer *t = (struct timer *)o;
	Waiter__V1__TimerInfo *ti = arena_alloc(sizeof *ti);

	waiter__v1__timer_info__init(ti);
	if (o->state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
		ti->next_us = t->wall ? t->deadline : t->deadline + t->wall_offset;
	ti->every_us = t->every_us;
	ti->count = t->count;
	ti->fire_count = t->fire_count;
	ti->wall_clock = t->wall;
	info->detail_case = WAITER__V1__OBJECT_INFO__DETAIL_TIMER;
	info->timer = ti;
}

static void
timer_free(struct object *o)
{
	free(o);
}

static const struct object_ops timer_ops = {
	.kind = WAITER__V1__OBJECT_KIND__OBJECT_KIND_TIMER,
	.name = "timer",
	.stop = timer_stop,
	.describe = timer_describe,
	.free = timer_free,
};

static void
timer_fire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timer *t = arg;
	int64_t begin = stats_lap_begin();
	int64_t now_wall = clock_wall_us(), now_mono = clock_mono_us();
	int64_t now = t->wall ? now_wall : now_mono;
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__TimerFired tf = WAITER__V1__TIMER_FIRED__INIT;
	uint64_t seq;

	(void)fd, (void)what;
	if (now < t->deadline) {        /* the wall clock was set back */
		timer_arm(t);
		return;
	}
	tf.scheduled_us = t->wall ? t->deadline : t->deadline + t->wall_offset;
	tf.fired_us = now_wall;
	tf.fire_count = ++t->fire_count;
	tf.last = (t->count != 0 && t->fire_count >= t->count) || t->every_us == 0;
	if (!tf.last) {
		int64_t next = t->deadline + (int64_t)t->every_us;

		if (next <= now) {      /* late by whole periods: count, skip */
			tf.missed = (uint64_t)(now - next) / t->every_us + 1;
			next += (int64_t)(tf.missed * t->every_us);
		}
		t->deadline = next;
	}
	ev.object_id = t->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_TIMER_FIRED;
	ev.body_case = WAITER__V1__EVENT__BODY_TIMER_FIRED;
	ev.timer_fired = &tf;
	t->armed = !tf.last;    /* the event is no longer pending */
	if (tf.last && t->wall)
		LIST_REMOVE(t, wall_link);
	seq = events_publish(&ev, t->obj.owner);
	if (tf.last)
		objects_finish(&t->obj, WAITER__V1__OBJECT_STATE__OBJECT_STATE_COMPLETED, seq);
	else
		timer_arm(t);
	stats_lap_end(begin, "timer", 0);
	arena_reset();
}

/* Validate a TimerCreate; 0, or -1 with rep holding the error. */
static int
timer_check(const Waiter__V1__TimerCreate *tc, int64_t now_wall, Reply *rep)
{
	const char *why = NULL;

	if (tc->after_us != 0 && tc->at_us != 0)
		why = "give after or at, not both";
	else if (tc->after_us > (uint64_t)WAITER_MAX_DURATION_US)
		why = "after is longer than the longest duration allowed (10 years)";
	else if (tc->every_us > (uint64_t)WAITER_MAX_DURATION_US)
		why = "every is longer than the longest duration allowed (10 years)";
	else if (tc->every_us != 0 && tc->every_us < TIMER_MIN_PERIOD_US)
		why = "every must be at least 1ms";
	else if (tc->at_us < 0)
		why = "at is before 1970";
	else if (tc->at_us > now_wall + WAITER_MAX_DURATION_US)
		why = "at is more than 10 years away";
	else if (tc->count > 1 && tc->every_us == 0)
		why = "count needs every: a one-shot timer fires once";
	else if (tc->lifetime < 0 || tc->lifetime > WAITER__V1__LIFETIME__LIFETIME_DAEMON)
		why = "unknown lifetime";
	if (why == NULL)
		return 0;
	op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", why);
	return -1;
}

enum op_result
timers_op_create(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__TimerCreate *tc = req->timer_create;
	int64_t now_wall = clock_wall_us(), now_mono = clock_mono_us();
	struct object *existing;
	struct timer *t;

	if (timer_check(tc, now_wall, rep) < 0)
		return OP_REPLY;
	/* An existing name answers before any limit: a retry must succeed. */
	if ((existing = objects_find_name(tc->name)) != NULL) {
		if (existing->ops != &timer_ops)
			return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_FAILED_PRECONDITION,
			    "the name %s belongs to %s %llu", tc->name,
			    existing->ops->name, (unsigned long long)existing->id);
		return objects_reply_created(existing, true, rep,
		    WAITER__V1__REPLY__RESULT_TIMER_CREATE);
	}
	if (objects_check_create(c, tc->name, rep) < 0)
		return OP_REPLY;
	t = calloc(1, sizeof *t);
	if (t == NULL)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "out of memory");
	t->every_us = tc->every_us;
	t->count = tc->every_us == 0 ? 1 : tc->count;
	t->wall_offset = now_wall - now_mono;
	if (tc->at_us != 0) {
		t->wall = true;
		t->deadline = tc->at_us;
		LIST_INSERT_HEAD(&wall_timers, t, wall_link);
	} else {
		t->deadline = now_mono + (int64_t)(tc->after_us ? tc->after_us : tc->every_us);
	}
	evtimer_assign(&t->ev, ev_base, timer_fire_cb, t);
	objects_register(&t->obj, &timer_ops, c, tc->name,
	    tc->lifetime == WAITER__V1__LIFETIME__LIFETIME_DAEMON ?
	    WAITER__V1__LIFETIME__LIFETIME_DAEMON : WAITER__V1__LIFETIME__LIFETIME_CONNECTION);
	t->obj.created_us = now_wall;   /* the instant `after` counts from */
	timer_arm(t);
	return objects_reply_created(&t->obj, false, rep,
	    WAITER__V1__REPLY__RESULT_TIMER_CREATE);
}

static void
timers_clock_arm(void)
{
	/* Year 2242, about as far as the kernel takes (it refuses values that
	 * overflow its ktime): we only want to hear when the clock is set. */
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)1 << 33 } };

	if (timerfd_settime(clock_fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET,
	    &its, NULL) < 0)
		log_warn("timerfd_settime errno=%d", errno);
}

/* The wall clock was set: re-arm every `at` timer against it. */
static void
timers_clock_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;
	struct timer *t;

	(void)what, (void)arg;
	if (read(fd, &n, sizeof n) >= 0 || errno != ECANCELED) {
		/* Not a clock change (expired, or a spurious wake-up). */
		timers_clock_arm();
		return;
	}
	log_info("clock_changed wall_timers=rearmed");
	LIST_FOREACH(t, &wall_timers, wall_link) {
		event_del(&t->ev);
		timer_arm(t);
	}
	timers_clock_arm();
}

void
timers_init(void)
{
	clock_fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (clock_fd < 0) {
		log_warn("timerfd_create errno=%d: at timers will not follow clock changes",
		    errno);
		return;
	}
	timers_clock_arm();
	clock_ev = event_new(ev_base, clock_fd, EV_READ | EV_PERSIST, timers_clock_cb, NULL);
	if (clock_ev == NULL || event_add(clock_ev, NULL) < 0)
		fatalx("cannot watch the clock");
}

void
timers_free(void)
{
	if (clock_ev != NULL)
		event_free(clock_ev);
	if (clock_fd >= 0)
		close(clock_fd);
	clock_ev = NULL;
	clock_fd = -1;
}
