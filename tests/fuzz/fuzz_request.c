/*
 * fuzz_request - libFuzzer target for request decoding and dispatch: the
 * daemon's own code (daemon.c, server.c and every handler) on a real
 * daemon state, one per input.
 *
 * For each input: daemon_setup() (event base, every module), one
 * connection made from a socketpair and handed to server_accept_fd (as
 * the listener would), a Hello from us, then the input as the bytes the
 * client sends. The loop runs non-blocking for a bounded number of laps
 * while we write the input, read what the daemon answers (every frame must
 * hold a valid ServerMessage) and finally close our end; then
 * daemon_teardown() frees it all, so LeakSanitizer sees any leak and each
 * input runs on a fresh daemon (a crash reproduces from its input alone).
 *
 * No side effects outside the process: tasks are refused (as with
 * --no-tasks); path watches only read the file system and hold at most
 * MAX_WATCHED_DIRS directories; the network is faked below (connect and
 * getaddrinfo), so endpoint watches reach only this target's own
 * listeners and never resolve a name.
 *
 * Path watches get something to report: the seeds watch the placeholder
 * path WATCHED_PLACEHOLDER, which becomes this target's directory, where
 * files are created, written, renamed and deleted after the input.
 *
 * FUZZ_REQUEST_TRACE=1 in the environment prints each message the daemon
 * sent and its debug log: what an input did, when reproducing a crash.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "frame.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "waiterd.h"
#include "workers.h"

/* Loop laps per input while there is input to write, and after it. */
#define LAPS_WRITING 256
#define LAPS_AFTER 32
/* Blocking laps at most while waiting for the worker threads. */
#define WORKER_LAPS 64
/* Inputs longer than this are cut: the frame limit below is smaller. */
#define INPUT_MAX (256 * 1024)
/* Small limits, so that inputs reach them (and memory stays small). */
#define MAX_WATCHED_DIRS 16

/* Frames of an input the mutator chooses from. */
#define MUTATE_FRAMES 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
    unsigned int seed);

/* The seeds name this literal path where a path watch should see changes:
 * each occurrence in an input becomes tmpdir (the same length, so frame
 * lengths hold), in which the target makes changes after the input. */
#define WATCHED_PLACEHOLDER "/tmp/fuzz_request.XXXXXX"
static char tmpdir[] = WATCHED_PLACEHOLDER;
static struct sockaddr_un unix_listener;        /* connects to unix: land here */
static struct sockaddr_in tcp_listener;         /* and to tcp: here */
static int unix_fd = -1, tcp_fd = -1;
static bool trace;      /* FUZZ_REQUEST_TRACE=1: print what the daemon sent */
static uint8_t inbuf[1 << 20];

/* ------------------------------------------------------- the fake network */

/*
 * Endpoint watches connect (non-blocking) and resolve names (in a worker).
 * A TCP connect to an even port, or to a unix path of even length, reaches
 * our listener (the watch becomes ready); anything else is refused. Names
 * resolve only when numeric: no DNS, no waiting.
 */
int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	const struct sockaddr *to = NULL;
	socklen_t to_len = 0;

	if (sa != NULL && sa->sa_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;

		if (strnlen(un->sun_path, len - offsetof(struct sockaddr_un, sun_path)) % 2 == 0) {
			to = (const struct sockaddr *)&unix_listener;
			to_len = sizeof unix_listener;
		}
	} else if (sa != NULL && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		if (ntohs(((const struct sockaddr_in *)sa)->sin_port) % 2 == 0) {
			to = (const struct sockaddr *)&tcp_listener;
			to_len = sizeof tcp_listener;
		}
	} else if (sa != NULL && sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		if (ntohs(((const struct sockaddr_in6 *)sa)->sin6_port) % 2 == 0) {
			errno = ENETUNREACH;    /* our listener is IPv4: a real outcome */
			return -1;
		}
	}
	if (to == NULL) {
		errno = ECONNREFUSED;
		return -1;
	}
	return (int)syscall(SYS_connect, fd, to, to_len);
}

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	static int (*real)(const char *, const char *, const struct addrinfo *,
	    struct addrinfo **);
	struct addrinfo h = { 0 };

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	if (real == NULL)
		return EAI_FAIL;
	if (hints != NULL)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
	return real(node, service, &h, res);
}

