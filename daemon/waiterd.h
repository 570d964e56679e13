/*
 * waiterd.h - what every part of the daemon shares: the configuration, the
 * event base, the generated protocol types and the per-request arena.
 */
#ifndef WAITERD_H
#define WAITERD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include "waiter.pb-c.h"

/* Short names for the generated types used everywhere. */
typedef Waiter__V1__Request Request;
typedef Waiter__V1__Reply Reply;
typedef Waiter__V1__Event Event;
typedef Waiter__V1__ObjectInfo ObjectInfo;

#define MAX_ALLOW_UIDS 32

/* The longest duration or distance into the future any request may ask
 * for: ten years. Longer values are mistakes (a unit slip, a negative
 * number seen as unsigned), and refusing them keeps time arithmetic far
 * from overflow. */
#define WAITER_MAX_DURATION_US (INT64_C(3650) * 86400 * 1000000)

struct config {
	const char *socket_path;
	bool daemonize;
	const char *log_file;
	int verbose;               /* 0 info, 1 debug */
	uint32_t max_frame;        /* largest frame a client may send */
	unsigned max_clients;      /* connections served at once */
	size_t max_output;         /* per-connection output limit, bytes */
	size_t retain_events;      /* retention ring size, events */
	size_t retain_bytes;       /* and bytes */
	size_t keep_finished;      /* finished objects kept for Wait/List */
	uint64_t keep_finished_us; /* and for at most this long */
	unsigned max_objects_per_client;
	uint64_t max_objects;      /* active objects daemon-wide */
	uint64_t slow_lap_us;      /* a callback longer than this is logged */
	uid_t allow_uids[MAX_ALLOW_UIDS];
	size_t n_allow_uids;
	bool have_allow_gid;
	gid_t allow_gid;
	bool no_tasks;             /* refuse task submissions */
	bool no_pidfd;             /* watch task processes by SIGCHLD only */
	uint64_t max_watched_dirs; /* directories one connection's watches hold */
	uint64_t frame_timeout_us; /* a frame begun must be whole within this */
	uint64_t max_queued_tasks; /* tasks waiting or queued, daemon-wide */
	uint64_t max_tasks_per_user; /* tasks not yet ended, per uid */
	uint64_t kill_grace_us;    /* default TERM-to-KILL grace */
	uint64_t max_kept_output;  /* output tails of ended tasks, bytes */
	const char *state_dir;     /* durable state (state.c), or NULL */
	bool state_sync_full;      /* fsync every commit (--state-sync full) */
};

extern struct config cfg;
extern bool daemon_stopping;    /* shutdown began: nothing new is created */
extern struct event_base *ev_base;
/* Event priorities (lower runs first within a lap): a timer's deadline is
 * served before the lap's connection reads and writes; every event is
 * EV_PRIO_WORK unless it says otherwise. */
#define EV_PRIO_TIMERS 0
#define EV_PRIO_WORK 1
#define EV_PRIORITIES 2

/* Handler results: what the dispatcher does with the Reply. */
enum op_result {
	OP_REPLY,    /* send the reply */
	OP_DEFERRED, /* the handler will answer later (Wait) */
	OP_CLOSE     /* send the reply, then close the connection */
};

struct conn;
typedef enum op_result op_fn(struct conn *, const Request *, Reply *);

/* Fill rep with an Error; the message lives in the request arena. */
enum op_result op_error(Reply *rep, Waiter__V1__ErrorCode code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * The per-request arena: replies are built from pieces allocated here and
 * everything is released at once after the reply is packed.
 */
void *arena_alloc(size_t size);
char *arena_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void arena_reset(void);

/* Request the daemon's orderly exit (signal or Shutdown request); false if
 * it was under way already. */
bool daemon_shutdown(const char *why);
/* daemon.c: create the event base and start every module (nothing listens
 * yet); after the loop, free all of it. main.c and the fuzz targets share
 * these, so a state can be set up and torn down more than once. */
void daemon_setup(void);
void daemon_start(void);
void daemon_teardown(void);

#endif
