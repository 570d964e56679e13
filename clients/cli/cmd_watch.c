/* cmd_watch.c - watch path|pid|tcp|unix, watches. */
#include "config.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_PATHS 64
#define MAX_GLOBS 64

struct watch_opts {
	const char *name;
	bool wait, follow;
	uint64_t timeout_us;
};

/* Create the watch in req (its lifetime is set here), print its id, then
 * wait or follow as asked. */
static int
watch_create_run(Request *req, const struct watch_opts *o, Waiter__V1__Lifetime *lifetime,
    char **name)
{
	/* What the CLI returns from at once lives on; what it stays with
	 * goes with it (Ctrl-C on --wait or --follow cancels the watch). */
	*lifetime = o->wait || o->follow ? WAITER__V1__LIFETIME__LIFETIME_CONNECTION :
	    WAITER__V1__LIFETIME__LIFETIME_DAEMON;
	*name = (char *)(o->name ? o->name : "");
	return cli_create(req, o->wait, o->follow);
}

/* The options every watch takes: --name, --wait, --follow (0 if ch is
 * one of them, else -1). */
static int
watch_common_opt(struct watch_opts *o, int ch)
{
	switch (ch) {
	case 'n': o->name = optarg; return 0;
	case 'w': o->wait = true; return 0;
	case 'f': o->follow = true; return 0;
	default: return -1;
	}
}

#define WATCH_COMMON_OPTS \
	{ "name", required_argument, NULL, 'n' }, \
	{ "wait", no_argument, NULL, 'w' }, \
	{ "follow", no_argument, NULL, 'f' }

#define WATCH_COMMON_HELP \
	"  --name N      an idempotency key: a watch named N is returned, not made\n" \
	"  --wait        stay until the watch completes; exit 0, or 124 if it\n" \
	"                timed out, 1 if it ended otherwise; Ctrl-C cancels it\n" \
	"  --follow      print its events as they come, until it completes\n" \
	"Without --wait or --follow, print the id and leave the watch on the\n" \
	"daemon (lifetime daemon); `waiter wait ID` or `waiter events --id ID`.\n"

static char *
absolute(const struct cmd *c, const char *p)
{
	char cwd[PATH_MAX], *out;

	if (p[0] == '\0')
		cli_usage(c, "an empty PATH");
	if (p[0] == '/')
		return strdup(p);
	if (getcwd(cwd, sizeof cwd) == NULL)
		cli_usage(c, "cannot tell the current directory for '%s'", p);
	if (asprintf(&out, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, p) < 0)
		return NULL;
	return out;
}

static void
parse_kinds(const struct cmd *c, const char *s, Waiter__V1__WatchPath *wp,
    Waiter__V1__PathEventKind *kinds)
{
	char *copy = strdup(s), *save = NULL;

	for (char *k = strtok_r(copy, ",", &save); k != NULL; k = strtok_r(NULL, ",", &save)) {
		int v = out_enum_value(&waiter__v1__path_event_kind__descriptor, k);

		if (v < 0)
			cli_usage(c, "unknown kind '%s' in --on (created, modified, deleted, "
			    "moved, attributes)", k);
		if (wp->n_on < 8)
			kinds[wp->n_on++] = (Waiter__V1__PathEventKind)v;
	}
	free(copy);
}

