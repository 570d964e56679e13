/*
 * wraw - a raw protocol client for tests: sends exactly the bytes a test
 * asks for and prints what the daemon answers, so bad input can be
 * produced on purpose.
 *
 *   wraw SOCKET STEP...
 *
 *   hello[:VERSION]  send Hello (default: the current protocol version)
 *   hello-name:N     send Hello whose client name is N bytes: 64 'a',
 *                    then 'b' (so what the daemon keeps is plain to see)
 *   hello-as:TEXT    send Hello whose client name is TEXT
 *   ping             send Ping
 *   op:FIELD         send a Request whose only op is unknown field FIELD
 *   raw:HEX          send these bytes
 *   len:N            send a 4-byte length prefix N, no body
 *   garbage:N        send N random bytes; prints "garbage seed=S" (the
 *                    seed: $WRAW_SEED, else the pid) to reproduce them
 *   badproto         send a frame holding bytes that are not a Request
 *   subscribe[:SEQ]  send Subscribe (replaying after SEQ when given)
 *   subscribe-ids:N  send Subscribe filtering on N ids
 *   timers:N         create N one-hour timers on this connection, read and
 *                    print the N replies
 *   tasks:N          submit N `sleep 1000` tasks on this connection
 *                    (lifetime connection), read and print the N replies
 *   endpoints:N:E    create N endpoint watches of E (tcp:HOST:PORT or
 *                    unix:PATH; lifetime daemon), read and print the replies
 *   waits:ID:N       send N Waits for ID without a timeout; print the
 *                    replies until all N came (or 30 s of silence)
 *   wait:ID          send one Wait for ID (no timeout), read nothing
 *   stdin:N          submit `true` with N bytes of stdin (id 400)
 *   after:ID:N       submit `true` after task ID, named N times (id 401)
 *   queue-set:Q:N    send QueueSet of queue Q to parallelism N (id 402)
 *   lists:N          send N Lists of every object (ids 500...), read nothing
 *   shut             shut down our writing side (a half-close)
 *   split            send the following steps one byte per write
 *   read             read one message and print it (5 s timeout)
 *   readall          print messages until the daemon closes ("closed")
 *   close            close the connection now
 *   sleep:MS         pause
 *   hold:N           open N connections that each say Hello, print
 *                    "holding N", then sleep until killed; on SIGUSR1,
 *                    ping on every one of them and print "pinged K of N"
 *   try:N            like hold:N, but a connection may be refused: print
 *                    the first refusal, then "served S refused R silent Q"
 *                    (Q: no answer within 10 s in all), then hold the
 *                    served ones
 *   flood:N          say Hello, then send N Pings without ever reading
 *                    (blocks once the daemon stops reading); "flooded N"
 *   churn:N          N times: connect, Hello, Ping, read both replies,
 *                    close; then print "churned N ok K"
 *   straddle:MS      for MS ms, every 20 ms, send the rest of one Ping
 *                    and the first half of the next: the daemon never
 *                    holds a whole frame's boundary at the end of a read,
 *                    yet frames complete all the time. Read the pongs as
 *                    they come; print "straddled N pongs K", or the error
 *                    and "closed" if the daemon closes
 *
 * Printed lines: "reply id=N ok KIND", "reply id=N error CODE: message",
 * "event seq=N kind=K", "closed", "timeout".
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "waiter.pb-c.h"

static int split_mode;
static uint8_t inbuf[1 << 20];
static size_t inlen;
static unsigned seed;      /* of garbage:N (srandom) */

static int
dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		printf("connect failed: %s\n", strerror(errno));
		exit(3);
	}
	return fd;
}

static void
send_bytes(int fd, const uint8_t *p, size_t n)
{
	size_t step = split_mode ? 1 : n;

	for (size_t off = 0; off < n; off += step) {
		if (step > n - off)
			step = n - off;
		if (send(fd, p + off, step, MSG_NOSIGNAL) < 0) {
			printf("send failed: %s\n", strerror(errno));
			fflush(stdout);
			return;
		}
	}
}

