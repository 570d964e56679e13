/* cmd_object.c - cancel, wait, events: commands that work whatever an id is. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char *
kind_name(const Waiter__V1__ObjectInfo *o)
{
	return out_enum(&waiter__v1__object_kind__descriptor, o->kind);
}

/* A watch's failure, from the event that ended it: 124 for an endpoint
 * that never came up, else 1; -1 if ev ended nothing that way. */
static int
watch_failure(const Event *ev)
{
	if (ev == NULL)
		return -1;
	if (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_WATCH_TIMED_OUT)
		return cli_fail(EXIT_TIMEOUT, "watch %llu timed out after %llu attempts%s%s",
		    (unsigned long long)ev->object_id,
		    (unsigned long long)ev->watch_timed_out->attempts,
		    ev->watch_timed_out->last_error[0] ? "; the last one: " : "",
		    ev->watch_timed_out->last_error);
	if (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_WATCH_ENDED)
		return cli_fail(EXIT_ERROR, "watch %llu ended: %s",
		    (unsigned long long)ev->object_id, ev->watch_ended->message);
	return -1;
}

/* Exit status for an object that ended: 0 completed, 1 otherwise (124 for
 * a watch that timed out). */
static int
ended_status(const Waiter__V1__ObjectInfo *o, const Event *last)
{
	int rc;

	if (o->detail_case == WAITER__V1__OBJECT_INFO__DETAIL_TASK)
		return cli_task_status(o);
	if (o->state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_COMPLETED)
		return EXIT_OK;
	if (o->state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_FAILED &&
	    (rc = watch_failure(last)) >= 0)
		return rc;
	if (o->detail_case == WAITER__V1__OBJECT_INFO__DETAIL_WATCH &&
	    o->state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_FAILED &&
	    (o->watch->type == WAITER__V1__WATCH_TYPE__WATCH_TYPE_TCP ||
	    o->watch->type == WAITER__V1__WATCH_TYPE__WATCH_TYPE_UNIX))
		return cli_fail(EXIT_TIMEOUT, "watch %llu timed out (%s)",
		    (unsigned long long)o->id, o->watch->last_error);
	if (o->state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_CANCELLED)
		return cli_fail(EXIT_ERROR, "%s %llu was cancelled", kind_name(o),
		    (unsigned long long)o->id);
	{
		char kind[64];  /* out_enum's buffer is static */

		snprintf(kind, sizeof kind, "%s", kind_name(o));
		return cli_fail(EXIT_ERROR, "%s %llu ended as %s", kind,
		    (unsigned long long)o->id,
		    out_enum(&waiter__v1__object_state__descriptor, o->state));
	}
}

static int64_t mono_us(void);

/* A daemon that goes away again this soon after a reconnect is waited for
 * this long before the next try, and does not earn a fresh budget. */
#define RECONNECT_PAUSE_US 100000

