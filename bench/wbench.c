/*
 * wbench - the load generator of bench/run: drives waiterd over the
 * protocol from one thread (epoll), so the client is never the bottleneck,
 * and measures the peers' equivalents where no peer tool does.
 *
 *   wbench ping SOCKET CLIENTS INFLIGHT REQUESTS
 *	CLIENTS connections, each keeping INFLIGHT Pings outstanding (1: not
 *	pipelined), until REQUESTS replies came; prints requests/s.
 *   wbench hold SOCKET N waiter|redis
 *	open N connections, each does one exchange (Hello, or a redis PING),
 *	then prints "holding N" and sleeps until killed.
 *   wbench timers SOCKET N
 *	create N one-hour timers of lifetime daemon, 512 in flight; prints
 *	the seconds it took.
 *   wbench submit SOCKET N
 *	submit N /bin/true tasks to a queue another task holds, so none runs;
 *	prints the seconds from the first submission to the last reply
 *   wbench tasks SOCKET N PARALLEL
 *	submit N /bin/true tasks to queue "wbench" (parallelism PARALLEL);
 *	prints the seconds from the first submit to the last TaskDone.
 *   wbench spawn N PARALLEL
 *	the limit: posix_spawn /bin/true N times, PARALLEL in flight; prints
 *	the seconds.
 *   wbench lateness SOCKET N SUBSCRIBERS
 *	N one-shot timers (at_us) with deadlines spread uniformly over
 *	[0.5 s, 2.5 s] from now, created on one connection; SUBSCRIBERS more
 *	connections subscribe to every event and read them. Each TimerFired
 *	is timed at the owner, at every tenth subscriber and at the last
 *	(the others are drained): fired_us - scheduled_us (the daemon's
 *	lateness) and the wall clock at receipt - scheduled_us (end to
 *	end). Prints
 *	"D_P50 D_P99 E_P50 E_P99 LOST" (µs; LOST: events the timed
 *	connections were told they missed).
 *   wbench timerfd N
 *	the peer: the same N deadlines in one process, one timerfd
 *	(CLOCK_REALTIME, absolute) re-armed to the earliest pending one;
 *	lateness is the wall clock when it is handled - the deadline. Prints
 *	the same five numbers (end to end = its own lateness; LOST 0).
 *   wbench fanout N SUBSCRIBERS
 *	the peer of the client side: the timerfd loop of "timerfd" in a
 *	child process that writes a 64-byte record per due deadline to
 *	SUBSCRIBERS + 1 Unix sockets (one write per socket per wake-up);
 *	this process reads and times them as "lateness" does. Prints the
 *	same five numbers (LOST 0).
 *   wbench watch SOCKET DIR N
 *	a path watch on DIR; N times write DIR/f and time until the event
 *	reaches us; prints "P50_US P99_US".
 *   wbench watch-cmd [-i TEXT] DIR N CMD...
 *	the same, with CMD (started here) printing one line per event; with
 *	-i, CMD's stdin is a pipe that gets TEXT and stays open (watchman's
 *	persistent subscription reads its command there).
 *   wbench inotify DIR
 *	a bare inotify reader: one line per IN_CLOSE_WRITE in DIR.
 *   wbench exec N CMD...
 *	run CMD N times, one after the other; prints the mean microseconds
 *	per run (bench/run uses it when hyperfine is missing).
 *
 * Exit status: 0, 1 on any failure (a sentence on stderr), 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "waiter.pb-c.h"

extern char **environ;

/* Replies and events of one connection are read into a buffer this large;
 * a frame that does not fit is a broken stream for our purposes. */
#define INBUF_SIZE (256 * 1024)
/* Requests kept outstanding when creating timers or submitting tasks:
 * enough to keep the daemon busy, far below its output limit. */
#define CREATE_WINDOW 512
/* A benchmark that hears nothing for this long has failed. */
#define STALL_MS 30000

struct conn {
	int fd;
	uint8_t *in;
	size_t inlen;
	uint64_t sent;          /* requests sent */
	uint64_t done;          /* replies received */
};

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
count_arg(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0) {
		fprintf(stderr, "wbench: %s must be a positive count, not '%s'\n", what, s);
		exit(2);
	}
	return v;
}

static int
dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof sa.sun_path)
		die("socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("cannot connect to %s: %s", path, strerror(errno));
	return fd;
}

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		die("fcntl: %s", strerror(errno));
}

