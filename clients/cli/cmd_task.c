/* cmd_task.c - submit, run, tasks, show, logs, kill, queue, queues. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

#define MAX_ENV_OPTS 256
#define MAX_AFTER 256
#define STDIN_MAX (16 * 1024 * 1024)    /* the daemon's bound */

static const struct sig {
	const char *name;
	int num;
} sigs[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
	{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "TERM", SIGTERM },
	{ "CONT", SIGCONT }, { "STOP", SIGSTOP },
};

static int
parse_signal(const struct cmd *c, const char *s)
{
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (strcasecmp(s, sigs[i].name) == 0)
			return sigs[i].num;
	{
		uint64_t n = cli_parse_count(c, "--signal", s);

		if (n < 1 || n >= NSIG)
			cli_usage(c, "no signal %s", s);
		return (int)n;
	}
}

/* The exit status a finished task gives `wait` and `run` (DESIGN 5). */
int
cli_task_status(const Waiter__V1__ObjectInfo *o)
{
	const Waiter__V1__TaskInfo *t = o->task;

	switch (t->state) {
	case WAITER__V1__TASK_STATE__TASK_STATE_SUCCEEDED:
		return EXIT_OK;
	case WAITER__V1__TASK_STATE__TASK_STATE_DEPENDENCY_FAILED:
		if (t->error[0] != '\0')
			return cli_fail(EXIT_ERROR, "task %llu did not run: %s",
			    (unsigned long long)o->id, t->error);
		return cli_fail(EXIT_ERROR, "task %llu did not run: a task it runs after "
		    "did not succeed", (unsigned long long)o->id);
	case WAITER__V1__TASK_STATE__TASK_STATE_LOST:
		return cli_fail(EXIT_ERROR, "task %llu was lost: %s", (unsigned long long)o->id,
		    t->error);
	default:
		break;
	}
	if (t->error[0] != '\0')
		cli_fail(0, "task %llu: %s", (unsigned long long)o->id, t->error);
	if (t->signal != 0)
		return 128 + t->signal;
	if (t->exit_code != 0)
		return t->exit_code;
	/* Stopped, yet it exited 0 (it caught the TERM): still not a success. */
	if (t->state == WAITER__V1__TASK_STATE__TASK_STATE_TIMED_OUT)
		return cli_fail(EXIT_TIMEOUT, "task %llu timed out", (unsigned long long)o->id);
	if (t->state == WAITER__V1__TASK_STATE__TASK_STATE_CANCELLED)
		return cli_fail(EXIT_ERROR, "task %llu was cancelled%s", (unsigned long long)o->id,
		    t->pid == 0 ? " before it ran" : "");
	return EXIT_OK;
}

struct submit_opts {
	Waiter__V1__TaskSubmit ts;
	char *env_add[MAX_ENV_OPTS];
	size_t n_env_add;
	uint64_t after[MAX_AFTER];
	bool no_env, wait;
	char cwd[PATH_MAX];
};

/* --stdin FILE: its bytes become the task's stdin ('-': ours). */
static void
submit_stdin(const struct cmd *c, struct submit_opts *o, const char *path)
{
	FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 65536, n = 0;
	uint8_t *buf = malloc(cap);

	if (fp == NULL || buf == NULL)
		exit(cli_fail(EXIT_ERROR, "--stdin %s: %s", path, strerror(errno)));
	for (size_t r; (r = fread(buf + n, 1, cap - n, fp)) > 0;) {
		n += r;
		if (n > STDIN_MAX)
			cli_usage(c, "--stdin: more than 16 MiB");
		if (n == cap && (buf = realloc(buf, cap *= 2)) == NULL)
			exit(cli_fail(EXIT_ERROR, "out of memory"));
	}
	if (fp != stdin)
		fclose(fp);
	o->ts.stdin.data = buf;
	o->ts.stdin.len = n;
}

