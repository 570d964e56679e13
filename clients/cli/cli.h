/*
 * cli.h - what the `waiter` command's files share: global options, the
 * command table, connecting (with auto-start), calls, exit statuses and
 * output (text, or one JSON object per line with --json).
 */
#ifndef WAITER_CLI_H
#define WAITER_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdnoreturn.h>

#include "waiter.h"

/* Exit statuses (DESIGN 5). */
#define EXIT_OK 0
#define EXIT_ERROR 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 69
#define EXIT_TIMEOUT 124

typedef Waiter__V1__Request Request;
typedef Waiter__V1__ServerMessage ServerMessage;
typedef Waiter__V1__Event Event;

struct cmd {
	const char *name;
	const char *args;       /* synopsis after the name */
	const char *summary;    /* one line for `waiter --help` */
	const char *help;       /* the rest of `waiter NAME --help` */
	int (*fn)(const struct cmd *, int, char **);
};

struct cli {
	const char *socket;     /* -S, else NULL */
	bool json;
	bool no_autostart;
	bool quiet_id;          /* `run`: stdout is the task's */
	struct waiter *w;
};
extern struct cli cli;

extern const struct cmd cmd_ping, cmd_stats, cmd_version, cmd_shutdown;
extern const struct cmd cmd_after, cmd_every, cmd_at, cmd_timers;
extern const struct cmd cmd_cancel, cmd_wait, cmd_events;
extern const struct cmd cmd_submit, cmd_run, cmd_tasks, cmd_show, cmd_logs, cmd_kill;
extern const struct cmd cmd_queue, cmd_queues;
extern const struct cmd cmd_watch, cmd_watches;

/* A finished task's exit status for wait and run (cmd_task.c). */
int cli_task_status(const Waiter__V1__ObjectInfo *o);

/* Shared by the creating commands (cmd_object.c): wait for id to complete
 * (timeout_us 0 = forever), or print its events until it completes. */
int cli_wait_one(uint64_t id, uint64_t timeout_us);
int cli_follow(uint64_t id);
/* Send a create request (timer, watch), print the new id (or the reply as
 * JSON), then wait for the object or follow its events if asked. */
int cli_create(Request *req, bool wait, bool follow);
/* List objects of a kind page by page (finished ones too if asked): one
 * JSON line each with --json, else header then row(o) each. */
int cli_list(Waiter__V1__ObjectKind kind, bool finished, const char *header,
    void (*row)(const Waiter__V1__ObjectInfo *o));
/* Read events until object id ends (or the daemon shuts down), handing fn
 * those about id and the markers (seq 0: events_lost, replay_done); the
 * exit status its end gives (status false: 0, and nothing said). */
int cli_read_events(uint64_t id, bool status, void (*fn)(const Event *ev, void *arg),
    void *arg);

/* Connect (starting a daemon when allowed) or exit 69. */
void cli_connect(void);
/* Make a call; on failure print the error and return its exit status. */
int cli_call(Request *req, ServerMessage **reply);
/* The exit status for a failed call, with its sentence on stderr. */
int cli_call_error(const struct waiter_error *err);
/* The daemon went away: connect again (starting one if allowed), trying
 * until the monotonic time until_mono_us; false if none came back. */
bool cli_reconnect(int64_t until_mono_us);
/* How long `wait` keeps reconnecting: $WAITER_RECONNECT_TIMEOUT, else 30 s. */
#define CLI_RECONNECT_DEFAULT_US (30 * UINT64_C(1000000))
uint64_t cli_reconnect_us(void);
/* Print "waiter: ..." on stderr and return code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
noreturn void cli_usage(const struct cmd *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
uint64_t cli_parse_id(const struct cmd *c, const char *s);
/* An id, or an object's name resolved by the daemon (connects). */
uint64_t cli_object_id(const struct cmd *c, const char *s);
uint64_t cli_parse_duration(const struct cmd *c, const char *opt, const char *s);
uint64_t cli_parse_count(const struct cmd *c, const char *opt, const char *s);

/* Output (output.c). */
void out_message(const ProtobufCMessage *m);    /* JSON line or key=value line */
void out_message_sep(const ProtobufCMessage *m, const char *between);
void out_event(const Event *ev);
void out_json(const ProtobufCMessage *m);
void out_id(uint64_t id);
const char *out_enum(const ProtobufCEnumDescriptor *d, int value);
void out_time(int64_t wall_us, char *buf, size_t len);
/* Enum value by lowercase name, or -1. */
int out_enum_value(const ProtobufCEnumDescriptor *d, const char *name);

#endif
