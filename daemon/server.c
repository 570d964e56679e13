/* server.c - listener, connections, framing and dispatch (see server.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "events.h"
#include "frame.h"
#include "log.h"
#include "objects.h"
#include "sdnotify.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "tasks.h"
#include "timers.h"
#include "watch_endpoint.h"
#include "watch_path.h"
#include "watch_proc.h"

/* Requests served per read callback before yielding to other clients
 * (memcached's reqs_per_event): a client that never stops talking gets
 * its turn, not the room. */
#define REQS_PER_EVENT 64
/* Bytes read from one socket per callback. */
#define READ_CHUNK (64 * 1024)
/* Connections accepted per listener callback. */
#define ACCEPTS_PER_EVENT 64
/* A connection closing after an error gets this long to read our reply. */
#define FLUSH_TIMEOUT_US (5 * 1000000)
/* After a shutdown, clients get this long to read what is queued for them. */
#define SHUTDOWN_GRACE_US (2 * 1000000)
/* Waits and objects of closed connections released per callback: a
 * client that held 100,000 timers must not stop the loop when it goes. */
#define REAP_BUDGET 1024
/* Listener pause after EMFILE when even the reserve descriptor is gone. */
#define ACCEPT_RETRY_US 100000

static int listen_fd = -1, lock_fd = -1, reserve_fd = -1;
/* The socket file is ours to remove: false for one the service manager
 * bound and passed (socket activation), which outlives us. */
static bool listen_owned;
/* The path of a passed socket, from getsockname: cfg.socket_path points here. */
static char adopted_path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
static char *lock_path;
static struct event *listen_ev, *accept_retry_ev, *reap_ev, *grace_ev;
static LIST_HEAD(, conn) conns = LIST_HEAD_INITIALIZER(conns);
static TAILQ_HEAD(, conn) dead = TAILQ_HEAD_INITIALIZER(dead);
static uint64_t next_conn_id = 1;
static bool draining;

/* ------------------------------------------------------------ the arena */

struct arena_chunk {
	struct arena_chunk *next;
	max_align_t data[];
};
static struct arena_chunk *arena;

void *
arena_alloc(size_t size)
{
	struct arena_chunk *ch = calloc(1, sizeof *ch + size);

	if (ch == NULL)
		fatal("calloc");
	ch->next = arena;
	arena = ch;
	return ch->data;
}

char *
arena_printf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = arena_alloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void
arena_reset(void)
{
	while (arena != NULL) {
		struct arena_chunk *next = arena->next;

		free(arena);
		arena = next;
	}
}