static void
submit_parse(const struct cmd *c, int argc, char **argv, struct submit_opts *o)
{
	static const struct option opts[] = {
		{ "queue", required_argument, NULL, 'q' },
		{ "name", required_argument, NULL, 'n' },
		{ "after", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 't' },
		{ "cwd", required_argument, NULL, 'C' },
		{ "env", required_argument, NULL, 'e' },
		{ "no-env", no_argument, NULL, 'E' },
		{ "wait", no_argument, NULL, 'w' },
		{ "shell", required_argument, NULL, 'c' },
		{ "output-limit", required_argument, NULL, 'o' },
		{ "stdin", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	waiter__v1__task_submit__init(&o->ts);
	o->ts.after = o->after;
	while ((ch = getopt_long(argc, argv, "+c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'q': o->ts.queue = optarg; break;
		case 'n': o->ts.name = optarg; break;
		case 'a':
			if (o->ts.n_after == MAX_AFTER)
				cli_usage(c, "at most %d --after options", MAX_AFTER);
			o->after[o->ts.n_after++] = cli_object_id(c, optarg);
			break;
		case 't': o->ts.timeout_us = cli_parse_duration(c, "--timeout", optarg); break;
		case 'C': o->ts.cwd = optarg; break;
		case 'e':
			if (strchr(optarg, '=') == NULL || optarg[0] == '=')
				cli_usage(c, "--env takes K=V, not '%s'", optarg);
			if (o->n_env_add == MAX_ENV_OPTS)
				cli_usage(c, "at most %d --env options", MAX_ENV_OPTS);
			o->env_add[o->n_env_add++] = optarg;
			break;
		case 'E': o->no_env = true; break;
		case 'w': o->wait = true; break;
		case 'c': o->ts.shell = optarg; break;
		case 'o': o->ts.output_limit = cli_parse_count(c, "--output-limit", optarg); break;
		case 'i': submit_stdin(c, o, optarg); break;
		default: cli_usage(c, "unknown option");
		}
	}
	if (optind < argc && strcmp(argv[optind - 1], "--") != 0 && o->ts.shell[0] == '\0' &&
	    argv[optind][0] == '-')
		cli_usage(c, "put -- before the command");
	o->ts.argv = argv + optind;
	o->ts.n_argv = (size_t)(argc - optind);
	if (o->ts.n_argv == 0 && o->ts.shell[0] == '\0')
		cli_usage(c, "missing COMMAND (or --shell STRING)");
	if (o->ts.n_argv > 0 && o->ts.shell[0] != '\0')
		cli_usage(c, "give a COMMAND or --shell, not both");
	if (o->ts.cwd[0] == '\0' && getcwd(o->cwd, sizeof o->cwd) != NULL)
		o->ts.cwd = o->cwd;
}

/* The environment sent: the caller's (unless --no-env), --env on top. */
static char **
submit_env(struct submit_opts *o, size_t *n)
{
	size_t base = 0, k = 0;
	char **env;

	if (!o->no_env)
		while (environ[base] != NULL)
			base++;
	env = calloc(base + o->n_env_add + 1, sizeof *env);
	if (env == NULL)
		exit(cli_fail(EXIT_ERROR, "out of memory"));
	for (size_t i = 0; i < base; i++) {
		bool overridden = false;
		size_t klen = strcspn(environ[i], "=");

		for (size_t j = 0; j < o->n_env_add; j++)
			if (strncmp(o->env_add[j], environ[i], klen + 1) == 0)
				overridden = true;
		if (!overridden)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < o->n_env_add; j++)
		env[k++] = o->env_add[j];
	*n = k;
	return env;
}

static int
submit_send(struct submit_opts *o, uint64_t *id)
{
	Request req = WAITER__V1__REQUEST__INIT;
	ServerMessage *m;
	int rc;

	o->ts.env = submit_env(o, &o->ts.n_env);
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_TASK_SUBMIT;
	req.task_submit = &o->ts;
	rc = cli_call(&req, &m);
	free(o->ts.env);
	free(o->ts.stdin.data);
	if (rc != EXIT_OK)
		return rc;
	*id = m->reply->task_submit->object->id;
	if (cli.json)
		out_json(&m->reply->task_submit->base);
	else if (!cli.quiet_id)
		out_id(*id);
	waiter_message_free(m);
	return EXIT_OK;
}

static int
submit_main(const struct cmd *c, int argc, char **argv)
{
	struct submit_opts o;
	uint64_t id;
	int rc;

	memset(&o, 0, sizeof o);
	submit_parse(c, argc, argv, &o);
	/* What the CLI stays with goes with it (Ctrl-C on --wait kills it). */
	o.ts.lifetime = o.wait ? WAITER__V1__LIFETIME__LIFETIME_CONNECTION :
	    WAITER__V1__LIFETIME__LIFETIME_DAEMON;
	if ((rc = submit_send(&o, &id)) != EXIT_OK)
		return rc;
	return o.wait ? cli_wait_one(id, 0) : EXIT_OK;
}

#define SUBMIT_HELP \
	"  --queue Q        run in queue Q (created on first use; default \"default\")\n" \
	"  --name N         an idempotency key: a task named N is returned, not rerun\n" \
	"  --after ID       run once task ID succeeded (repeatable); if it fails,\n" \
	"                   this task ends as dependency_failed without running\n" \
	"  --timeout D      SIGTERM the task's process group after D, SIGKILL after\n" \
	"                   the daemon's grace (waiterd --kill-grace); ends timed_out\n" \
	"  --cwd DIR        working directory (default: the current one)\n" \
	"  --env K=V        set a variable (repeatable), over the current environment\n" \
	"  --no-env         send no environment but --env\n" \
	"  --shell STRING   run STRING with sh -c instead of COMMAND\n" \
	"  --output-limit B bytes of stdout and of stderr kept (default 1 MiB; the\n" \
	"                   tail is kept)\n" \
	"  --stdin FILE     feed FILE (\"-\": this command's stdin; at most 16 MiB)\n" \
	"                   to the task; by default its stdin is /dev/null\n"

const struct cmd cmd_submit = {
	"submit", "[options] [--wait] -- COMMAND [ARG...]", "hand a command to a queue",
	"Submit COMMAND to run on the daemon and print its id. The task outlives\n"
	"this command; collect it with `waiter wait ID` (exits with its status),\n"
	"`waiter logs ID` and `waiter show ID`. With a daemon that keeps state,\n"
	"the task finds its id in its environment: WAITER_TASK=INSTANCE/ID.\n\n"
	SUBMIT_HELP
	"  --wait           stay until it ends, exit with its status; Ctrl-C kills it\n",
	submit_main,
};

/* run: the task's output here, or with --json every event about it. */
static void
run_event(const Event *ev, void *arg)
{
	(void)arg;
	if (cli.json) {
		out_json(&ev->base);
		return;
	}
	if (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_EVENTS_LOST)
		cli_fail(0, "some of the task's output was lost (read too slowly)");
	if (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_TASK_OUTPUT) {
		FILE *fp = ev->task_output->stream == WAITER__V1__STREAM__STREAM_STDERR ?
		    stderr : stdout;

		fwrite(ev->task_output->data.data, 1, ev->task_output->data.len, fp);
		fflush(fp);
	}
}

static int
run_main(const struct cmd *c, int argc, char **argv)
{
	struct submit_opts o;
	uint64_t id;
	int rc;

	memset(&o, 0, sizeof o);
	submit_parse(c, argc, argv, &o);
	if (o.wait)
		cli_usage(c, "run always waits");
	o.ts.lifetime = WAITER__V1__LIFETIME__LIFETIME_CONNECTION;
	o.ts.paced = true;      /* a slow reader here slows the task: nothing lost */
	cli.quiet_id = !cli.json;
	if ((rc = submit_send(&o, &id)) != EXIT_OK)
		return rc;
	return cli_read_events(id, true, run_event, NULL);
}

const struct cmd cmd_run = {
	"run", "[options] -- COMMAND [ARG...]", "run a command in a queue, here",
	"Submit COMMAND, print its output here as it comes (stdout to stdout,\n"
	"stderr to stderr), and exit with its status: its exit code, or 128+N if\n"
	"signal N ended it. With --queue, a host-wide semaphore for scripts:\n"
	"`waiter queue set gpu --parallel 1; waiter run --queue gpu -- ./train.sh`.\n"
	"Ctrl-C kills the task. If this command's output is read slowly, the\n"
	"task is slowed to match (it blocks on write, as in a pipeline): none of\n"
	"its output is lost.\n\n"
	SUBMIT_HELP,
	run_main,
};

static void
tasks_row(const Waiter__V1__ObjectInfo *o)
{
	const Waiter__V1__TaskInfo *t = o->task;
	char state[32], exit_s[16] = "-", cmd[200];
	size_t n = 0;

	snprintf(state, sizeof state, "%s", out_enum(&waiter__v1__task_state__descriptor,
	    t->state));
	if (t->signal != 0)
		snprintf(exit_s, sizeof exit_s, "sig%d", t->signal);
	else if (o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE && t->pid != 0 &&
	    t->state != WAITER__V1__TASK_STATE__TASK_STATE_LOST)    /* status unknown */
		snprintf(exit_s, sizeof exit_s, "%d", t->exit_code);
	cmd[0] = '\0';
	for (size_t i = 0; i < t->n_argv && n < sizeof cmd - 1; i++)
		n += (size_t)snprintf(cmd + n, sizeof cmd - n, "%s%s", i ? " " : "", t->argv[i]);
	printf("%-8llu %-16s %-17s %-12s %-6s %s\n", (unsigned long long)o->id,
	    o->name[0] ? o->name : "-", state, t->queue, exit_s, cmd);
}

static int
tasks_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "queue", required_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 }
	};
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__List list = WAITER__V1__LIST__INIT;
	const char *queue = NULL;
	ServerMessage *m;
	int ch, rc, state = 0;
	bool more = true;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 's') {
			state = out_enum_value(&waiter__v1__task_state__descriptor, optarg);
			if (state < 0)
				cli_usage(c, "unknown state '%s' (waiting, queued, running, "
				    "succeeded, failed, timed_out, cancelled, dependency_failed, lost)",
				    optarg);
		} else if (ch == 'q') {
			queue = optarg;
		} else {
			cli_usage(c, "unknown option");
		}
	}
	if (optind < argc)
		cli_usage(c, "unexpected argument '%s'", argv[optind]);
	cli_connect();
	list.kind = WAITER__V1__OBJECT_KIND__OBJECT_KIND_TASK;
	list.finished = true;
	req.op_case = WAITER__V1__REQUEST__OP_LIST;
	req.list = &list;
	if (!cli.json)
		printf("%-8s %-16s %-17s %-12s %-6s %s\n", "ID", "NAME", "STATE", "QUEUE",
		    "EXIT", "COMMAND");
	while (more) {
		if ((rc = cli_call(&req, &m)) != EXIT_OK)
			return rc;
		for (size_t i = 0; i < m->reply->list->n_objects; i++) {
			const Waiter__V1__ObjectInfo *o = m->reply->list->objects[i];

			list.after_id = o->id;
			if ((state && (int)o->task->state != state) ||
			    (queue && strcmp(o->task->queue, queue) != 0))
				continue;
			if (cli.json)
				out_json(&o->base);
			else
				tasks_row(o);
		}
		more = m->reply->list->more;
		waiter_message_free(m);
	}
	return EXIT_OK;
}

