/*
 * objects.h - the registry every source shares: one id space, names,
 * owners and lifetimes, finished objects, and the Cancel, Wait and List
 * operations that work whatever an id is.
 *
 * A source (timers.c, ...) embeds struct object first in its own struct,
 * registers it with objects_register(), and calls objects_finish() when it
 * completes. Finished objects are kept (--keep-finished, oldest dropped
 * first) so that Wait and List from another process still find them.
 */
#ifndef WAITERD_OBJECTS_H
#define WAITERD_OBJECTS_H

#include <sys/queue.h>

#include <bsd/sys/cdefs.h>
#include <bsd/sys/tree.h>

#include "state.pb-c.h"
#include "waiterd.h"

struct conn;
struct object;

/* Names: 1..MAX bytes of [A-Za-z0-9._:@/+-], safe in logs, JSON and shells. */
#define OBJECT_NAME_MAX 200

struct object_ops {
	Waiter__V1__ObjectKind kind;
	const char *name;                       /* "timer" */
	void (*stop)(struct object *);          /* release the source; idempotent */
	/* Optional: begin cancelling; true when the source will finish the
	 * object itself later (a task whose processes must exit first). */
	bool (*cancel)(struct object *, Waiter__V1__CancelReason);
	void (*describe)(struct object *, ObjectInfo *); /* detail, arena memory */
	void (*free)(struct object *);
	/* Optional: hand the object's record to the store (state_put); kinds
	 * without it are never durable. Called while it is active and once
	 * more when it ends (o->state says how). */
	void (*persist)(struct object *);
	/* Optional: whether a durable object may be left as it is when the
	 * daemon stops, to resume at the next start (default: yes). A running
	 * task may not: its processes are stopped, so it ends. */
	bool (*resumes)(struct object *);
};

struct waitreq;

struct object {
	uint64_t id;
	const struct object_ops *ops;
	char *name;
	uint8_t state;          /* Waiter__V1__ObjectState */
	uint8_t lifetime;       /* Waiter__V1__Lifetime, never DEFAULT */
	bool answering;         /* finished; its waits are still being answered */
	bool durable;           /* its record is in the state file */
	struct conn *owner;     /* creating connection while it is open */
	uint64_t last_seq;      /* seq of the event that ended it */
	int64_t created_us;
	int64_t finished_mono_us;       /* when it ended (--keep-finished-for) */
	TAILQ_ENTRY(object) owner_link;         /* owner->owned, or the finished list */
	RB_ENTRY(object) id_link;               /* the id index, ascending */
	TAILQ_HEAD(waitq, waitreq) waits;  /* pending Waits, oldest first */
};

void objects_init(void);
void objects_free_all(void);

/* Check a create request's name and the limits. 0, or -1 with rep set. */
int objects_check_create(struct conn *c, const char *name, Reply *rep);
/* The live or finished object with this name, or NULL. */
struct object *objects_find_name(const char *name);
struct object *objects_find(uint64_t id);
/* Give o an id and a place in the registry. */
void objects_register(struct object *o, const struct object_ops *ops,
    struct conn *owner, const char *name, Waiter__V1__Lifetime lifetime);
/* A state directory is in use and o has lifetime daemon: hand its record
 * to the store. Sources call it at creation and when the record changes. */
void objects_persist(struct object *o);
/* At start-up: put back an object read from the state file, active or
 * (so->state) finished. */
void objects_restore(struct object *o, const struct object_ops *ops, uint64_t id,
    const Waiter__State__V1__StoredObject *so);
/* After objects_restore: whether o is still active (else it had ended). */
bool objects_restored_active(const struct object *o);
/* When o ended, on the wall clock (for its record). */
int64_t objects_finished_wall_us(const struct object *o);
/* At start-up, after restoring: ids continue past every id ever given. */
void objects_start_ids(void);
/* The id the next object will get. */
uint64_t objects_next_id(void);
/* Answer a create request: at once without a state directory, else once
 * the object's record is durable (OP_DEFERRED), or with an error and the
 * object withdrawn if it cannot be written. */
enum op_result objects_reply_durable(struct conn *c, const Request *req,
    struct object *o, bool existed, Reply *rep, Waiter__V1__Reply__ResultCase result);
/* The same, then call then(o) once the reply is sent, if o is still active
 * and the daemon not stopping: a task starts only once its record is
 * durable, and its events follow the reply. Always OP_DEFERRED. */
enum op_result objects_reply_durable_then(struct conn *c, const Request *req,
    struct object *o, bool existed, Reply *rep, Waiter__V1__Reply__ResultCase result,
    void (*then)(struct object *));
/* o ended (COMPLETED or CANCELLED) with the event seq: answer waiters. */
void objects_finish(struct object *o, Waiter__V1__ObjectState state, uint64_t seq);
/* Stop o, publish CANCELLED with reason, finish it. */
void objects_cancel(struct object *o, Waiter__V1__CancelReason reason);
/* Fill a CreateReply for o into rep. */
enum op_result objects_reply_created(struct object *o, bool existed, Reply *rep,
    Waiter__V1__Reply__ResultCase result);

/* server.c: a connection closed. Release its waits and objects, at most
 * *budget of them (decremented); true once nothing is left. */
bool objects_conn_release(struct conn *c, size_t *budget);
/* The daemon is stopping: cancel everything, then answer pending waits. */
void objects_cancel_all(void);
void objects_shutdown(void);

op_fn objects_op_cancel;
op_fn objects_op_wait;
op_fn objects_op_list;
op_fn objects_op_get;

#endif