enum op_result
op_error(Reply *rep, Waiter__V1__ErrorCode code, const char *fmt, ...)
{
	Waiter__V1__Error *e = arena_alloc(sizeof *e);
	va_list ap;
	int n;

	waiter__v1__error__init(e);
	e->code = code;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	e->message = arena_alloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(e->message, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rep->result_case = WAITER__V1__REPLY__RESULT_ERROR;
	rep->error = e;
	return OP_REPLY;
}

/* ------------------------------------------------------ core operations */

static enum op_result
op_hello(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__Hello *h = req->hello;
	Waiter__V1__HelloReply *r;

	if (h->protocol_version != WAITER_PROTOCOL_VERSION) {
		stats.bad_requests++;
		log_warn("bad_request conn=%llu code=ERROR_CODE_UNSUPPORTED_VERSION "
		    "version=%u", (unsigned long long)c->id, h->protocol_version);
		op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_UNSUPPORTED_VERSION,
		    "this waiterd speaks protocol version %d, the client asked for %u",
		    WAITER_PROTOCOL_VERSION, h->protocol_version);
		return OP_CLOSE;
	}
	c->hello = true;
	free(c->name);
	c->name = strndup(h->client_name, 64);
	if (c->name == NULL)
		fatal("strndup");
	/* Free text from the peer: one log line, nothing it could forge. */
	for (char *p = c->name; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
			*p = '?';
	log_debug("hello conn=%llu client=\"%s\"", (unsigned long long)c->id, c->name);
	r = arena_alloc(sizeof *r);
	waiter__v1__hello_reply__init(r);
	r->protocol_version = WAITER_PROTOCOL_VERSION;
	r->server_version = (char *)PACKAGE_VERSION;
	r->connection_id = c->id;
	r->max_frame = cfg.max_frame;
	r->last_seq = events_last_seq();
	r->instance = state_instance();
	rep->result_case = WAITER__V1__REPLY__RESULT_HELLO;
	rep->hello = r;
	return OP_REPLY;
}

static enum op_result
op_ping(struct conn *c, const Request *req, Reply *rep)
{
	Waiter__V1__Pong *p = arena_alloc(sizeof *p);

	(void)c, (void)req;
	waiter__v1__pong__init(p);
	p->time_us = clock_wall_us();
	rep->result_case = WAITER__V1__REPLY__RESULT_PONG;
	rep->pong = p;
	return OP_REPLY;
}

static enum op_result
op_shutdown(struct conn *c, const Request *req, Reply *rep)
{
	static Waiter__V1__Empty empty = WAITER__V1__EMPTY__INIT;

	(void)req;
	log_info("shutdown_requested conn=%llu uid=%u", (unsigned long long)c->id,
	    (unsigned)c->uid);
	rep->result_case = WAITER__V1__REPLY__RESULT_SHUTDOWN;
	rep->shutdown = &empty;
	daemon_shutdown("request");
	return OP_REPLY;
}

/* The operation table: one row per Request.op case. */
static const struct op_entry {
	Waiter__V1__Request__OpCase op;
	const char *name;
	op_fn *fn;
} op_table[] = {
	{ WAITER__V1__REQUEST__OP_HELLO, "hello", op_hello },
	{ WAITER__V1__REQUEST__OP_PING, "ping", op_ping },
	{ WAITER__V1__REQUEST__OP_STATS, "stats", stats_op_stats },
	{ WAITER__V1__REQUEST__OP_SUBSCRIBE, "subscribe", events_op_subscribe },
	{ WAITER__V1__REQUEST__OP_UNSUBSCRIBE, "unsubscribe", events_op_unsubscribe },
	{ WAITER__V1__REQUEST__OP_CANCEL, "cancel", objects_op_cancel },
	{ WAITER__V1__REQUEST__OP_WAIT, "wait", objects_op_wait },
	{ WAITER__V1__REQUEST__OP_LIST, "list", objects_op_list },
	{ WAITER__V1__REQUEST__OP_SHUTDOWN, "shutdown", op_shutdown },
	{ WAITER__V1__REQUEST__OP_TIMER_CREATE, "timer_create", timers_op_create },
	{ WAITER__V1__REQUEST__OP_GET, "get", objects_op_get },
	{ WAITER__V1__REQUEST__OP_TASK_SUBMIT, "task_submit", tasks_op_submit },
	{ WAITER__V1__REQUEST__OP_TASK_KILL, "task_kill", tasks_op_kill },
	{ WAITER__V1__REQUEST__OP_TASK_LOGS, "task_logs", tasks_op_logs },
	{ WAITER__V1__REQUEST__OP_QUEUE_SET, "queue_set", tasks_op_queue_set },
	{ WAITER__V1__REQUEST__OP_QUEUE_LIST, "queue_list", tasks_op_queue_list },
	{ WAITER__V1__REQUEST__OP_WATCH_PATH, "watch_path", watch_path_op_create },
	{ WAITER__V1__REQUEST__OP_WATCH_PID, "watch_pid", watch_proc_op_create },
	{ WAITER__V1__REQUEST__OP_WATCH_ENDPOINT, "watch_endpoint", watch_endpoint_op_create },
};

static const struct op_entry *
op_lookup(Waiter__V1__Request__OpCase op)
{
	for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
		if (op_table[i].op == op)
			return &op_table[i];
	return NULL;
}

/* ---------------------------------------------------------- connections */

size_t
conn_output_len(const struct conn *c)
{
	return evbuffer_get_length(c->out);
}

void
conn_kick(struct conn *c)
{
	if (c->write_pending || c->closing == CONN_DEAD)
		return;
	c->write_pending = true;
	event_active(&c->wev, EV_WRITE, 1);
}

void
conn_send_frame(struct conn *c, const uint8_t *frame, size_t len)
{
	if (c->closing == CONN_DEAD)
		return;
	evbuffer_add(c->out, frame, len);
	conn_kick(c);
}

void
conn_send_message(struct conn *c, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	struct evbuffer_iovec vec;

	if (c->closing == CONN_DEAD)
		return;
	if (evbuffer_reserve_space(c->out, (ev_ssize_t)(FRAME_HEADER_LEN + n), &vec, 1) < 1)
		fatalx("evbuffer_reserve_space failed");
	frame_put_header(vec.iov_base, (uint32_t)n);
	protobuf_c_message_pack(msg, (uint8_t *)vec.iov_base + FRAME_HEADER_LEN);
	vec.iov_len = FRAME_HEADER_LEN + n;
	evbuffer_commit_space(c->out, &vec, 1);
	conn_kick(c);
}

void
conn_send_reply(struct conn *c, Reply *rep)
{
	Waiter__V1__ServerMessage sm = WAITER__V1__SERVER_MESSAGE__INIT;

	sm.msg_case = WAITER__V1__SERVER_MESSAGE__MSG_REPLY;
	sm.reply = rep;
	conn_send_message(c, &sm.base);
}

static void conn_read_cb(evutil_socket_t, short, void *);
static void conn_reject(struct conn *c, Waiter__V1__ErrorCode code, const char *msg);

/*
 * Connections holding part of a frame, and since when: one that began a
 * frame must finish it within --frame-timeout (a slow-loris client holds
 * a buffer and a slot otherwise). One sweep a second looks at this list
 * only; it is empty unless a frame straddles reads.
 */
static LIST_HEAD(, conn) partial = LIST_HEAD_INITIALIZER(partial);
static struct event *partial_ev;

static void
conn_untrack_partial(struct conn *c)
{
	if (c->partial_since == 0)
		return;
	LIST_REMOVE(c, partial_link);
	c->partial_since = 0;
	if (LIST_EMPTY(&partial))
		event_del(partial_ev);
}

/* After a read: note when the unfinished frame left began, or that none
 * is. served: frames before it were completed, so it began in this read
 * (a client whose writes straddle frames always leaves one unfinished). */
static void
conn_track_partial(struct conn *c, bool served)
{
	struct timeval second = { 1, 0 };

	if (c->closing != CONN_OPEN || evbuffer_get_length(c->in) == 0) {
		conn_untrack_partial(c);
		return;
	}
	if (c->partial_since != 0) {
		if (served)
			c->partial_since = clock_mono_us();
		return;
	}
	if (LIST_EMPTY(&partial))
		event_add(partial_ev, &second);
	c->partial_since = clock_mono_us();
	LIST_INSERT_HEAD(&partial, c, partial_link);
}

static void
partial_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c, *next;
	int64_t now = clock_mono_us(), age;

	(void)fd, (void)what, (void)arg;
	for (c = LIST_FIRST(&partial); c != NULL; c = next) {
		next = LIST_NEXT(c, partial_link);
		/* Not its fault while we do not read it (its output is full). */
		if (c->paused || c->peer_eof) {
			c->partial_since = now;
			continue;
		}
		age = now - c->partial_since;
		if (age < (int64_t)cfg.frame_timeout_us)
			continue;
		conn_untrack_partial(c);
		conn_reject(c, WAITER__V1__ERROR_CODE__ERROR_CODE_PROTOCOL_ERROR,
		    arena_printf("a frame begun %llu ms ago is still not whole: "
		    "closing (waiterd --frame-timeout)", (unsigned long long)age / 1000));
	}
	arena_reset();
}

