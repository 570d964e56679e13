/* objects.c - the shared registry of timers, watches and tasks (see objects.h). */
#include "config.h"

#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "objects.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "store.h"

/* Pending Wait requests one connection may hold: each costs memory and a
 * timer, and no script needs more. */
#define MAX_WAITS_PER_CONN 10000
/* Wait replies sent per callback when an object with many waiters ends. */
#define ANSWERS_PER_EVENT 1024
/* List pages: the default and the most one reply may carry. */
#define LIST_DEFAULT 1000
#define LIST_MAX 10000

/* A create answered once its record is durable (objects_reply_durable). */
struct ack {
	struct conn *c;         /* NULL once the connection closed */
	uint64_t req_id, obj_id;
	bool existed;
	bool cancel;            /* a Cancel's reply, not a create's */
	bool withdrawn;         /* not written: cancelled, waiting for that */
	void (*then)(struct object *);  /* once durable, after the reply */
	Waiter__V1__ObjectKind kind;
	Waiter__V1__Reply__ResultCase result;
	LIST_ENTRY(ack) conn_link;
};

struct waitreq {
	struct conn *c;
	struct object *o;
	uint64_t req_id;
	struct event *timeout;
	bool queued;            /* in `answering`, not in o->waits */
	TAILQ_ENTRY(waitreq) obj_link;
	LIST_ENTRY(waitreq) conn_link;
};

static int
cmp_id(struct object *a, struct object *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}

/* Ids in a red-black tree (libbsd's sys/tree.h): ordered, so List pages
 * start with a lower-bound lookup, and the node lives in the object. */
RB_HEAD(object_ids, object);
RB_GENERATE_INTERNAL(object_ids, object, id_link, cmp_id, __attribute__((unused)) static)

static uint64_t next_id = 1;
static struct store_counter id_counter = { .key = STATE_META_NEXT_ID };
static struct object_ids by_id = RB_INITIALIZER(&by_id);
static void *by_name;   /* tsearch: only named objects pay for it */
static TAILQ_HEAD(objlist, object) finished = TAILQ_HEAD_INITIALIZER(finished);
/* Waits of finished objects, answered ANSWERS_PER_EVENT a lap. */
static struct waitq answering = TAILQ_HEAD_INITIALIZER(answering);
static struct event *answer_ev, *expire_ev;

static void objects_answer_cb(evutil_socket_t, short, void *);
static void objects_expire_cb(evutil_socket_t, short, void *);
static void objects_evict(void);

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct object *)a)->name, ((const struct object *)b)->name);
}

void
objects_init(void)
{
	answer_ev = event_new(ev_base, -1, 0, objects_answer_cb, NULL);
	expire_ev = evtimer_new(ev_base, objects_expire_cb, NULL);
	if (answer_ev == NULL || expire_ev == NULL)
		fatalx("event_new");
}

static void
objects_destroy(struct object *o)
{
	RB_REMOVE(object_ids, &by_id, o);
	if (o->name != NULL)
		tdelete(o, &by_name, cmp_name);
	free(o->name);
	o->ops->free(o);
}

static void
waitreq_free(struct waitreq *w)
{
	if (w->queued) {
		struct waitreq *prev = TAILQ_PREV(w, waitq, obj_link);
		struct waitreq *next = TAILQ_NEXT(w, obj_link);

		/* An object's queued waits are contiguous: the last one gone
		 * lets the object be evicted again. */
		if ((prev == NULL || prev->o != w->o) && (next == NULL || next->o != w->o))
			w->o->answering = false;
		TAILQ_REMOVE(&answering, w, obj_link);
	} else
		TAILQ_REMOVE(&w->o->waits, w, obj_link);
	LIST_REMOVE(w, conn_link);
	w->c->n_waits--;
	stats.waits--;
	if (w->timeout != NULL)
		event_free(w->timeout);
	free(w);
}