/* Accept and close what reached our listeners, so their backlogs stay short. */
static void
listeners_drain(void)
{
	int fd;

	while ((fd = accept4(unix_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		close(fd);
	while ((fd = accept4(tcp_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		close(fd);
}

static void
listeners_open(void)
{
	socklen_t len = sizeof tcp_listener;

	unix_listener.sun_family = AF_UNIX;
	snprintf(unix_listener.sun_path, sizeof unix_listener.sun_path, "%s/ready.sock",
	    tmpdir);
	unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	tcp_listener.sin_family = AF_INET;
	tcp_listener.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (unix_fd < 0 || tcp_fd < 0 ||
	    bind(unix_fd, (struct sockaddr *)&unix_listener, sizeof unix_listener) < 0 ||
	    listen(unix_fd, 64) < 0 ||
	    bind(tcp_fd, (struct sockaddr *)&tcp_listener, sizeof tcp_listener) < 0 ||
	    getsockname(tcp_fd, (struct sockaddr *)&tcp_listener, &len) < 0 ||
	    listen(tcp_fd, 64) < 0) {
		perror("fuzz_request: listeners");
		exit(1);
	}
}

static void changes_step(int step);

static void
cleanup(void)
{
	changes_step(4);
	unlink(unix_listener.sun_path);
	rmdir(tmpdir);
}

/* ------------------------------------------------------------ the client */

/* Everything the daemon sent must be whole frames holding ServerMessages. */
static void
client_read(int fd, size_t *have)
{
	ssize_t n;
	size_t off = 0;
	uint32_t len;

	while ((n = read(fd, inbuf + *have, sizeof inbuf - *have)) > 0)
		*have += (size_t)n;
	while (frame_next(inbuf + off, *have - off, FRAME_HARD_MAX, &len) == FRAME_OK) {
		Waiter__V1__ServerMessage *sm = waiter__v1__server_message__unpack(NULL, len,
		    inbuf + off + FRAME_HEADER_LEN);

		if (sm == NULL) {
			fprintf(stderr, "fuzz_request: the daemon sent a frame of %u bytes "
			    "that is not a ServerMessage\n", len);
			abort();
		}
		if (trace && sm->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY &&
		    sm->reply->result_case == WAITER__V1__REPLY__RESULT_ERROR)
			fprintf(stderr, "fuzz_request: reply id=%llu error: %s\n",
			    (unsigned long long)sm->reply->id, sm->reply->error->message);
		else if (trace && sm->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY)
			fprintf(stderr, "fuzz_request: reply id=%llu result=%d\n",
			    (unsigned long long)sm->reply->id, (int)sm->reply->result_case);
		else if (trace)
			fprintf(stderr, "fuzz_request: message case=%d\n", (int)sm->msg_case);
		waiter__v1__server_message__free_unpacked(sm, NULL);
		off += FRAME_HEADER_LEN + len;
	}
	if (off == 0 && *have == sizeof inbuf) {
		fprintf(stderr, "fuzz_request: the daemon sent a frame over 1 MiB\n");
		abort();
	}
	memmove(inbuf, inbuf + off, *have - off);
	*have -= off;
}

/* The Hello every real client sends first, then the input. */
static uint8_t *
client_stream(const uint8_t *data, size_t size, size_t *len)
{
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Hello hello = WAITER__V1__HELLO__INIT;
	size_t n;
	uint8_t *buf;

	hello.protocol_version = WAITER_PROTOCOL_VERSION;
	hello.client_name = (char *)"fuzz_request";
	req.id = 1;
	req.op_case = WAITER__V1__REQUEST__OP_HELLO;
	req.hello = &hello;
	n = waiter__v1__request__get_packed_size(&req);
	buf = malloc(FRAME_HEADER_LEN + n + size);
	if (buf == NULL)
		abort();
	frame_put_header(buf, (uint32_t)n);
	waiter__v1__request__pack(&req, buf + FRAME_HEADER_LEN);
	if (size > 0)
		memcpy(buf + FRAME_HEADER_LEN + n, data, size);
	*len = FRAME_HEADER_LEN + n + size;
	return buf;
}

/* ------------------------------------------------------------ the mutator */

/*
 * An input is a stream of frames, and a byte flipped in a length prefix
 * makes the rest one garbage frame: the daemon closes the connection and
 * no handler runs. So most mutations change the payload of one whole frame
 * and rewrite its length; one in eight mutates the raw bytes, so cut and
 * oversized frames and bad lengths are fuzzed too.
 */
size_t
LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	size_t offs[MUTATE_FRAMES], n = 0, off = 0, plen, room, after, newlen;
	uint32_t len;
	uint8_t *tmp;

	while (n < MUTATE_FRAMES &&
	    frame_next(data + off, size - off, FRAME_HARD_MAX, &len) == FRAME_OK) {
		offs[n++] = off;
		off += FRAME_HEADER_LEN + len;
	}
	if (n == 0 || seed % 8 == 0)
		return LLVMFuzzerMutate(data, size, max_size);
	off = offs[(seed / 8) % n];
	plen = frame_get_header(data + off);
	after = size - off - FRAME_HEADER_LEN - plen;
	if (max_size <= size - plen)
		return LLVMFuzzerMutate(data, size, max_size);
	room = max_size - (size - plen);
	if ((tmp = malloc(room + 1)) == NULL)
		return size;
	memcpy(tmp, data + off + FRAME_HEADER_LEN, plen);
	newlen = LLVMFuzzerMutate(tmp, plen, room);
	memmove(data + off + FRAME_HEADER_LEN + newlen, data + off + FRAME_HEADER_LEN + plen,
	    after);
	memcpy(data + off + FRAME_HEADER_LEN, tmp, newlen);
	frame_put_header(data + off, (uint32_t)newlen);
	free(tmp);
	return size - plen + newlen;
}

/* ---------------------------------------------------- the watched directory */

/* Point the placeholder path at our directory. */
static void
placeholder_replace(uint8_t *p, size_t len)
{
	const size_t n = sizeof WATCHED_PLACEHOLDER - 1;
	uint8_t *at;

	while (len >= n && (at = memmem(p, len, WATCHED_PLACEHOLDER, n)) != NULL) {
		memcpy(at, tmpdir, n);
		len -= (size_t)(at - p) + n;
		p = at + n;
	}
}

/* One step of changes in tmpdir per call, for the path watches to report;
 * the last step leaves it as it was (the listener's socket only). */
static void
changes_step(int step)
{
	char a[128], b[128], sub[128];
	int fd;

	snprintf(a, sizeof a, "%s/a.c", tmpdir);
	snprintf(b, sizeof b, "%s/b.conf", tmpdir);
	snprintf(sub, sizeof sub, "%s/sub", tmpdir);
	switch (step) {
	case 0:
		if ((fd = open(a, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0) {
			if (write(fd, "x", 1) < 0) {
				/* the watch may see the open and close only */
			}
			close(fd);
		}
		break;
	case 1:
		chmod(a, 0644);
		rename(a, b);
		break;
	case 2:
		mkdir(sub, 0700);
		break;
	case 3:
		snprintf(a, sizeof a, "%s/sub/c.c", tmpdir);
		if ((fd = open(a, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
			close(fd);
		break;
	case 4:
		snprintf(a, sizeof a, "%s/sub/c.c", tmpdir);
		unlink(a);
		rmdir(sub);
		unlink(b);
		break;
	}
}

/* ------------------------------------------------------------- the target */

/* Let the worker threads finish (a path watch's first walk, a lookup), so
 * what follows meets the same state each run: the loop wakes when a job is
 * done (an eventfd), or at the next timer. Bounded. */
static void
lap_workers(void)
{
	for (int i = 0; i < WORKER_LAPS && workers_pending() > 0; i++)
		event_base_loop(ev_base, EVLOOP_ONCE);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmpdir) == NULL) {
		perror("fuzz_request: mkdtemp");
		exit(1);
	}
	atexit(cleanup);
	listeners_open();
	trace = getenv("FUZZ_REQUEST_TRACE") != NULL;
	log_init(trace ? 1 : 0);
	cfg.socket_path = unix_listener.sun_path;       /* named in messages only */
	cfg.no_tasks = true;
	cfg.max_watched_dirs = MAX_WATCHED_DIRS;
	/* Limits small enough for short inputs to reach them. */
	cfg.max_frame = 16 * 1024;
	cfg.max_output = 64 * 1024;
	cfg.retain_events = 64;
	cfg.retain_bytes = 64 * 1024;
	cfg.keep_finished = 16;
	cfg.max_objects = 64;
	cfg.max_objects_per_client = 48;
	cfg.kill_grace_us = 1000;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	size_t len, sent = 0, have = 0;
	uint8_t *stream;
	ssize_t n;

	if (size > INPUT_MAX)
		size = INPUT_MAX;
	daemon_setup();
	daemon_start();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("fuzz_request: socketpair");
		abort();
	}
	server_accept_fd(sv[0]);
	stream = client_stream(data, size, &len);
	placeholder_replace(stream, len);

	for (int lap = 0; lap < LAPS_WRITING && sent < len; lap++) {
		n = write(sv[1], stream + sent, len - sent);
		if (n > 0)
			sent += (size_t)n;
		event_base_loop(ev_base, EVLOOP_NONBLOCK);
		client_read(sv[1], &have);
		listeners_drain();
	}
	/* Change files for the path watches, the connection still open. */
	for (int lap = 0; lap < LAPS_AFTER; lap++) {
		if (lap % 4 == 0) {
			lap_workers();
			changes_step(lap / 4);
		}
		event_base_loop(ev_base, EVLOOP_NONBLOCK);
		client_read(sv[1], &have);
		listeners_drain();
	}
	/* Then as a script's client does: shut down our side, read the rest. */
	shutdown(sv[1], SHUT_WR);
	for (int lap = 0; lap < LAPS_AFTER; lap++) {
		event_base_loop(ev_base, EVLOOP_NONBLOCK);
		client_read(sv[1], &have);
		listeners_drain();
	}
	close(sv[1]);
	for (int lap = 0; lap < LAPS_AFTER && stats.connections > 0; lap++)
		event_base_loop(ev_base, EVLOOP_NONBLOCK);
	daemon_teardown();
	listeners_drain();
	free(stream);
	return 0;
}