/* Write all of p, waiting for room when the socket is full. */
static void
send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			poll(&pfd, 1, STALL_MS);
			continue;
		}
		if (w < 0)
			die("send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* Frame req into out (at most cap bytes); returns the frame's length. */
static size_t
pack_request(const Waiter__V1__Request *req, uint8_t *out, size_t cap)
{
	size_t n = waiter__v1__request__get_packed_size(req);

	if (n + FRAME_HEADER_LEN > cap)
		die("request too large to frame");
	frame_put_header(out, (uint32_t)n);
	waiter__v1__request__pack(req, out + FRAME_HEADER_LEN);
	return n + FRAME_HEADER_LEN;
}

static void
send_request(int fd, const Waiter__V1__Request *req)
{
	uint8_t buf[4096];

	send_all(fd, buf, pack_request(req, buf, sizeof buf));
}

/* Read more bytes into c->in: 1 some, 0 none yet (EAGAIN), dies on close. */
static int
conn_fill(struct conn *c)
{
	ssize_t r;

	if (c->inlen == INBUF_SIZE)
		die("a daemon frame larger than %d bytes", INBUF_SIZE);
	r = recv(c->fd, c->in + c->inlen, INBUF_SIZE - c->inlen, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r < 0)
		die("recv: %s", strerror(errno));
	if (r == 0)
		die("the daemon closed the connection");
	c->inlen += (size_t)r;
	return 1;
}

/* Take one whole frame off c->in: its payload into *p, *n; 0 if none yet.
 * The payload stays valid until the next conn_consume. */
static int
conn_frame(struct conn *c, size_t *off, const uint8_t **p, uint32_t *n)
{
	switch (frame_next(c->in + *off, c->inlen - *off, INBUF_SIZE, n)) {
	case FRAME_OK:
		*p = c->in + *off + FRAME_HEADER_LEN;
		*off += FRAME_HEADER_LEN + *n;
		return 1;
	case FRAME_TOO_LARGE:
		die("a daemon frame larger than %d bytes", INBUF_SIZE);
	case FRAME_NEED_MORE:
		break;
	}
	return 0;
}

static void
conn_consume(struct conn *c, size_t off)
{
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
}

static Waiter__V1__ServerMessage *
decode(const uint8_t *p, uint32_t n)
{
	Waiter__V1__ServerMessage *m = waiter__v1__server_message__unpack(NULL, n, p);

	if (m == NULL)
		die("the daemon sent an undecodable message");
	return m;
}

/* Die if m is an error reply. */
static void
check_reply(const Waiter__V1__ServerMessage *m)
{
	if (m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY &&
	    m->reply->result_case == WAITER__V1__REPLY__RESULT_ERROR)
		die("the daemon answered request %" PRIu64 " with an error: %s",
		    m->reply->id, m->reply->error->message);
}

/* Read (blocking) until the reply to request id; events are skipped. */
static void
await_reply(struct conn *c, uint64_t id)
{
	for (;;) {
		size_t off = 0;
		const uint8_t *p;
		uint32_t n;
		int found = 0;

		while (!found && conn_frame(c, &off, &p, &n)) {
			Waiter__V1__ServerMessage *m = decode(p, n);

			check_reply(m);
			found = m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY &&
			    m->reply->id == id;
			waiter__v1__server_message__free_unpacked(m, NULL);
		}
		conn_consume(c, off);
		if (found)
			return;
		if (conn_fill(c) == 0) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

			if (poll(&pfd, 1, STALL_MS) == 0)
				die("no reply to request %" PRIu64 " in %d ms", id, STALL_MS);
		}
	}
}

static void
conn_open(struct conn *c, const char *path)
{
	memset(c, 0, sizeof *c);
	c->fd = dial(path);
	c->in = malloc(INBUF_SIZE);
	if (c->in == NULL)
		die("out of memory");
}

/* Connect and say Hello; the connection is left non-blocking. */
static void
conn_hello(struct conn *c, const char *path)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Hello h = WAITER__V1__HELLO__INIT;

	conn_open(c, path);
	set_nonblock(c->fd);
	h.protocol_version = WAITER_PROTOCOL_VERSION;
	h.client_name = "wbench";
	req.id = 1;
	req.op_case = WAITER__V1__REQUEST__OP_HELLO;
	req.hello = &h;
	send_request(c->fd, &req);
	await_reply(c, 1);
}

static void
conn_close(struct conn *c)
{
	close(c->fd);
	free(c->in);
}

/* ------------------------------------------------------------------ ping */

/* A Ping frame, encoded by hand (Request{id = 1: varint, ping = 11: empty
 * message}) so the generator spends nothing on protobuf; checked against
 * protobuf-c once in ping_selftest. */
static size_t
ping_frame(uint8_t *out, uint64_t id)
{
	size_t n = 4;

	out[n++] = 0x08;
	do {
		out[n++] = (uint8_t)((id & 0x7f) | (id > 0x7f ? 0x80 : 0));
		id >>= 7;
	} while (id != 0);
	out[n++] = 0x5a;
	out[n++] = 0x00;
	frame_put_header(out, (uint32_t)(n - 4));
	return n;
}

static void
ping_selftest(void)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Ping ping = WAITER__V1__PING__INIT;
	uint8_t a[64], b[64];
	uint64_t ids[] = { 1, 127, 128, 300, 1ull << 40 };

	req.op_case = WAITER__V1__REQUEST__OP_PING;
	req.ping = &ping;
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		size_t n;

		req.id = ids[i];
		n = pack_request(&req, a, sizeof a);
		if (ping_frame(b, ids[i]) != n || memcmp(a, b, n) != 0)
			die("the hand-encoded Ping differs from protobuf-c's");
	}
}

struct ping_run {
	uint64_t total;         /* replies wanted */
	uint64_t sent, done;    /* over all connections */
	unsigned inflight;
};

/* Send what c may send now: up to inflight outstanding, total overall. */
static void
ping_send(struct ping_run *r, struct conn *c)
{
	uint8_t buf[64 * 16];
	size_t len = 0;

	while (c->sent - c->done < r->inflight && r->sent < r->total) {
		if (len + 24 > sizeof buf) {
			send_all(c->fd, buf, len);
			len = 0;
		}
		len += ping_frame(buf + len, ++c->sent + 1);
		r->sent++;
	}
	if (len > 0)
		send_all(c->fd, buf, len);
}