void
objects_free_all(void)
{
	struct object *o;

	while (!TAILQ_EMPTY(&answering))
		waitreq_free(TAILQ_FIRST(&answering));
	if (answer_ev != NULL)
		event_free(answer_ev);
	if (expire_ev != NULL)
		event_free(expire_ev);
	answer_ev = expire_ev = NULL;
	while ((o = RB_MIN(object_ids, &by_id)) != NULL) {
		while (!TAILQ_EMPTY(&o->waits))
			waitreq_free(TAILQ_FIRST(&o->waits));
		o->ops->stop(o);
		if (o->owner != NULL)
			TAILQ_REMOVE(&o->owner->owned, o, owner_link);
		else if (o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
			TAILQ_REMOVE(&finished, o, owner_link);
		objects_destroy(o);
	}
	next_id = 1;            /* a new daemon state (fuzz_request) starts over */
}

static bool
name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > OBJECT_NAME_MAX)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._:@/+-") == n;
}

int
objects_check_create(struct conn *c, const char *name, Reply *rep)
{
	if (name != NULL && name[0] != '\0' && !name_valid(name)) {
		op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
		    "a name is 1 to %d characters of letters, digits and ._:@/+-",
		    OBJECT_NAME_MAX);
		return -1;
	}
	if (daemon_stopping) {
		op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN,
		    "the daemon is shutting down");
		return -1;
	}
	if (c->objects >= cfg.max_objects_per_client) {
		op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "this connection has %u active objects, the limit "
		    "(--max-objects-per-client)", c->objects);
		return -1;
	}
	if (!store_counter_safe(&id_counter, next_id)) {
		/* The disk has refused the ids' reservation for a while: an id
		 * given now could be given again after a crash. */
		op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "the state file %s cannot be written (see the daemon's log): new ids "
		    "would not survive a restart", store_path());
		return -1;
	}
	if (stats.objects >= cfg.max_objects) {
		op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "the daemon has %llu active objects, the limit (--max-objects)",
		    (unsigned long long)stats.objects);
		return -1;
	}
	return 0;
}

struct object *
objects_find(uint64_t id)
{
	struct object key = { .id = id };

	return RB_FIND(object_ids, &by_id, &key);
}

struct object *
objects_find_name(const char *name)
{
	struct object key = { .name = (char *)name };
	void *p;

	if (name == NULL || name[0] == '\0')
		return NULL;
	p = tfind(&key, &by_name, cmp_name);
	return p ? *(struct object **)p : NULL;
}

void
objects_register(struct object *o, const struct object_ops *ops,
    struct conn *owner, const char *name, Waiter__V1__Lifetime lifetime)
{
	store_counter_use(&id_counter, next_id);
	o->id = next_id++;
	o->ops = ops;
	o->name = (name != NULL && name[0] != '\0') ? strdup(name) : NULL;
	o->state = WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE;
	o->lifetime = (uint8_t)lifetime;
	o->created_us = clock_wall_us();
	o->owner = owner;
	TAILQ_INIT(&o->waits);
	RB_INSERT(object_ids, &by_id, o);
	if (o->name != NULL && tsearch(o, &by_name, cmp_name) == NULL)
		fatal("tsearch");
	if (owner != NULL) {
		TAILQ_INSERT_TAIL(&owner->owned, o, owner_link);
		owner->objects++;
	}
	stats.objects++;
	stats.active[ops->kind]++;
}

/* Put o on the finished list in order of ending (restored objects come in
 * id order; the list is mostly in order already, so look from its tail). */
static void
finished_insert(struct object *o)
{
	struct object *p;

	TAILQ_FOREACH_REVERSE(p, &finished, objlist, owner_link)
		if (p->finished_mono_us <= o->finished_mono_us)
			break;
	if (p == NULL)
		TAILQ_INSERT_HEAD(&finished, o, owner_link);
	else
		TAILQ_INSERT_AFTER(&finished, p, o, owner_link);
	stats.finished_objects++;
}