const struct cmd cmd_tasks = {
	"tasks", "[--state S] [--queue Q]", "list tasks, running and kept",
	"List tasks: pending ones and finished ones the daemon still keeps.\n"
	"\n"
	"  --state S   only tasks in state S (waiting, queued, running, succeeded,\n"
	"              failed, timed_out, cancelled, dependency_failed, lost)\n"
	"  --queue Q   only tasks of queue Q\n",
	tasks_main,
};

static ServerMessage *
get_object(const struct cmd *c, const char *arg, int *rc)
{
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Get g = WAITER__V1__GET__INIT;
	ServerMessage *m;

	g.id = cli_object_id(c, arg);
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_GET;
	req.get = &g;
	*rc = cli_call(&req, &m);
	return *rc == EXIT_OK ? m : NULL;
}

static int
show_main(const struct cmd *c, int argc, char **argv)
{
	ServerMessage *m;
	int rc;

	if (argc != 2)
		cli_usage(c, argc < 2 ? "missing ID" : "one ID only");
	if ((m = get_object(c, argv[1], &rc)) == NULL)
		return rc;
	out_message_sep(&m->reply->get->base, "\n");
	waiter_message_free(m);
	return EXIT_OK;
}

const struct cmd cmd_show = {
	"show", "ID", "show one object (a task's state, exit, times, sizes)",
	"Print everything the daemon knows of object ID, one key=value per line\n"
	"(with --json, one object): for a task its state, command, queue, pid,\n"
	"exit code or signal, start and end times, output sizes and drops.\n",
	show_main,
};

