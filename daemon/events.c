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

/*
 * The retention ring: the newest events in publish order, ring_n entries
 * from ring_head in a circular array of ring_cap (--retain-events). Seqs
 * increase along it but need not be consecutive: after a crash with a
 * state directory, seqs jump to the next reserved block (store_counter).
 * So an entry is found by binary search, never by seq % ring_cap.
 *
 * Whatever was published and is no longer retained has a seq at most
 * lost_upto, and every retained entry's is above it (the ring forgets its
 * oldest first): a reader whose cursor is below lost_upto lost events; a
 * seq between lost_upto and the oldest entry, or between two entries, was
 * never given and is no loss.
 */
static struct ring_entry *ring;
static size_t ring_cap, ring_head, ring_n;
static size_t ring_bytes;       /* bounded by --retain-bytes */
static uint64_t lost_upto;
static uint64_t last_seq;
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

/* The i-th retained entry, 0 the oldest. */
static struct ring_entry *
ring_at(size_t i)
{
	i += ring_head;
	return &ring[i >= ring_cap ? i - ring_cap : i];
}

static void
ring_drop_oldest(void)
{
	struct ring_entry *e = ring_at(0);

	lost_upto = e->seq;
	ring_bytes -= e->len;
	free(e->frame);
	e->frame = NULL;
	ring_head = ring_head + 1 == ring_cap ? 0 : ring_head + 1;
	ring_n--;
}

/* Append an entry (its frame is the ring's now). Past --retain-events or
 * --retain-bytes, forget the oldest, never the newest. */
static struct ring_entry *
ring_push(uint64_t seq, uint64_t object_id, uint64_t owner, uint32_t kind,
    uint8_t *frame, uint32_t len)
{
	struct ring_entry *e;

	if (ring_n == ring_cap)
		ring_drop_oldest();
	e = ring_at(ring_n++);
	e->seq = seq;
	e->object_id = object_id;
	e->owner = owner;
	e->kind = kind;
	e->frame = frame;
	e->len = len;
	ring_bytes += len;
	while (ring_bytes > cfg.retain_bytes && ring_n > 1)
		ring_drop_oldest();
	return e;
}

/* The index of the first retained entry with a seq above seq (ring_n if
 * none). */
