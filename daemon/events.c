/* events.c - the event bus (see events.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "events.h"
#include "frame.h"
#include "log.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "store.h"

/* Ring entries scanned per pump before yielding the loop to others. */
#define PUMP_SCAN_BUDGET 4096
/* owner value of an entry every connection receives. */
#define OWNER_ALL UINT64_MAX

struct ring_entry {
	uint64_t seq;
	uint64_t object_id;
	uint64_t owner;         /* connection id, 0 none, OWNER_ALL */
	uint32_t kind;
	uint32_t len;
	uint8_t *frame;         /* header + packed ServerMessage */
};

static struct ring_entry *ring;
static size_t ring_cap;
static uint64_t last_seq;
/* The ring is bounded by bytes too (--retain-bytes): task output chunks are
 * up to 64 KiB each. Entries below floor_seq were dropped for bytes. */
static uint64_t floor_seq = 1;
static size_t ring_bytes;
static struct store_counter seq_counter = { .key = STATE_META_NEXT_SEQ };
static bool seq_unsafe_logged;
static LIST_HEAD(, conn) subscribers = LIST_HEAD_INITIALIZER(subscribers);

void
events_init(void)
{
	ring_cap = cfg.retain_events;
	ring = calloc(ring_cap, sizeof *ring);
	if (ring == NULL)
		fatal("calloc ring");
}

void
events_free(void)
{
	for (size_t i = 0; i < ring_cap; i++)
		free(ring[i].frame);
	free(ring);
	ring = NULL;
	ring_cap = ring_bytes = 0;
	last_seq = 0;
	floor_seq = 1;
}

void
events_start_seq(void)
{
	uint64_t first = store_counter_start(&seq_counter, last_seq + 1);

	last_seq = first - 1;
	floor_seq = first;      /* nothing older is in the ring */
}

uint64_t
events_last_seq(void)
{
	return last_seq;
}

static uint64_t
events_oldest(void)
{
	uint64_t by_count;

	if (last_seq == 0)
		return 0;
	by_count = last_seq >= ring_cap ? last_seq - ring_cap + 1 : 1;
	return by_count > floor_seq ? by_count : floor_seq;
}

static void
ring_drop(struct ring_entry *e)
{
	ring_bytes -= e->len;
	free(e->frame);
	e->frame = NULL;
	e->len = 0;
}

uint64_t
events_retained_bytes(void)
{
	return ring_bytes;
}

uint64_t
events_retained(void)
{
	return last_seq == 0 ? 0 : last_seq - events_oldest() + 1;
}

static uint8_t *
events_pack(Event *ev, uint32_t *len)
{
	Waiter__V1__ServerMessage sm = WAITER__V1__SERVER_MESSAGE__INIT;
	size_t n;
	uint8_t *frame;

	sm.msg_case = WAITER__V1__SERVER_MESSAGE__MSG_EVENT;
	sm.event = ev;
	n = waiter__v1__server_message__get_packed_size(&sm);
	frame = malloc(FRAME_HEADER_LEN + n);
	if (frame == NULL)
		fatal("malloc event");
	frame_put_header(frame, (uint32_t)n);
	waiter__v1__server_message__pack(&sm, frame + FRAME_HEADER_LEN);
	*len = (uint32_t)(FRAME_HEADER_LEN + n);
	return frame;
}