void
conn_close(struct conn *c, enum conn_closing how, const char *why)
{
	if (c->closing == CONN_DEAD || (c->closing == CONN_FLUSH && how == CONN_FLUSH))
		return;
	log_debug("close conn=%llu how=%s why=\"%s\"", (unsigned long long)c->id,
	    how == CONN_FLUSH ? "flush" : "now", why ? why : "");
	conn_untrack_partial(c);
	if (how == CONN_FLUSH && conn_output_len(c) > 0) {
		/* Keep writing; wake on the peer's close or the timeout. */
		struct timeval tv = clock_tv(FLUSH_TIMEOUT_US);

		/* Keep writing until the output is out or a fixed deadline
		 * passes; what the peer sends now stays unread in the kernel.
		 * The read event becomes that deadline (a one-shot timer, so a
		 * trickling peer cannot push it back). */
		c->closing = CONN_FLUSH;
		event_del(&c->rev);
		event_assign(&c->rev, ev_base, -1, EV_TIMEOUT, conn_read_cb, c);
		event_add(&c->rev, &tv);
		c->reading = false;
		conn_kick(c);
		return;
	}
	c->closing = CONN_DEAD;
	event_del(&c->rev);
	event_del(&c->wev);
	TAILQ_INSERT_TAIL(&dead, c, dead_link);
	event_active(reap_ev, EV_TIMEOUT, 1);
}

static void
conn_free(struct conn *c)
{
	size_t all = SIZE_MAX;

	conn_untrack_partial(c);
	events_conn_closed(c);
	objects_conn_release(c, &all);  /* already done, unless at exit */
	tasks_conn_drained(c);          /* its paced tasks lost their owner */
	LIST_REMOVE(c, link);
	close(c->fd);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	free(c->name);
	free(c);
	stats.connections--;
}

static void
server_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c;

	int64_t begin = stats_lap_begin();
	size_t budget = REAP_BUDGET;

	(void)fd, (void)what, (void)arg;
	while ((c = TAILQ_FIRST(&dead)) != NULL) {
		if (!objects_conn_release(c, &budget)) {
			event_active(reap_ev, EV_TIMEOUT, 1);   /* the rest later */
			break;
		}
		TAILQ_REMOVE(&dead, c, dead_link);
		conn_free(c);
	}
	arena_reset();
	stats_lap_end(begin, "reap", 0);
	if (listen_ev != NULL && !event_pending(listen_ev, EV_READ, NULL) &&
	    !event_pending(accept_retry_ev, EV_TIMEOUT, NULL))
		event_add(listen_ev, NULL);
	if (draining && LIST_EMPTY(&conns))
		event_base_loopexit(ev_base, NULL);
}

static void
conn_stop_reading(struct conn *c)
{
	if (c->reading) {
		event_del(&c->rev);
		c->reading = false;
	}
}

/* Output over the limit: read nothing more until it drains. */
static void
conn_pause_reading(struct conn *c)
{
	conn_stop_reading(c);
	c->paused = true;
}

static void
conn_resume_reading(struct conn *c)
{
	if (!c->paused || c->closing != CONN_OPEN)
		return;
	c->paused = false;
	if (!c->peer_eof) {
		event_add(&c->rev, NULL);
		c->reading = true;
	}
	event_active(&c->rev, EV_READ, 0);     /* frames may be buffered */
}

/* Answer an unusable frame and close the connection after the answer. */
static void
conn_reject(struct conn *c, Waiter__V1__ErrorCode code, const char *msg)
{
	Reply rep = WAITER__V1__REPLY__INIT;

	stats.bad_requests++;
	log_warn("bad_request conn=%llu code=%s detail=\"%s\"",
	    (unsigned long long)c->id,
	    protobuf_c_enum_descriptor_get_value(&waiter__v1__error_code__descriptor,
	    (int)code)->name, msg);
	op_error(&rep, code, "%s", msg);
	conn_send_reply(c, &rep);
	conn_close(c, CONN_FLUSH, msg);
}

static void
conn_dispatch(struct conn *c, const Request *req)
{
	Reply rep = WAITER__V1__REPLY__INIT;
	const struct op_entry *op = op_lookup(req->op_case);
	enum op_result res;

	stats.requests++;
	rep.id = req->id;
	if (!c->hello && (op == NULL || op->fn != op_hello)) {
		stats.bad_requests++;
		log_warn("bad_request conn=%llu code=ERROR_CODE_PROTOCOL_ERROR "
		    "detail=\"request before Hello\"", (unsigned long long)c->id);
		op_error(&rep, WAITER__V1__ERROR_CODE__ERROR_CODE_PROTOCOL_ERROR,
		    "the first request on a connection must be Hello");
		res = OP_CLOSE;
	} else if (op == NULL) {
		res = op_error(&rep, WAITER__V1__ERROR_CODE__ERROR_CODE_UNSUPPORTED_OPERATION,
		    "this waiterd (protocol %d) does not know the requested operation",
		    WAITER_PROTOCOL_VERSION);
	} else {
		res = op->fn(c, req, &rep);
	}
	if (res != OP_DEFERRED)
		conn_send_reply(c, &rep);
	if (res == OP_CLOSE)
		conn_close(c, CONN_FLUSH, "closed after an error");
}

