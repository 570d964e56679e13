/*
 * server.h - the listening socket, connections, framing and dispatch.
 *
 * server.c owns every connection: it accepts (checking the peer's
 * credentials and --max-clients), reads frames within a per-callback
 * budget, dispatches each Request through the operation table, writes
 * replies, and closes misbehaving connections outside the callback that
 * noticed. Other modules reach a connection only through this header.
 */
#ifndef WAITERD_SERVER_H
#define WAITERD_SERVER_H

#include <sys/queue.h>

#include <event2/event_struct.h>
#include <protobuf-c/protobuf-c.h>

#include "waiterd.h"

struct evbuffer;
struct object;
struct waitreq;
struct ack;

/* How a connection is being closed. */
enum conn_closing {
	CONN_OPEN,        /* serving */
	CONN_FLUSH,       /* stop reading; close once the output is written */
	CONN_DEAD         /* close at the end of this lap, drop the output */
};

/* The event bus's per-connection state (events.c reads and writes it). */
struct conn_bus {
	bool subscribed;
	bool behind;            /* over its output limit: catch up from cursor */
	bool replaying;         /* a Subscribe replay has not reached replay_to */
	uint64_t cursor;        /* last seq considered, while behind */
	uint64_t replay_to;     /* REPLAY_DONE once the cursor reaches this */
	uint32_t kinds;         /* bit per EventKind; 0 = all */
	uint64_t *ids;          /* sorted; NULL = all */
	size_t n_ids;
	LIST_ENTRY(conn) sub_link;
};

struct conn {
	uint64_t id;
	int fd;
	uid_t uid;
	pid_t pid;
	enum conn_closing closing;
	bool hello;             /* Hello received */
	bool reading;           /* the read event is added */
	bool paused;            /* reading stopped until the output drains */
	bool write_pending;     /* the write event is active or added */
	struct event rev, wev;
	struct evbuffer *in, *out;
	char *name;             /* client_name from Hello */
	unsigned objects;       /* active objects it created */
	unsigned n_waits;       /* pending Wait requests */
	uint64_t watched_dirs;  /* directories its path watches hold */
	int64_t partial_since;  /* monotonic time its unfinished frame began, or 0 */
	LIST_ENTRY(conn) partial_link;  /* on `partial` while partial_since */
	bool peer_eof;          /* the peer shut down its side */
	struct conn_bus bus;
	TAILQ_HEAD(, object) owned;     /* active objects it created */
	LIST_HEAD(, waitreq) waits;     /* pending Wait requests */
	LIST_HEAD(, ack) acks;          /* creates answered once durable */
	unsigned n_acks;
	LIST_ENTRY(conn) link;
	TAILQ_ENTRY(conn) dead_link;
};

/* The connection events; daemon_setup calls it before anything listens. */
void server_init(void);
/* Bind and listen at cfg.socket_path (its directory prepared, a stale
 * socket replaced, PATH.lock taken). -1 and *cause if it cannot. */
int server_listen(const char **cause);
/* Socket activation: serve fd, a listening socket the service manager
 * passed (its name, FileDescriptorName=, for messages), instead of binding.
 * It must be a listening Unix stream socket bound to a path; that path
 * becomes cfg.socket_path, and must equal want_path unless that is NULL
 * (-S not given). The socket file is left to the manager, never unlinked. */
int server_adopt(int fd, const char *name, const char *want_path, const char **cause);
/* Serve fd, a connected socket: the listener's, or a fuzz target's end of
 * a socketpair (its peer's credentials decide, as for any client). */
void server_accept_fd(int fd);
void server_stop_listening(void);
void server_free(void);

/* Queue a packed, framed message (header included) to c. */
void conn_send_frame(struct conn *c, const uint8_t *frame, size_t len);
/* Pack msg into a frame and queue it to c. */
void conn_send_message(struct conn *c, const ProtobufCMessage *msg);
/* Send a Reply carrying request id. */
void conn_send_reply(struct conn *c, Reply *rep);
size_t conn_output_len(const struct conn *c);
/* Ask for the connection's write callback to run this lap. */
void conn_kick(struct conn *c);
void conn_close(struct conn *c, enum conn_closing how, const char *why);

/* A pending Wait of c was answered: a half-closed c may close now. */
void server_conn_settled(struct conn *c);
/* Call fn on every open connection. */
void server_foreach_conn(void (*fn)(struct conn *, void *), void *arg);
uint64_t server_output_bytes(void);
/* Stop reading, flush everyone, then break the loop (bounded grace). */
void server_drain_and_exit(void);

#endif
