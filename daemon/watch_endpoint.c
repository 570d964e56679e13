/* watch_endpoint.c - endpoint watches (see watch_endpoint.h). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event_struct.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "objects.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "watch_endpoint.h"
#include "workers.h"

/* Backoff between rounds of attempts: the first retry comes soon (a server
 * that is starting is often up within milliseconds), each wait doubles,
 * and the cap means a port that opens is noticed within about a second
 * while a port that never does costs one attempt a second. */
#define EP_BACKOFF_FIRST_US 10000
#define EP_BACKOFF_MAX_US 1000000
/* One connect may hang (the kernel retries a SYN to a filtered host for
 * minutes): give up on it after this, or the watch's remaining time. */
#define EP_CONNECT_TIMEOUT_US 2000000
/* The shortest per-attempt timeout, so a watch about to time out still
 * gives its last connect a chance. */
#define EP_CONNECT_MIN_US 1000
/* Addresses tried per round: getaddrinfo lists its preferred ones first,
 * and a name with more than this is a load balancer, not a server. */
#define EP_MAX_ADDRS 16
/* A DNS name is at most 253 characters. */
#define EP_HOST_MAX 253
/* Longest endpoint string: "tcp:[" + host + "]:" + port, or a unix path. */
#define EP_ENDPOINT_MAX 270
#define EP_ERROR_MAX 160
/* "[v6]:port", or a unix path (under 108 bytes). */
#define EP_ADDRESS_MAX 128

/* Where a watch is in its cycle of attempts. */
enum ep_state {
	EP_IDLE,        /* stopped: nothing pending */
	EP_RESOLVING,   /* a worker is resolving the host (job set) */
	EP_CONNECTING,  /* a non-blocking connect to addrs[cur] is in flight (fd set) */
	EP_BACKOFF,     /* between rounds: retry_ev starts the next one */
};

struct ep_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

struct ep_job;

struct ep_watch {
	struct object obj;
	Waiter__V1__WatchType type;     /* TCP or UNIX */
	enum ep_state state;
	char *endpoint;         /* as given: tcp:HOST:PORT or unix:PATH */
	char *host, *port;      /* tcp: what getaddrinfo is asked */
	uint64_t timeout_us;    /* 0 = none */
	int64_t deadline;       /* monotonic end of the watch, if timeout_us */
	int64_t deadline_wall;  /* the same on the wall clock (its record) */
	uint64_t attempts;      /* connects started, and failed resolutions */
	uint64_t events;
	uint64_t backoff_us;    /* the wait after the next failed round */
	char last_error[EP_ERROR_MAX];
	struct ep_addr addrs[EP_MAX_ADDRS];     /* none yet: resolve first */
	size_t n_addrs, cur;
	int fd;                 /* the connect in flight, or -1 */
	struct ep_job *job;     /* the resolution in flight, or NULL */
	struct event conn_ev, retry_ev, timeout_ev;
};

/* A resolution handed to a worker. The worker reads host and port and
 * writes the results; only the loop reads w and cancelled. */
struct ep_job {
	struct ep_watch *w;
	bool cancelled;         /* the watch stopped: done only frees */
	char host[EP_HOST_MAX + 1], port[6];
	int rc, err;            /* getaddrinfo's result; errno for EAI_SYSTEM */
	struct ep_addr addrs[EP_MAX_ADDRS];
	size_t n_addrs;
};

/* A parsed endpoint. */
struct ep_spec {
	Waiter__V1__WatchType type;
	char host[EP_HOST_MAX + 1], port[6];
	struct ep_addr addr;    /* a literal address or the unix path */
	bool literal;           /* addr is set: nothing to resolve */
};

static void ep_try(struct ep_watch *);

static void
ep_set_errno(struct ep_watch *w, int err)
{
	snprintf(w->last_error, sizeof w->last_error, "%s", strerror(err));
}

static void
ep_stop(struct object *o)
{
	struct ep_watch *w = (struct ep_watch *)o;

	if (w->job != NULL) {
		w->job->cancelled = true;       /* its done frees it */
		w->job = NULL;
	}
	if (w->fd >= 0) {
		event_del(&w->conn_ev);
		close(w->fd);
		w->fd = -1;
	}
	event_del(&w->retry_ev);
	event_del(&w->timeout_ev);
	w->state = EP_IDLE;
}