static int
watch_path_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		WATCH_COMMON_OPTS,
		{ "recursive", no_argument, NULL, 'r' },
		{ "on", required_argument, NULL, 'o' },
		{ "include", required_argument, NULL, 'i' },
		{ "exclude", required_argument, NULL, 'x' },
		{ "settle", required_argument, NULL, 's' },
		{ "once", no_argument, NULL, '1' },
		{ "create", no_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 }
	};
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__WatchPath wp = WAITER__V1__WATCH_PATH__INIT;
	Waiter__V1__PathEventKind kinds[8];
	char *paths[MAX_PATHS], *include[MAX_GLOBS], *exclude[MAX_GLOBS];
	struct watch_opts o = { 0 };
	int ch, rc;

	wp.on = kinds;
	wp.include = include;
	wp.exclude = exclude;
	wp.paths = paths;
	while ((ch = getopt_long(argc, argv, "r", opts, NULL)) != -1) {
		if (watch_common_opt(&o, ch) == 0)
			continue;
		switch (ch) {
		case 'r': wp.recursive = true; break;
		case 'o': parse_kinds(c, optarg, &wp, kinds); break;
		case 'i':
		case 'x':
			if (wp.n_include + wp.n_exclude >= MAX_GLOBS)
				cli_usage(c, "at most %d --include and --exclude globs", MAX_GLOBS);
			if (ch == 'i')
				include[wp.n_include++] = optarg;
			else
				exclude[wp.n_exclude++] = optarg;
			break;
		case 's':
			wp.settle_us = cli_parse_duration(c, "--settle", optarg);
			break;
		case '1': wp.once = true; break;
		case 'c': wp.create = true; break;
		default: cli_usage(c, "unknown option");
		}
	}
	if (optind >= argc)
		cli_usage(c, "missing PATH");
	if (argc - optind > MAX_PATHS)
		cli_usage(c, "at most %d paths in one watch", MAX_PATHS);
	for (int i = optind; i < argc; i++)
		paths[wp.n_paths++] = absolute(c, argv[i]);
	req.op_case = WAITER__V1__REQUEST__OP_WATCH_PATH;
	req.watch_path = &wp;
	rc = watch_create_run(&req, &o, &wp.lifetime, &wp.name);
	for (size_t i = 0; i < wp.n_paths; i++)
		free(paths[i]);
	return rc;
}

static int
watch_pid_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = { WATCH_COMMON_OPTS, { NULL, 0, NULL, 0 } };
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__WatchPid wp = WAITER__V1__WATCH_PID__INIT;
	struct watch_opts o = { 0 };
	uint64_t pid;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (watch_common_opt(&o, ch) < 0)
			cli_usage(c, "unknown option");
	if (optind != argc - 1)
		cli_usage(c, optind == argc ? "missing PID" : "one PID only");
	pid = cli_parse_count(c, "PID", argv[optind]);
	if (pid < 1 || pid > INT_MAX)
		cli_usage(c, "PID '%s' is not a process id", argv[optind]);
	wp.pid = (int32_t)pid;
	req.op_case = WAITER__V1__REQUEST__OP_WATCH_PID;
	req.watch_pid = &wp;
	return watch_create_run(&req, &o, &wp.lifetime, &wp.name);
}

static int
watch_endpoint_main(const struct cmd *c, int argc, char **argv, bool tcp)
{
	static const struct option opts[] = {
		WATCH_COMMON_OPTS,
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__WatchEndpoint we = WAITER__V1__WATCH_ENDPOINT__INIT;
	struct watch_opts o = { 0 };
	char *endpoint, *path = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (watch_common_opt(&o, ch) == 0)
			continue;
		if (ch != 't')
			cli_usage(c, "unknown option");
		we.timeout_us = cli_parse_duration(c, "--timeout", optarg);
		if (we.timeout_us == 0)
			cli_usage(c, "--timeout must be longer than 0");
	}
	if (optind != argc - 1)
		cli_usage(c, optind == argc ? (tcp ? "missing HOST:PORT" : "missing PATH") :
		    "one endpoint only");
	if (tcp) {
		const char *colon = strrchr(argv[optind], ':');

		if (colon == NULL || colon == argv[optind] || colon[1] == '\0')
			cli_usage(c, "'%s' is not HOST:PORT", argv[optind]);
		if (asprintf(&endpoint, "tcp:%s", argv[optind]) < 0)
			return cli_fail(EXIT_ERROR, "out of memory");
	} else {
		path = absolute(c, argv[optind]);
		if (asprintf(&endpoint, "unix:%s", path) < 0)
			return cli_fail(EXIT_ERROR, "out of memory");
		free(path);
	}
	we.endpoint = endpoint;
	req.op_case = WAITER__V1__REQUEST__OP_WATCH_ENDPOINT;
	req.watch_endpoint = &we;
	rc = watch_create_run(&req, &o, &we.lifetime, &we.name);
	free(endpoint);
	return rc;
}

static int
watch_main(const struct cmd *c, int argc, char **argv)
{
	const char *what;

	if (argc < 2 || argv[1][0] == '-')
		cli_usage(c, "say what to watch: path, pid, tcp or unix");
	what = argv[1];
	argc--, argv++;
	if (strcmp(what, "path") == 0)
		return watch_path_main(c, argc, argv);
	if (strcmp(what, "pid") == 0)
		return watch_pid_main(c, argc, argv);
	if (strcmp(what, "tcp") == 0)
		return watch_endpoint_main(c, argc, argv, true);
	if (strcmp(what, "unix") == 0)
		return watch_endpoint_main(c, argc, argv, false);
	cli_usage(c, "cannot watch '%s': path, pid, tcp or unix", what);
}

