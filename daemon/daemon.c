/*
 * daemon.c - the daemon's state apart from its command line: the
 * configuration and its defaults, the event base, every module's start-up
 * and teardown, and the orderly shutdown. main.c drives it for waiterd;
 * tests/fuzz/fuzz_request.c sets it up and tears it down once per input.
 */
#include "config.h"

#include <event2/event.h>

#include "clock.h"
#include "events.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "objects.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "tasks.h"
#include "timers.h"
#include "watch_endpoint.h"
#include "watch_path.h"
#include "workers.h"

struct config cfg = {
	.max_frame = FRAME_DEFAULT_MAX,
	/* Within the default fd limit this machine kind gives (20000). */
	.max_clients = 10000,
	/* A subscriber may lag this far behind before it loses events. */
	.max_output = 4 * 1024 * 1024,
	/* Enough for a reconnecting client to catch up on a busy minute. */
	.retain_events = 10000,
	/* Task output makes events large: bound the ring's memory too. */
	.retain_bytes = 16 * 1024 * 1024,
	.keep_finished = 10000,
	/* A day: long enough for tomorrow's script to collect tonight's run. */
	.keep_finished_us = UINT64_C(86400) * 1000000,
	.max_objects_per_client = 100000,
	.max_objects = 2000000,
	.slow_lap_us = 50000,
	/* Queued work costs memory, not processes: generous, but bounded. */
	.max_queued_tasks = 100000,
	.max_tasks_per_user = 100000,
	.max_watched_dirs = 100000,
	.frame_timeout_us = 30 * UINT64_C(1000000),
	.kill_grace_us = 5000000,
	/* The ended tasks' output a daemon holds in memory: 10,000 kept
	 * tasks with 1 MiB tails each would otherwise be 20 GiB. */
	.max_kept_output = 256 * 1024 * 1024,
	.state_sync_full = true,
};
struct event_base *ev_base;

static struct event *shutdown_ev, *finish_ev, *tasks_grace_ev;
static bool shutting_down;
bool daemon_stopping;
static const char *shutdown_why;
static bool finished;            /* finish_cb ran */

/* Begin the orderly exit; false if it had begun already. */
bool
daemon_shutdown(const char *why)
{
	if (shutting_down)
		return false;
	shutting_down = true;
	shutdown_why = why;
	event_active(shutdown_ev, EV_TIMEOUT, 1);
	return true;
}

/* Shutdown, second half: tell everyone, answer waits, flush, exit. */
static void
finish_cb(evutil_socket_t fd, short what, void *arg)
{
	Event ev = WAITER__V1__EVENT__INIT;

	(void)fd, (void)what, (void)arg;
	if (finished)
		return;
	finished = true;
	state_drain();
	objects_shutdown();
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN;
	events_broadcast(&ev);
	server_drain_and_exit();
	arena_reset();
}

static void
tasks_idle(void)
{
	event_active(finish_ev, EV_TIMEOUT, 1);
}

/* Shutdown, first half: stop accepting and cancel everything. Running tasks
 * get SIGTERM; while they exit (KILL after the grace) clients stay
 * connected, so followers see each TASK_DONE. */
static void
shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = clock_tv((int64_t)cfg.kill_grace_us + 1000000);

	(void)fd, (void)what, (void)arg;
	log_info("shutdown reason=%s connections=%llu objects_cancelled=%llu "
	    "tasks_running=%llu", shutdown_why, (unsigned long long)stats.connections,
	    (unsigned long long)stats.objects, (unsigned long long)tasks_running());
	daemon_stopping = true;
	server_stop_listening();
	objects_cancel_all();
	if (tasks_running() == 0) {
		finish_cb(-1, 0, NULL);
		return;
	}
	tasks_on_idle(tasks_idle);
	evtimer_add(tasks_grace_ev, &tv);       /* KILL came at the grace; bound it */
	arena_reset();
}

/* Create the event base and start every module; nothing listens yet. */
void
daemon_setup(void)
{
	struct event_config *ecfg;

	shutting_down = daemon_stopping = finished = false;
	shutdown_why = NULL;
	/* Without PRECISE_TIMER libevent reads a coarse clock that ticks every
	 * 4 ms here, and timers fire 2-3 ms late. */
	ecfg = event_config_new();
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	/* Poll for I/O and timeouts again after this many callbacks (or this
	 * long) of ordinary work: an event that re-activates itself to continue
	 * next lap (a client past its request budget) would otherwise run again
	 * before anyone else's I/O, and a due timer would wait behind a whole
	 * lap of writes to subscribers. */
	{
		struct timeval most = { 0, 200 };

		event_config_set_max_dispatch_interval(ecfg, &most, 32, EV_PRIO_WORK);
	}
	ev_base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (ev_base == NULL)
		fatalx("cannot create the event base");
	/* Two priorities: timers' deadlines first, then everything else (the
	 * default for new events). */
	if (event_base_priority_init(ev_base, EV_PRIORITIES) < 0)
		fatalx("cannot set the event base's priorities");

	stats_init();
	events_init();
	objects_init();
	timers_init();
	tasks_init();
	watch_path_init();
	server_init();
	shutdown_ev = event_new(ev_base, -1, 0, shutdown_cb, NULL);
	finish_ev = event_new(ev_base, -1, 0, finish_cb, NULL);
	tasks_grace_ev = evtimer_new(ev_base, finish_cb, NULL);
	if (shutdown_ev == NULL || finish_ev == NULL || tasks_grace_ev == NULL)
		fatalx("cannot set up the shutdown events");
}

/* Start the worker threads (daemon_setup starts none, so a daemon refused
 * at start exits with no thread to join). */
void
daemon_start(void)
{
	workers_init();
}

/* The loop has ended: free everything daemon_setup made, and the base. */
void
daemon_teardown(void)
{
	workers_free();          /* its done callbacks may still reach objects */
	metrics_free();
	server_free();
	objects_free_all();
	watch_endpoint_free();
	watch_path_free();
	tasks_free();
	timers_free();
	events_free();
	stats_free();
	event_free(shutdown_ev);
	event_free(finish_ev);
	event_free(tasks_grace_ev);
	shutdown_ev = finish_ev = tasks_grace_ev = NULL;
	event_base_free(ev_base);
	ev_base = NULL;
	arena_reset();
}