static void
ep_describe(struct object *o, ObjectInfo *info)
{
	struct ep_watch *w = (struct ep_watch *)o;
	Waiter__V1__WatchInfo *wi = arena_alloc(sizeof *wi);

	waiter__v1__watch_info__init(wi);
	wi->type = w->type;
	wi->endpoint = w->endpoint;
	wi->timeout_us = w->timeout_us;
	wi->attempts = w->attempts;
	wi->last_error = w->last_error;
	wi->events = w->events;
	info->detail_case = WAITER__V1__OBJECT_INFO__DETAIL_WATCH;
	info->watch = wi;
}

static void
ep_free(struct object *o)
{
	struct ep_watch *w = (struct ep_watch *)o;

	free(w->endpoint);
	free(w->host);
	free(w->port);
	free(w);
}

/* The record of an endpoint watch: the endpoint as given, and its
 * deadline on the wall clock, so "30s" still ends 30 s after the create
 * when the daemon restarted meanwhile (the monotonic clock restarts at
 * boot). Written at the create, at the end, and at a clean stop (so the
 * attempts so far are kept), not at each attempt. */
static void
ep_persist(struct object *o)
{
	struct ep_watch *w = (struct ep_watch *)o;
	Waiter__State__V1__StoredObject so = WAITER__STATE__V1__STORED_OBJECT__INIT;
	Waiter__State__V1__StoredEndpointWatch se =
	    WAITER__STATE__V1__STORED_ENDPOINT_WATCH__INIT;

	se.endpoint = w->endpoint;
	se.timeout_us = w->timeout_us;
	se.deadline_wall_us = w->deadline_wall;
	se.attempts = w->attempts;
	se.last_error = w->last_error;
	se.events = w->events;
	so.kind_case = WAITER__STATE__V1__STORED_OBJECT__KIND_ENDPOINT_WATCH;
	so.endpoint_watch = &se;
	state_put(o, &so);
}

/* The daemon stops: a kept watch resumes at the next start; its record
 * takes the attempts made so far. */
static bool
ep_resumes(struct object *o)
{
	ep_persist(o);
	return true;
}

static const struct object_ops ep_ops = {
	.kind = WAITER__V1__OBJECT_KIND__OBJECT_KIND_WATCH,
	.name = "watch",
	.stop = ep_stop,
	.describe = ep_describe,
	.free = ep_free,
	.persist = ep_persist,
	.resumes = ep_resumes,
};

/* "127.0.0.1:8080", "[::1]:8080", or the unix path. */
static void
ep_format(const struct ep_addr *a, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;

	switch (a->ss.ss_family) {
	case AF_INET:
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
		snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
		break;
	default:
		snprintf(buf, size, "%s", ((const struct sockaddr_un *)&a->ss)->sun_path);
		break;
	}
}

/* The attempt on a succeeded: publish ENDPOINT_READY and complete. w may
 * be freed on return (a finished object can be evicted at once). */
static void
ep_ready(struct ep_watch *w, const struct ep_addr *a)
{
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__EndpointReady er = WAITER__V1__ENDPOINT_READY__INIT;
	char addr[EP_ADDRESS_MAX];
	uint64_t seq;

	ep_format(a, addr, sizeof addr);
	er.endpoint = w->endpoint;
	er.address = addr;
	er.attempts = w->attempts;
	ev.object_id = w->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_ENDPOINT_READY;
	ev.body_case = WAITER__V1__EVENT__BODY_ENDPOINT_READY;
	ev.endpoint_ready = &er;
	w->events++;
	log_debug("endpoint_ready watch=%llu address=%s attempts=%llu",
	    (unsigned long long)w->obj.id, addr, (unsigned long long)w->attempts);
	seq = events_publish(&ev, w->obj.owner);
	objects_finish(&w->obj, WAITER__V1__OBJECT_STATE__OBJECT_STATE_COMPLETED, seq);
}

/* Every address of this round failed: wait, then start the next round. */
static void
ep_round_failed(struct ep_watch *w)
{
	struct timeval tv = clock_tv((int64_t)w->backoff_us);

	w->state = EP_BACKOFF;
	evtimer_add(&w->retry_ev, &tv);
	w->backoff_us *= 2;
	if (w->backoff_us > EP_BACKOFF_MAX_US)
		w->backoff_us = EP_BACKOFF_MAX_US;
}