const struct cmd cmd_watch = {
	"watch", "path|pid|tcp|unix ...", "hand a \"tell me when\" to the daemon",
	"waiter watch path PATH... [--recursive] [--on KINDS] [--include GLOB]\n"
	"                          [--exclude GLOB] [--settle DURATION] [--once]\n"
	"                          [--create] [--wait | --follow]\n"
	"  Changes to files and directories. A directory's entries are watched;\n"
	"  with --recursive its whole tree, including directories made later\n"
	"  (what was written into them before their watch existed is reported\n"
	"  too). The id is printed once every watch is in place.\n"
	"  --on KINDS     created,modified,deleted,moved,attributes (default all;\n"
	"                 modified means written and closed)\n"
	"  --include GLOB only paths matching GLOB (fnmatch, on the path relative\n"
	"                 to the watched PATH; a GLOB without / also matches the\n"
	"                 last component: '*.c'); repeatable\n"
	"  --exclude GLOB not those (an excluded directory is not descended)\n"
	"  --settle D     one event listing a burst's changes, after D of quiet\n"
	"  --once         the watch completes after its first event\n"
	"  --create       PATH may not exist yet: wait for it to appear\n"
	"  A watched PATH that is deleted or moved away ends the watch (exit 1).\n"
	"\n"
	"waiter watch pid PID [--wait | --follow]\n"
	"  Completes when process PID exits (any process; the exit status only\n"
	"  for the daemon's own children). A PID that does not exist is an error.\n"
	"\n"
	"waiter watch tcp HOST:PORT | unix PATH [--timeout D] [--wait | --follow]\n"
	"  Try to connect, with backoff, until it works (ready, exit 0) or D\n"
	"  passes (timed out, exit 124). HOST may be a name, an IPv4 address or\n"
	"  [an IPv6 address]. Wait for a port before starting an app:\n"
	"  `waiter watch tcp localhost:5432 --timeout 30s --wait && ./app`.\n"
	"\n"
	WATCH_COMMON_HELP,
	watch_main,
};

static void
watches_row(const Waiter__V1__ObjectInfo *o)
{
	const Waiter__V1__WatchInfo *w = o->watch;
	char what[256] = "", type[16];
	size_t n = 0;

	if (w == NULL)
		return;
	/* out_enum's buffer is shared: copy one before calling it again. */
	snprintf(type, sizeof type, "%s", out_enum(&waiter__v1__watch_type__descriptor, w->type));
	switch (w->type) {
	case WAITER__V1__WATCH_TYPE__WATCH_TYPE_PATH:
		for (size_t i = 0; i < w->n_paths && n < sizeof what; i++)
			n += (size_t)snprintf(what + n, sizeof what - n, "%s%s", i ? " " : "",
			    w->paths[i]);
		if (w->recursive && n < sizeof what)
			snprintf(what + n, sizeof what - n, " (recursive, %u dirs)", w->directories);
		break;
	case WAITER__V1__WATCH_TYPE__WATCH_TYPE_PID:
		snprintf(what, sizeof what, "%d", w->pid);
		break;
	default:
		snprintf(what, sizeof what, "%s (%llu attempts)", w->endpoint,
		    (unsigned long long)w->attempts);
		break;
	}
	printf("%-8llu %-5s %-20s %-9s %-7llu %s\n", (unsigned long long)o->id, type,
	    o->name[0] ? o->name : "-",
	    out_enum(&waiter__v1__object_state__descriptor, o->state),
	    (unsigned long long)w->events, what);
}

static int
watches_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 }
	};
	bool all = false;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'a')
			cli_usage(c, "unknown option");
		all = true;
	}
	if (optind < argc)
		cli_usage(c, "unexpected argument '%s'", argv[optind]);
	return cli_list(WAITER__V1__OBJECT_KIND__OBJECT_KIND_WATCH, all,
	    "ID       TYPE  NAME                 STATE     EVENTS  WHAT\n", watches_row);
}

const struct cmd cmd_watches = {
	"watches", "[--all]", "list watches",
	"List the active watches: id, type (path, pid, tcp, unix), name, state,\n"
	"events so far, and what is watched.\n"
	"\n"
	"  --all   also list finished watches the daemon still keeps\n",
	watches_main,
};
