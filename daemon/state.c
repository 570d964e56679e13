/* state.c - what survives a restart (see state.h). */
#include "config.h"

#include <stdlib.h>
#include <sys/random.h>

#include "events.h"
#include "log.h"
#include "objects.h"
#include "state.h"
#include "store.h"
#include "tasks.h"
#include "timers.h"
#include "watch_endpoint.h"
#include "watch_path.h"
#include "watch_proc.h"

/* Creates still waiting for their records at shutdown get this long. */
#define DRAIN_MS 5000

static uint64_t instance;

static uint64_t
random_instance(void)
{
	uint64_t v = 0;

	while (v == 0)
		if (getrandom(&v, sizeof v, 0) != sizeof v)
			fatal("getrandom");
	return v;
}

uint64_t
state_instance(void)
{
	if (instance == 0)
		instance = random_instance();
	return instance;
}

/* One record of the state file: give it back to its kind. */
static int
restore_one(uint64_t id, uint32_t kind, const void *rec, size_t len, void *arg)
{
	Waiter__State__V1__StoredObject *so;
	unsigned *n = arg;

	so = waiter__state__v1__stored_object__unpack(NULL, len, rec);
	if (so == NULL) {
		log_warn("state_record_unreadable id=%llu kind=%u bytes=%zu: skipped",
		    (unsigned long long)id, kind, len);
		return 0;
	}
	switch (so->kind_case) {
	case WAITER__STATE__V1__STORED_OBJECT__KIND_TIMER:
		timers_restore(id, so);
		n[0]++;
		break;
	case WAITER__STATE__V1__STORED_OBJECT__KIND_TASK:
		tasks_restore(id, so);
		n[1]++;
		break;
	case WAITER__STATE__V1__STORED_OBJECT__KIND_QUEUE:
		tasks_restore_queue(id, so);
		break;
	case WAITER__STATE__V1__STORED_OBJECT__KIND_PATH_WATCH:
		watch_path_restore(id, so);
		n[2]++;
		break;
	case WAITER__STATE__V1__STORED_OBJECT__KIND_PROC_WATCH:
		watch_proc_restore(id, so);
		n[2]++;
		break;
	case WAITER__STATE__V1__STORED_OBJECT__KIND_ENDPOINT_WATCH:
		watch_endpoint_restore(id, so);
		n[2]++;
		break;
	default:
		log_warn("state_record_unknown id=%llu kind=%u: skipped",
		    (unsigned long long)id, kind);
		break;
	}
	waiter__state__v1__stored_object__free_unpacked(so, NULL);
	return 0;
}

int
state_open(char **why)
{
	unsigned n[3] = { 0, 0, 0 };     /* timers, tasks, watches */

	*why = NULL;
	if (cfg.state_dir == NULL)
		return 0;
	if (store_open(ev_base, cfg.state_dir, cfg.state_sync_full ? STORE_SYNC_FULL :
	    STORE_SYNC_NORMAL, why) < 0 || store_each(restore_one, n, why) < 0)
		return -1;
	/* The id space is the state file's, kept across restarts. */
	if ((instance = store_meta_get(STATE_META_INSTANCE, 0)) == 0) {
		instance = random_instance();
		store_meta_set(STATE_META_INSTANCE, instance);
	}
	objects_start_ids();
	if (events_restore(why) < 0)
		return -1;
	events_start_seq();
	/* Now that events can be published: lost tasks end, the rest queue. */
	tasks_resume();
	/* The counters' first blocks are durable before anyone sees them. */
	if (store_commit_now(why) < 0)
		return -1;
	store_start();
	log_info("state_open path=%s timers=%u tasks=%u watches=%u next_seq=%llu",
	    store_path(), n[0], n[1], n[2], (unsigned long long)events_last_seq() + 1);
	return 0;
}

void
state_drain(void)
{
	store_drain(DRAIN_MS);
}

void
state_close(void)
{
	if (!store_is_open())
		return;
	/* A clean stop: the next start continues right after the last id and
	 * seq given, not after the reserved blocks (store_counter). */
	store_meta_set(STATE_META_NEXT_ID, objects_next_id());
	store_meta_set(STATE_META_NEXT_SEQ, events_last_seq() + 1);
	store_close();
}

void
state_put(struct object *o, Waiter__State__V1__StoredObject *so)
{

	so->name = o->name != NULL ? o->name : (char *)"";
	so->created_us = o->created_us;
	if (o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE) {
		so->state = o->state;
		so->last_seq = o->last_seq;
		so->finished_us = objects_finished_wall_us(o);
	}
	state_put_record(o->id, (uint32_t)o->ops->kind, so);
}

void
state_put_record(uint64_t id, uint32_t kind, Waiter__State__V1__StoredObject *so)
{
	uint8_t buf[512], *p = buf;
	size_t len = waiter__state__v1__stored_object__get_packed_size(so);


	if (len > sizeof buf && (p = malloc(len)) == NULL)
		fatal("malloc");
	waiter__state__v1__stored_object__pack(so, p);
	store_put(id, kind, p, len);
	if (p != buf)
		free(p);
}