/* Runs on a worker: resolve host and port, copy the addresses out. */
static void
ep_resolve_fn(void *arg)
{
	struct ep_job *j = arg;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *res, *ai;

	j->rc = getaddrinfo(j->host, j->port, &hints, &res);
	j->err = errno;
	if (j->rc != 0)
		return;
	for (ai = res; ai != NULL && j->n_addrs < EP_MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof j->addrs[0].ss)
			continue;
		memcpy(&j->addrs[j->n_addrs].ss, ai->ai_addr, ai->ai_addrlen);
		j->addrs[j->n_addrs++].len = ai->ai_addrlen;
	}
	freeaddrinfo(res);
}

/* Back on the loop: try the addresses, or count a failed round. */
static void
ep_resolve_done(void *arg)
{
	struct ep_job *j = arg;
	struct ep_watch *w = j->w;

	if (j->cancelled) {
		free(j);
		return;
	}
	w->job = NULL;
	if (j->rc != 0 || j->n_addrs == 0) {
		/* A name may appear later: the next round resolves again. */
		w->attempts++;
		snprintf(w->last_error, sizeof w->last_error, "cannot resolve %s: %s", w->host,
		    j->rc == EAI_SYSTEM ? strerror(j->err) :
		    j->rc != 0 ? gai_strerror(j->rc) : "no address");
		free(j);
		ep_round_failed(w);
		return;
	}
	memcpy(w->addrs, j->addrs, j->n_addrs * sizeof j->addrs[0]);
	w->n_addrs = j->n_addrs;
	free(j);
	w->cur = 0;
	ep_try(w);
	arena_reset();
}

static void
ep_resolve(struct ep_watch *w)
{
	struct ep_job *j = calloc(1, sizeof *j);

	if (j == NULL)
		fatal("calloc");
	j->w = w;
	snprintf(j->host, sizeof j->host, "%s", w->host);
	snprintf(j->port, sizeof j->port, "%s", w->port);
	w->job = j;
	w->state = EP_RESOLVING;
	workers_submit(WORKERS_RESOLVE, ep_resolve_fn, ep_resolve_done, j);
}

/* A TCP connect to a free port in the ephemeral range can pick that very
 * port as its source and connect to itself: that is not a server. */
static bool
ep_self_connected(int fd, const struct ep_addr *a)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof local;
	const struct sockaddr_in *l4 = (const struct sockaddr_in *)&local;
	const struct sockaddr_in *r4 = (const struct sockaddr_in *)&a->ss;
	const struct sockaddr_in6 *l6 = (const struct sockaddr_in6 *)&local;
	const struct sockaddr_in6 *r6 = (const struct sockaddr_in6 *)&a->ss;

	if (a->ss.ss_family == AF_UNIX ||
	    getsockname(fd, (struct sockaddr *)&local, &len) < 0 ||
	    local.ss_family != a->ss.ss_family)
		return false;
	if (a->ss.ss_family == AF_INET)
		return l4->sin_port == r4->sin_port && l4->sin_addr.s_addr == r4->sin_addr.s_addr;
	return l6->sin6_port == r6->sin6_port &&
	    memcmp(&l6->sin6_addr, &r6->sin6_addr, sizeof l6->sin6_addr) == 0;
}

/* The connect in flight finished (writable) or took too long. */
static void
ep_conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ep_watch *w = arg;
	int64_t begin = stats_lap_begin();
	int err = 0;
	socklen_t len = sizeof err;

	if (what & EV_TIMEOUT)
		err = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	else if (err == 0 && ep_self_connected(fd, &w->addrs[w->cur]))
		err = ECONNREFUSED;
	close(w->fd);
	w->fd = -1;
	if (err == 0) {
		ep_ready(w, &w->addrs[w->cur]);
	} else {
		ep_set_errno(w, err);
		w->cur++;
		ep_try(w);
	}
	stats_lap_end(begin, "watch_endpoint", 0);
	arena_reset();
}

/* Wait for the connect on fd, at most EP_CONNECT_TIMEOUT_US. */
static void
ep_wait_connect(struct ep_watch *w, int fd)
{
	int64_t limit = EP_CONNECT_TIMEOUT_US;
	struct timeval tv;

	if (w->deadline != 0 && w->deadline - clock_mono_us() < limit)
		limit = w->deadline - clock_mono_us();
	if (limit < EP_CONNECT_MIN_US)
		limit = EP_CONNECT_MIN_US;
	tv = clock_tv(limit);
	w->fd = fd;
	w->state = EP_CONNECTING;
	event_assign(&w->conn_ev, ev_base, fd, EV_WRITE, ep_conn_cb, w);
	event_add(&w->conn_ev, &tv);
}

