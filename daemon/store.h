/*
 * store.h - the durable state (issue 8): one SQLite database in WAL mode,
 * STATE_DIR/state.db, written only by one writer thread with group commit.
 *
 * The loop never waits for the disk (DESIGN 4.1, rule 1). It hands
 * records over with store_put(), store_delete() and store_meta_set(),
 * which only take a mutex and keep the latest record per key; the writer
 * thread commits whatever has piled up in one transaction, then another,
 * so the more the loop hands over, the more each commit carries. A
 * request that must be durable before it is answered asks store_after()
 * for a callback on the loop once everything handed over so far is
 * committed (ok) or once a commit of it failed (not ok: the disk is full,
 * say). Failed records stay pending and are retried with backoff, so a
 * record is lost only if the caller withdraws it (deletes it).
 *
 * Keys: objects by id (with a kind and an opaque record, the caller's
 * encoding), meta values by a small integer key. Retained events are not
 * keyed: each is a row of its own, kept in seq order (store_event_put).
 * Reading (store_each, store_event_each, store_meta_get) is for start-up
 * only, before store_start().
 *
 * A file that is not a waiter state database, is corrupt, or has a newer
 * format is refused by store_open() with a sentence, and left untouched.
 */
#ifndef WAITERD_STORE_H
#define WAITERD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* The format this daemon writes and reads (PRAGMA user_version). */
#define STORE_FORMAT 1

enum store_sync {
	STORE_SYNC_FULL,        /* fsync at every commit: survives power loss */
	STORE_SYNC_NORMAL       /* survives a crash of waiterd, not of the host */
};

/* Open (or create) DIR/state.db; DIR is created 0700 if missing. 0, or -1
 * with *why set to a malloc'd sentence for the user. */
int store_open(struct event_base *base, const char *dir, enum store_sync sync,
    char **why);
/* The path of the database file (for messages), or NULL if not open. */
const char *store_path(void);
bool store_is_open(void);

/* Start-up reading, in ascending id order. Stops early and returns the
 * callback's non-zero value; -1 with *why on a read error. */
typedef int store_each_fn(uint64_t id, uint32_t kind, const void *rec, size_t len,
    void *arg);
int store_each(store_each_fn *fn, void *arg, char **why);
/* A meta value, or dflt when it was never set. */
uint64_t store_meta_get(uint32_t key, uint64_t dflt);

/* Start-up reading of the retained events, in ascending seq order; as
 * store_each. msg is the packed ServerMessage handed over. */
typedef int store_event_fn(uint64_t seq, uint64_t object_id, uint32_t kind,
    const void *msg, size_t len, void *arg);
int store_event_each(store_event_fn *fn, void *arg, char **why);

/* Before store_start(): commit what was handed over, on this thread.
 * 0, or -1 with *why set. */
int store_commit_now(char **why);
/* Start the writer thread; after this, no reading. */
void store_start(void);

/* Hand records over (loop thread). The latest one per key wins. */
void store_put(uint64_t id, uint32_t kind, const void *rec, size_t len);
void store_delete(uint64_t id);
void store_meta_set(uint32_t key, uint64_t value);
/* Hand over a published event (loop thread), appended after the others,
 * and the oldest seq the ring still holds: the commit deletes the rows
 * below keep_from, and pending events below it are dropped unwritten. So
 * however far the loop runs ahead of the writer, the events pending never
 * outgrow the ring (--retain-events, --retain-bytes), nor does the batch
 * being written. */
void store_event_put(uint64_t seq, uint64_t object_id, uint32_t kind,
    const void *msg, size_t len, uint64_t keep_from);

/* Call fn(arg, ok) on the loop once everything handed over before this
 * call (records and events) is committed (ok) or a commit holding it failed (!ok). */
void store_after(void (*fn)(void *arg, bool ok), void *arg);

/*
 * Counters that must never repeat across restarts (object ids, event
 * seqs) without a write per value: the meta value `key` holds the end of
 * a block of STORE_BLOCK values this run may use. A start reserves a block
 * and commits it before serving; a run half through its block reserves
 * the next, long before it can reach the end.
 */
#define STORE_BLOCK (UINT64_C(1) << 20)
struct store_counter {
	uint32_t key;
	uint64_t reserved;      /* values below this are this run's */
	uint64_t durable;       /* and below this, committed as such */
};
/* At start-up: the first value to use, at least floor. */
uint64_t store_counter_start(struct store_counter *, uint64_t floor);
void store_counter_extend(struct store_counter *);
/* Whether value is covered by a committed reservation (always true
 * without a store): if not, a crash now could give it out again. */
static inline bool
store_counter_safe(const struct store_counter *sc, uint64_t value)
{
	return sc->reserved == 0 || value < sc->durable;
}
/* value is about to be used: reserve ahead when needed. */
static inline void
store_counter_use(struct store_counter *sc, uint64_t value)
{
	if (sc->reserved != 0 && value + STORE_BLOCK / 2 >= sc->reserved)
		store_counter_extend(sc);
}

/* Shutdown: wait (at most max_ms) for what was handed over to be
 * committed, and run the store_after() callbacks it answers. */
void store_drain(unsigned max_ms);

struct store_stats {
	uint64_t commits;       /* transactions committed */
	uint64_t records;       /* records written by them */
	uint64_t failures;      /* commits that failed */
	uint64_t pending;       /* records and events not yet committed */
	uint64_t event_bytes;   /* bytes of the events among them */
};
void store_stats(struct store_stats *st);

/* Commit what is pending (one try), stop the writer and close. Callbacks
 * still waiting are called, with ok as that commit went. */
void store_close(void);

#endif