/* Count the replies that arrived on c (a Pong is all a Ping gets). */
static void
ping_read(struct ping_run *r, struct conn *c)
{
	while (conn_fill(c)) {
		size_t off = 0;
		const uint8_t *p;
		uint32_t n;

		while (conn_frame(c, &off, &p, &n)) {
			/* ServerMessage.reply (field 1, length-delimited) */
			if (n == 0 || p[0] != 0x0a)
				die("an answer to Ping that is not a reply");
			c->done++;
			r->done++;
		}
		conn_consume(c, off);
	}
}

static int
cmd_ping(int argc, char **argv)
{
	struct ping_run r = { 0 };
	uint64_t nconn;
	struct conn *cs;
	int ep;
	double t0, t1;

	if (argc != 6)
		return -1;
	nconn = count_arg(argv[3], "CLIENTS");
	r.inflight = (unsigned)count_arg(argv[4], "INFLIGHT");
	r.total = count_arg(argv[5], "REQUESTS");
	ping_selftest();
	cs = calloc(nconn, sizeof *cs);
	if (cs == NULL || (ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("cannot set up: %s", strerror(errno));
	for (uint64_t i = 0; i < nconn; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };

		conn_hello(&cs[i], argv[2]);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
	}
	t0 = now_s();
	for (uint64_t i = 0; i < nconn; i++)
		ping_send(&r, &cs[i]);
	while (r.done < r.total) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, STALL_MS);

		if (n == 0)
			die("no reply in %d ms (%" PRIu64 " of %" PRIu64 ")", STALL_MS,
			    r.done, r.total);
		for (int i = 0; i < n; i++) {
			ping_read(&r, evs[i].data.ptr);
			ping_send(&r, evs[i].data.ptr);
		}
	}
	t1 = now_s();
	printf("%.0f\n", (double)r.total / (t1 - t0));
	for (uint64_t i = 0; i < nconn; i++)
		conn_close(&cs[i]);
	free(cs);
	return 0;
}

/* ------------------------------------------------------------------ hold */

/* One redis exchange, so each held connection has done what a client does. */
static void
redis_ping(int fd)
{
	char buf[64];
	ssize_t r;

	send_all(fd, (const uint8_t *)"PING\r\n", 6);
	r = recv(fd, buf, sizeof buf, 0);
	if (r < 5 || memcmp(buf, "+PONG", 5) != 0)
		die("redis did not answer PING");
}

static int
cmd_hold(int argc, char **argv)
{
	uint64_t n;
	int redis;

	if (argc != 5)
		return -1;
	n = count_arg(argv[3], "N");
	redis = strcmp(argv[4], "redis") == 0;
	if (!redis && strcmp(argv[4], "waiter") != 0)
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		struct conn c;

		if (redis) {
			redis_ping(dial(argv[2]));
			continue;
		}
		conn_hello(&c, argv[2]);
		free(c.in);     /* keep the descriptor open */
	}
	printf("holding %" PRIu64 "\n", n);
	fflush(stdout);
	for (;;)
		pause();
}

/* --------------------------------------------------------------- timers */

/*
 * Send req n times, ids first_id on, CREATE_WINDOW in flight, until every
 * reply came (events in between are read and dropped); the seconds taken.
 */
static double
send_window(struct conn *c, Waiter__V1__Request *req, uint64_t n, uint64_t first_id)
{
	double t0 = now_s();

	c->sent = c->done = 0;
	while (c->done < n) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		size_t off = 0;
		const uint8_t *p;
		uint32_t len;

		while (c->sent < n && c->sent - c->done < CREATE_WINDOW) {
			req->id = first_id + c->sent++;
			send_request(c->fd, req);
		}
		if (conn_fill(c) == 0 && poll(&pfd, 1, STALL_MS) == 0)
			die("no reply in %d ms", STALL_MS);
		while (conn_frame(c, &off, &p, &len)) {
			Waiter__V1__ServerMessage *m = decode(p, len);

			check_reply(m);
			c->done += m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY;
			waiter__v1__server_message__free_unpacked(m, NULL);
		}
		conn_consume(c, off);
	}
	return now_s() - t0;
}

static int
cmd_timers(int argc, char **argv)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__TimerCreate tc = WAITER__V1__TIMER_CREATE__INIT;
	struct conn c;
	uint64_t n;

	if (argc != 4)
		return -1;
	n = count_arg(argv[3], "N");
	conn_hello(&c, argv[2]);
	tc.after_us = 3600ull * 1000000;
	tc.lifetime = WAITER__V1__LIFETIME__LIFETIME_DAEMON;
	req.op_case = WAITER__V1__REQUEST__OP_TIMER_CREATE;
	req.timer_create = &tc;
	printf("%.3f\n", send_window(&c, &req, n, 2));
	conn_close(&c);
	return 0;
}

/* ---------------------------------------------------------------- tasks */

static void
tasks_queue(struct conn *c, uint32_t parallel)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__QueueSet qs = WAITER__V1__QUEUE_SET__INIT;

	qs.queue = "wbench";
	qs.parallel = parallel;
	req.id = 1;
	req.op_case = WAITER__V1__REQUEST__OP_QUEUE_SET;
	req.queue_set = &qs;
	send_request(c->fd, &req);
	await_reply(c, 1);
}

/* Count replies and TaskDone events in what arrived; *failed counts the
 * tasks that did not succeed. */