void
objects_restore(struct object *o, const struct object_ops *ops, uint64_t id,
    const Waiter__State__V1__StoredObject *so)
{
	const char *name = so->name;

	if (objects_find_name(name) != NULL) {
		log_warn("state_duplicate_name id=%llu name=%s: restored without it",
		    (unsigned long long)id, name);
		name = NULL;
	}
	objects_register(o, ops, NULL, name, WAITER__V1__LIFETIME__LIFETIME_DAEMON);
	RB_REMOVE(object_ids, &by_id, o);
	next_id--;
	o->id = id;
	o->created_us = so->created_us;
	o->durable = true;
	if (RB_INSERT(object_ids, &by_id, o) != NULL)
		fatalx("the state file holds object %llu twice", (unsigned long long)id);
	if (id >= next_id)
		next_id = id + 1;
	if (so->state != 0 && so->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE) {
		/* It had ended: kept as finished, for as long as it would
		 * have been had the daemon run on (--keep-finished-for). */
		int64_t now = clock_mono_us(), ago = clock_wall_us() - so->finished_us;

		o->state = (uint8_t)so->state;
		o->last_seq = so->last_seq;
		o->finished_mono_us = now - (ago > 0 ? ago : 0);
		stats.objects--;
		stats.active[ops->kind]--;
		finished_insert(o);
	}
}

bool
objects_restored_active(const struct object *o)
{
	return o->state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE;
}

uint64_t
objects_next_id(void)
{
	return next_id;
}

void
objects_start_ids(void)
{
	/* What was kept past a smaller --keep-finished goes now. */
	objects_evict();
	next_id = store_counter_start(&id_counter, next_id);
}

