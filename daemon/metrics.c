/* metrics.c - GET /metrics over HTTP (--metrics-listen), on the loop. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "waiter.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * libevent 2.1 (Debian's) has no evhttp_set_max_connections, so the bound
 * is kept here: each connection evhttp accepts asks us for its bufferevent
 * (evhttp_set_bevcb), which counts it; once evhttp has made the connection
 * (the attach event, run before its first read), a close callback on it
 * uncounts it. At the limit the listener is disabled, so further clients
 * wait in the kernel's backlog until a connection closes.
 */
struct metrics_conn {
	struct event attach;
	struct bufferevent *bev;        /* our reference, until attached */
	LIST_ENTRY(metrics_conn) link;
};

static struct sockaddr_storage listen_sa;
static socklen_t listen_salen;
static bool configured;
static struct evhttp *http;
static struct evconnlistener *listener;  /* evhttp's; NULL once freeing */
static struct event *retry_ev;
static LIST_HEAD(, metrics_conn) conns = LIST_HEAD_INITIALIZER(conns);
static unsigned n_conns;
static bool full;                       /* disabled at METRICS_MAX_CONNS */
static int64_t busy_logged_us;

int
metrics_configure(const char *spec, const char **cause)
{
	static char why[256];
	struct sockaddr_in *sin = (struct sockaddr_in *)&listen_sa;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&listen_sa;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(spec, ':'), *port;
	char *end;
	unsigned long p;
	size_t hl;

	memset(&listen_sa, 0, sizeof listen_sa);
	snprintf(why, sizeof why, "'%s' is not ADDRESS:PORT with a numeric address "
	    "(127.0.0.1:9100, [::1]:9100; port 0 picks a free one)", spec);
	*cause = why;
	if (colon == NULL || (hl = (size_t)(colon - spec)) == 0 || hl >= sizeof host)
		return -1;
	port = colon + 1;
	errno = 0;
	p = strtoul(port, &end, 10);
	if (*port < '0' || *port > '9' || *end != '\0' || errno != 0 || p > 65535)
		return -1;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		listen_salen = sizeof *sin6;
	} else {
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		listen_salen = sizeof *sin;
	}
	configured = true;
	*cause = NULL;
	return 0;
}

/* "127.0.0.1:9100" or "[::1]:9100". */
static void
metrics_format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	}
}

/* ------------------------------------------------- counting connections */

static void
metrics_conn_gone(struct metrics_conn *mc)
{
	LIST_REMOVE(mc, link);
	if (event_initialized(&mc->attach))
		event_del(&mc->attach);
	if (mc->bev != NULL)
		bufferevent_decref(mc->bev);
	free(mc);
	n_conns--;
	log_debug("metrics_closed connections=%u", n_conns);
	if (full && listener != NULL && n_conns < METRICS_MAX_CONNS) {
		full = false;
		evconnlistener_enable(listener);
		log_debug("metrics_accepting connections=%u", n_conns);
	}
}

static void
metrics_close_cb(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	metrics_conn_gone(arg);
}

/* evhttp has made the connection around our bufferevent, and its callbacks'
 * argument is that connection: learn when it closes. */
static void
metrics_attach_cb(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_conn *mc = arg;
	bufferevent_data_cb readcb = NULL;
	void *evcon = NULL;

	(void)fd, (void)what;
	bufferevent_getcb(mc->bev, &readcb, NULL, NULL, &evcon);
	if (readcb == NULL || evcon == NULL) {
		/* evhttp let go of it already (it could not make the connection) */
		metrics_conn_gone(mc);
		return;
	}
	evhttp_connection_set_closecb(evcon, metrics_close_cb, mc);
	bufferevent_decref(mc->bev);
	mc->bev = NULL;
}

static struct bufferevent *
metrics_bev_cb(struct event_base *base, void *arg)
{
	struct metrics_conn *mc = calloc(1, sizeof *mc);

	(void)arg;
	if (mc == NULL)
		fatal("calloc");
	mc->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (mc->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	/* Ours until attached: its memory outlives whatever evhttp does. */
	bufferevent_incref(mc->bev);
	event_assign(&mc->attach, base, -1, 0, metrics_attach_cb, mc);
	event_active(&mc->attach, EV_TIMEOUT, 1);
	LIST_INSERT_HEAD(&conns, mc, link);
	log_debug("metrics_accepted connections=%u", n_conns + 1);
	if (++n_conns >= METRICS_MAX_CONNS && !full) {
		full = true;
		evconnlistener_disable(listener);
		/* Once a minute at most: a scraper flood toggles this often. */
		if (busy_logged_us == 0 || clock_mono_us() - busy_logged_us >= 60000000) {
			busy_logged_us = clock_mono_us();
			log_warn("metrics_busy connections=%u limit=%d detail=\"not accepting "
			    "until one closes\"", n_conns, METRICS_MAX_CONNS);
		}
	}
	return mc->bev;
}

/* Out of descriptors: stop accepting for a while rather than spin on a
 * listener that stays readable (tmux's server.c does the same). */
static void
metrics_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct timeval tv = clock_tv(METRICS_RETRY_US);
	int err = EVUTIL_SOCKET_ERROR();

	(void)arg;
	log_warn("metrics_accept errno=%d detail=\"%s\"", err, strerror(err));
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		evconnlistener_disable(lev);
		evtimer_add(retry_ev, &tv);
	}
}