struct logs_follow {
	bool err_stream;
};

static void
logs_event(const Event *ev, void *arg)
{
	const struct logs_follow *lf = arg;

	if (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_EVENTS_LOST)
		cli_fail(0, "some output was lost while following (read too slowly)");
	if (ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_TASK_OUTPUT &&
	    (ev->task_output->stream == WAITER__V1__STREAM__STREAM_STDERR) == lf->err_stream) {
		fwrite(ev->task_output->data.data, 1, ev->task_output->data.len, stdout);
		fflush(stdout);
	}
}

/* After a TaskLogs snapshot: print the chunks of one stream published
 * since it, until the task is done. Nothing is printed twice or missed. */
static int
logs_follow(uint64_t id, uint64_t since, bool err_stream)
{
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Subscribe sub = WAITER__V1__SUBSCRIBE__INIT;
	Waiter__V1__EventKind kinds[] = { WAITER__V1__EVENT_KIND__EVENT_KIND_TASK_OUTPUT,
	    WAITER__V1__EVENT_KIND__EVENT_KIND_TASK_DONE };
	struct logs_follow lf = { err_stream };
	ServerMessage *m;
	int rc;

	sub.has_since = true;
	sub.since_seq = since;
	sub.n_ids = 1;
	sub.ids = &id;
	sub.n_kinds = 2;
	sub.kinds = kinds;
	req.op_case = WAITER__V1__REQUEST__OP_SUBSCRIBE;
	req.subscribe = &sub;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		return rc;
	waiter_message_free(m);
	return cli_read_events(id, false, logs_event, &lf);
}