static void
tasks_read(struct conn *c, uint64_t *ended, uint64_t *failed)
{
	size_t off = 0;
	const uint8_t *p;
	uint32_t len;

	while (conn_frame(c, &off, &p, &len)) {
		Waiter__V1__ServerMessage *m = decode(p, len);

		check_reply(m);
		if (m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY)
			c->done++;
		else if (m->event->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_TASK_DONE) {
			(*ended)++;
			if (m->event->task_done == NULL || m->event->task_done->task == NULL ||
			    m->event->task_done->task->state !=
			    WAITER__V1__TASK_STATE__TASK_STATE_SUCCEEDED)
				(*failed)++;
		}
		waiter__v1__server_message__free_unpacked(m, NULL);
	}
	conn_consume(c, off);
}

static int
cmd_tasks(int argc, char **argv)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__TaskSubmit ts = WAITER__V1__TASK_SUBMIT__INIT;
	char *targv[] = { "/bin/true" };
	struct conn c;
	uint64_t n, ended = 0, failed = 0;
	double t0;

	if (argc != 5)
		return -1;
	n = count_arg(argv[3], "N");
	conn_hello(&c, argv[2]);
	tasks_queue(&c, (uint32_t)count_arg(argv[4], "PARALLEL"));
	ts.n_argv = 1;
	ts.argv = targv;
	ts.queue = "wbench";
	req.op_case = WAITER__V1__REQUEST__OP_TASK_SUBMIT;
	req.task_submit = &ts;
	c.sent = c.done = 1;
	t0 = now_s();
	while (ended < n) {
		struct pollfd pfd = { .fd = c.fd, .events = POLLIN };

		while (c.sent - 1 < n && c.sent - c.done < CREATE_WINDOW) {
			req.id = ++c.sent;
			send_request(c.fd, &req);
		}
		if (conn_fill(&c) == 0 && poll(&pfd, 1, STALL_MS) == 0)
			die("no event in %d ms (%" PRIu64 " of %" PRIu64 " tasks ended)",
			    STALL_MS, ended, n);
		tasks_read(&c, &ended, &failed);
	}
	printf("%.3f\n", now_s() - t0);
	conn_close(&c);
	if (failed > 0)
		die("%" PRIu64 " of %" PRIu64 " tasks did not succeed", failed, n);
	return 0;
}

/*
 * Submission alone: one task holds queue "wbench-held" (parallelism 1), so
 * the N tasks submitted after it stay queued and no process is spawned;
 * the time is from the first submission to the last reply. The daemon's
 * stop cancels them (or, with a state directory, keeps them).
 */
static int
cmd_submit(int argc, char **argv)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__QueueSet qs = WAITER__V1__QUEUE_SET__INIT;
	Waiter__V1__TaskSubmit ts = WAITER__V1__TASK_SUBMIT__INIT;
	char *hold[] = { "sleep", "3600" }, *targv[] = { "/bin/true" };
	struct conn c;
	uint64_t n;

	if (argc != 4)
		return -1;
	n = count_arg(argv[3], "N");
	conn_hello(&c, argv[2]);
	qs.queue = "wbench-held";
	qs.parallel = 1;
	req.id = 1;
	req.op_case = WAITER__V1__REQUEST__OP_QUEUE_SET;
	req.queue_set = &qs;
	send_request(c.fd, &req);
	await_reply(&c, 1);
	ts.queue = "wbench-held";
	ts.n_argv = 2;
	ts.argv = hold;
	req.id = 2;
	req.op_case = WAITER__V1__REQUEST__OP_TASK_SUBMIT;
	req.task_submit = &ts;
	send_request(c.fd, &req);
	await_reply(&c, 2);
	ts.n_argv = 1;
	ts.argv = targv;
	printf("%.3f\n", send_window(&c, &req, n, 3));
	conn_close(&c);
	return 0;
}

/* The limit: posix_spawn and reap, parallel processes at a time. */
static int
cmd_spawn(int argc, char **argv)
{
	char *targv[] = { "/bin/true", NULL };
	char *tenv[] = { NULL };
	uint64_t n, parallel, started = 0, reaped = 0;
	double t0;

	if (argc != 4)
		return -1;
	n = count_arg(argv[2], "N");
	parallel = count_arg(argv[3], "PARALLEL");
	t0 = now_s();
	while (reaped < n) {
		int st;

		while (started < n && started - reaped < parallel) {
			pid_t pid;
			int e = posix_spawn(&pid, targv[0], NULL, NULL, targv, tenv);

			if (e != 0)
				die("posix_spawn: %s", strerror(e));
			started++;
		}
		if (wait(&st) < 0)
			die("wait: %s", strerror(errno));
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("/bin/true failed");
		reaped++;
	}
	printf("%.3f\n", now_s() - t0);
	return 0;
}

/* --------------------------------------------------------------- watches */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
print_percentiles(double *lat, uint64_t n)
{
	qsort(lat, n, sizeof *lat, cmp_double);
	printf("%.0f %.0f\n", lat[(n - 1) / 2] * 1e6, lat[(n * 99 + 99) / 100 - 1] * 1e6);
}

static void
touch_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, "x", 1) != 1)
		die("cannot write %s: %s", path, strerror(errno));
	close(fd);
}