/* Serve the complete frames in c->in, at most REQS_PER_EVENT of them. */
static void
conn_process(struct conn *c)
{
	int budget;

	for (budget = REQS_PER_EVENT; budget > 0; budget--) {
		size_t avail = evbuffer_get_length(c->in);
		uint8_t hdr[FRAME_HEADER_LEN];
		uint32_t n;
		Request *req;

		if (c->closing != CONN_OPEN)
			return;
		if (conn_output_len(c) >= cfg.max_output) {
			conn_pause_reading(c);  /* resumes when output drains */
			return;
		}
		if (avail < FRAME_HEADER_LEN)
			break;
		evbuffer_copyout(c->in, hdr, FRAME_HEADER_LEN);
		switch (frame_next(hdr, avail, cfg.max_frame, &n)) {
		case FRAME_TOO_LARGE:
			conn_reject(c, WAITER__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE,
			    arena_printf("frame of %u bytes exceeds the limit of %u bytes "
			    "(waiterd --max-frame)", frame_get_header(hdr), cfg.max_frame));
			return;
		case FRAME_NEED_MORE:
			goto out;
		case FRAME_OK:
			break;
		}
		req = waiter__v1__request__unpack(NULL, n,
		    evbuffer_pullup(c->in, FRAME_HEADER_LEN + n) + FRAME_HEADER_LEN);
		evbuffer_drain(c->in, FRAME_HEADER_LEN + n);
		if (req == NULL) {
			conn_reject(c, WAITER__V1__ERROR_CODE__ERROR_CODE_PROTOCOL_ERROR,
			    "the frame does not hold a valid waiter.v1.Request");
			return;
		}
		conn_dispatch(c, req);
		waiter__v1__request__free_unpacked(req, NULL);
		arena_reset();
	}
	if (budget == 0) {
		if (c->closing == CONN_OPEN)
			event_active(&c->rev, EV_READ, 0);      /* more next lap */
		return;
	}
out:
	/* No whole frame is left. A half-closed peer still reads: close once
	 * its pending waits are answered; bytes left are a cut-off frame. */
	if (c->peer_eof && c->closing == CONN_OPEN && c->n_waits == 0 && c->n_acks == 0) {
		if (evbuffer_get_length(c->in) > 0)
			conn_reject(c, WAITER__V1__ERROR_CODE__ERROR_CODE_PROTOCOL_ERROR,
			    "the connection closed in the middle of a frame");
		else
			conn_close(c, CONN_FLUSH, "peer closed");
	}
}

void
server_conn_settled(struct conn *c)
{
	/* Let conn_process decide, with whatever input is still buffered. */
	if (c->peer_eof && c->closing == CONN_OPEN && c->n_waits == 0 && c->n_acks == 0 &&
	    !c->paused)
		event_active(&c->rev, EV_READ, 0);
}

/* After EOF: did the peer close both ways (POLLHUP), or only shut down
 * its writing side and still waits for our answers? */
static bool
conn_peer_gone(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };

	return poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLERR)) != 0;
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int64_t begin = stats_lap_begin();
	size_t buffered;
	int n;

	if (c->closing == CONN_FLUSH) {
		if (what & EV_TIMEOUT)
			conn_close(c, CONN_DEAD, "flush timed out");
		return;
	}
	if (c->closing != CONN_OPEN)
		return;
	/* Read only while the buffered input is short of one largest frame:
	 * unread bytes wait in the kernel, not in our memory. */
	if (!c->peer_eof &&
	    evbuffer_get_length(c->in) < (size_t)cfg.max_frame + FRAME_HEADER_LEN) {
		n = evbuffer_read(c->in, fd, READ_CHUNK);
		if (n == 0 && conn_peer_gone(fd)) {
			conn_close(c, CONN_DEAD, "peer closed");
			return;
		}
		if (n == 0) {
			/* Half-closed: it sent all it will, it may still read. */
			c->peer_eof = true;
			conn_stop_reading(c);
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			conn_close(c, CONN_DEAD, strerror(errno));
			return;
		}
	}
	buffered = evbuffer_get_length(c->in);
	conn_process(c);
	conn_track_partial(c, evbuffer_get_length(c->in) < buffered);
	stats_lap_end(begin, "conn_read", c->id);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	size_t left;

	(void)what;
	c->write_pending = false;
	if (c->closing == CONN_DEAD)
		return;
	if (evbuffer_get_length(c->out) > 0 && evbuffer_write(c->out, fd) < 0 &&
	    errno != EAGAIN && errno != EINTR) {
		conn_close(c, CONN_DEAD, strerror(errno));
		return;
	}
	left = evbuffer_get_length(c->out);
	if (left > 0) {
		c->write_pending = true;
		event_add(&c->wev, NULL);
	}
	if (c->closing == CONN_FLUSH) {
		if (left == 0)
			conn_close(c, CONN_DEAD, "flushed");
		return;
	}
	/* Below the low mark: read again, and let the bus catch up. */
	if (left <= cfg.max_output / 2) {
		conn_resume_reading(c);
		if (c->bus.behind)
			events_pump(c);
		if (!c->bus.behind)
			tasks_conn_drained(c);
	}
}