/* Try the addresses from cur on until a connect is in flight or one
 * succeeds; the round failed if none is left. */
static void
ep_try(struct ep_watch *w)
{
	for (; w->cur < w->n_addrs; w->cur++) {
		const struct ep_addr *a = &w->addrs[w->cur];
		int fd;

		w->attempts++;
		fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			ep_set_errno(w, errno);         /* EMFILE: the next round may do */
			continue;
		}
		if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0) {
			bool self = ep_self_connected(fd, a);

			close(fd);
			if (!self) {
				ep_ready(w, a);
				return;
			}
			ep_set_errno(w, ECONNREFUSED);
			continue;
		}
		if (errno == EINPROGRESS) {
			ep_wait_connect(w, fd);
			return;
		}
		/* Unix sockets fail at once: ENOENT, ECONNREFUSED, or EAGAIN
		 * when the listener's backlog is full. */
		ep_set_errno(w, errno);
		close(fd);
	}
	ep_round_failed(w);
}

/* Start a round: resolve first while there is no address. */
static void
ep_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ep_watch *w = arg;
	int64_t begin = stats_lap_begin();

	(void)fd, (void)what;
	if (w->n_addrs == 0) {
		ep_resolve(w);
	} else {
		w->cur = 0;
		ep_try(w);
	}
	stats_lap_end(begin, "watch_endpoint", 0);
	arena_reset();
}

static void
ep_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ep_watch *w = arg;
	int64_t begin = stats_lap_begin();
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__WatchTimedOut wt = WAITER__V1__WATCH_TIMED_OUT__INIT;
	uint64_t seq;

	(void)fd, (void)what;
	if (w->state == EP_CONNECTING)          /* the attempt in flight got no answer */
		ep_set_errno(w, ETIMEDOUT);
	else if (w->state == EP_RESOLVING && w->last_error[0] == '\0')
		snprintf(w->last_error, sizeof w->last_error,
		    "cannot resolve %s: no answer in time", w->host);
	wt.attempts = w->attempts;
	wt.last_error = w->last_error;
	ev.object_id = w->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_WATCH_TIMED_OUT;
	ev.body_case = WAITER__V1__EVENT__BODY_WATCH_TIMED_OUT;
	ev.watch_timed_out = &wt;
	w->events++;
	seq = events_publish(&ev, w->obj.owner);
	objects_finish(&w->obj, WAITER__V1__OBJECT_STATE__OBJECT_STATE_FAILED, seq);
	stats_lap_end(begin, "watch_endpoint", 0);
	arena_reset();
}

/* An IPv6 address in brackets, perhaps with a %zone (fe80::1%eth0),
 * already copied to sp->host; NULL, or why it is wrong. */
static const char *
ep_parse_v6(struct ep_spec *sp)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sp->addr.ss;
	char *zone = strchr(sp->host, '%');
	const char *why = "the host in brackets is not an IPv6 address";
	int ok;

	if (zone != NULL) {
		if (zone[1] == '\0' || strspn(zone + 1, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(zone + 1))
			return why;
		*zone = '\0';
	}
	ok = inet_pton(AF_INET6, sp->host, &in6->sin6_addr);
	if (zone != NULL) {
		*zone = '%';
		return ok == 1 ? NULL : why;    /* the zone is getaddrinfo's to read */
	}
	if (ok != 1)
		return why;
	in6->sin6_family = AF_INET6;
	sp->addr.len = sizeof *in6;
	sp->literal = true;
	return NULL;
}