static void
send_request(int fd, Waiter__V1__Request *req)
{
	size_t n = waiter__v1__request__get_packed_size(req);
	uint8_t *buf = malloc(n + 4);

	frame_put_header(buf, (uint32_t)n);
	waiter__v1__request__pack(req, buf + 4);
	send_bytes(fd, buf, n + 4);
	free(buf);
}

static void
send_hello(int fd, uint32_t version)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Hello h = WAITER__V1__HELLO__INIT;

	h.protocol_version = version;
	h.client_name = "wraw";
	req.id = 1;
	req.op_case = WAITER__V1__REQUEST__OP_HELLO;
	req.hello = &h;
	send_request(fd, &req);
}

/* Describe one message in line; 1 a reply, 2 an event, 0 closed, -1 timeout. */
static int
read_msg(int fd, int timeout_ms, char *line, size_t size)
{
	line[0] = '\0';
	for (;;) {
		uint32_t n;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (frame_next(inbuf, inlen, sizeof inbuf - 4, &n) == FRAME_OK) {
			Waiter__V1__ServerMessage *m =
			    waiter__v1__server_message__unpack(NULL, n, inbuf + 4);

			memmove(inbuf, inbuf + 4 + n, inlen - 4 - n);
			inlen -= 4 + n;
			if (m == NULL) {
				snprintf(line, size, "undecodable");
			} else if (m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY &&
			    m->reply->result_case == WAITER__V1__REPLY__RESULT_ERROR) {
				snprintf(line, size, "reply id=%llu error %s: %s",
				    (unsigned long long)m->reply->id,
				    protobuf_c_enum_descriptor_get_value(
				    &waiter__v1__error_code__descriptor,
				    m->reply->error->code)->name, m->reply->error->message);
			} else if (m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY) {
				const ProtobufCFieldDescriptor *f =
				    protobuf_c_message_descriptor_get_field(
				    &waiter__v1__reply__descriptor, m->reply->result_case);

				snprintf(line, size, "reply id=%llu ok %s",
				    (unsigned long long)m->reply->id, f ? f->name : "?");
			} else {
				snprintf(line, size, "event seq=%llu kind=%s",
				    (unsigned long long)m->event->seq,
				    protobuf_c_enum_descriptor_get_value(
				    &waiter__v1__event_kind__descriptor, m->event->kind)->name);
			}
			r = m != NULL && m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_EVENT ? 2 : 1;
			waiter__v1__server_message__free_unpacked(m, NULL);
			return (int)r;
		}
		if (poll(&pfd, 1, timeout_ms) == 0)
			return -1;
		r = read(fd, inbuf + inlen, sizeof inbuf - inlen);
		if (r <= 0)
			return 0;
		inlen += (size_t)r;
	}
}

/* Print one message; 1 a reply, 2 an event, 0 closed, -1 timeout. */
static int
read_one(int fd, int timeout_ms)
{
	char line[1024];
	int r = read_msg(fd, timeout_ms, line, sizeof line);

	if (r > 0) {
		printf("%s\n", line);
		fflush(stdout);
	}
	return r;
}

static volatile sig_atomic_t usr1;

static void
on_usr1(int sig)
{
	(void)sig;
	usr1 = 1;
}

static void
send_ping(int fd)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Ping p = WAITER__V1__PING__INIT;

	req.id = 2;
	req.op_case = WAITER__V1__REQUEST__OP_PING;
	req.ping = &p;
	send_request(fd, &req);
}

/* One message of a connection that shares inbuf with no other. */
static int
read_quiet(int fd, int timeout_ms, char *line, size_t size)
{
	inlen = 0;
	return read_msg(fd, timeout_ms, line, size);
}

static long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Open n connections, each saying Hello. strict: every one must be served.
 * Then hold the served ones until killed, pinging on each at SIGUSR1.
 */