/* ------------------------------------------------------------- accepting */

/* Tell a connection we will not serve it why, and close it. */
static void
server_refuse(int fd, Waiter__V1__ErrorCode code, const char *msg)
{
	Waiter__V1__ServerMessage sm = WAITER__V1__SERVER_MESSAGE__INIT;
	Reply rep = WAITER__V1__REPLY__INIT;
	Waiter__V1__Error err = WAITER__V1__ERROR__INIT;
	uint8_t buf[512];
	size_t n;

	err.code = code;
	err.message = (char *)msg;
	rep.result_case = WAITER__V1__REPLY__RESULT_ERROR;
	rep.error = &err;
	sm.msg_case = WAITER__V1__SERVER_MESSAGE__MSG_REPLY;
	sm.reply = &rep;
	n = waiter__v1__server_message__get_packed_size(&sm);
	if (n + FRAME_HEADER_LEN <= sizeof buf) {
		frame_put_header(buf, (uint32_t)n);
		waiter__v1__server_message__pack(&sm, buf + FRAME_HEADER_LEN);
		if (send(fd, buf, n + FRAME_HEADER_LEN, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* the peer is gone already */
		}
	}
	shutdown(fd, SHUT_WR);
	close(fd);
	stats.connections_refused++;
}

/* Is gid among the peer's supplementary groups? SO_PEERCRED carries only
 * the primary one; SO_PEERGROUPS lists the rest, and says how much room
 * they need (ERANGE) when they do not fit. */
static bool
server_peer_in_group(int fd, gid_t gid)
{
	bool found = false;
#ifdef SO_PEERGROUPS
	gid_t some[256], *groups = some;
	socklen_t len = sizeof some;
	int rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);

	if (rc < 0 && errno == ERANGE && (groups = malloc(len)) != NULL)
		rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
	for (size_t i = 0; rc == 0 && i < len / sizeof groups[0] && !found; i++)
		found = groups[i] == gid;
	if (groups != some)
		free(groups);
#else
	(void)fd, (void)gid;
#endif
	return found;
}

static bool
server_peer_allowed(int fd, struct ucred *cred)
{
	socklen_t len = sizeof *cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
		return false;
	if (cred->uid == geteuid() || cred->uid == 0)
		return true;
	for (size_t i = 0; i < cfg.n_allow_uids; i++)
		if (cfg.allow_uids[i] == cred->uid)
			return true;
	if (!cfg.have_allow_gid)
		return false;
	return cred->gid == cfg.allow_gid || server_peer_in_group(fd, cfg.allow_gid);
}

void
server_accept_fd(int fd)
{
	/* What the refusal names if SO_PEERCRED itself fails. */
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	struct conn *c;

	if (!server_peer_allowed(fd, &cred)) {
		char msg[200];

		snprintf(msg, sizeof msg, "uid %u may not use this waiterd (it serves "
		    "uid %u; see waiterd --allow-uid and --allow-group)",
		    (unsigned)cred.uid, (unsigned)geteuid());
		log_warn("refused uid=%u pid=%d reason=not_allowed", (unsigned)cred.uid,
		    (int)cred.pid);
		server_refuse(fd, WAITER__V1__ERROR_CODE__ERROR_CODE_PERMISSION_DENIED, msg);
		return;
	}
	if (stats.connections >= cfg.max_clients) {
		char msg[160];

		snprintf(msg, sizeof msg, "too many clients: this waiterd serves at "
		    "most %u at once (waiterd --max-clients)", cfg.max_clients);
		log_warn("refused uid=%u pid=%d reason=max_clients", (unsigned)cred.uid,
		    (int)cred.pid);
		server_refuse(fd, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED, msg);
		return;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL || (c->in = evbuffer_new()) == NULL ||
	    (c->out = evbuffer_new()) == NULL)
		fatal("out of memory for a connection");
	c->id = next_conn_id++;
	c->fd = fd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	TAILQ_INIT(&c->owned);
	LIST_INIT(&c->waits);
	LIST_INIT(&c->acks);
	event_assign(&c->rev, ev_base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	event_assign(&c->wev, ev_base, fd, EV_WRITE, conn_write_cb, c);
	event_add(&c->rev, NULL);
	c->reading = true;
	LIST_INSERT_HEAD(&conns, c, link);
	stats.connections++;
	stats.connections_total++;
	log_debug("accept conn=%llu uid=%u pid=%d", (unsigned long long)c->id,
	    (unsigned)cred.uid, (int)cred.pid);
}

/* Out of descriptors: use the reserve to tell waiting clients, or pause. */
static void
server_emfile(void)
{
	struct timeval tv = clock_tv(ACCEPT_RETRY_US);
	int fd;

	if (reserve_fd >= 0) {
		close(reserve_fd);
		reserve_fd = -1;
		for (int i = 0; i < ACCEPTS_PER_EVENT &&
		    (fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0; i++) {
			server_refuse(fd, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
			    "waiterd is out of file descriptors; try again later");
		}
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	log_warn("accept_paused reason=\"out of file descriptors\"");
	event_del(listen_ev);
	evtimer_add(accept_retry_ev, &tv);
}

static void
server_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	int64_t begin = stats_lap_begin();

	(void)what, (void)arg;
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			server_accept_fd(fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE)
			server_emfile();
		else if (errno != EAGAIN)
			log_warn("accept errno=%d", errno);
		break;
	}
	stats_lap_end(begin, "accept", 0);
}

static void
server_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (listen_ev != NULL)
		event_add(listen_ev, NULL);
}

