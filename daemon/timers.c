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
#include "state.h"
#include "stats.h"
#include "timers.h"

struct timer {
	struct object obj;
	int64_t deadline;       /* next fire: wall clock if wall, else monotonic */
	int64_t wall_offset;    /* wall - monotonic when created (reports) */
	uint64_t every_us;      /* period, 0 for one-shot */
	uint64_t count;         /* fires to do, 0 = unlimited */
	uint64_t fire_count;
	uint32_t slot;          /* index in its heap, NOT_QUEUED when not pending */
	bool wall;              /* deadline is on the wall clock (at) */
};

#define NOT_QUEUED UINT32_MAX
/* Timers fired per callback: a million due at once get a lap each batch,
 * not the loop (DESIGN 4.1, rule 2). */
#define FIRES_PER_LAP 1024

/*
 * Pending timers live in two binary min-heaps by deadline, one per clock,
 * each with a single libevent timer armed for its earliest deadline. A
 * timer costs its struct and one heap slot, not a libevent event each
 * (128 bytes), and a clock change re-arms one event, not every `at` timer.
 */
struct heap {
	struct timer **v;
	uint32_t n, cap;
	bool wall;
	struct event *ev;
};

static struct heap mono_heap, wall_heap = { .wall = true };
static int clock_fd = -1;
static struct event *clock_ev;

static struct heap *
heap_of(const struct timer *t)
{
	return t->wall ? &wall_heap : &mono_heap;
}

static bool
heap_less(const struct heap *h, uint32_t a, uint32_t b)
{
	return h->v[a]->deadline < h->v[b]->deadline;
}

static void
heap_swap(struct heap *h, uint32_t a, uint32_t b)
{
	struct timer *t = h->v[a];

	h->v[a] = h->v[b];
	h->v[b] = t;
	h->v[a]->slot = a;
	h->v[b]->slot = b;
}

static void
heap_up(struct heap *h, uint32_t i)
{
	while (i > 0 && heap_less(h, i, (i - 1) / 2)) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct heap *h, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && heap_less(h, l, m))
			m = l;
		if (r < h->n && heap_less(h, r, m))
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

/* Arm the heap's event for its earliest deadline (or disarm it). */
static void
heap_arm(struct heap *h)
{
	int64_t now;
	struct timeval tv;

	if (h->n == 0) {
		event_del(h->ev);
		return;
	}
	now = h->wall ? clock_wall_us() : clock_mono_us();
	/* libevent adds the delay to its cached time of this lap; refresh
	 * it after reading our clock so a timer can never fire early. */
	event_base_update_cache_time(ev_base);
	tv = clock_tv(h->v[0]->deadline - now);
	evtimer_add(h->ev, &tv);
}

static void
heap_push(struct heap *h, struct timer *t)
{
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? h->cap * 2 : 64;
		struct timer **v = realloc(h->v, cap * sizeof *v);

		if (v == NULL)
			fatal("realloc timer heap");
		h->v = v;
		h->cap = cap;
	}
	t->slot = h->n;
	h->v[h->n++] = t;
	heap_up(h, t->slot);
}

static void
heap_remove(struct heap *h, struct timer *t)
{
	uint32_t i = t->slot;

	t->slot = NOT_QUEUED;
	if (--h->n == i)
		return;
	h->v[i] = h->v[h->n];
	h->v[i]->slot = i;
	heap_up(h, i);
	heap_down(h, h->v[i]->slot);
}

/* Queue t for its deadline; re-arm when it became the earliest. */
static void
timer_arm(struct timer *t)
{
	struct heap *h = heap_of(t);

	heap_push(h, t);
	if (h->v[0] == t)
		heap_arm(h);
}

static void
timer_arm_object(struct object *o)
{
	timer_arm((struct timer *)o);
}