/* The host part of tcp:HOST:PORT; NULL, or why it is wrong. */
static const char *
ep_parse_host(const char *host, size_t n, bool bracketed, struct ep_spec *sp)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&sp->addr.ss;

	if (n == 0)
		return "the host is empty (tcp:HOST:PORT)";
	if (n > EP_HOST_MAX)
		return "the host is longer than 253 characters";
	memcpy(sp->host, host, n);
	sp->host[n] = '\0';
	if (bracketed)
		return ep_parse_v6(sp);
	if (memchr(host, ':', n) != NULL)
		return "an IPv6 address goes in brackets (tcp:[::1]:PORT)";
	if (strspn(sp->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-_") != n)
		return "the host has characters a host name cannot have";
	if (inet_pton(AF_INET, sp->host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		sp->addr.len = sizeof *in;
		sp->literal = true;
	}
	return NULL;
}

/* tcp:HOST:PORT or tcp:[V6]:PORT; NULL, or why it is wrong. */
static const char *
ep_parse_tcp(const char *s, struct ep_spec *sp)
{
	const char *colon, *why;
	size_t n;
	unsigned long port;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return "an IPv6 address in brackets lacks its ']' (tcp:[::1]:PORT)";
		colon = close + 1;
		if (*colon != ':')
			return "a ':' and the port must follow the ']' (tcp:[::1]:PORT)";
		why = ep_parse_host(s + 1, (size_t)(close - s - 1), true, sp);
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return "a tcp endpoint is tcp:HOST:PORT";
		why = ep_parse_host(s, (size_t)(colon - s), false, sp);
	}
	if (why != NULL)
		return why;
	n = strlen(colon + 1);
	if (n == 0 || n > 5 || strspn(colon + 1, "0123456789") != n ||
	    (port = strtoul(colon + 1, NULL, 10)) < 1 || port > 65535)
		return "the port must be a number from 1 to 65535";
	snprintf(sp->port, sizeof sp->port, "%lu", port);
	if (sp->literal) {
		/* sin_port and sin6_port sit at the same offset. */
		((struct sockaddr_in *)&sp->addr.ss)->sin_port = htons((uint16_t)port);
	}
	sp->type = WAITER__V1__WATCH_TYPE__WATCH_TYPE_TCP;
	return NULL;
}

/* unix:/ABSOLUTE/PATH; NULL, or why it is wrong. */
static const char *
ep_parse_unix(const char *path, struct ep_spec *sp)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&sp->addr.ss;

	if (path[0] != '/')
		return "a unix socket path must be absolute (unix:/PATH)";
	if (strlen(path) >= sizeof un->sun_path)
		return "a unix socket path must be shorter than 108 bytes";
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, strlen(path) + 1);
	sp->addr.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
	sp->literal = true;
	sp->type = WAITER__V1__WATCH_TYPE__WATCH_TYPE_UNIX;
	return NULL;
}

/* An endpoint string into sp; NULL, or why it is wrong. */
static const char *
ep_parse(const char *e, struct ep_spec *sp)
{
	memset(sp, 0, sizeof *sp);
	if (e[0] == '\0')
		return "an endpoint is required: tcp:HOST:PORT or unix:PATH";
	if (strlen(e) > EP_ENDPOINT_MAX)
		return "the endpoint is longer than 270 characters";
	if (strncmp(e, "tcp:", 4) == 0)
		return ep_parse_tcp(e + 4, sp);
	if (strncmp(e, "unix:", 5) == 0)
		return ep_parse_unix(e + 5, sp);
	return "an endpoint is tcp:HOST:PORT or unix:PATH";
}

/* Validate a WatchEndpoint into sp; 0, or -1 with rep holding the error. */
static int
ep_check(const Waiter__V1__WatchEndpoint *we, struct ep_spec *sp, Reply *rep)
{
	const char *e = we->endpoint, *why = ep_parse(e, sp);

	if (why != NULL) {
		op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
		    "endpoint '%.*s': %s", EP_ENDPOINT_MAX, e, why);
		return -1;
	}
	if (we->timeout_us > (uint64_t)WAITER_MAX_DURATION_US)
		why = "timeout is longer than the longest duration allowed (10 years)";
	else if (we->lifetime < 0 || we->lifetime > WAITER__V1__LIFETIME__LIFETIME_DAEMON)
		why = "unknown lifetime";
	if (why == NULL)
		return 0;
	op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", why);
	return -1;
}

static struct ep_watch *
ep_new(const char *endpoint, uint64_t timeout_us, const struct ep_spec *sp)
{
	struct ep_watch *w = calloc(1, sizeof *w);

	if (w == NULL || (w->endpoint = strdup(endpoint)) == NULL ||
	    (sp->type == WAITER__V1__WATCH_TYPE__WATCH_TYPE_TCP &&
	    ((w->host = strdup(sp->host)) == NULL || (w->port = strdup(sp->port)) == NULL))) {
		if (w != NULL)
			ep_free(&w->obj);
		return NULL;
	}
	w->type = sp->type;
	w->fd = -1;
	w->timeout_us = timeout_us;
	w->backoff_us = EP_BACKOFF_FIRST_US;
	if (sp->literal) {
		w->addrs[0] = sp->addr;
		w->n_addrs = 1;
	}
	evtimer_assign(&w->retry_ev, ev_base, ep_retry_cb, w);
	evtimer_assign(&w->timeout_ev, ev_base, ep_timeout_cb, w);
	return w;
}

