/*
 * waiter.h - libwaiter, the small synchronous C client of waiterd.
 *
 * Connect (Hello included), make calls, read events. One connection is
 * used by one thread at a time. Messages are the generated protobuf-c
 * types of proto/waiter.proto; see doc/protocol.md.
 *
 *	struct waiter *w;
 *	struct waiter_error err;
 *	if (waiter_connect(NULL, "example", &w, &err) < 0) ...
 *	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
 *	Waiter__V1__Ping ping = WAITER__V1__PING__INIT;
 *	req.op_case = WAITER__V1__REQUEST__OP_PING; req.ping = &ping;
 *	Waiter__V1__ServerMessage *m;
 *	if (waiter_call(w, &req, &m, &err) == 0) { ...m->reply...; waiter_message_free(m); }
 *	waiter_close(w);
 */
#ifndef WAITER_H
#define WAITER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "waiter.pb-c.h"

/* Local failures, beside the protocol's Waiter__V1__ErrorCode values. */
enum {
	WAITER_E_UNREACHABLE = -1,  /* no daemon answers at the socket */
	WAITER_E_IO = -2,           /* the connection failed or closed */
	WAITER_E_PROTOCOL = -3,     /* the daemon sent something undecodable */
	WAITER_E_USAGE = -4         /* a bad argument to the library */
};

struct waiter_error {
	int code;               /* Waiter__V1__ErrorCode, or WAITER_E_* */
	char message[512];
};

struct waiter;

/* The per-user default socket: $XDG_RUNTIME_DIR/waiter/waiterd.sock, else
 * /tmp/waiter-$UID/waiterd.sock. WAITER_SOCKET is the caller's business. */
int waiter_default_socket(char *buf, size_t len);

/* Connect to path (NULL: $WAITER_SOCKET, then the default) and say Hello. */
int waiter_connect(const char *path, const char *client_name, struct waiter **out,
    struct waiter_error *err);
void waiter_close(struct waiter *w);
uint64_t waiter_connection_id(const struct waiter *w);
const char *waiter_server_version(const struct waiter *w);
/* HelloReply.instance: the same after a reconnect iff ids still mean the
 * same objects (a daemon with a state directory, or the same run). */
uint64_t waiter_instance(const struct waiter *w);
/* The uid the daemon runs as (SO_PEERCRED). 0, or -1 with errno set. */
int waiter_peer_uid(const struct waiter *w, uid_t *uid);

/*
 * Send req (its id is assigned here) and read until its Reply. Events that
 * arrive meanwhile are kept for waiter_next_event(). Returns 0 with *reply
 * (free with waiter_message_free), or -1 with err filled, which includes a
 * daemon Error reply.
 */
int waiter_call(struct waiter *w, Waiter__V1__Request *req,
    Waiter__V1__ServerMessage **reply, struct waiter_error *err);

/* The next event: 1 and *ev, 0 after timeout_ms (-1 = forever), -1 on error. */
int waiter_next_event(struct waiter *w, int timeout_ms,
    Waiter__V1__ServerMessage **ev, struct waiter_error *err);

void waiter_message_free(Waiter__V1__ServerMessage *m);

/* Durations: "250ms", "5s", "2m", "1h30m", "1.5s", a bare number is seconds.
 * Units: us, ms, s, m, h, d. At most 10 years. */
int waiter_parse_duration(const char *s, uint64_t *us, const char **err);
/* Times: RFC 3339 ("2026-11-26T10:00:00Z", offsets, fractions) or
 * @UNIX_SECONDS (fractions allowed). */
int waiter_parse_time(const char *s, int64_t *wall_us, const char **err);
/* Format a duration in the syntax above ("1h30m", "250ms"). */
void waiter_format_duration(uint64_t us, char *buf, size_t len);

/* Write a StatsReply in the Prometheus text exposition format (0.0.4),
 * every series doc/metrics.md lists: what `waiter stats --prometheus`
 * prints and waiterd --metrics-listen serves. 0, or -1 if fp failed. */
int waiter_stats_prometheus(FILE *fp, const Waiter__V1__StatsReply *s);

#endif