static int
logs_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stderr", no_argument, NULL, 'e' },
		{ "follow", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__TaskLogs tl = WAITER__V1__TASK_LOGS__INIT;
	ServerMessage *m;
	bool err_stream = false, follow = false, done;
	uint64_t since;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
		if (ch == 'e')
			err_stream = true;
		else if (ch == 'f')
			follow = true;
		else
			cli_usage(c, "unknown option");
	}
	if (optind != argc - 1)
		cli_usage(c, optind == argc ? "missing ID" : "one ID only");
	tl.id = cli_object_id(c, argv[optind]);
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_TASK_LOGS;
	req.task_logs = &tl;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		return rc;
	if (cli.json) {
		out_json(&m->reply->task_logs->base);
	} else {
		const ProtobufCBinaryData *d = err_stream ? &m->reply->task_logs->stderr :
		    &m->reply->task_logs->stdout;
		uint64_t dropped = err_stream ? m->reply->task_logs->stderr_dropped :
		    m->reply->task_logs->stdout_dropped;

		if (m->reply->task_logs->output_released && dropped > 0)
			cli_fail(0, "the output was let go after the task ended (it "
			    "wrote %llu bytes): the daemon holds the output of the most "
			    "recently ended tasks, up to waiterd --max-kept-output in all",
			    (unsigned long long)(d->len + dropped));
		else if (dropped > 0)
			cli_fail(0, "the first %llu bytes were dropped (output limit); "
			    "this is the tail", (unsigned long long)dropped);
		if (d->len > 0)
			fwrite(d->data, 1, d->len, stdout);
		fflush(stdout);
	}
	since = m->reply->task_logs->last_seq;
	done = m->reply->task_logs->done;
	waiter_message_free(m);
	if (follow && !done && !cli.json)
		return logs_follow(tl.id, since, err_stream);
	return EXIT_OK;
}

