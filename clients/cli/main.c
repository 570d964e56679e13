/* main.c - the `waiter` command: global options, the command table,
 * connecting with auto-start, and the shared helpers of cli.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "frame.h"

extern char **environ;

struct cli cli;

/* The command table: `waiter --help` lists it in this order. */
static const struct cmd *const commands[] = {
	&cmd_ping, &cmd_stats, &cmd_version, &cmd_shutdown,
	&cmd_after, &cmd_every, &cmd_at, &cmd_timers,
	&cmd_submit, &cmd_run, &cmd_tasks, &cmd_show, &cmd_logs, &cmd_kill,
	&cmd_queue, &cmd_queues,
	&cmd_watch, &cmd_watches,
	&cmd_cancel, &cmd_wait, &cmd_events,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* How long an auto-started daemon has to come up. */
#define AUTOSTART_TRIES 50
#define AUTOSTART_PAUSE_NS 20000000

static void
usage_all(FILE *fp)
{
	fprintf(fp,
	    "usage: waiter [-S PATH] [--json] [--no-autostart] COMMAND [ARGS...]\n"
	    "\n"
	    "Hand your waiting to waiterd: timers and tasks; the daemon runs one\n"
	    "event loop for every process on the host.\n"
	    "\n"
	    "Global options:\n"
	    "  -S, --socket PATH   daemon socket (default: $WAITER_SOCKET, else\n"
	    "                      $XDG_RUNTIME_DIR/waiter/waiterd.sock, else\n"
	    "                      /tmp/waiter-$UID/waiterd.sock)\n"
	    "      --json          print one JSON object per line\n"
	    "      --no-autostart  do not start waiterd when none is running (it is\n"
	    "                      started only at the default socket)\n"
	    "  -h, --help          this help; waiter COMMAND --help for a command\n"
	    "      --version       same as `waiter version`\n"
	    "\n"
	    "Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++) {
		char head[64];

		snprintf(head, sizeof head, "%s", commands[i]->name);
		fprintf(fp, "  %-9s %s\n", head, commands[i]->summary);
	}
	fprintf(fp,
	    "\n"
	    "DURATION: 250ms, 5s, 2m, 1h30m, 1.5s; a bare number is seconds.\n"
	    "TIME: RFC 3339 (2026-11-26T10:00:00Z) or @UNIX_SECONDS.\n"
	    "Creating commands print the new id alone on stdout.\n"
	    "\n"
	    "Environment: WAITER_SOCKET (the socket); WAITER_STATE_DIR (where a\n"
	    "daemon this command starts keeps its state; default\n"
	    "$XDG_STATE_HOME/waiter or ~/.local/state/waiter; empty: none);\n"
	    "WAITER_RECONNECT_TIMEOUT (how long wait reconnects, default 30s).\n"
	    "\n"
	    "Exit status: 0 success; 1 error; 2 usage error; 69 daemon unreachable;\n"
	    "124 wait --timeout expired; wait and run on a task: its exit code, or\n"
	    "128+N if signal N ended it.\n");
}

static void
usage_cmd(FILE *fp, const struct cmd *c)
{
	fprintf(fp, "usage: waiter %s %s\n\n%s", c->name, c->args, c->help);
}

int
cli_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("waiter: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

void
cli_usage(const struct cmd *c, const char *fmt, ...)
{
	va_list ap;

	fputs("waiter: ", stderr);
	if (c != NULL)
		fprintf(stderr, "%s: ", c->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (c != NULL)
		fprintf(stderr, "\nusage: waiter %s %s\n", c->name, c->args);
	else
		fputs("\nTry 'waiter --help'.\n", stderr);
	exit(EXIT_USAGE);
}

uint64_t
cli_parse_id(const struct cmd *c, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || s[0] == '-')
		cli_usage(c, "'%s' is not an object id (a positive number)", s);
	return v;
}

uint64_t
cli_parse_duration(const struct cmd *c, const char *opt, const char *s)
{
	uint64_t us;
	const char *err;

	if (waiter_parse_duration(s, &us, &err) < 0)
		cli_usage(c, "%s '%s': %s", opt, s, err);
	return us;
}

uint64_t
cli_parse_count(const struct cmd *c, const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		cli_usage(c, "%s '%s' is not a number", opt, s);
	return v;
}

/* waiterd beside this executable (a build tree or bindir), else $PATH. */
static const char *
find_waiterd(char *buf, size_t len)
{
	const char *env = getenv("WAITERD");
	ssize_t n;
	char *slash;

	if (env != NULL && env[0] != '\0')
		return env;
	n = readlink("/proc/self/exe", buf, len - 16);
	if (n > 0) {
		buf[n] = '\0';
		if ((slash = strrchr(buf, '/')) != NULL) {
			strcpy(slash + 1, "waiterd");
			if (access(buf, X_OK) == 0)
				return buf;
		}
	}
	snprintf(buf, len, "%s/waiterd", WAITER_BINDIR);
	if (access(buf, X_OK) == 0)
		return buf;
	return "waiterd";
}

/* The state directory of a daemon this command starts, so what a script
 * hands over survives a restart (doc/durability.md): $WAITER_STATE_DIR,
 * else $XDG_STATE_HOME/waiter, else $HOME/.local/state/waiter; none when
 * WAITER_STATE_DIR is set but empty, or nothing else is set. */
static const char *
default_state_dir(char *buf, size_t len)
{
	const char *v = getenv("WAITER_STATE_DIR");
	int n;

	if (v != NULL)
		return v[0] != '\0' ? v : NULL;
	if ((v = getenv("XDG_STATE_HOME")) != NULL && v[0] == '/')
		n = snprintf(buf, len, "%s/waiter", v);
	else if ((v = getenv("HOME")) != NULL && v[0] == '/')
		n = snprintf(buf, len, "%s/.local/state/waiter", v);
	else
		return NULL;
	return n > 0 && (size_t)n < len ? buf : NULL;
}

/*
 * Our environment minus systemd's service variables: a script run by a
 * service (NOTIFY_SOCKET set) must not start a daemon that reports itself
 * to that service's manager as its main process (doc/systemd.md).
 */
static char **
autostart_env(void)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + 1, sizeof *env)) == NULL)
		return environ;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0 &&
		    strncmp(environ[i], "LISTEN_", 7) != 0)
			env[k++] = environ[i];
	return env;
}