void
objects_persist(struct object *o)
{
	if (!store_is_open() || o->ops->persist == NULL ||
	    o->lifetime != WAITER__V1__LIFETIME__LIFETIME_DAEMON ||
	    o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
		return;
	o->durable = true;
	o->ops->persist(o);
}

/* o's record goes: it was withdrawn, or it is forgotten. */
static void
objects_unpersist(struct object *o)
{
	if (o->durable && store_is_open())
		store_delete(o->id);
	o->durable = false;
}

int64_t
objects_finished_wall_us(const struct object *o)
{
	return clock_wall_us() - (clock_mono_us() - o->finished_mono_us);
}

static ObjectInfo *
objects_describe(struct object *o)
{
	ObjectInfo *info = arena_alloc(sizeof *info);

	waiter__v1__object_info__init(info);
	info->id = o->id;
	info->kind = o->ops->kind;
	info->name = o->name ? o->name : (char *)"";
	info->state = o->state;
	info->lifetime = o->lifetime;
	info->created_us = o->created_us;
	info->owner_connection = o->owner ? o->owner->id : 0;
	o->ops->describe(o, info);
	return info;
}

enum op_result
objects_reply_created(struct object *o, bool existed, Reply *rep,
    Waiter__V1__Reply__ResultCase result)
{
	Waiter__V1__CreateReply *r = arena_alloc(sizeof *r);

	waiter__v1__create_reply__init(r);
	r->object = objects_describe(o);
	r->existed = existed;
	rep->result_case = result;
	/* Every create result is a CreateReply in the same union slot. */
	rep->timer_create = r;
	return OP_REPLY;
}

static void
ack_cb(void *arg, bool ok)
{
	struct ack *a = arg;
	struct conn *c = a->c;
	struct object *o = objects_find(a->obj_id);
	Reply rep = WAITER__V1__REPLY__INIT;

	/* A create that could not be written is withdrawn, and refused only
	 * once the withdrawal is durable too: a crash must not bring back
	 * what the client was told does not exist. */
	if (!ok && !a->cancel && !a->existed && !a->withdrawn && !daemon_stopping &&
	    o != NULL && o->state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE) {
		objects_cancel(o, WAITER__V1__CANCEL_REASON__CANCEL_REASON_UNSPECIFIED);
		objects_unpersist(o);
		a->withdrawn = true;
		store_after(ack_cb, a);
		return;
	}
	if (c == NULL) {        /* its connection closed meanwhile */
		if (ok && a->then != NULL && o != NULL && !daemon_stopping &&
		    o->state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
			a->then(o);
		free(a);
		return;
	}
	LIST_REMOVE(a, conn_link);
	c->n_acks--;
	rep.id = a->req_id;
	if (a->cancel && ok) {
		static Waiter__V1__Empty empty = WAITER__V1__EMPTY__INIT;

		rep.result_case = WAITER__V1__REPLY__RESULT_CANCEL;
		rep.cancel = &empty;
	} else if (a->cancel) {
		op_error(&rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "object %llu is cancelled, but the state file %s could not be written "
		    "yet (see the daemon's log): if the daemon restarts before it is, the "
		    "object comes back", (unsigned long long)a->obj_id, store_path());
	} else if (ok && !a->withdrawn && o != NULL) {
		objects_reply_created(o, a->existed, &rep, a->result);
	} else if (ok && !a->withdrawn) {
		/* It ended and was forgotten before its record was written:
		 * it was created all the same. */
		Waiter__V1__CreateReply *r = arena_alloc(sizeof *r);
		ObjectInfo *info = arena_alloc(sizeof *info);

		waiter__v1__create_reply__init(r);
		waiter__v1__object_info__init(info);
		info->id = a->obj_id;
		info->kind = a->kind;
		r->object = info;
		r->existed = a->existed;
		rep.result_case = a->result;
		rep.timer_create = r;
	} else {
		op_error(&rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "the state file %s could not be written (see the daemon's log): "
		    "object %llu was %s", store_path(), (unsigned long long)a->obj_id,
		    a->withdrawn ? "not created" : "not confirmed");
	}
	conn_send_reply(c, &rep);
	server_conn_settled(c);
	/* After the reply: the id reaches the client before any event. */
	if (ok && !a->withdrawn && a->then != NULL && o != NULL && !daemon_stopping &&
	    o->state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
		a->then(o);
	free(a);
	arena_reset();
}

/* Answer req once what was handed to the store so far is durable. */
static struct ack *
ack_new(struct conn *c, const Request *req, struct object *o)
{
	struct ack *a = calloc(1, sizeof *a);

	if (a == NULL)
		fatal("calloc");
	a->c = c;
	a->req_id = req->id;
	a->obj_id = o->id;
	a->kind = o->ops->kind;
	LIST_INSERT_HEAD(&c->acks, a, conn_link);
	c->n_acks++;
	store_after(ack_cb, a);
	return a;
}

enum op_result
objects_reply_durable(struct conn *c, const Request *req, struct object *o,
    bool existed, Reply *rep, Waiter__V1__Reply__ResultCase result)
{
	return objects_reply_durable_then(c, req, o, existed, rep, result, NULL);
}

enum op_result
objects_reply_durable_then(struct conn *c, const Request *req, struct object *o,
    bool existed, Reply *rep, Waiter__V1__Reply__ResultCase result,
    void (*then)(struct object *))
{
	struct ack *a;

	if (!store_is_open() || !o->durable) {
		objects_reply_created(o, existed, rep, result);
		if (then == NULL)
			return OP_REPLY;
		conn_send_reply(c, rep);
		then(o);
		return OP_DEFERRED;     /* answered above */
	}
	a = ack_new(c, req, o);
	a->existed = existed;
	a->result = result;
	a->then = then;
	return OP_DEFERRED;
}

/* Answer one Wait with o's state and the event that ended it. */
static void
wait_answer(struct conn *c, uint64_t req_id, struct object *o)
{
	Reply rep = WAITER__V1__REPLY__INIT;
	Waiter__V1__WaitReply wr = WAITER__V1__WAIT_REPLY__INIT;
	Waiter__V1__ServerMessage *last = events_lookup(o->last_seq);

	wr.object = objects_describe(o);
	if (last != NULL)
		wr.last_event = last->event;
	rep.id = req_id;
	rep.result_case = WAITER__V1__REPLY__RESULT_WAIT;
	rep.wait = &wr;
	conn_send_reply(c, &rep);
	if (last != NULL)
		waiter__v1__server_message__free_unpacked(last, NULL);
}

/* Forget the oldest finished objects past --keep-finished, and those that
 * ended longer than --keep-finished-for ago; one whose waits are still
 * being answered stays until they are. */
static void
objects_evict(void)
{
	int64_t now = clock_mono_us();
	struct object *old;

	while ((old = TAILQ_FIRST(&finished)) != NULL && !old->answering &&
	    (stats.finished_objects > cfg.keep_finished ||
	    (uint64_t)(now - old->finished_mono_us) >= cfg.keep_finished_us)) {
		TAILQ_REMOVE(&finished, old, owner_link);
		stats.finished_objects--;
		objects_unpersist(old);
		objects_destroy(old);
	}
	/* The list is in order of ending: wake when its head expires. */
	if (old != NULL && !old->answering && !evtimer_pending(expire_ev, NULL)) {
		uint64_t left = cfg.keep_finished_us - (uint64_t)(now - old->finished_mono_us);
		struct timeval tv = clock_tv(left > (uint64_t)WAITER_MAX_DURATION_US ?
		    WAITER_MAX_DURATION_US : (int64_t)left);

		evtimer_add(expire_ev, &tv);
	}
}

static void
objects_expire_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	objects_evict();
}

/* Answer the queued waits, a bounded number per lap (DESIGN 4.1 rule 2). */
static void
objects_answer_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t begin = stats_lap_begin();
	struct waitreq *w;

	(void)fd, (void)what, (void)arg;
	for (int n = 0; n < ANSWERS_PER_EVENT && (w = TAILQ_FIRST(&answering)) != NULL; n++) {
		struct object *o = w->o;
		struct conn *c = w->c;

		wait_answer(c, w->req_id, o);
		waitreq_free(w);
		server_conn_settled(c);
	}
	if (!TAILQ_EMPTY(&answering))
		event_active(answer_ev, EV_TIMEOUT, 1);
	objects_evict();
	arena_reset();
	stats_lap_end(begin, "answer_waits", 0);
}

void
objects_finish(struct object *o, Waiter__V1__ObjectState state, uint64_t seq)
{
	struct waitreq *w;

	o->ops->stop(o);
	o->state = (uint8_t)state;
	o->last_seq = seq;
	o->finished_mono_us = clock_mono_us();
	/* Its record stays, now saying how it ended, until it is forgotten. */
	if (o->durable && store_is_open())
		o->ops->persist(o);
	if (o->owner != NULL) {
		TAILQ_REMOVE(&o->owner->owned, o, owner_link);
		o->owner->objects--;
		o->owner = NULL;
	}
	stats.objects--;
	stats.active[o->ops->kind]--;
	if (!TAILQ_EMPTY(&o->waits)) {
		/* Hand the waits to the answering queue: one object may have
		 * thousands of waiters, and they are answered a lap at a time. */
		TAILQ_FOREACH(w, &o->waits, obj_link)
			w->queued = true;
		TAILQ_CONCAT(&answering, &o->waits, obj_link);
		o->answering = true;
		event_active(answer_ev, EV_TIMEOUT, 1);
	}
	TAILQ_INSERT_TAIL(&finished, o, owner_link);
	stats.finished_objects++;
	objects_evict();
}

void
objects_cancel(struct object *o, Waiter__V1__CancelReason reason)
{
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__Cancelled body = WAITER__V1__CANCELLED__INIT;
	uint64_t seq;

	if (o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
		return;
	if (o->ops->cancel != NULL && o->ops->cancel(o, reason))
		return;         /* the source publishes and finishes it */
	o->ops->stop(o);
	body.reason = reason;
	ev.object_id = o->id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_CANCELLED;
	ev.body_case = WAITER__V1__EVENT__BODY_CANCELLED;
	ev.cancelled = &body;
	seq = events_publish(&ev, o->owner);
	objects_finish(o, WAITER__V1__OBJECT_STATE__OBJECT_STATE_CANCELLED, seq);
}

bool
objects_conn_release(struct conn *c, size_t *budget)
{
	struct object *o;
	struct ack *a;

	while ((a = LIST_FIRST(&c->acks)) != NULL) {
		LIST_REMOVE(a, conn_link);
		a->c = NULL;    /* ack_cb frees it */
		c->n_acks--;
	}
	while (*budget > 0 && !LIST_EMPTY(&c->waits)) {
		waitreq_free(LIST_FIRST(&c->waits));
		(*budget)--;
	}
	while (*budget > 0 && (o = TAILQ_FIRST(&c->owned)) != NULL) {
		TAILQ_REMOVE(&c->owned, o, owner_link);
		c->objects--;
		o->owner = NULL;
		if (o->lifetime == WAITER__V1__LIFETIME__LIFETIME_CONNECTION)
			objects_cancel(o, WAITER__V1__CANCEL_REASON__CANCEL_REASON_CONNECTION_CLOSED);
		(*budget)--;
	}
	return LIST_EMPTY(&c->waits) && TAILQ_EMPTY(&c->owned);
}

static void
wait_shutdown_cb(struct conn *c, void *arg)
{
	struct waitreq *w;

	(void)arg;
	while ((w = LIST_FIRST(&c->waits)) != NULL) {
		Reply rep = WAITER__V1__REPLY__INIT;

		rep.id = w->req_id;
		op_error(&rep, WAITER__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN,
		    "the daemon is shutting down; object %llu did not complete",
		    (unsigned long long)w->o->id);
		conn_send_reply(c, &rep);
		waitreq_free(w);
	}
}

/* The daemon is stopping: what did not complete is cancelled, so followers
 * learn why (tasks end once their processes have exited), except what the
 * state file keeps. */
void
objects_cancel_all(void)
{
	struct object *o, *next;

	/* Keep every finished object from here on: eviction inside the loop
	 * could free `next`. Everything is freed at exit anyway. */
	cfg.keep_finished = SIZE_MAX;
	cfg.keep_finished_us = UINT64_MAX;
	for (o = RB_MIN(object_ids, &by_id); o != NULL; o = next) {
		next = RB_NEXT(object_ids, &by_id, o);
		if (o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
			continue;
		/* What the state file keeps is not cancelled: it resumes at the
		 * next start. Only its source stops; its waiters are told. */
		if (o->durable && (o->ops->resumes == NULL || o->ops->resumes(o)))
			o->ops->stop(o);
		else
			objects_cancel(o, WAITER__V1__CANCEL_REASON__CANCEL_REASON_DAEMON_SHUTDOWN);
	}
}

/* The last step before the daemon stops: whatever waits still pend. */
void
objects_shutdown(void)
{
	server_foreach_conn(wait_shutdown_cb, NULL);
}

static const char *
state_word(uint8_t state)
{
	return state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_CANCELLED ? "was cancelled" :
	    state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_FAILED ? "has already failed" :
	    "has already completed";
}

enum op_result
objects_op_cancel(struct conn *c, const Request *req, Reply *rep)
{
	static Waiter__V1__Empty empty = WAITER__V1__EMPTY__INIT;
	struct object *o = objects_find(req->cancel->id);
	bool was_durable;

	if (o == NULL)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
		    "no object with id %llu", (unsigned long long)req->cancel->id);
	if (o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_FAILED_PRECONDITION,
		    "%s %llu %s", o->ops->name, (unsigned long long)o->id,
		    state_word(o->state));
	was_durable = o->durable;
	objects_cancel(o, WAITER__V1__CANCEL_REASON__CANCEL_REASON_REQUESTED);
	if (was_durable && store_is_open()) {
		/* Answered once the cancel is durable: it must not come back. */
		ack_new(c, req, o)->cancel = true;
		return OP_DEFERRED;
	}
	rep->result_case = WAITER__V1__REPLY__RESULT_CANCEL;
	rep->cancel = &empty;
	return OP_REPLY;
}

static void
wait_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waitreq *w = arg;
	Reply rep = WAITER__V1__REPLY__INIT;
	struct conn *c;

	(void)fd, (void)what;
	if (w->queued) {
		/* It completed; only the answer was still in the queue. */
		wait_answer(w->c, w->req_id, w->o);
	} else {
		rep.id = w->req_id;
		op_error(&rep, WAITER__V1__ERROR_CODE__ERROR_CODE_TIMED_OUT,
		    "%s %llu did not complete within the timeout", w->o->ops->name,
		    (unsigned long long)w->o->id);
		conn_send_reply(w->c, &rep);
	}
	c = w->c;
	waitreq_free(w);
	server_conn_settled(c);
	arena_reset();
}

enum op_result
objects_op_wait(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__Wait *wq = req->wait;
	struct object *o = objects_find(wq->id);
	struct waitreq *w;

	if (o == NULL)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
		    "no object with id %llu", (unsigned long long)wq->id);
	if (o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE) {
		wait_answer(c, req->id, o);
		return OP_DEFERRED;     /* answered already */
	}
	if (wq->timeout_us > WAITER_MAX_DURATION_US)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
		    "timeout is longer than the longest duration allowed (10 years)");
	if (c->n_waits >= MAX_WAITS_PER_CONN)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "this connection has %u pending waits, the limit",
		    c->n_waits);
	w = calloc(1, sizeof *w);
	if (w == NULL)
		fatal("calloc");
	w->c = c;
	w->o = o;
	w->req_id = req->id;
	if (wq->timeout_us > 0) {
		struct timeval tv = clock_tv((int64_t)wq->timeout_us);

		w->timeout = evtimer_new(ev_base, wait_timeout_cb, w);
		if (w->timeout == NULL)
			fatal("evtimer_new");
		evtimer_add(w->timeout, &tv);
	}
	TAILQ_INSERT_TAIL(&o->waits, w, obj_link);
	LIST_INSERT_HEAD(&c->waits, w, conn_link);
	c->n_waits++;
	stats.waits++;
	return OP_DEFERRED;
}