static void
hold(const char *path, long n, int strict)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit rl;
	int *fds = calloc((size_t)n, sizeof *fds);
	long served = 0, refused = 0, silent = 0, start = mono_ms();
	char line[512];

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGUSR1, on_usr1);
	strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
	for (long i = 0; i < n; i++) {
		if (strict) {
			fds[i] = dial(path);
		} else if ((fds[i] = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
		    connect(fds[i], (struct sockaddr *)&sa, sizeof sa) < 0) {
			printf("connect failed: %s\n", strerror(errno));
			exit(3);
		}
		send_hello(fds[i], WAITER_PROTOCOL_VERSION);
	}
	for (long i = 0; i < n; i++) {
		/* 30 s each when strict; 10 s for all of them otherwise. */
		long left = strict ? 30000 : 10000 - (mono_ms() - start);
		int r = read_quiet(fds[i], left > 0 ? (int)left : 0, line, sizeof line);

		if (r == 1 && strstr(line, " ok hello") != NULL) {
			fds[served++] = fds[i];
			continue;
		}
		if (strict) {
			printf("connection %ld got no hello reply\n", i);
			exit(1);
		}
		if (r == 1 && refused++ == 0)
			printf("%s\n", line);
		silent += r != 1;
		close(fds[i]);
	}
	if (strict)
		printf("holding %ld\n", n);
	else
		printf("served %ld refused %ld silent %ld\n", served, refused, silent);
	fflush(stdout);
	for (;;) {
		long pongs = 0;

		while (!usr1)
			pause();
		usr1 = 0;
		for (long i = 0; i < served; i++)
			send_ping(fds[i]);
		for (long i = 0; i < served; i++)
			if (read_quiet(fds[i], 10000, line, sizeof line) == 1 &&
			    strstr(line, " ok pong") != NULL)
				pongs++;
		printf("pinged %ld of %ld\n", pongs, served);
		fflush(stdout);
	}
}

/* Requests, never reading the replies: the daemon must stop reading us. */
static void
flood(int fd, long n)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Ping p = WAITER__V1__PING__INIT;
	uint8_t frames[64 * 64];
	size_t len, batch = 0;

	req.id = 2;
	req.op_case = WAITER__V1__REQUEST__OP_PING;
	req.ping = &p;
	len = 4 + waiter__v1__request__get_packed_size(&req);
	frame_put_header(frames, (uint32_t)(len - 4));
	waiter__v1__request__pack(&req, frames + 4);
	while ((batch + 2) * len <= sizeof frames)
		memcpy(frames + ++batch * len, frames, len);
	batch++;
	send_hello(fd, WAITER_PROTOCOL_VERSION);
	for (long sent = 0; sent < n; sent += (long)batch)
		send_bytes(fd, frames, len * ((long)batch < n - sent ? batch :
		    (size_t)(n - sent)));
	printf("flooded %ld\n", n);
}

/* Frames that always straddle our writes, with replies read meanwhile. */
static void
straddle(int fd, long ms)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Ping p = WAITER__V1__PING__INIT;
	uint8_t frame[64];
	char line[512];
	size_t len, half;
	long sent = 0, pongs = 0, end = mono_ms() + ms;
	int r;

	req.id = 2;
	req.op_case = WAITER__V1__REQUEST__OP_PING;
	req.ping = &p;
	len = 4 + waiter__v1__request__get_packed_size(&req);
	frame_put_header(frame, (uint32_t)(len - 4));
	waiter__v1__request__pack(&req, frame + 4);
	half = len / 2;
	send_bytes(fd, frame, half);
	while (mono_ms() < end) {
		uint8_t buf[128];

		memcpy(buf, frame + half, len - half);
		memcpy(buf + len - half, frame, half);
		send_bytes(fd, buf, len);
		sent++;
		while ((r = read_msg(fd, 20, line, sizeof line)) == 1 &&
		    strstr(line, " ok pong") != NULL)
			pongs++;
		if (r == 0 || (r == 1 && strstr(line, " ok pong") == NULL)) {
			printf("%s\nclosed\n", line);
			return;
		}
	}
	send_bytes(fd, frame + half, len - half);
	sent++;
	while (pongs < sent && read_msg(fd, 5000, line, sizeof line) == 1 &&
	    strstr(line, " ok pong") != NULL)
		pongs++;
	printf("straddled %ld pongs %ld\n", sent, pongs);
}

