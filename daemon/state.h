/*
 * state.h - what survives a restart (issue 8; doc/durability.md): opening
 * the state directory at start-up, restoring its objects kind by kind and
 * the counters that never repeat, and the records each kind stores.
 *
 * daemon/store.c does the writing (a writer thread, group commit); this
 * file decides what is written: one waiter.state.v1.StoredObject per
 * object of lifetime daemon (proto/state.proto).
 */
#ifndef WAITERD_STATE_H
#define WAITERD_STATE_H

#include "state.pb-c.h"

struct object;

/* Meta keys of the state file (store_meta_get/set). */
enum {
	STATE_META_NEXT_ID = 1,         /* end of the id block in use */
	STATE_META_NEXT_SEQ = 2,        /* end of the seq block in use */
	STATE_META_INSTANCE = 3         /* the id space (HelloReply.instance) */
};

/* With --state-dir: open it, restore every object and the counters, and
 * start the writer. 0, or -1 with *why (malloc'd) when the state cannot be
 * used (corrupt, newer, unwritable, in use). Without: nothing, 0. */
int state_open(char **why);
/* Shutdown: answer the creates waiting for their records (bounded). */
void state_drain(void);
void state_close(void);

/* HelloReply.instance: the state file's, or random for this run. */
uint64_t state_instance(void);

/* Records that are not objects live at ids no object reaches (ids are
 * handed out one by one from 1), with kinds no ObjectKind has. */
#define STATE_QUEUE_ID (UINT64_C(1) << 62)      /* + the queue's slot */
#define STATE_KIND_QUEUE 100

/* Fill so's common fields from o, pack it and hand it to the store as o's
 * record. */
void state_put(struct object *o, Waiter__State__V1__StoredObject *so);
/* Pack so and hand it to the store under id and kind. */
void state_put_record(uint64_t id, uint32_t kind, Waiter__State__V1__StoredObject *so);

#endif