int
cli_wait_one(uint64_t id, uint64_t timeout_us)
{
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Wait wq = WAITER__V1__WAIT__INIT;
	ServerMessage *m;
	struct waiter_error err;
	int64_t deadline = timeout_us ? mono_us() + (int64_t)timeout_us : 0, give_up = 0;
	int64_t connected_at = 0;       /* of the last reconnect */
	uint64_t instance = waiter_instance(cli.w);
	int rc;

	wq.id = id;
	req.op_case = WAITER__V1__REQUEST__OP_WAIT;
	req.wait = &wq;
	for (;;) {
		int64_t until;

		if (deadline != 0) {
			int64_t left = deadline - mono_us();

			wq.timeout_us = left > 0 ? (uint64_t)left : 1;
		}
		if (waiter_call(cli.w, &req, &m, &err) == 0)
			break;
		/* The daemon went away (a crash, a restart): with a state
		 * directory the object comes back, so connect again and ask
		 * again, for a bounded time (doc/durability.md). */
		if (err.code != WAITER_E_IO &&
		    err.code != WAITER__V1__ERROR_CODE__ERROR_CODE_SHUTTING_DOWN)
			return cli_call_error(&err);
		if (connected_at != 0 && mono_us() - connected_at < RECONNECT_PAUSE_US) {
			/* It went away again at once: do not spin. */
			struct timespec ts = { 0, RECONNECT_PAUSE_US * 1000 };

			nanosleep(&ts, NULL);
		} else if (connected_at != 0) {
			give_up = 0;    /* it served a while: a fresh budget */
		}
		if (give_up == 0) {
			uint64_t bound = cli_reconnect_us();

			if (bound == 0)
				return cli_call_error(&err);
			give_up = mono_us() + (int64_t)bound;
			fprintf(stderr, "waiter: %s; reconnecting to wait for %llu\n",
			    err.message, (unsigned long long)id);
		}
		until = deadline != 0 && deadline < give_up ? deadline : give_up;
		if (!cli_reconnect(until)) {
			if (until == deadline)
				return cli_fail(EXIT_TIMEOUT, "%llu did not complete within the "
				    "timeout (no daemon answered meanwhile)", (unsigned long long)id);
			return cli_fail(EXIT_UNREACHABLE, "no daemon came back to answer for %llu "
			    "(WAITER_RECONNECT_TIMEOUT)", (unsigned long long)id);
		}
		connected_at = mono_us();
		if (waiter_instance(cli.w) != instance)
			return cli_fail(EXIT_ERROR, "the daemon restarted without its state "
			    "(no --state-dir): %llu is gone", (unsigned long long)id);
	}
	if (cli.json)
		out_json(&m->reply->wait->base);
	rc = ended_status(m->reply->wait->object, m->reply->wait->last_event);
	waiter_message_free(m);
	return rc;
}

/* Does ev end object id? Then its exit status in *rc (with status false,
 * EXIT_OK whatever the end, and nothing said about it). */
static bool
event_ends(const Event *ev, uint64_t id, bool status, int *rc)
{
	if (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN) {
		*rc = cli_fail(EXIT_ERROR, "the daemon shut down");
		return true;
	}
	if (ev->object_id != id)
		return false;
	if (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_CANCELLED) {
		*rc = cli_fail(EXIT_ERROR, "%llu was cancelled", (unsigned long long)id);
		return true;
	}
	if ((ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_TIMER_FIRED && ev->timer_fired->last) ||
	    (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_PATH_CHANGED && ev->path_changed->last) ||
	    ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_PROCESS_EXITED ||
	    ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_ENDPOINT_READY) {
		*rc = EXIT_OK;
		return true;
	}
	if ((*rc = watch_failure(ev)) >= 0)
		return true;
	if (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_TASK_DONE) {
		Waiter__V1__ObjectInfo info = WAITER__V1__OBJECT_INFO__INIT;

		*rc = EXIT_OK;
		if (!status)
			return true;
		info.id = id;
		info.detail_case = WAITER__V1__OBJECT_INFO__DETAIL_TASK;
		info.task = ev->task_done->task;
		*rc = cli_task_status(&info);
		return true;
	}
	return false;
}

int
cli_read_events(uint64_t id, bool status, void (*fn)(const Event *, void *), void *arg)
{
	struct waiter_error err;
	ServerMessage *m;
	int rc = EXIT_OK;
	bool done = false;

	while (!done) {
		if (waiter_next_event(cli.w, -1, &m, &err) < 0)
			return cli_fail(EXIT_ERROR, "%s", err.message);
		if (m->event->object_id == id || m->event->seq == 0)
			fn(m->event, arg);
		done = event_ends(m->event, id, status, &rc);
		waiter_message_free(m);
	}
	return rc;
}

static void
follow_print(const Event *ev, void *arg)
{
	(void)arg;
	if (ev->kind != WAITER__V1__EVENT_KIND__EVENT_KIND_REPLAY_DONE)
		out_event(ev);
}

int
cli_follow(uint64_t id)
{
	return cli_read_events(id, true, follow_print, NULL);
}