/* The first object with an id above after_id. */
static struct object *
list_start(uint64_t after_id)
{
	struct object key = { .id = after_id + 1 };

	if (after_id == UINT64_MAX)
		return NULL;
	return RB_NFIND(object_ids, &by_id, &key);
}

enum op_result
objects_op_list(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__List *l = req->list;
	Waiter__V1__ListReply *r = arena_alloc(sizeof *r);
	size_t limit = l->limit == 0 ? LIST_DEFAULT :
	    l->limit > LIST_MAX ? LIST_MAX : l->limit;
	struct object *o;

	(void)c;
	if (l->kind != 0 && !protobuf_c_enum_descriptor_get_value(
	    &waiter__v1__object_kind__descriptor, l->kind))
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
		    "unknown object kind %d", l->kind);
	waiter__v1__list_reply__init(r);
	r->objects = arena_alloc(limit * sizeof *r->objects);
	for (o = list_start(l->after_id); o != NULL; o = RB_NEXT(object_ids, &by_id, o)) {
		if (l->kind != 0 && o->ops->kind != l->kind)
			continue;
		if (!l->finished && o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
			continue;
		if (r->n_objects == limit) {
			r->more = true;
			break;
		}
		r->objects[r->n_objects++] = objects_describe(o);
	}
	rep->result_case = WAITER__V1__REPLY__RESULT_LIST;
	rep->list = r;
	return OP_REPLY;
}

enum op_result
objects_op_get(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__Get *g = req->get;
	struct object *o = g->id != 0 ? objects_find(g->id) : objects_find_name(g->name);

	(void)c;
	if (o == NULL)
		return g->id != 0 ?
		    op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
		    "no object with id %llu", (unsigned long long)g->id) :
		    op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
		    "no object named %s", g->name);
	rep->result_case = WAITER__V1__REPLY__RESULT_GET;
	rep->get = objects_describe(o);
	return OP_REPLY;
}