static void
metrics_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (listener != NULL && !full)
		evconnlistener_enable(listener);
}

/* --------------------------------------------------------- requests */

static void
metrics_reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL)
		fatalx("evbuffer_new failed");
	evbuffer_add(body, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; charset=utf-8");
	evhttp_send_reply(req, code, reason, body);
	evbuffer_free(body);
}

static void
metrics_serve(struct evhttp_request *req)
{
	Waiter__V1__StatsReply *s = arena_alloc(sizeof *s);
	struct evbuffer *body = evbuffer_new();
	char *text = NULL;
	size_t len = 0;
	FILE *fp;

	stats_fill(s);
	if (body == NULL || (fp = open_memstream(&text, &len)) == NULL)
		fatal("open_memstream");
	if (waiter_stats_prometheus(fp, s) < 0 || fclose(fp) != 0) {
		free(text);
		evbuffer_free(body);
		metrics_reply_text(req, HTTP_INTERNAL, "Internal Server Error",
		    "the metrics could not be formatted (see the daemon's log)\n");
		log_warn("metrics_format errno=%d", errno);
		return;
	}
	evbuffer_add(body, text, len);
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    CONTENT_TYPE);
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

/* Every request: GET or HEAD /metrics, else 404 (another path) or 405. */
static void
metrics_request_cb(struct evhttp_request *req, void *arg)
{
	int64_t begin = stats_lap_begin();
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	int code;

	(void)arg;
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		code = HTTP_NOTFOUND;
		metrics_reply_text(req, code, "Not Found",
		    "not found: waiterd serves its metrics at /metrics\n");
	} else if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		code = 405;
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
		    "GET, HEAD");
		metrics_reply_text(req, code, "Method Not Allowed",
		    "method not allowed: /metrics answers GET and HEAD\n");
	} else {
		code = HTTP_OK;
		metrics_serve(req);
	}
	log_debug("metrics_request path=%s status=%d", path != NULL ? path : "-", code);
	stats_lap_end(begin, "metrics", 0);
	arena_reset();
}

/* ----------------------------------------------------------- start, stop */

static int
metrics_bind(const char **cause, char *addr, size_t addrlen)
{
	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;
	int fd, one = 1;

	metrics_format_addr(&listen_sa, addr, addrlen);
	fd = socket(listen_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*cause = arena_printf("--metrics-listen %s: cannot make a socket: %s", addr,
		    strerror(errno));
		return -1;
	}
	/* A restart may rebind while the last run's connections linger. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&listen_sa, listen_salen) < 0 ||
	    listen(fd, METRICS_BACKLOG) < 0) {
		*cause = arena_printf("--metrics-listen %s: cannot listen there: %s%s", addr,
		    strerror(errno), errno == EADDRINUSE ?
		    " (another process has the port; pick another, or port 0)" : "");
		close(fd);
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
		metrics_format_addr(&bound, addr, addrlen);
	return fd;
}

int
metrics_listen(const char **cause)
{
	struct evhttp_bound_socket *bs;
	char addr[INET6_ADDRSTRLEN + 16];
	int fd;

	if (!configured)
		return 0;
	if ((fd = metrics_bind(cause, addr, sizeof addr)) < 0)
		return -1;
	http = evhttp_new(ev_base);
	retry_ev = evtimer_new(ev_base, metrics_retry_cb, NULL);
	if (http == NULL || retry_ev == NULL)
		fatalx("cannot set up the metrics endpoint");
	evhttp_set_max_headers_size(http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(http, METRICS_MAX_BODY);
	evhttp_set_timeout(http, METRICS_TIMEOUT_S);
	/* Every method reaches metrics_request_cb, which answers 405 itself
	 * (evhttp would answer 501 to those not allowed). */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
	    EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, metrics_request_cb, NULL);
	evhttp_set_bevcb(http, metrics_bev_cb, NULL);
	if ((bs = evhttp_accept_socket_with_handle(http, fd)) == NULL) {
		close(fd);
		*cause = arena_printf("--metrics-listen %s: cannot serve HTTP there", addr);
		return -1;
	}
	listener = evhttp_bound_socket_get_listener(bs);
	evconnlistener_set_error_cb(listener, metrics_accept_error_cb);
	log_info("metrics_listening address=%s url=http://%s/metrics", addr, addr);
	return 0;
}

void
metrics_free(void)
{
	struct metrics_conn *mc;

	/* evhttp_free closes the listener first, then each connection (whose
	 * close callback uncounts it): nothing may enable the listener then. */
	listener = NULL;
	if (http != NULL)
		evhttp_free(http);
	http = NULL;
	while ((mc = LIST_FIRST(&conns)) != NULL)
		metrics_conn_gone(mc);
	if (retry_ev != NULL)
		event_free(retry_ev);
	retry_ev = NULL;
	full = false;
	busy_logged_us = 0;
	configured = false;
}