/* ------------------------------------------------------ the socket file */

/*
 * Take PATH.lock, which holds the serving daemon's pid. optional: a lock
 * file we may not create (a directory of the service manager's) is done
 * without; systemd then guards the socket itself.
 */
static int
server_lock(bool optional, const char **cause)
{
	char pid[32];
	struct stat a, b;

	for (int tries = 0; tries < 5; tries++) {
		lock_fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (lock_fd < 0 && optional &&
		    (errno == EACCES || errno == EPERM || errno == EROFS)) {
			log_info("lock_skipped path=%s error=\"%s\"", lock_path, strerror(errno));
			return 0;
		}
		if (lock_fd < 0) {
			*cause = arena_printf("cannot open %s: %s", lock_path, strerror(errno));
			return -1;
		}
		if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
			ssize_t n = pread(lock_fd, pid, sizeof pid - 1, 0);

			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			*cause = arena_printf("another waiterd (pid %s) is serving %s",
			    pid[0] ? pid : "?", cfg.socket_path);
			close(lock_fd);
			lock_fd = -1;
			return -1;
		}
		/* A stopping daemon may have unlinked the file we locked. */
		if (fstat(lock_fd, &a) == 0 && stat(lock_path, &b) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			break;
		close(lock_fd);
		lock_fd = -1;
	}
	if (lock_fd < 0) {
		*cause = arena_printf("cannot lock %s", lock_path);
		return -1;
	}
	snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	if (ftruncate(lock_fd, 0) < 0 || pwrite(lock_fd, pid, strlen(pid), 0) < 0)
		log_warn("lock_write path=%s errno=%d", lock_path, errno);
	return 0;
}

/*
 * Give path (the socket or its private directory) to --allow-group's
 * group. With only --allow-group the group bits are all that let members
 * in, so a failed chown (a daemon that is neither root nor a member of the
 * group: EPERM) is refused at start rather than found later as "Permission
 * denied" in every member's client. With --allow-uid too the modes let
 * anyone through and the credential check decides, so it is only logged.
 */
static int
server_give_group(const char *path, const char **cause)
{
	if (!cfg.have_allow_gid || chown(path, (uid_t)-1, cfg.allow_gid) == 0)
		return 0;
	if (cfg.n_allow_uids > 0) {
		log_warn("chown path=%s gid=%u errno=%d", path, (unsigned)cfg.allow_gid,
		    errno);
		return 0;
	}
	*cause = arena_printf("cannot give %s to group %u for --allow-group: %s%s",
	    path, (unsigned)cfg.allow_gid, strerror(errno), errno != EPERM ? "" :
	    " (waiterd must run as root or as a member of that group)");
	return -1;
}

/*
 * Make sure the socket's directory exists and that no one else can swap
 * the socket in it: whoever may rename or unlink it could put a socket of
 * their own there and hear every client (tmux refuses such a directory
 * too). A directory of ours that is private (as we create it) is opened
 * just enough for allowed peers to reach the socket; a shared one (/tmp,
 * a home) is never changed.
 */
static int
server_prepare_dir(const char **cause)
{
	char *dir = strdup(cfg.socket_path), *slash = strrchr(dir, '/');
	struct stat st;
	mode_t perm;
	bool made;
	int rc = 0;

	if (slash == NULL || slash == dir) {
		free(dir);
		return 0;
	}
	*slash = '\0';
	made = mkdir(dir, 0700) == 0;
	if (!made && errno != EEXIST) {
		*cause = arena_printf("cannot create %s: %s", dir, strerror(errno));
		rc = -1;
	} else if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*cause = arena_printf("%s is not a directory", dir);
		rc = -1;
	} else if (st.st_uid != geteuid() && st.st_uid != 0) {
		*cause = arena_printf("%s belongs to uid %u, who could replace the "
		    "socket; refusing to put a socket in it", dir, (unsigned)st.st_uid);
		rc = -1;
	} else if ((st.st_mode & 022) != 0 && !(st.st_mode & S_ISVTX)) {
		*cause = arena_printf("%s is writable by others; refusing to put a "
		    "socket in it", dir);
		rc = -1;
	} else if (st.st_uid == geteuid() && (cfg.n_allow_uids > 0 || cfg.have_allow_gid) &&
	    ((perm = st.st_mode & 07777 & ~S_ISGID) == 0700 || perm == 0710 ||
	    perm == 0711)) {
		/* Let allowed peers reach the socket; the socket's own mode
		 * and the credential check still decide who is served. The
		 * set-group-ID bit is ignored: a directory we make in a
		 * set-group-ID one (a Kubernetes volume with fsGroup) has it,
		 * and is just as private. */
		mode_t mode = cfg.n_allow_uids > 0 ? 0711 : 0710;

		if (server_give_group(dir, cause) < 0) {
			rc = -1;
			if (made)
				rmdir(dir);     /* leave nothing behind */
		} else if (chmod(dir, mode) < 0)
			log_warn("chmod dir=%s errno=%d", dir, errno);
	}
	free(dir);
	return rc;
}