const struct cmd cmd_logs = {
	"logs", "ID [--follow] [--stderr]", "print a task's captured output",
	"Print the stdout (or with --stderr, the stderr) the daemon kept for task\n"
	"ID, byte for byte. Past the output limit only the tail is kept; a note on\n"
	"stderr says how much was dropped. The daemon holds the output of the most\n"
	"recently ended tasks, up to waiterd --max-kept-output in all: an older\n"
	"task's may have been let go (stderr says so). With --follow, go on printing what\n"
	"the task writes until it ends (from any process, while `waiter run`\n"
	"streams its own task).\n",
	logs_main,
};

static int
kill_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "signal", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__TaskKill k = WAITER__V1__TASK_KILL__INIT;
	ServerMessage *m;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
		if (ch != 's')
			cli_usage(c, "unknown option");
		k.signal = parse_signal(c, optarg);
	}
	if (optind != argc - 1)
		cli_usage(c, optind == argc ? "missing ID" : "one ID only");
	k.id = cli_object_id(c, argv[optind]);
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_TASK_KILL;
	req.task_kill = &k;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		return rc;
	waiter_message_free(m);
	return EXIT_OK;
}

const struct cmd cmd_kill = {
	"kill", "ID [--signal SIG]", "stop a task (or send it a signal)",
	"Stop task ID: SIGTERM to its process group, SIGKILL after the daemon's\n"
	"grace; it ends cancelled. A queued task is removed. With --signal SIG\n"
	"(TERM, KILL, INT, HUP, USR1, ... or a number) that signal is sent to the\n"
	"process group instead.\n",
	kill_main,
};

static int
queue_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "parallel", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__QueueSet qs = WAITER__V1__QUEUE_SET__INIT;
	ServerMessage *m;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'p')
			cli_usage(c, "unknown option");
		qs.parallel = (uint32_t)cli_parse_count(c, "--parallel", optarg);
	}
	if (argc - optind != 2 || strcmp(argv[optind], "set") != 0)
		cli_usage(c, "expected: queue set Q --parallel N");
	if (qs.parallel == 0)
		cli_usage(c, "--parallel N (at least 1) is required");
	qs.queue = argv[optind + 1];
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_QUEUE_SET;
	req.queue_set = &qs;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		return rc;
	if (cli.json)
		out_json(&m->reply->queue_set->base);
	waiter_message_free(m);
	return EXIT_OK;
}

const struct cmd cmd_queue = {
	"queue", "set Q --parallel N", "set a queue's parallelism",
	"Let at most N tasks of queue Q run at once (the queue is created if\n"
	"needed). Raising N starts waiting tasks at once; lowering it lets running\n"
	"ones finish. The default queue starts with N = the number of CPUs.\n",
	queue_main,
};

static int
queues_main(const struct cmd *c, int argc, char **argv)
{
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__QueueList ql = WAITER__V1__QUEUE_LIST__INIT;
	ServerMessage *m;
	int rc;

	if (argc != 1)
		cli_usage(c, "unexpected argument '%s'", argv[1]);
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_QUEUE_LIST;
	req.queue_list = &ql;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		return rc;
	if (!cli.json)
		printf("%-20s %-8s %-8s %s\n", "QUEUE", "PARALLEL", "RUNNING", "QUEUED");
	for (size_t i = 0; i < m->reply->queue_list->n_queues; i++) {
		const Waiter__V1__QueueInfo *q = m->reply->queue_list->queues[i];

		if (cli.json)
			out_json(&q->base);
		else
			printf("%-20s %-8u %-8u %u\n", q->name, q->parallel, q->running,
			    q->queued);
	}
	waiter_message_free(m);
	return EXIT_OK;
}

const struct cmd cmd_queues = {
	"queues", "", "list queues",
	"List the queues: parallelism, tasks running and tasks queued.\n",
	queues_main,
};