/* Start a daemon at path; it detaches once it serves. Racing starters are
 * fine: the daemon's lock lets one win, the others exit and we connect. */
static void
autostart(const char *path)
{
	char exe[PATH_MAX], state[PATH_MAX];
	const char *bin = find_waiterd(exe, sizeof exe);
	const char *dir = default_state_dir(state, sizeof state);
	char *argv[] = { (char *)bin, "--daemonize", "-S", (char *)path,
	    dir != NULL ? "--state-dir" : NULL, (char *)dir, NULL };
	char **env = autostart_env();
	pid_t pid;
	int status, rc;

	rc = posix_spawnp(&pid, bin, NULL, NULL, argv, env);
	if (env != environ)
		free(env);
	if (rc != 0) {
		cli_fail(0, "cannot start %s: %s", bin, strerror(rc));
		return;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

static void cli_connect_new(void);

void
cli_connect(void)
{
	if (cli.w == NULL)
		cli_connect_new();
}

/* An id, or the name of an object the daemon knows (looked up with Get). */
uint64_t
cli_object_id(const struct cmd *c, const char *s)
{
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Get g = WAITER__V1__GET__INIT;
	ServerMessage *m;
	uint64_t id;
	int rc;

	if (isdigit((unsigned char)s[0]))
		return cli_parse_id(c, s);
	cli_connect();
	g.name = (char *)s;
	req.op_case = WAITER__V1__REQUEST__OP_GET;
	req.get = &g;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		exit(rc == EXIT_USAGE ? EXIT_ERROR : rc);
	id = m->reply->get->id;
	waiter_message_free(m);
	return id;
}

/* Connect (starting a daemon at the default socket when none answers and
 * that is allowed). 0, or -1 with err set. */
/*
 * At the default socket, talk only to a daemon of our own uid or root's:
 * under /tmp another user could have made the directory first and serve a
 * daemon of theirs there, which would get our commands and environment
 * (tmux checks the same). A socket named with -S or $WAITER_SOCKET is the
 * user's choice (a sidecar's daemon runs as another uid).
 */
static int
check_default_daemon(const char *path, struct waiter_error *err)
{
	uid_t uid;

	if (waiter_peer_uid(cli.w, &uid) == 0 && (uid == geteuid() || uid == 0))
		return 0;
	waiter_close(cli.w);
	cli.w = NULL;
	err->code = WAITER__V1__ERROR_CODE__ERROR_CODE_PERMISSION_DENIED;
	snprintf(err->message, sizeof err->message, "the daemon at %s runs as uid %u, "
	    "not as you or root: not talking to it (name a socket with -S to trust it)",
	    path, (unsigned)uid);
	return -1;
}

static int
cli_try_connect(struct waiter_error *err)
{
	char def[108];
	const char *path = cli.socket;
	bool explicit = path != NULL || (getenv("WAITER_SOCKET") && *getenv("WAITER_SOCKET"));

	if (path == NULL && !explicit) {
		if (waiter_default_socket(def, sizeof def) < 0)
			exit(cli_fail(EXIT_ERROR, "the default socket path is too long"));
		path = def;
	}
	if (waiter_connect(path, "waiter-cli", &cli.w, err) == 0)
		return explicit ? 0 : check_default_daemon(path, err);
	if (err->code == WAITER_E_UNREACHABLE && !explicit && !cli.no_autostart) {
		struct timespec pause = { 0, AUTOSTART_PAUSE_NS };

		autostart(path);
		for (int i = 0; i < AUTOSTART_TRIES; i++) {
			if (waiter_connect(path, "waiter-cli", &cli.w, err) == 0)
				return check_default_daemon(path, err);
			if (err->code != WAITER_E_UNREACHABLE)
				break;
			nanosleep(&pause, NULL);
		}
	}
	return -1;
}

static void
cli_connect_new(void)
{
	struct waiter_error err;

	if (cli_try_connect(&err) == 0)
		return;
	if (err.code == WAITER_E_UNREACHABLE)
		exit(cli_fail(EXIT_UNREACHABLE, "%s", err.message));
	exit(cli_fail(EXIT_ERROR, "%s", err.message));
}

static int64_t
now_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool
cli_reconnect(int64_t until_mono_us)
{
	struct waiter_error err;
	long pause_ms = 50;

	if (cli.w != NULL)
		waiter_close(cli.w);
	cli.w = NULL;
	for (;;) {
		if (cli_try_connect(&err) == 0)
			return true;
		if (now_mono_us() + pause_ms * 1000 > until_mono_us)
			return false;
		{
			struct timespec ts = { pause_ms / 1000, pause_ms % 1000 * 1000000 };

			nanosleep(&ts, NULL);
		}
		if (pause_ms < 1000)
			pause_ms *= 2;
	}
}

uint64_t
cli_reconnect_us(void)
{
	const char *v = getenv("WAITER_RECONNECT_TIMEOUT"), *why;
	uint64_t us;

	if (v == NULL || v[0] == '\0')
		return CLI_RECONNECT_DEFAULT_US;
	if (waiter_parse_duration(v, &us, &why) < 0)
		exit(cli_fail(EXIT_USAGE, "WAITER_RECONNECT_TIMEOUT: %s", why));
	return us;
}

int
cli_call_error(const struct waiter_error *err)
{
	if (err->code == WAITER__V1__ERROR_CODE__ERROR_CODE_TIMED_OUT)
		return cli_fail(EXIT_TIMEOUT, "%s", err->message);
	if (err->code == WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT)
		return cli_fail(EXIT_USAGE, "%s", err->message);
	if (err->code == WAITER_E_UNREACHABLE)
		return cli_fail(EXIT_UNREACHABLE, "%s", err->message);
	return cli_fail(EXIT_ERROR, "%s", err->message);
}

int
cli_call(Request *req, ServerMessage **reply)
{
	struct waiter_error err;

	if (waiter_call(cli.w, req, reply, &err) == 0)
		return EXIT_OK;
	return cli_call_error(&err);
}

static const struct cmd *
find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

static bool
wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-autostart", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const struct cmd *c;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "+S:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'S': cli.socket = optarg; break;
		case 'j': cli.json = true; break;
		case 'n': cli.no_autostart = true; break;
		case 'h': usage_all(stdout); return EXIT_OK;
		case 'V': c = &cmd_version; return c->fn(c, 1, (char *[]){ "version", NULL });
		default: fputs("Try 'waiter --help'.\n", stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage_all(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 < argc && (c = find_command(argv[optind + 1])) != NULL)
			usage_cmd(stdout, c);
		else
			usage_all(stdout);
		return EXIT_OK;
	}
	if ((c = find_command(argv[optind])) == NULL)
		cli_usage(NULL, "unknown command '%s'", argv[optind]);
	argc -= optind;
	argv += optind;
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (argv[i][0] == '-' && (isdigit((unsigned char)argv[i][1]) ||
		    argv[i][1] == '.'))
			cli_usage(c, "'%s': negative values are not allowed", argv[i]);
	if (wants_help(argc, argv)) {
		usage_cmd(stdout, c);
		return EXIT_OK;
	}
	optind = 0;     /* let the command run getopt over its own words */
	rc = c->fn(c, argc, argv);
	waiter_close(cli.w);
	return rc;
}