/* Read until a PathChanged event arrives on c. */
static void
await_path_event(struct conn *c)
{
	for (;;) {
		size_t off = 0;
		const uint8_t *p;
		uint32_t len;
		int got = 0;

		while (!got && conn_frame(c, &off, &p, &len)) {
			Waiter__V1__ServerMessage *m = decode(p, len);

			check_reply(m);
			got = m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_EVENT &&
			    m->event->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_PATH_CHANGED;
			waiter__v1__server_message__free_unpacked(m, NULL);
		}
		conn_consume(c, off);
		if (got)
			return;
		if (conn_fill(c) == 0) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

			if (poll(&pfd, 1, STALL_MS) == 0)
				die("no path event in %d ms", STALL_MS);
		}
	}
}

static int
cmd_watch(int argc, char **argv)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__WatchPath wp = WAITER__V1__WATCH_PATH__INIT;
	Waiter__V1__PathEventKind on = WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_MODIFIED;
	char *paths[1], file[4096];
	struct conn c;
	uint64_t n;
	double *lat;

	if (argc != 5)
		return -1;
	n = count_arg(argv[4], "N");
	paths[0] = argv[3];
	snprintf(file, sizeof file, "%s/f", argv[3]);
	conn_hello(&c, argv[2]);
	wp.n_paths = 1;
	wp.paths = paths;
	wp.n_on = 1;
	wp.on = &on;
	req.id = 2;
	req.op_case = WAITER__V1__REQUEST__OP_WATCH_PATH;
	req.watch_path = &wp;
	send_request(c.fd, &req);
	await_reply(&c, 2);
	lat = calloc(n, sizeof *lat);
	for (uint64_t i = 0; i < n; i++) {
		double t0 = now_s();

		touch_file(file);
		await_path_event(&c);
		lat[i] = now_s() - t0;
	}
	print_percentiles(lat, n);
	conn_close(&c);
	return 0;
}

/* Write the string s to a pipe. */
static void
send_all_fd(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("write: %s", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

/* Wait for one line from fd (ms at most): 1, or 0 on timeout. */
static int
read_line(int fd, int ms)
{
	char ch;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, ms) == 0)
			return 0;
		r = read(fd, &ch, 1);
		if (r <= 0)
			die("the watching command ended");
		if (ch == '\n')
			return 1;
	}
}

static int
cmd_watch_cmd(int argc, char **argv)
{
	posix_spawn_file_actions_t fa;
	int pfd[2], ifd[2] = { -1, -1 };
	pid_t pid;
	char file[4096];
	const char *text = NULL;
	uint64_t n;
	double *lat;
	int st, e;

	if (argc >= 4 && strcmp(argv[2], "-i") == 0) {
		text = argv[3];
		argc -= 2;
		argv += 2;
	}
	if (argc < 5)
		return -1;
	n = count_arg(argv[3], "N");
	snprintf(file, sizeof file, "%s/f", argv[2]);
	if (pipe(pfd) < 0 || (text != NULL && pipe(ifd) < 0))
		die("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	if (text != NULL) {
		posix_spawn_file_actions_adddup2(&fa, ifd[0], 0);
		posix_spawn_file_actions_addclose(&fa, ifd[1]);
	}
	if ((e = posix_spawnp(&pid, argv[4], &fa, NULL, argv + 4, environ)) != 0)
		die("cannot run %s: %s", argv[4], strerror(e));
	close(pfd[1]);
	if (text != NULL) {
		/* kept open until the end: a closed stdin may end CMD */
		close(ifd[0]);
		send_all_fd(ifd[1], text);
	}
	/* Until the command watches, writes go unseen: write until one is. */
	for (int tries = 0;; tries++) {
		if (tries == 100)
			die("%s reported nothing in 10 s", argv[4]);
		touch_file(file);
		if (read_line(pfd[0], 100))
			break;
	}
	while (read_line(pfd[0], 200))
		;
	lat = calloc(n, sizeof *lat);
	for (uint64_t i = 0; i < n; i++) {
		double t0;

		/* a late second report of the previous write is not this one's */
		while (read_line(pfd[0], 0))
			;
		t0 = now_s();
		touch_file(file);
		if (!read_line(pfd[0], STALL_MS))
			die("no event from %s in %d ms", argv[4], STALL_MS);
		lat[i] = now_s() - t0;
	}
	print_percentiles(lat, n);
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	if (ifd[1] >= 0)
		close(ifd[1]);
	return 0;
}

static int
cmd_inotify(int argc, char **argv)
{
	char buf[4096] __attribute__((aligned(8)));
	int fd;

	if (argc != 3)
		return -1;
	fd = inotify_init1(IN_CLOEXEC);
	if (fd < 0 || inotify_add_watch(fd, argv[2], IN_CLOSE_WRITE) < 0)
		die("inotify on %s: %s", argv[2], strerror(errno));
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);

		if (r <= 0)
			die("inotify read: %s", strerror(errno));
		for (char *p = buf; p < buf + r;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			printf("%s\n", ev->len > 0 ? ev->name : ".");
			p += sizeof *ev + ev->len;
		}
	}
}

/* ------------------------------------------------------------- lateness */

/* Deadlines of the lateness run: from 0.5 s to 2.5 s after the start. */
#define LATE_FIRST_US 500000
#define LATE_SPREAD_US 2000000
/* Every LATE_SAMPLE-th subscriber decodes and times what it receives; the
 * rest only drain, so the generator's one thread keeps up with the
 * fan-out (100 subscribers x 10,000 fires). */
#define LATE_SAMPLE 10
/* Once every timed connection has all its fires, the drained ones get
 * this long of silence to finish. */