int
cli_create(Request *req, bool wait, bool follow)
{
	const Waiter__V1__CreateReply *cr;
	ServerMessage *m;
	uint64_t id;
	int rc;

	cli_connect();
	if ((rc = cli_call(req, &m)) != EXIT_OK)
		return rc;
	switch (m->reply->result_case) {
	case WAITER__V1__REPLY__RESULT_TIMER_CREATE: cr = m->reply->timer_create; break;
	case WAITER__V1__REPLY__RESULT_WATCH_PATH: cr = m->reply->watch_path; break;
	case WAITER__V1__REPLY__RESULT_WATCH_PID: cr = m->reply->watch_pid; break;
	case WAITER__V1__REPLY__RESULT_WATCH_ENDPOINT: cr = m->reply->watch_endpoint; break;
	default:
		waiter_message_free(m);
		return cli_fail(EXIT_ERROR, "the daemon answered a create with something else");
	}
	id = cr->object->id;
	if (cli.json)
		out_json(&cr->base);
	else
		out_id(id);
	waiter_message_free(m);
	if (follow)
		return cli_follow(id);
	if (wait)
		return cli_wait_one(id, 0);
	return EXIT_OK;
}

int
cli_list(Waiter__V1__ObjectKind kind, bool finished, const char *header,
    void (*row)(const Waiter__V1__ObjectInfo *o))
{
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__List list = WAITER__V1__LIST__INIT;
	ServerMessage *m;
	bool more = true;
	int rc;

	cli_connect();
	list.kind = kind;
	list.finished = finished;
	req.op_case = WAITER__V1__REQUEST__OP_LIST;
	req.list = &list;
	if (!cli.json)
		fputs(header, stdout);
	while (more) {
		if ((rc = cli_call(&req, &m)) != EXIT_OK)
			return rc;
		for (size_t i = 0; i < m->reply->list->n_objects; i++) {
			const Waiter__V1__ObjectInfo *o = m->reply->list->objects[i];

			if (cli.json)
				out_json(&o->base);
			else
				row(o);
			list.after_id = o->id;
		}
		more = m->reply->list->more;
		waiter_message_free(m);
	}
	return EXIT_OK;
}

static int
cancel_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option none[] = { { NULL, 0, NULL, 0 } };
	int rc = EXIT_OK;

	if (getopt_long(argc, argv, "", none, NULL) != -1)
		cli_usage(c, "unknown option");
	if (optind >= argc)
		cli_usage(c, "missing ID");
	cli_connect();
	for (int i = optind; i < argc; i++) {
		Request req = WAITER__V1__REQUEST__INIT;
		Waiter__V1__Cancel cq = WAITER__V1__CANCEL__INIT;
		ServerMessage *m;
		int r;

		cq.id = cli_object_id(c, argv[i]);
		req.op_case = WAITER__V1__REQUEST__OP_CANCEL;
		req.cancel = &cq;
		if ((r = cli_call(&req, &m)) != EXIT_OK) {
			rc = r;
			continue;
		}
		waiter_message_free(m);
	}
	return rc;
}

const struct cmd cmd_cancel = {
	"cancel", "ID...", "cancel timers, tasks (any object) by id or name",
	"Cancel each object. Its waiters are answered and a CANCELLED event is\n"
	"published. Exit status 1 if any id was unknown or already finished\n"
	"(the others are still cancelled).\n",
	cancel_main,
};

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
wait_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	uint64_t timeout = 0;
	int64_t deadline = 0;
	int ch, rc = EXIT_OK;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 't')
			cli_usage(c, "unknown option");
		timeout = cli_parse_duration(c, "--timeout", optarg);
		if (timeout == 0)
			cli_usage(c, "--timeout must be longer than 0");
	}
	if (optind >= argc)
		cli_usage(c, "missing ID");
	cli_connect();
	if (timeout != 0)
		deadline = mono_us() + (int64_t)timeout;
	for (int i = optind; i < argc; i++) {
		uint64_t left = 0;
		int r;

		if (timeout != 0) {
			int64_t l = deadline - mono_us();

			left = l > 0 ? (uint64_t)l : 1;
		}
		r = cli_wait_one(cli_object_id(c, argv[i]), left);
		if (r == EXIT_TIMEOUT)
			return r;
		if (r != EXIT_OK && rc == EXIT_OK)
			rc = r;
	}
	return rc;
}

