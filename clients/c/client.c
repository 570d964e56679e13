/* client.c - libwaiter's connection, calls and events (see waiter.h). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "waiter.h"

struct queued {
	Waiter__V1__ServerMessage *m;
	struct queued *next;
};

struct waiter {
	int fd;
	uint64_t next_id;
	uint64_t conn_id;
	uint64_t instance;
	char *server_version;
	uint8_t *buf;
	size_t len, cap;
	struct queued *head, *tail;     /* events read during a call */
};

static int
seterr(struct waiter_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof err->message, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int
waiter_default_socket(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (xdg != NULL && xdg[0] == '/')
		n = snprintf(buf, len, "%s/waiter/waiterd.sock", xdg);
	else
		n = snprintf(buf, len, "/tmp/waiter-%u/waiterd.sock", (unsigned)geteuid());
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

void
waiter_message_free(Waiter__V1__ServerMessage *m)
{
	if (m != NULL)
		waiter__v1__server_message__free_unpacked(m, NULL);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read one ServerMessage: 1 and *out, 0 on timeout, -1 on error or close. */
static int
read_message(struct waiter *w, int timeout_ms, Waiter__V1__ServerMessage **out,
    struct waiter_error *err)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

	for (;;) {
		uint32_t n;
		ssize_t r;

		switch (frame_next(w->buf, w->len, FRAME_HARD_MAX, &n)) {
		case FRAME_TOO_LARGE:
			return seterr(err, WAITER_E_PROTOCOL, "the daemon sent a frame "
			    "larger than %d bytes", FRAME_HARD_MAX);
		case FRAME_OK:
			*out = waiter__v1__server_message__unpack(NULL, n,
			    w->buf + FRAME_HEADER_LEN);
			memmove(w->buf, w->buf + FRAME_HEADER_LEN + n,
			    w->len - FRAME_HEADER_LEN - n);
			w->len -= FRAME_HEADER_LEN + n;
			if (*out == NULL)
				return seterr(err, WAITER_E_PROTOCOL,
				    "the daemon sent an undecodable message");
			return 1;
		case FRAME_NEED_MORE:
			break;
		}
		if (deadline >= 0) {
			struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
			int64_t left = deadline - now_ms();
			int pr;

			if (left < 0)
				left = 0;
			pr = poll(&pfd, 1, (int)left);
			if (pr == 0)
				return 0;
			if (pr < 0 && errno != EINTR)
				return seterr(err, WAITER_E_IO, "poll: %s", strerror(errno));
			if (pr < 0)
				continue;
		}
		if (w->cap - w->len < 65536) {
			size_t cap = w->cap ? w->cap * 2 : 131072;
			uint8_t *b = realloc(w->buf, cap);

			if (b == NULL)
				return seterr(err, WAITER_E_IO, "out of memory");
			w->buf = b;
			w->cap = cap;
		}
		r = read(w->fd, w->buf + w->len, w->cap - w->len);
		if (r == 0)
			return seterr(err, WAITER_E_IO, "the daemon closed the connection");
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return seterr(err, WAITER_E_IO, "read: %s", strerror(errno));
		w->len += (size_t)r;
	}
}

static int
send_request(struct waiter *w, Waiter__V1__Request *req, struct waiter_error *err)
{
	size_t n = waiter__v1__request__get_packed_size(req), off = 0;
	uint8_t *buf = malloc(FRAME_HEADER_LEN + n);

	if (buf == NULL)
		return seterr(err, WAITER_E_IO, "out of memory");
	frame_put_header(buf, (uint32_t)n);
	waiter__v1__request__pack(req, buf + FRAME_HEADER_LEN);
	n += FRAME_HEADER_LEN;
	while (off < n) {
		ssize_t r = send(w->fd, buf + off, n - off, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			free(buf);
			return seterr(err, WAITER_E_IO, "send: %s", strerror(e));
		}
		off += (size_t)r;
	}
	free(buf);
	return 0;
}

static void
queue_event(struct waiter *w, Waiter__V1__ServerMessage *m)
{
	struct queued *q = malloc(sizeof *q);

	if (q == NULL) {
		waiter_message_free(m);
		return;
	}
	q->m = m;
	q->next = NULL;
	if (w->tail != NULL)
		w->tail->next = q;
	else
		w->head = q;
	w->tail = q;
}

/* If the daemon already told us why it closed, that is the better error. */
static int
pending_error(struct waiter *w, struct waiter_error *err)
{
	Waiter__V1__ServerMessage *m;
	struct waiter_error ignore;

	while (read_message(w, 1000, &m, &ignore) == 1) {
		if (m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY &&
		    m->reply->result_case == WAITER__V1__REPLY__RESULT_ERROR) {
			seterr(err, m->reply->error->code, "%s", m->reply->error->message);
			waiter_message_free(m);
			return -1;
		}
		waiter_message_free(m);
	}
	return -1;
}

int
waiter_call(struct waiter *w, Waiter__V1__Request *req,
    Waiter__V1__ServerMessage **reply, struct waiter_error *err)
{
	Waiter__V1__ServerMessage *m;

	*reply = NULL;
	req->id = ++w->next_id;
	if (send_request(w, req, err) < 0) {
		pending_error(w, err);
		return -1;
	}
	for (;;) {
		if (read_message(w, -1, &m, err) < 0)
			return -1;
		if (m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_EVENT) {
			queue_event(w, m);
			continue;
		}
		if (m->msg_case != WAITER__V1__SERVER_MESSAGE__MSG_REPLY ||
		    (m->reply->id != req->id && m->reply->id != 0)) {
			waiter_message_free(m);
			continue;
		}
		if (m->reply->result_case == WAITER__V1__REPLY__RESULT_ERROR) {
			seterr(err, m->reply->error->code, "%s", m->reply->error->message);
			waiter_message_free(m);
			return -1;
		}
		*reply = m;
		return 0;
	}
}

int
waiter_next_event(struct waiter *w, int timeout_ms, Waiter__V1__ServerMessage **ev,
    struct waiter_error *err)
{
	Waiter__V1__ServerMessage *m;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

	if (w->head != NULL) {
		struct queued *q = w->head;

		w->head = q->next;
		if (w->head == NULL)
			w->tail = NULL;
		*ev = q->m;
		free(q);
		return 1;
	}
	for (;;) {
		int left = deadline < 0 ? -1 : (int)(deadline - now_ms());
		int r = read_message(w, deadline < 0 ? -1 : left < 0 ? 0 : left, &m, err);

		if (r <= 0)
			return r;
		if (m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_EVENT) {
			*ev = m;
			return 1;
		}
		if (m->msg_case == WAITER__V1__SERVER_MESSAGE__MSG_REPLY &&
		    m->reply->result_case == WAITER__V1__REPLY__RESULT_ERROR &&
		    m->reply->id == 0) {
			seterr(err, m->reply->error->code, "%s", m->reply->error->message);
			waiter_message_free(m);
			return -1;
		}
		waiter_message_free(m);         /* a stray reply: not ours to keep */
	}
}

int
waiter_connect(const char *path, const char *client_name, struct waiter **out,
    struct waiter_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char def[sizeof sa.sun_path];
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Hello hello = WAITER__V1__HELLO__INIT;
	Waiter__V1__ServerMessage *m;
	struct waiter *w;

	*out = NULL;
	if (path == NULL)
		path = getenv("WAITER_SOCKET");
	if (path == NULL || path[0] == '\0') {
		if (waiter_default_socket(def, sizeof def) < 0)
			return seterr(err, WAITER_E_USAGE, "the default socket path is too long");
		path = def;
	}
	if (strlen(path) >= sizeof sa.sun_path)
		return seterr(err, WAITER_E_USAGE, "socket path is longer than %zu bytes",
		    sizeof sa.sun_path - 1);
	strcpy(sa.sun_path, path);
	if ((w = calloc(1, sizeof *w)) == NULL)
		return seterr(err, WAITER_E_IO, "out of memory");
	w->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (w->fd < 0 || connect(w->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;

		waiter_close(w);
		if (e == EACCES || e == EPERM)
			return seterr(err, WAITER__V1__ERROR_CODE__ERROR_CODE_PERMISSION_DENIED,
			    "cannot connect to %s: %s", path, strerror(e));
		return seterr(err, WAITER_E_UNREACHABLE, "no waiterd at %s: %s", path,
		    strerror(e));
	}
	hello.protocol_version = WAITER_PROTOCOL_VERSION;
	hello.client_name = (char *)(client_name ? client_name : "libwaiter");
	req.op_case = WAITER__V1__REQUEST__OP_HELLO;
	req.hello = &hello;
	if (waiter_call(w, &req, &m, err) < 0) {
		waiter_close(w);
		return -1;
	}
	w->conn_id = m->reply->hello->connection_id;
	w->instance = m->reply->hello->instance;
	w->server_version = strdup(m->reply->hello->server_version);
	waiter_message_free(m);
	*out = w;
	return 0;
}

void
waiter_close(struct waiter *w)
{
	if (w == NULL)
		return;
	while (w->head != NULL) {
		struct queued *q = w->head;

		w->head = q->next;
		waiter_message_free(q->m);
		free(q);
	}
	if (w->fd >= 0)
		close(w->fd);
	free(w->server_version);
	free(w->buf);
	free(w);
}

int
waiter_peer_uid(const struct waiter *w, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(w->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -1;
	*uid = cred.uid;
	return 0;
}

uint64_t
waiter_connection_id(const struct waiter *w)
{
	return w->conn_id;
}

uint64_t
waiter_instance(const struct waiter *w)
{
	return w->instance;
}

const char *
waiter_server_version(const struct waiter *w)
{
	return w->server_version ? w->server_version : "";
}