#define LATE_DRAIN_MS 1000

static int64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The i-th of n deadlines after start: uniform over the spread, in a
 * fixed pseudo-random order (xorshift), the same for waiter and the peer. */
static int64_t *
late_deadlines(uint64_t n, int64_t start)
{
	int64_t *d = calloc(n, sizeof *d);
	uint64_t x = 88172645463325252ull;

	if (d == NULL)
		die("out of memory");
	for (uint64_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		d[i] = start + LATE_FIRST_US + (int64_t)(x % LATE_SPREAD_US);
	}
	return d;
}

static double
percentile(double *v, uint64_t n, unsigned q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_double);
	return q == 50 ? v[(n - 1) / 2] : v[(n * q + 99) / 100 - 1];
}

static void
print_lateness(double *d, uint64_t nd, double *e, uint64_t ne, uint64_t lost)
{
	double d50 = percentile(d, nd, 50), d99 = percentile(d, nd, 99);

	printf("%.0f %.0f %.0f %.0f %" PRIu64 "\n", d50, d99, percentile(e, ne, 50),
	    percentile(e, ne, 99), lost);
}

struct late_conn {
	struct conn c;
	int timed;              /* decodes and times its events */
	uint64_t fires;         /* TimerFired seen (timed), frames (drained) */
	uint64_t lost;          /* events an EVENTS_LOST marker said it missed */
};

struct late_run {
	double *daemon, *e2e;   /* lateness samples, µs */
	uint64_t nd, ne, cap_e;
	uint64_t n;             /* timers */
	uint64_t replies;       /* TimerCreate replies at the owner */
};

static void
late_subscribe(struct conn *c)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Subscribe sub = WAITER__V1__SUBSCRIBE__INIT;

	req.id = 2;
	req.op_case = WAITER__V1__REQUEST__OP_SUBSCRIBE;
	req.subscribe = &sub;
	send_request(c->fd, &req);
	await_reply(c, 2);
}

/* Handle what arrived on lc, received at wall-clock time now. */
static void
late_read(struct late_run *r, struct late_conn *lc, int owner, int64_t now)
{
	size_t off = 0;
	const uint8_t *p;
	uint32_t len;

	while (conn_frame(&lc->c, &off, &p, &len)) {
		Waiter__V1__ServerMessage *m;
		Waiter__V1__Event *ev;

		if (!lc->timed) {
			lc->fires++;
			continue;
		}
		m = decode(p, len);
		check_reply(m);
		if (m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY)
			r->replies++;
		ev = m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_EVENT ? m->event : NULL;
		if (ev != NULL && ev->body_case == WAITER__V1__EVENT__BODY_TIMER_FIRED) {
			Waiter__V1__TimerFired *tf = ev->timer_fired;

			lc->fires++;
			if (owner)
				r->daemon[r->nd++] = (double)(tf->fired_us - tf->scheduled_us);
			if (r->ne < r->cap_e)
				r->e2e[r->ne++] = (double)(now - tf->scheduled_us);
		} else if (ev != NULL && ev->body_case == WAITER__V1__EVENT__BODY_EVENTS_LOST)
			lc->lost += ev->events_lost->to_seq - ev->events_lost->from_seq + 1;
		waiter__v1__server_message__free_unpacked(m, NULL);
	}
	conn_consume(&lc->c, off);
}

/* Create the timers on the owner (lcs[0]), a window of requests at a time,
 * reading whatever arrives meanwhile. */
static void
late_create(struct late_run *r, struct late_conn *lcs, const int64_t *dl)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__TimerCreate tc = WAITER__V1__TIMER_CREATE__INIT;
	struct conn *c = &lcs[0].c;

	req.op_case = WAITER__V1__REQUEST__OP_TIMER_CREATE;
	req.timer_create = &tc;
	while (r->replies < r->n) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

		while (c->sent < r->n && c->sent - r->replies < CREATE_WINDOW) {
			tc.at_us = dl[c->sent];
			req.id = ++c->sent + 10;
			send_request(c->fd, &req);
		}
		if (conn_fill(c) == 0 && poll(&pfd, 1, STALL_MS) == 0)
			die("no reply in %d ms", STALL_MS);
		late_read(r, &lcs[0], 1, wall_us());
	}
}

/* Whether every timed connection has had all its fires (or was told it
 * lost them). */
static int
late_timed_done(const struct late_run *r, const struct late_conn *lcs, uint64_t nconn)
{
	for (uint64_t i = 0; i < nconn; i++)
		if (lcs[i].timed && lcs[i].fires + lcs[i].lost < r->n)
			return 0;
	return 1;
}

static int
late_all_done(const struct late_run *r, const struct late_conn *lcs, uint64_t nconn)
{
	for (uint64_t i = 0; i < nconn; i++)
		if (lcs[i].fires + lcs[i].lost < r->n)
			return 0;
	return 1;
}