static bool
bus_matches(const struct conn *c, const struct ring_entry *e)
{
	const struct conn_bus *b = &c->bus;
	uint64_t lo = 0, hi = b->n_ids;

	if (e->owner == c->id || e->owner == OWNER_ALL)
		return true;
	if (!b->subscribed)
		return false;
	if (b->kinds != 0 && (e->kind >= 32 || !(b->kinds & (1u << e->kind))))
		return false;
	if (b->ids == NULL)
		return true;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (b->ids[mid] == e->object_id)
			return true;
		if (b->ids[mid] < e->object_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Deliver e to c now, or mark c behind if its output is full. */
static void
bus_offer(struct conn *c, const struct ring_entry *e)
{
	if (c->closing != CONN_OPEN || c->bus.behind || !bus_matches(c, e))
		return;
	if (conn_output_len(c) >= cfg.max_output) {
		c->bus.behind = true;
		c->bus.cursor = e->seq - 1;
		return;
	}
	conn_send_frame(c, e->frame, e->len);
	stats.events_delivered++;
}

static struct ring_entry *
events_store(Event *ev, uint64_t owner)
{
	struct ring_entry *e;

	store_counter_use(&seq_counter, last_seq + 1);
	if (!store_counter_safe(&seq_counter, last_seq + 1) && !seq_unsafe_logged) {
		/* Events cannot wait for the disk: say it, once. */
		log_warn("seq_not_durable seq=%llu: the state file cannot be written; "
		    "after a crash now, seqs could repeat", (unsigned long long)last_seq + 1);
		seq_unsafe_logged = true;
	}
	ev->seq = ++last_seq;
	ev->time_us = clock_wall_us();
	e = &ring[ev->seq % ring_cap];
	ring_drop(e);
	e->seq = ev->seq;
	e->object_id = ev->object_id;
	e->owner = owner;
	e->kind = (uint32_t)ev->kind;
	e->frame = events_pack(ev, &e->len);
	ring_bytes += e->len;
	stats.events_published++;
	/* Over the byte budget: forget the oldest, never the newest. */
	if (floor_seq < events_oldest())
		floor_seq = events_oldest();
	while (ring_bytes > cfg.retain_bytes && floor_seq < ev->seq)
		ring_drop(&ring[floor_seq++ % ring_cap]);
	return e;
}

uint64_t
events_publish(Event *ev, struct conn *owner)
{
	struct ring_entry *e = events_store(ev, owner ? owner->id : 0);
	struct conn *c;

	LIST_FOREACH(c, &subscribers, bus.sub_link)
		bus_offer(c, e);
	if (owner != NULL && !owner->bus.subscribed)
		bus_offer(owner, e);
	return e->seq;
}

static void
bus_offer_cb(struct conn *c, void *arg)
{
	bus_offer(c, arg);
}

uint64_t
events_broadcast(Event *ev)
{
	struct ring_entry *e = events_store(ev, OWNER_ALL);

	server_foreach_conn(bus_offer_cb, e);
	return e->seq;
}

Waiter__V1__ServerMessage *
events_lookup(uint64_t seq)
{
	struct ring_entry *e;

	if (seq == 0 || seq < events_oldest() || seq > last_seq)
		return NULL;
	e = &ring[seq % ring_cap];
	return waiter__v1__server_message__unpack(NULL, e->len - FRAME_HEADER_LEN,
	    e->frame + FRAME_HEADER_LEN);
}

/* A marker: per connection, seq 0, never retained. */
static void
bus_send_marker(struct conn *c, Waiter__V1__EventKind kind, uint64_t from,
    uint64_t to)
{
	Waiter__V1__ServerMessage sm = WAITER__V1__SERVER_MESSAGE__INIT;
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__EventsLost lost = WAITER__V1__EVENTS_LOST__INIT;

	ev.kind = kind;
	ev.time_us = clock_wall_us();
	if (kind == WAITER__V1__EVENT_KIND__EVENT_KIND_EVENTS_LOST) {
		lost.from_seq = from;
		lost.to_seq = to;
		ev.body_case = WAITER__V1__EVENT__BODY_EVENTS_LOST;
		ev.events_lost = &lost;
	}
	sm.msg_case = WAITER__V1__SERVER_MESSAGE__MSG_EVENT;
	sm.event = &ev;
	conn_send_message(c, &sm.base);
}

void
events_pump(struct conn *c)
{
	struct conn_bus *b = &c->bus;
	size_t scanned = 0;

	while (b->behind && c->closing == CONN_OPEN) {
		uint64_t next = b->cursor + 1, oldest = events_oldest();
		struct ring_entry *e;

		if (conn_output_len(c) >= cfg.max_output)
			return;         /* still full: the next drain resumes */
		if (++scanned > PUMP_SCAN_BUDGET) {
			conn_kick(c);   /* be fair: continue on a later lap */
			return;
		}
		if (b->replaying && b->cursor >= b->replay_to) {
			b->replaying = false;
			bus_send_marker(c, WAITER__V1__EVENT_KIND__EVENT_KIND_REPLAY_DONE, 0, 0);
			continue;
		}
		if (next > last_seq) {
			b->behind = false;
			return;
		}
		if (next < oldest) {
			stats.events_lost += oldest - next;
			bus_send_marker(c, WAITER__V1__EVENT_KIND__EVENT_KIND_EVENTS_LOST, next,
			    oldest - 1);
			b->cursor = oldest - 1;
			continue;
		}
		e = &ring[next % ring_cap];
		if (bus_matches(c, e)) {
			conn_send_frame(c, e->frame, e->len);
			stats.events_delivered++;
		}
		b->cursor = next;
	}
}

static void
bus_unsubscribe(struct conn *c)
{
	if (c->bus.subscribed) {
		LIST_REMOVE(c, bus.sub_link);
		stats.subscribers--;
	}
	c->bus.subscribed = false;
	c->bus.replaying = false;
	free(c->bus.ids);
	c->bus.ids = NULL;
	c->bus.n_ids = 0;
	c->bus.kinds = 0;
}

void
events_conn_closed(struct conn *c)
{
	bus_unsubscribe(c);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

enum op_result
events_op_subscribe(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__Subscribe *s = req->subscribe;
	Waiter__V1__SubscribeReply *r;
	uint32_t kinds = 0;

	if (s->n_ids > EVENTS_MAX_FILTER_IDS)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "a subscription may name at most %d ids, not %zu",
		    EVENTS_MAX_FILTER_IDS, s->n_ids);
	for (size_t i = 0; i < s->n_kinds; i++) {
		if (s->kinds[i] <= 0 || s->kinds[i] >= 32 ||
		    !protobuf_c_enum_descriptor_get_value(
		    &waiter__v1__event_kind__descriptor, s->kinds[i]))
			return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			    "unknown event kind %d", s->kinds[i]);
		kinds |= 1u << s->kinds[i];
	}
	bus_unsubscribe(c);
	c->bus.kinds = kinds;
	if (s->n_ids > 0) {
		c->bus.ids = malloc(s->n_ids * sizeof *c->bus.ids);
		if (c->bus.ids == NULL)
			fatal("malloc");
		memcpy(c->bus.ids, s->ids, s->n_ids * sizeof *c->bus.ids);
		qsort(c->bus.ids, s->n_ids, sizeof *c->bus.ids, cmp_u64);
		c->bus.n_ids = s->n_ids;
	}
	c->bus.subscribed = true;
	LIST_INSERT_HEAD(&subscribers, c, bus.sub_link);
	stats.subscribers++;

	if (s->has_since) {
		/* Replay is catching up from since_seq: the same path as a
		 * slow subscriber, ending with a REPLAY_DONE marker. */
		c->bus.behind = true;
		c->bus.cursor = s->since_seq < last_seq ? s->since_seq : last_seq;
		c->bus.replaying = true;
		c->bus.replay_to = last_seq;
		conn_kick(c);
	}
	r = arena_alloc(sizeof *r);
	waiter__v1__subscribe_reply__init(r);
	r->last_seq = last_seq;
	r->oldest_seq = events_oldest();
	rep->result_case = WAITER__V1__REPLY__RESULT_SUBSCRIBE;
	rep->subscribe = r;
	return OP_REPLY;
}

enum op_result
events_op_unsubscribe(struct conn *c, const Request *req, Reply *rep)
{
	static Waiter__V1__Empty empty = WAITER__V1__EMPTY__INIT;

	(void)req;
	bus_unsubscribe(c);
	rep->result_case = WAITER__V1__REPLY__RESULT_UNSUBSCRIBE;
	rep->unsubscribe = &empty;
	return OP_REPLY;
}