const struct cmd cmd_wait = {
	"wait", "ID... [--timeout DURATION]", "wait until objects (ids or names) complete",
	"Wait until every ID has completed (or was cancelled). Exits 0 when all\n"
	"completed, 1 if one was cancelled or is unknown, 124 when --timeout\n"
	"passes first; for a task, its exit code or 128+N for signal N (the first\n"
	"non-zero status of them all). An object that finished earlier answers\n"
	"at once.\n"
	"If the daemon goes away meanwhile (a crash or a restart), wait connects\n"
	"again and asks again for up to $WAITER_RECONNECT_TIMEOUT (default 30s;\n"
	"0: do not); a daemon with a state directory still knows the object.\n"
	"With --json, prints each object's final state and its last event.\n",
	wait_main,
};

static int
events_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 's' },
		{ "kind", required_argument, NULL, 'k' },
		{ "id", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 }
	};
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Subscribe sub = WAITER__V1__SUBSCRIBE__INIT;
	Waiter__V1__EventKind kinds[32];
	uint64_t ids[64];
	struct waiter_error err;
	ServerMessage *m;
	bool follow = false;
	int ch, rc, k;

	sub.kinds = kinds;
	sub.ids = ids;
	while ((ch = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': follow = true; break;
		case 's':
			sub.has_since = true;
			sub.since_seq = cli_parse_count(c, "--since", optarg);
			break;
		case 'k':
			if ((k = out_enum_value(&waiter__v1__event_kind__descriptor, optarg)) < 0)
				cli_usage(c, "unknown event kind '%s' (timer_fired, cancelled, "
				    "shutdown, task_started, task_output, task_done, path_changed, "
				    "watch_ended, watch_overflow, process_exited, endpoint_ready, "
				    "watch_timed_out)", optarg);
			if (sub.n_kinds == 32)
				cli_usage(c, "too many --kind options");
			kinds[sub.n_kinds++] = (Waiter__V1__EventKind)k;
			break;
		case 'i':
			if (sub.n_ids == 64)
				cli_usage(c, "at most 64 --id options");
			ids[sub.n_ids++] = cli_parse_id(c, optarg);
			break;
		default:
			cli_usage(c, "unknown option");
		}
	}
	if (optind < argc)
		cli_usage(c, "unexpected argument '%s'", argv[optind]);
	if (!follow)
		sub.has_since = true;   /* show what is retained, then stop */
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_SUBSCRIBE;
	req.subscribe = &sub;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		return rc;
	waiter_message_free(m);
	for (;;) {
		Waiter__V1__EventKind kind;

		if (waiter_next_event(cli.w, -1, &m, &err) < 0)
			return cli_fail(EXIT_ERROR, "%s", err.message);
		kind = m->event->kind;
		if (kind == WAITER__V1__EVENT_KIND__EVENT_KIND_REPLAY_DONE) {
			waiter_message_free(m);
			if (!follow)
				return EXIT_OK;
			continue;
		}
		if (kind == WAITER__V1__EVENT_KIND__EVENT_KIND_EVENTS_LOST)
			fprintf(stderr, "waiter: events %llu to %llu were lost to this "
			    "client (no longer retained, or it read too slowly)\n",
			    (unsigned long long)m->event->events_lost->from_seq,
			    (unsigned long long)m->event->events_lost->to_seq);
		out_event(m->event);
		waiter_message_free(m);
		if (kind == WAITER__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN)
			return EXIT_OK;
	}
}

const struct cmd cmd_events = {
	"events", "[--follow] [--since SEQ] [--kind K]... [--id ID]...",
	"print events: what is retained, or live",
	"Print events, one per line. Every event has a daemon-wide seq.\n"
	"\n"
	"  --since SEQ  replay the retained events after SEQ (0: all retained)\n"
	"  --follow     then keep printing live events until interrupted or the\n"
	"               daemon stops; without --since only live events\n"
	"  --kind K     only events of kind K (timer_fired, cancelled, shutdown,\n"
	"               task_started, task_output, task_done, path_changed,\n"
	"               watch_ended, watch_overflow, process_exited,\n"
	"               endpoint_ready, watch_timed_out); repeatable\n"
	"  --id ID      only events about object ID; repeatable\n"
	"\n"
	"Without --follow, prints the retained events (after --since) and exits.\n"
	"A client that missed events (they left the retention ring, or it read\n"
	"too slowly) gets an events_lost line naming the range.\n",
	events_main,
};