static int
cmd_lateness(int argc, char **argv)
{
	struct late_run r = { 0 };
	struct late_conn *lcs;
	uint64_t nconn, lost = 0;
	int64_t *dl;
	int ep;

	if (argc != 5)
		return -1;
	r.n = count_arg(argv[3], "N");
	nconn = 1 + strtoull(argv[4], NULL, 10);
	lcs = calloc(nconn, sizeof *lcs);
	if (lcs == NULL || (ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("cannot set up: %s", strerror(errno));
	for (uint64_t i = 0; i < nconn; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };

		conn_hello(&lcs[i].c, argv[2]);
		lcs[i].timed = i == 0 || i % LATE_SAMPLE == 0 || i == nconn - 1;
		if (i > 0)
			late_subscribe(&lcs[i].c);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, lcs[i].c.fd, &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
		r.cap_e += lcs[i].timed ? r.n : 0;
	}
	r.daemon = calloc(r.n, sizeof *r.daemon);
	r.e2e = calloc(r.cap_e, sizeof *r.e2e);
	if (r.daemon == NULL || r.e2e == NULL)
		die("out of memory");
	dl = late_deadlines(r.n, wall_us());
	late_create(&r, lcs, dl);
	while (!late_all_done(&r, lcs, nconn)) {
		struct epoll_event evs[256];
		int done = late_timed_done(&r, lcs, nconn);
		int k = epoll_wait(ep, evs, 256, done ? LATE_DRAIN_MS : STALL_MS);

		if (k == 0 && done)
			break;          /* a drained connection missed some: fine */
		if (k == 0)
			die("no event in %d ms (%" PRIu64 " of %" PRIu64 " fires at the owner)",
			    STALL_MS, lcs[0].fires, r.n);
		for (int i = 0; i < k; i++) {
			struct late_conn *lc = &lcs[evs[i].data.u64];

			while (conn_fill(&lc->c))
				late_read(&r, lc, evs[i].data.u64 == 0, wall_us());
		}
	}
	for (uint64_t i = 0; i < nconn; i++) {
		lost += lcs[i].timed ? lcs[i].lost : 0;
		conn_close(&lcs[i].c);
	}
	print_lateness(r.daemon, r.nd, r.e2e, r.ne, lost);
	return 0;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The peer: one timerfd re-armed to the earliest pending deadline. */
static int
cmd_timerfd(int argc, char **argv)
{
	uint64_t n, next = 0;
	int64_t *dl;
	double *late;
	int fd;

	if (argc != 3)
		return -1;
	n = count_arg(argv[2], "N");
	dl = late_deadlines(n, wall_us());
	qsort(dl, n, sizeof *dl, cmp_int64);
	late = calloc(n, sizeof *late);
	fd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC);
	if (late == NULL || fd < 0)
		die("cannot set up: %s", strerror(errno));
	while (next < n) {
		struct itimerspec its = { 0 };
		uint64_t ticks;
		int64_t now;

		its.it_value.tv_sec = dl[next] / 1000000;
		its.it_value.tv_nsec = dl[next] % 1000000 * 1000;
		if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
			die("timerfd_settime: %s", strerror(errno));
		if (read(fd, &ticks, sizeof ticks) != sizeof ticks)
			die("timerfd read: %s", strerror(errno));
		now = wall_us();
		while (next < n && dl[next] <= now) {
			late[next] = (double)(now - dl[next]);
			next++;
		}
	}
	print_lateness(late, n, late, n, 0);
	return 0;
}

/* The fan-out peer: what delivering each fire to SUBSCRIBERS + 1 sockets
 * costs on this machine without waiterd. A child process runs the timerfd
 * loop of cmd_timerfd and, at each wake-up, writes one record per due
 * deadline to every socket (one write per socket per wake-up, as waiterd
 * writes once per connection per lap); this process reads them with epoll
 * and times them as cmd_lateness does: at the owner (socket 0), at every
 * LATE_SAMPLE-th and at the last. Records are FANOUT_REC bytes, about a
 * TimerFired frame. */
#define FANOUT_REC 64

struct fanout_rec {
	int64_t scheduled_us, fired_us;
	char pad[FANOUT_REC - 2 * sizeof(int64_t)];
};

static void
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t k = write(fd, p, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die("write: %s", strerror(errno));
		p += k;
		len -= (size_t)k;
	}
}

static void
fanout_serve(int *fds, uint64_t nconn, const int64_t *dl, uint64_t n)
{
	struct fanout_rec *batch = calloc(n, sizeof *batch);
	uint64_t next = 0;
	int tfd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC);

	if (batch == NULL || tfd < 0)
		die("cannot set up: %s", strerror(errno));
	while (next < n) {
		struct itimerspec its = { 0 };
		uint64_t ticks, k = 0;
		int64_t now;

		its.it_value.tv_sec = dl[next] / 1000000;
		its.it_value.tv_nsec = dl[next] % 1000000 * 1000;
		if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
			die("timerfd_settime: %s", strerror(errno));
		if (read(tfd, &ticks, sizeof ticks) != sizeof ticks)
			die("timerfd read: %s", strerror(errno));
		now = wall_us();
		for (; next < n && dl[next] <= now; next++, k++) {
			batch[k].scheduled_us = dl[next];
			batch[k].fired_us = now;
		}
		for (uint64_t i = 0; i < nconn; i++)
			write_all(fds[i], batch, k * sizeof *batch);
	}
	free(batch);
}