/* A connection per request: connect, Hello, Ping, read both, close. */
static void
churn(const char *path, long n)
{
	long ok = 0;
	char line[512];

	for (long i = 0; i < n; i++) {
		int fd = dial(path);

		send_hello(fd, WAITER_PROTOCOL_VERSION);
		send_ping(fd);
		if (read_quiet(fd, 5000, line, sizeof line) == 1 &&
		    read_msg(fd, 5000, line, sizeof line) == 1 &&
		    strstr(line, " ok pong") != NULL)
			ok++;
		close(fd);
	}
	printf("churned %ld ok %ld\n", n, ok);
}

static void
step(int *fd, const char *path, const char *s)
{
	const char *arg = strchr(s, ':');

	arg = arg ? arg + 1 : NULL;
	if (strncmp(s, "hello-name:", 11) == 0 || strncmp(s, "hello-as:", 9) == 0) {
		Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
		Waiter__V1__Hello h = WAITER__V1__HELLO__INIT;
		bool verbatim = strncmp(s, "hello-as:", 9) == 0;
		size_t n = verbatim ? strlen(arg) : strtoul(arg, NULL, 10);
		char *name = malloc(n + 1);

		for (size_t i = 0; i < n; i++)
			name[i] = verbatim ? arg[i] : i < 64 ? 'a' : 'b';
		name[n] = '\0';
		h.protocol_version = WAITER_PROTOCOL_VERSION;
		h.client_name = name;
		req.id = 1;
		req.op_case = WAITER__V1__REQUEST__OP_HELLO;
		req.hello = &h;
		send_request(*fd, &req);
		free(name);
	} else if (strncmp(s, "stdin:", 6) == 0 || strncmp(s, "after:", 6) == 0) {
		Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
		Waiter__V1__TaskSubmit ts = WAITER__V1__TASK_SUBMIT__INIT;
		char *argv_[] = { "true" };

		ts.n_argv = 1;
		ts.argv = argv_;
		if (s[0] == 's') {
			ts.stdin.len = strtoul(arg, NULL, 10);
			ts.stdin.data = calloc(1, ts.stdin.len + 1);
			req.id = 400;
		} else {
			uint64_t id = strtoull(arg, NULL, 10);

			ts.n_after = strtoul(strchr(arg, ':') ? strchr(arg, ':') + 1 : "1",
			    NULL, 10);
			ts.after = calloc(ts.n_after + 1, sizeof *ts.after);
			for (size_t i = 0; i < ts.n_after; i++)
				ts.after[i] = id;
			req.id = 401;
		}
		req.op_case = WAITER__V1__REQUEST__OP_TASK_SUBMIT;
		req.task_submit = &ts;
		send_request(*fd, &req);
		free(ts.stdin.data);
		free(ts.after);
	} else if (strncmp(s, "queue-set:", 10) == 0) {
		Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
		Waiter__V1__QueueSet qs = WAITER__V1__QUEUE_SET__INIT;
		char *q = strdup(arg);

		if (strchr(q, ':') != NULL) {
			qs.parallel = (uint32_t)strtoul(strchr(q, ':') + 1, NULL, 10);
			*strchr(q, ':') = '\0';
		}
		qs.queue = q;
		req.id = 402;
		req.op_case = WAITER__V1__REQUEST__OP_QUEUE_SET;
		req.queue_set = &qs;
		send_request(*fd, &req);
		free(q);
	} else if (strncmp(s, "lists:", 6) == 0) {
		long n = strtol(arg, NULL, 10);

		for (long i = 0; i < n; i++) {
			Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
			Waiter__V1__List l = WAITER__V1__LIST__INIT;

			req.id = 500 + (uint64_t)i;
			req.op_case = WAITER__V1__REQUEST__OP_LIST;
			req.list = &l;
			send_request(*fd, &req);
		}
	} else if (strncmp(s, "hello", 5) == 0) {
		send_hello(*fd, arg ? (uint32_t)strtoul(arg, NULL, 10) : WAITER_PROTOCOL_VERSION);
	} else if (strcmp(s, "ping") == 0) {
		send_ping(*fd);
	} else if (strcmp(s, "subscribe") == 0 || strncmp(s, "subscribe:", 10) == 0) {
		Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
		Waiter__V1__Subscribe sub = WAITER__V1__SUBSCRIBE__INIT;

		if (arg != NULL) {
			sub.has_since = 1;
			sub.since_seq = strtoull(arg, NULL, 10);
		}
		req.id = 3;
		req.op_case = WAITER__V1__REQUEST__OP_SUBSCRIBE;
		req.subscribe = &sub;
		send_request(*fd, &req);
	} else if (strncmp(s, "subscribe-ids:", 14) == 0) {
		Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
		Waiter__V1__Subscribe sub = WAITER__V1__SUBSCRIBE__INIT;
		size_t n = strtoul(arg, NULL, 10);

		sub.n_ids = n;
		sub.ids = calloc(n + 1, sizeof *sub.ids);
		for (size_t i = 0; i < n; i++)
			sub.ids[i] = i + 1;
		req.id = 4;
		req.op_case = WAITER__V1__REQUEST__OP_SUBSCRIBE;
		req.subscribe = &sub;
		send_request(*fd, &req);
		free(sub.ids);
	} else if (strncmp(s, "timers:", 7) == 0) {
		long n = strtol(arg, NULL, 10);

		for (long i = 0; i < n; i++) {
			Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
			Waiter__V1__TimerCreate tc = WAITER__V1__TIMER_CREATE__INIT;

			tc.after_us = UINT64_C(3600000000);
			req.id = 100 + (uint64_t)i;
			req.op_case = WAITER__V1__REQUEST__OP_TIMER_CREATE;
			req.timer_create = &tc;
			send_request(*fd, &req);
		}
		for (long i = 0; i < n; i++)
			if (read_one(*fd, 5000) != 1)
				break;
	} else if (strncmp(s, "tasks:", 6) == 0) {
		long n = strtol(arg, NULL, 10);
		char *argv_[] = { "sleep", "1000" };

		for (long i = 0; i < n; i++) {
			Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
			Waiter__V1__TaskSubmit ts = WAITER__V1__TASK_SUBMIT__INIT;

			ts.n_argv = 2;
			ts.argv = argv_;
			ts.lifetime = WAITER__V1__LIFETIME__LIFETIME_CONNECTION;
			req.id = 200 + (uint64_t)i;
			req.op_case = WAITER__V1__REQUEST__OP_TASK_SUBMIT;
			req.task_submit = &ts;
			send_request(*fd, &req);
		}
		for (long replies = 0; replies < n;) {
			int r = read_one(*fd, 5000);

			if (r <= 0)
				break;
			replies += r == 1;
		}
	} else if (strncmp(s, "endpoints:", 10) == 0) {
		long n = strtol(arg, NULL, 10);
		char *endpoint = strchr(arg, ':') ? strchr(arg, ':') + 1 : (char *)"";

		for (long i = 0; i < n; i++) {
			Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
			Waiter__V1__WatchEndpoint we = WAITER__V1__WATCH_ENDPOINT__INIT;

			we.endpoint = endpoint;
			we.lifetime = WAITER__V1__LIFETIME__LIFETIME_DAEMON;
			req.id = 300 + (uint64_t)i;
			req.op_case = WAITER__V1__REQUEST__OP_WATCH_ENDPOINT;
			req.watch_endpoint = &we;
			send_request(*fd, &req);
		}
		for (long replies = 0; replies < n;) {
			int r = read_one(*fd, 5000);

			if (r <= 0)
				break;
			replies += r == 1;
		}
	} else if (strncmp(s, "waits:", 6) == 0) {
		uint64_t id = strtoull(arg, NULL, 10);
		long n = strtol(strchr(arg, ':') ? strchr(arg, ':') + 1 : "1", NULL, 10);

		for (long i = 0; i < n; i++) {
			Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
			Waiter__V1__Wait w = WAITER__V1__WAIT__INIT;

			w.id = id;
			req.id = 1000 + (uint64_t)i;
			req.op_case = WAITER__V1__REQUEST__OP_WAIT;
			req.wait = &w;
			send_request(*fd, &req);
		}
		/* Until every one is answered (or 30 s pass without a word). */
		for (long got = 0; got < n;) {
			int r = read_one(*fd, 30000);

			if (r < 1)
				break;
			got += r == 1;
		}
	} else if (strncmp(s, "op:", 3) == 0) {
		/* id=7 (field 1 varint), then field FIELD as an empty message */
		unsigned field = (unsigned)strtoul(arg, NULL, 10);
		uint8_t buf[16] = { 0, 0, 0, 0, 0x08, 7 };
		size_t n = 6;
		unsigned tag = field << 3 | 2;

		while (tag >= 0x80) {
			buf[n++] = (uint8_t)(tag | 0x80);
			tag >>= 7;
		}
		buf[n++] = (uint8_t)tag;
		buf[n++] = 0;
		frame_put_header(buf, (uint32_t)(n - 4));
		send_bytes(*fd, buf, n);
	} else if (strncmp(s, "raw:", 4) == 0) {
		size_t n = strlen(arg) / 2;
		uint8_t *b = malloc(n + 1);

		for (size_t i = 0; i < n; i++)
			sscanf(arg + 2 * i, "%2hhx", &b[i]);
		send_bytes(*fd, b, n);
		free(b);
	} else if (strncmp(s, "len:", 4) == 0) {
		uint8_t h[4];

		frame_put_header(h, (uint32_t)strtoul(arg, NULL, 0));
		send_bytes(*fd, h, 4);
	} else if (strncmp(s, "garbage:", 8) == 0) {
		size_t n = strtoul(arg, NULL, 10);
		uint8_t *b = malloc(n);

		printf("garbage seed=%u\n", seed);
		fflush(stdout);
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)random();
		send_bytes(*fd, b, n);
		free(b);
	} else if (strcmp(s, "badproto") == 0) {
		/* field 1 claims a 10-byte length-delimited value, 2 bytes follow */
		static const uint8_t b[] = { 0, 0, 0, 4, 0x0a, 0x0a, 0xff, 0xff };

		send_bytes(*fd, b, sizeof b);
	} else if (strncmp(s, "wait:", 5) == 0) {
		Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
		Waiter__V1__Wait w = WAITER__V1__WAIT__INIT;

		w.id = strtoull(arg, NULL, 10);
		req.id = 5;
		req.op_case = WAITER__V1__REQUEST__OP_WAIT;
		req.wait = &w;
		send_request(*fd, &req);
	} else if (strcmp(s, "shut") == 0) {
		shutdown(*fd, SHUT_WR);
	} else if (strcmp(s, "split") == 0) {
		split_mode = 1;
	} else if (strcmp(s, "read") == 0) {
		int r = read_one(*fd, 5000);

		if (r <= 0)
			printf(r == 0 ? "closed\n" : "timeout\n");
	} else if (strcmp(s, "readall") == 0) {
		int r;

		while ((r = read_one(*fd, 10000)) >= 1)
			;
		printf(r == 0 ? "closed\n" : "timeout\n");
	} else if (strcmp(s, "close") == 0) {
		close(*fd);
		*fd = -1;
	} else if (strncmp(s, "sleep:", 6) == 0) {
		usleep((useconds_t)strtoul(arg, NULL, 10) * 1000);
	} else if (strncmp(s, "hold:", 5) == 0) {
		hold(path, strtol(arg, NULL, 10), 1);
	} else if (strncmp(s, "try:", 4) == 0) {
		hold(path, strtol(arg, NULL, 10), 0);
	} else if (strncmp(s, "flood:", 6) == 0) {
		flood(*fd, strtol(arg, NULL, 10));
	} else if (strncmp(s, "straddle:", 9) == 0) {
		straddle(*fd, strtol(arg, NULL, 10));
	} else if (strncmp(s, "churn:", 6) == 0) {
		churn(path, strtol(arg, NULL, 10));
	} else {
		fprintf(stderr, "wraw: unknown step %s\n", s);
		exit(2);
	}
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: wraw SOCKET STEP...\n");
		return 2;
	}
	seed = getenv("WRAW_SEED") != NULL ?
	    (unsigned)strtoul(getenv("WRAW_SEED"), NULL, 10) : (unsigned)getpid();
	srandom(seed);
	fd = strncmp(argv[2], "hold:", 5) == 0 || strncmp(argv[2], "try:", 4) == 0 ||
	    strncmp(argv[2], "churn:", 6) == 0 ? -1 : dial(argv[1]);
	for (int i = 2; i < argc; i++)
		step(&fd, argv[1], argv[i]);
	if (fd >= 0)
		close(fd);
	return 0;
}