/* Remove a stale socket left by a dead daemon; refuse anything else. */
static int
server_clear_stale(const char **cause)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (lstat(cfg.socket_path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		*cause = arena_printf("%s exists and is not a socket; not touching it",
		    cfg.socket_path);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		*cause = arena_printf("%s belongs to uid %u; not touching it",
		    cfg.socket_path, (unsigned)st.st_uid);
		return -1;
	}
	strncpy(sa.sun_path, cfg.socket_path, sizeof sa.sun_path - 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		close(fd);
		*cause = arena_printf("another daemon is serving %s", cfg.socket_path);
		return -1;
	}
	if (fd >= 0)
		close(fd);
	log_info("stale_socket path=%s action=removed", cfg.socket_path);
	return unlink(cfg.socket_path);
}

void
server_init(void)
{
	draining = false;
	next_conn_id = 1;
	reap_ev = event_new(ev_base, -1, 0, server_reap_cb, NULL);
	partial_ev = event_new(ev_base, -1, EV_PERSIST, partial_sweep_cb, NULL);
	if (reap_ev == NULL || partial_ev == NULL)
		fatalx("cannot set up the connection events");
}

/* Accept connections on fd, a listening socket. */
static void
server_accept_from(int fd)
{
	reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	listen_ev = event_new(ev_base, fd, EV_READ | EV_PERSIST, server_accept_cb, NULL);
	accept_retry_ev = evtimer_new(ev_base, server_accept_retry_cb, NULL);
	if (listen_ev == NULL || accept_retry_ev == NULL || event_add(listen_ev, NULL) < 0)
		fatalx("cannot set up the listener");
}

int
server_listen(const char **cause)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t mode, old;

	if (strlen(cfg.socket_path) >= sizeof sa.sun_path) {
		*cause = arena_printf("socket path is longer than %zu bytes: %s",
		    sizeof sa.sun_path - 1, cfg.socket_path);
		return -1;
	}
	strcpy(sa.sun_path, cfg.socket_path);
	if (asprintf(&lock_path, "%s.lock", cfg.socket_path) < 0)
		fatal("asprintf");
	if (server_prepare_dir(cause) < 0 || server_lock(false, cause) < 0)
		return -1;
	if (server_clear_stale(cause) < 0) {
		if (*cause == NULL)
			*cause = arena_printf("cannot remove %s: %s", cfg.socket_path,
			    strerror(errno));
		return -1;
	}
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		fatal("socket");
	old = umask(0177);
	if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		umask(old);
		*cause = arena_printf("cannot bind %s: %s", cfg.socket_path, strerror(errno));
		return -1;
	}
	umask(old);
	mode = cfg.n_allow_uids > 0 ? 0666 : cfg.have_allow_gid ? 0660 : 0600;
	if (server_give_group(cfg.socket_path, cause) < 0) {
		unlink(cfg.socket_path);
		return -1;
	}
	if (chmod(cfg.socket_path, mode) < 0 || listen(listen_fd, SOMAXCONN) < 0) {
		*cause = arena_printf("cannot listen on %s: %s", cfg.socket_path,
		    strerror(errno));
		unlink(cfg.socket_path);
		return -1;
	}
	listen_owned = true;
	server_accept_from(listen_fd);
	log_info("listening path=%s pid=%d mode=%04o", cfg.socket_path, (int)getpid(),
	    (unsigned)mode);
	return 0;
}

/* What fd is, for a refusal: "a regular file", "a TCP/IP socket", ... */
static const char *
server_describe_fd(int fd, int *domain, int *type, int *listening)
{
	struct stat st;
	socklen_t len = sizeof(int);

	if (fstat(fd, &st) < 0)
		return "not open";
	if (!S_ISSOCK(st.st_mode))
		return S_ISREG(st.st_mode) ? "a regular file, not a socket" :
		    S_ISFIFO(st.st_mode) ? "a pipe, not a socket" :
		    S_ISCHR(st.st_mode) ? "a character device, not a socket" :
		    S_ISDIR(st.st_mode) ? "a directory, not a socket" : "not a socket";
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, domain, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, type, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, listening, &len) < 0)
		return "a socket waiterd cannot inspect";
	if (*domain == AF_INET || *domain == AF_INET6)
		return "a TCP/IP socket; waiterd serves a Unix socket (ListenStream=/PATH)";
	if (*domain != AF_UNIX)
		return "not a Unix socket";
	if (*type == SOCK_DGRAM)
		return "a datagram socket; waiterd needs a stream socket "
		    "(ListenStream=, not ListenDatagram=)";
	if (*type != SOCK_STREAM)
		return "not a stream socket (ListenStream=, not ListenSequentialPacket=)";
	if (!*listening)
		return "a connected, not a listening socket (the .socket unit must "
		    "not set Accept=yes)";
	return NULL;
}

/* Check the passed socket's mode against --allow-uid/--allow-group: the
 * unit sets it (SocketMode=, SocketGroup=), and a mismatch locks out the
 * very users the command line names. */
static void
server_check_adopted_mode(void)
{
	struct stat st;

	if (stat(cfg.socket_path, &st) < 0) {
		log_warn("activated_socket path=%s error=\"%s\"", cfg.socket_path,
		    strerror(errno));
		return;
	}
	if (cfg.have_allow_gid && ((st.st_mode & 060) != 060 || st.st_gid != cfg.allow_gid))
		log_warn("activated_socket path=%s mode=%04o gid=%u detail=\"--allow-group "
		    "names gid %u, whose members cannot connect: set SocketGroup= and "
		    "SocketMode=0660 in the .socket unit\"", cfg.socket_path,
		    (unsigned)(st.st_mode & 07777), (unsigned)st.st_gid,
		    (unsigned)cfg.allow_gid);
	if (cfg.n_allow_uids > 0 && (st.st_mode & 006) != 006)
		log_warn("activated_socket path=%s mode=%04o detail=\"--allow-uid names "
		    "users who cannot connect: set SocketMode=0666 in the .socket unit\"",
		    cfg.socket_path, (unsigned)(st.st_mode & 07777));
}

