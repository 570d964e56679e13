/*
 * events.h - the event bus: sequence numbers, delivery to owners and
 * subscribers, the retention ring, and per-connection backpressure.
 *
 * Every published event gets the next daemon-wide seq, is packed once into
 * a frame and kept in the retention ring (--retain-events, --retain-bytes)
 * and, with a state directory, in the state file, so the ring survives a
 * restart (events_restore). Seqs increase but may jump (after a crash,
 * to the next reserved block): a gap is no loss. It goes to the
 * connection that owns the object and to every subscriber whose filter
 * matches. A connection over its output limit is marked "behind": it gets
 * nothing more until its output drains, then catches up from the ring; if
 * the ring moved past it, it gets an EVENTS_LOST{from,to} marker first.
 * A Subscribe replay is the same mechanism, starting at since_seq.
 */
#ifndef WAITERD_EVENTS_H
#define WAITERD_EVENTS_H

#include "waiterd.h"

struct conn;

/* Most ids a subscription may filter on (sorted and searched). */
#define EVENTS_MAX_FILTER_IDS 1024

void events_init(void);
void events_free(void);
/* With a state directory, at start-up: the stored events into the ring
 * (a row that does not decode is skipped and logged). -1 with *why on a
 * read error. Then events_start_seq(). */
int events_restore(char **why);
/* With a state directory: seqs continue past every seq ever given. */
void events_start_seq(void);
uint64_t events_last_seq(void);
uint64_t events_retained(void);
uint64_t events_retained_bytes(void);

/* Assign seq and time to ev, retain and deliver it. owner may be NULL. */
uint64_t events_publish(Event *ev, struct conn *owner);
/* Same, delivered to every connection whatever it subscribed to. */
uint64_t events_broadcast(Event *ev);
/* The retained event seq as an unpacked ServerMessage, or NULL. */
Waiter__V1__ServerMessage *events_lookup(uint64_t seq);

/* server.c calls these: output drained below the low mark; closing. */
void events_pump(struct conn *c);
void events_conn_closed(struct conn *c);

op_fn events_op_subscribe;
op_fn events_op_unsubscribe;

#endif