static int
cmd_fanout(int argc, char **argv)
{
	struct late_run r = { 0 };
	uint64_t nconn, *got;
	int64_t *dl;
	int *srv, *cli, ep, st;
	pid_t pid;

	if (argc != 4)
		return -1;
	r.n = count_arg(argv[2], "N");
	nconn = 1 + strtoull(argv[3], NULL, 10);
	srv = calloc(nconn, sizeof *srv);
	cli = calloc(nconn, sizeof *cli);
	got = calloc(nconn, sizeof *got);
	r.daemon = calloc(r.n, sizeof *r.daemon);
	r.e2e = calloc(r.n * (nconn / LATE_SAMPLE + 2), sizeof *r.e2e);
	if (srv == NULL || cli == NULL || got == NULL || r.daemon == NULL || r.e2e == NULL)
		die("out of memory");
	r.cap_e = r.n * (nconn / LATE_SAMPLE + 2);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
	for (uint64_t i = 0; i < nconn; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			die("socketpair: %s", strerror(errno));
		srv[i] = sv[0];
		cli[i] = sv[1];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cli[i], &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
	}
	dl = late_deadlines(r.n, wall_us());
	{
		int64_t *sorted = malloc(r.n * sizeof *sorted);

		if (sorted == NULL)
			die("out of memory");
		memcpy(sorted, dl, r.n * sizeof *sorted);
		qsort(sorted, r.n, sizeof *sorted, cmp_int64);
		if ((pid = fork()) < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			fanout_serve(srv, nconn, sorted, r.n);
			_exit(0);
		}
		free(sorted);
	}
	for (uint64_t i = 0; i < nconn; i++)
		close(srv[i]);
	for (uint64_t left = nconn; left > 0;) {
		struct epoll_event evs[256];
		int k = epoll_wait(ep, evs, 256, STALL_MS);

		if (k <= 0)
			die("no record in %d ms", STALL_MS);
		for (int j = 0; j < k; j++) {
			uint64_t i = evs[j].data.u64;
			int timed = i == 0 || i % LATE_SAMPLE == 0 || i == nconn - 1;
			struct fanout_rec recs[256];
			ssize_t m = read(cli[i], recs, sizeof recs);
			int64_t now = wall_us();

			if (m < 0 && errno == EINTR)
				continue;
			if (m <= 0) {   /* the server is done with this one */
				epoll_ctl(ep, EPOLL_CTL_DEL, cli[i], NULL);
				left--;
				continue;
			}
			if (m % FANOUT_REC != 0) {  /* finish the record */
				size_t want = FANOUT_REC - (size_t)m % FANOUT_REC;

				if (read(cli[i], (char *)recs + m, want) != (ssize_t)want)
					die("short record");
				m += (ssize_t)want;
			}
			for (ssize_t o = 0; timed && o < m / FANOUT_REC; o++) {
				if (i == 0)
					r.daemon[r.nd++] = (double)(recs[o].fired_us - recs[o].scheduled_us);
				if (r.ne < r.cap_e)
					r.e2e[r.ne++] = (double)(now - recs[o].scheduled_us);
			}
			got[i] += (uint64_t)m / FANOUT_REC;
		}
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("the fan-out server failed");
	for (uint64_t i = 0; i < nconn; i++)
		if (got[i] != r.n)
			die("socket %" PRIu64 " got %" PRIu64 " of %" PRIu64 " records", i, got[i], r.n);
	print_lateness(r.daemon, r.nd, r.e2e, r.ne, 0);
	return 0;
}

/* ----------------------------------------------------------------- exec */

static int
cmd_exec(int argc, char **argv)
{
	posix_spawn_file_actions_t fa;
	uint64_t n;
	double t0;

	if (argc < 4)
		return -1;
	n = count_arg(argv[2], "N");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		pid_t pid;
		int st, e = posix_spawnp(&pid, argv[3], &fa, NULL, argv + 3, environ);

		if (e != 0)
			die("cannot run %s: %s", argv[3], strerror(e));
		if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("%s failed", argv[3]);
	}
	printf("%.1f\n", (now_s() - t0) / (double)n * 1e6);
	return 0;
}

static const struct {
	const char *name;
	int (*run)(int, char **);
} modes[] = {
	{ "ping", cmd_ping },
	{ "hold", cmd_hold },
	{ "timers", cmd_timers },
	{ "lateness", cmd_lateness },
	{ "fanout", cmd_fanout },
	{ "timerfd", cmd_timerfd },
	{ "tasks", cmd_tasks },
	{ "submit", cmd_submit },
	{ "spawn", cmd_spawn },
	{ "watch", cmd_watch },
	{ "watch-cmd", cmd_watch_cmd },
	{ "inotify", cmd_inotify },
	{ "exec", cmd_exec },
};

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; argc > 1 && i < sizeof modes / sizeof modes[0]; i++)
		if (strcmp(argv[1], modes[i].name) == 0 && modes[i].run(argc, argv) == 0)
			return 0;
	fprintf(stderr, "usage: wbench ping SOCKET CLIENTS INFLIGHT REQUESTS\n"
	    "       wbench hold SOCKET N waiter|redis\n"
	    "       wbench timers SOCKET N\n"
	    "       wbench lateness SOCKET N SUBSCRIBERS\n"
	    "       wbench fanout N SUBSCRIBERS\n"
	    "       wbench timerfd N\n"
	    "       wbench tasks SOCKET N PARALLEL\n"
	    "       wbench submit SOCKET N\n"
	    "       wbench spawn N PARALLEL\n"
	    "       wbench watch SOCKET DIR N\n"
	    "       wbench watch-cmd [-i TEXT] DIR N CMD...\n"
	    "       wbench inotify DIR\n"
	    "       wbench exec N CMD...\n"
	    "(see the comment at the top of bench/wbench.c)\n");
	return 2;
}