static void
timer_stop(struct object *o)
{
	struct timer *t = (struct timer *)o;
	struct heap *h = heap_of(t);
	bool was_first;

	if (t->slot == NOT_QUEUED)
		return;
	was_first = t->slot == 0;
	heap_remove(h, t);
	if (was_first)
		heap_arm(h);
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

/* The record of a timer: its next deadline as wall-clock time, so an
 * `after` or `every` timer keeps its schedule across a reboot too. */
static void
timer_persist(struct object *o)
{
	struct timer *t = (struct timer *)o;
	Waiter__State__V1__StoredObject so = WAITER__STATE__V1__STORED_OBJECT__INIT;
	Waiter__State__V1__StoredTimer st = WAITER__STATE__V1__STORED_TIMER__INIT;

	/* As timer_describe shows it, so a restart changes no reported time. */
	st.deadline_wall_us = t->wall ? t->deadline : t->deadline + t->wall_offset;
	st.wall = t->wall;
	st.every_us = t->every_us;
	st.count = t->count;
	st.fire_count = t->fire_count;
	so.kind_case = WAITER__STATE__V1__STORED_OBJECT__KIND_TIMER;
	so.timer = &st;
	state_put(o, &so);
}

static const struct object_ops timer_ops = {
	.kind = WAITER__V1__OBJECT_KIND__OBJECT_KIND_TIMER,
	.name = "timer",
	.stop = timer_stop,
	.describe = timer_describe,
	.free = timer_free,
	.persist = timer_persist,
};

/* Fire t (taken off its heap), due at now on its clock. */
static void
timer_fire(struct timer *t, int64_t now, int64_t now_wall)
{
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__TimerFired tf = WAITER__V1__TIMER_FIRED__INIT;
	uint64_t seq;

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
	seq = events_publish(&ev, t->obj.owner);
	if (tf.last) {
		objects_finish(&t->obj, WAITER__V1__OBJECT_STATE__OBJECT_STATE_COMPLETED, seq);
	} else {
		heap_push(heap_of(t), t);
		if (t->obj.durable)
			timer_persist(&t->obj);         /* its count and next deadline */
	}
}

/* A heap's earliest deadline came: fire what is due, a batch per lap. */
static void
heap_fire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct heap *h = arg;
	int64_t begin = stats_lap_begin();
	int64_t now_wall = clock_wall_us(), now = h->wall ? now_wall : clock_mono_us();
	int budget = FIRES_PER_LAP;

	(void)fd, (void)what;
	/* A wall timer not yet due (the clock was set back) just waits on. */
	while (h->n > 0 && h->v[0]->deadline <= now && budget-- > 0) {
		struct timer *t = h->v[0];

		heap_remove(h, t);
		timer_fire(t, now, now_wall);
		arena_reset();
	}
	heap_arm(h);    /* more due: at once, on the next lap */
	stats_lap_end(begin, "timer", 0);
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
		return objects_reply_durable(c, req, existing, true, rep,
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
	t->slot = NOT_QUEUED;
	if (tc->at_us != 0) {
		t->wall = true;
		t->deadline = tc->at_us;
	} else {
		t->deadline = now_mono + (int64_t)(tc->after_us ? tc->after_us : tc->every_us);
	}
	objects_register(&t->obj, &timer_ops, c, tc->name,
	    tc->lifetime == WAITER__V1__LIFETIME__LIFETIME_DAEMON ?
	    WAITER__V1__LIFETIME__LIFETIME_DAEMON : WAITER__V1__LIFETIME__LIFETIME_CONNECTION);
	t->obj.created_us = now_wall;   /* the instant `after` counts from */
	objects_persist(&t->obj);
	if (!t->obj.durable) {
		/* The reply goes out in this lap, before any timer fires. */
		timer_arm(t);
		return objects_reply_created(&t->obj, false, rep,
		    WAITER__V1__REPLY__RESULT_TIMER_CREATE);
	}
	/* Armed once the record is durable and the reply sent: the reply
	 * comes before the first TIMER_FIRED (a deadline passed meanwhile
	 * fires on the next lap). */
	return objects_reply_durable_then(c, req, &t->obj, false, rep,
	    WAITER__V1__REPLY__RESULT_TIMER_CREATE, timer_arm_object);
}

void
timers_restore(uint64_t id, const Waiter__State__V1__StoredObject *so)
{
	const Waiter__State__V1__StoredTimer *st = so->timer;
	int64_t now_wall = clock_wall_us(), now_mono = clock_mono_us();
	struct timer *t = calloc(1, sizeof *t);

	if (t == NULL)
		fatal("calloc");
	t->every_us = st->every_us;
	t->count = st->count;
	t->fire_count = st->fire_count;
	t->wall = st->wall;
	t->wall_offset = now_wall - now_mono;
	t->slot = NOT_QUEUED;
	/* A deadline passed while the daemon was down fires at once; an
	 * `every` timer then counts the periods it missed in that event. */
	t->deadline = t->wall ? st->deadline_wall_us : st->deadline_wall_us - t->wall_offset;
	objects_restore(&t->obj, &timer_ops, id, so);
	if (objects_restored_active(&t->obj))
		timer_arm(t);
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

/* The wall clock was set: re-arm the `at` timers' event against it. */
static void
timers_clock_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what, (void)arg;
	if (read(fd, &n, sizeof n) >= 0 || errno != ECANCELED) {
		/* Not a clock change (expired, or a spurious wake-up). */
		timers_clock_arm();
		return;
	}
	log_info("clock_changed wall_timers=%u", (unsigned)wall_heap.n);
	heap_arm(&wall_heap);
	timers_clock_arm();
}

void
timers_init(void)
{
	mono_heap.ev = evtimer_new(ev_base, heap_fire_cb, &mono_heap);
	wall_heap.ev = evtimer_new(ev_base, heap_fire_cb, &wall_heap);
	if (mono_heap.ev == NULL || wall_heap.ev == NULL)
		fatalx("cannot make the timer events");
	event_priority_set(mono_heap.ev, EV_PRIO_TIMERS);
	event_priority_set(wall_heap.ev, EV_PRIO_TIMERS);
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
	for (int i = 0; i < 2; i++) {
		struct heap *h = i ? &wall_heap : &mono_heap;

		if (h->ev != NULL)
			event_free(h->ev);
		free(h->v);
		h->ev = NULL;
		h->v = NULL;
		h->n = h->cap = 0;
	}
	if (clock_ev != NULL)
		event_free(clock_ev);
	if (clock_fd >= 0)
		close(clock_fd);
	clock_ev = NULL;
	clock_fd = -1;
}