static size_t
ring_after(uint64_t seq)
{
	size_t lo = 0, hi = ring_n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ring_at(mid)->seq <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* SubscribeReply.oldest_seq: 0 when nothing is retained (protocol.md). */
static uint64_t
events_oldest(void)
{
	return ring_n > 0 ? ring_at(0)->seq : 0;
}

void
events_free(void)
{
	while (ring_n > 0)
		ring_drop_oldest();
	free(ring);
	ring = NULL;
	ring_cap = ring_head = ring_bytes = 0;
	last_seq = lost_upto = 0;
}

void
events_start_seq(void)
{
	uint64_t first = store_counter_start(&seq_counter, last_seq + 1);

	last_seq = first - 1;
	/* Without stored events, what came before this run is not there. */
	if (ring_n == 0)
		lost_upto = last_seq;
}

/* One stored event back into the ring as it was published, owned by no
 * connection (connection ids mean nothing after a restart). */
static int
restore_one(uint64_t seq, uint64_t object_id, uint32_t kind, const void *msg,
    size_t len, void *arg)
{
	Waiter__V1__ServerMessage *sm;
	uint8_t *frame;

	(void)object_id, (void)kind, (void)arg;
	sm = waiter__v1__server_message__unpack(NULL, len, msg);
	if (sm == NULL || sm->msg_case != WAITER__V1__SERVER_MESSAGE__MSG_EVENT ||
	    sm->event->seq != seq || seq <= last_seq ||
	    len > UINT32_MAX - FRAME_HEADER_LEN) {
		/* Never silent loss: it counts as dropped, so the events
		 * before it go too, and a replay over it says EVENTS_LOST. */
		log_warn("state_event_unreadable seq=%llu bytes=%zu: skipped, with the "
		    "%zu retained before it", (unsigned long long)seq, len, ring_n);
		if (sm != NULL)
			waiter__v1__server_message__free_unpacked(sm, NULL);
		while (ring_n > 0)
			ring_drop_oldest();
		if (seq > lost_upto)
			lost_upto = seq;
		if (seq > last_seq)
			last_seq = seq;
		return 0;
	}
	if ((frame = malloc(FRAME_HEADER_LEN + len)) == NULL)
		fatal("malloc event");
	frame_put_header(frame, (uint32_t)len);
	memcpy(frame + FRAME_HEADER_LEN, msg, len);
	/* What came before the oldest stored event is not there. */
	if (ring_n == 0 && seq - 1 > lost_upto)
		lost_upto = seq - 1;
	ring_push(seq, sm->event->object_id, 0, (uint32_t)sm->event->kind, frame,
	    (uint32_t)(FRAME_HEADER_LEN + len));
	last_seq = seq;
	waiter__v1__server_message__free_unpacked(sm, NULL);
	return 0;
}

int
events_restore(char **why)
{
	if (store_event_each(restore_one, NULL, why) < 0)
		return -1;
	log_info("events_restored retained=%zu bytes=%zu oldest_seq=%llu last_seq=%llu",
	    ring_n, ring_bytes, (unsigned long long)events_oldest(),
	    (unsigned long long)last_seq);
	return 0;
}

uint64_t
events_last_seq(void)
{
	return last_seq;
}

uint64_t
events_retained_bytes(void)
{
	return ring_bytes;
}

uint64_t
events_retained(void)
{
	return ring_n;
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

/* Give ev the next seq and the time, and retain it. */
static struct ring_entry *
events_append(Event *ev, uint64_t owner)
{
	uint8_t *frame;
	uint32_t len;

	store_counter_use(&seq_counter, last_seq + 1);
	if (!store_counter_safe(&seq_counter, last_seq + 1) && !seq_unsafe_logged) {
		/* Events cannot wait for the disk: say it, once. */
		log_warn("seq_not_durable seq=%llu: the state file cannot be written; "
		    "after a crash now, seqs could repeat", (unsigned long long)last_seq + 1);
		seq_unsafe_logged = true;
	}
	ev->seq = ++last_seq;
	ev->time_us = clock_wall_us();
	frame = events_pack(ev, &len);
	stats.events_published++;
	return ring_push(ev->seq, ev->object_id, owner, (uint32_t)ev->kind, frame, len);
}

uint64_t
events_publish(Event *ev, struct conn *owner)
{
	struct ring_entry *e = events_append(ev, owner ? owner->id : 0);
	struct conn *c;

	/* The ring survives a restart: its rows go with the next commit. */
	if (store_is_open())
		store_event_put(e->seq, e->object_id, e->kind, e->frame + FRAME_HEADER_LEN,
		    e->len - FRAME_HEADER_LEN, events_oldest());
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

/* Not stored: a SHUTDOWN tells the connections of this run that it ends;
 * replayed after a restart, it would end every replay that met it. */
uint64_t
events_broadcast(Event *ev)
{
	struct ring_entry *e = events_append(ev, OWNER_ALL);

	server_foreach_conn(bus_offer_cb, e);
	return e->seq;
}

Waiter__V1__ServerMessage *
events_lookup(uint64_t seq)
{
	size_t i = ring_after(seq - 1);
	struct ring_entry *e;

	if (seq == 0 || i == ring_n || (e = ring_at(i))->seq != seq)
		return NULL;
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
	size_t scanned = 0, i = SIZE_MAX;

	/* Nothing here publishes, so the ring holds still while we pump: the
	 * next entry is searched for once, then followed by index. */
	while (b->behind && c->closing == CONN_OPEN) {
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
		if (b->cursor < lost_upto) {
			/* A replay's marker stops at its end: what was lost
			 * after comes after REPLAY_DONE, in a marker of its own. */
			uint64_t to = b->replaying && b->replay_to < lost_upto ?
			    b->replay_to : lost_upto;

			stats.events_lost += to - b->cursor;
			bus_send_marker(c, WAITER__V1__EVENT_KIND__EVENT_KIND_EVENTS_LOST,
			    b->cursor + 1, to);
			b->cursor = to;
			continue;
		}
		if (i == SIZE_MAX)
			i = ring_after(b->cursor);
		e = i < ring_n ? ring_at(i) : NULL;
		if (b->replaying && (e == NULL || e->seq > b->replay_to)) {
			/* Nothing retained up to its end: nothing lost
			 * either, the cursor is past lost_upto. */
			b->cursor = b->replay_to;
			continue;
		}
		if (e == NULL) {
			b->behind = false;
			return;
		}
		if (bus_matches(c, e)) {
			conn_send_frame(c, e->frame, e->len);
			stats.events_delivered++;
		}
		b->cursor = e->seq;
		i++;
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