int
server_adopt(int fd, const char *name, const char *want_path, const char **cause)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof sa;
	int domain = -1, type = -1, listening = 0;
	const char *what = server_describe_fd(fd, &domain, &type, &listening);
	const char *passed = strcmp(name, "unknown") == 0 ?
	    arena_printf("descriptor %d passed by the service manager (LISTEN_FDS)", fd) :
	    arena_printf("descriptor %d (\"%s\") passed by the service manager "
	    "(LISTEN_FDS)", fd, name);
	size_t n;

	if (what != NULL) {
		*cause = arena_printf("%s is %s", passed, what);
		return -1;
	}
	memset(&sa, 0, sizeof sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		fatal("getsockname");
	n = len > offsetof(struct sockaddr_un, sun_path) ?
	    strnlen(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path)) : 0;
	if (n == 0 || sa.sun_path[0] != '/') {
		*cause = arena_printf("%s is %s; waiter's clients connect to a path: "
		    "use ListenStream=/PATH", passed, n > 0 ? "bound to a relative path" :
		    len > offsetof(struct sockaddr_un, sun_path) + 1 ?
		    "an abstract socket (@NAME)" : "not bound to a path");
		return -1;
	}
	memcpy(adopted_path, sa.sun_path, n);
	adopted_path[n] = '\0';
	if (want_path != NULL && strcmp(want_path, adopted_path) != 0) {
		*cause = arena_printf("-S names %s, but the service manager passed the "
		    "socket %s (LISTEN_FDS): drop -S or make it name the .socket "
		    "unit's ListenStream=", want_path, adopted_path);
		return -1;
	}
	cfg.socket_path = adopted_path;
	if (asprintf(&lock_path, "%s.lock", cfg.socket_path) < 0)
		fatal("asprintf");
	if (server_lock(true, cause) < 0)
		return -1;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		fatal("fcntl on the passed socket");
	listen_fd = fd;
	listen_owned = false;
	server_accept_from(listen_fd);
	server_check_adopted_mode();
	log_info("listening path=%s pid=%d activated=yes fd=%d fdname=\"%s\"",
	    cfg.socket_path, (int)getpid(), fd, name);
	return 0;
}

void
server_stop_listening(void)
{
	if (listen_ev != NULL) {
		event_free(listen_ev);
		listen_ev = NULL;
	}
	if (listen_fd >= 0) {
		close(listen_fd);
		listen_fd = -1;
		if (listen_owned)
			unlink(cfg.socket_path);
		/* Shutdown began (daemon.c): tell the service manager, so it
		 * neither counts us ready nor mistakes the exit for a crash. */
		if (daemon_stopping && sdnotify_send("STOPPING=1\nSTATUS=stopping: %llu "
		    "running tasks to end", (unsigned long long)tasks_running()) < 0)
			log_warn("sd_notify state=STOPPING error=\"%s\"", strerror(errno));
	}
	if (lock_fd >= 0) {
		unlink(lock_path);
		close(lock_fd);
		lock_fd = -1;
	}
}

void
server_foreach_conn(void (*fn)(struct conn *, void *), void *arg)
{
	struct conn *c, *next;

	for (c = LIST_FIRST(&conns); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (c->closing != CONN_DEAD)
			fn(c, arg);
	}
}

uint64_t
server_output_bytes(void)
{
	struct conn *c;
	uint64_t n = 0;

	LIST_FOREACH(c, &conns, link)
		n += evbuffer_get_length(c->out);
	return n;
}

static void
server_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	log_warn("shutdown_grace_expired connections=%llu",
	    (unsigned long long)stats.connections);
	event_base_loopexit(ev_base, NULL);
}

static void
drain_cb(struct conn *c, void *arg)
{
	(void)arg;
	conn_close(c, CONN_FLUSH, "shutdown");
}

void
server_drain_and_exit(void)
{
	struct timeval tv = clock_tv(SHUTDOWN_GRACE_US);

	draining = true;
	server_foreach_conn(drain_cb, NULL);
	grace_ev = evtimer_new(ev_base, server_grace_cb, NULL);
	evtimer_add(grace_ev, &tv);
	if (LIST_EMPTY(&conns))
		event_base_loopexit(ev_base, NULL);
}

void
server_free(void)
{
	struct conn *c;

	server_stop_listening();
	while ((c = LIST_FIRST(&conns)) != NULL) {
		if (c->closing == CONN_DEAD)
			TAILQ_REMOVE(&dead, c, dead_link);
		event_del(&c->rev);
		event_del(&c->wev);
		conn_free(c);
	}
	if (accept_retry_ev != NULL)
		event_free(accept_retry_ev);
	if (reap_ev != NULL)
		event_free(reap_ev);
	if (partial_ev != NULL)
		event_free(partial_ev);
	if (grace_ev != NULL)
		event_free(grace_ev);
	accept_retry_ev = reap_ev = partial_ev = grace_ev = NULL;
	if (reserve_fd >= 0)
		close(reserve_fd);
	reserve_fd = -1;
	free(lock_path);
	lock_path = NULL;
	arena_reset();
}