/* Arm the timeout and start the first round in a later callback. */
static void
ep_start(struct object *o)
{
	struct ep_watch *w = (struct ep_watch *)o;
	static const struct timeval now = { 0, 0 };

	if (w->deadline != 0) {
		int64_t left = w->deadline - clock_mono_us();
		struct timeval tv = clock_tv(left > 0 ? left : 0);

		evtimer_add(&w->timeout_ev, &tv);
	}
	w->state = EP_BACKOFF;
	evtimer_add(&w->retry_ev, &now);
}

enum op_result
watch_endpoint_op_create(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__WatchEndpoint *we = req->watch_endpoint;
	struct object *existing;
	struct ep_spec sp;
	struct ep_watch *w;

	if (ep_check(we, &sp, rep) < 0)
		return OP_REPLY;
	/* An existing name answers before any limit: a retry must succeed. */
	if ((existing = objects_find_name(we->name)) != NULL) {
		if (existing->ops != &ep_ops)
			return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_FAILED_PRECONDITION,
			    "the name %s belongs to %s %llu", we->name,
			    existing->ops->name, (unsigned long long)existing->id);
		return objects_reply_durable(c, req, existing, true, rep,
		    WAITER__V1__REPLY__RESULT_WATCH_ENDPOINT);
	}
	if (objects_check_create(c, we->name, rep) < 0)
		return OP_REPLY;
	if ((w = ep_new(we->endpoint, we->timeout_us, &sp)) == NULL)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "out of memory");
	objects_register(&w->obj, &ep_ops, c, we->name,
	    we->lifetime == WAITER__V1__LIFETIME__LIFETIME_DAEMON ?
	    WAITER__V1__LIFETIME__LIFETIME_DAEMON : WAITER__V1__LIFETIME__LIFETIME_CONNECTION);
	if (w->timeout_us != 0) {
		w->deadline = clock_mono_us() + (int64_t)w->timeout_us;
		/* From the instant the create counts from, as a timer's. */
		w->deadline_wall = w->obj.created_us + (int64_t)w->timeout_us;
	}
	objects_persist(&w->obj);
	/* The timeout and the first round start once the create is answered
	 * (ep_start): the reply (the id) goes out before any event about the
	 * watch can. */
	return objects_reply_durable_then(c, req, &w->obj, false, rep,
	    WAITER__V1__REPLY__RESULT_WATCH_ENDPOINT, ep_start);
}

/* At start-up: put back an endpoint watch of the state file. */
void
watch_endpoint_restore(uint64_t id, const Waiter__State__V1__StoredObject *so)
{
	const Waiter__State__V1__StoredEndpointWatch *se = so->endpoint_watch;
	static const struct timeval now = { 0, 0 };
	struct ep_spec sp;
	struct ep_watch *w;
	const char *why;

	/* Checked when it was created: only a damaged record fails here. */
	if ((why = ep_parse(se->endpoint, &sp)) != NULL) {
		log_warn("state_record_bad id=%llu detail=\"endpoint: %s\": skipped",
		    (unsigned long long)id, why);
		return;
	}
	if ((w = ep_new(se->endpoint, se->timeout_us, &sp)) == NULL)
		fatal("calloc");
	w->deadline_wall = se->deadline_wall_us;
	w->attempts = se->attempts;
	w->events = se->events;
	snprintf(w->last_error, sizeof w->last_error, "%s", se->last_error);
	objects_restore(&w->obj, &ep_ops, id, so);
	if (!objects_restored_active(&w->obj))
		return;
	if (w->deadline_wall != 0 && w->deadline_wall <= clock_wall_us()) {
		/* It passed while the daemon was down: time out on the first
		 * lap, with no attempt now (the event seqs are not set up
		 * yet, and an endpoint up now was not up in time). */
		if (w->last_error[0] == '\0')
			snprintf(w->last_error, sizeof w->last_error,
			    "the daemon was down when the timeout passed");
		evtimer_add(&w->timeout_ev, &now);
		return;
	}
	/* The same deadline on this boot's monotonic clock. */
	if (w->deadline_wall != 0)
		w->deadline = clock_mono_us() + (w->deadline_wall - clock_wall_us());
	ep_start(&w->obj);
}

/* Nothing is kept outside the watches: each one's stop releases its
 * socket and disowns its resolution, whose done frees it. */
void
watch_endpoint_free(void)
{
}
