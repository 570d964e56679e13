/* main.c - waiterd's flags, start-up, signals and shutdown. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "events.h"
#include "frame.h"
#include "log.h"
#include "objects.h"
#include "server.h"
#include "stats.h"
#include "tasks.h"
#include "timers.h"
#include "waiter.h"
#include "watch_endpoint.h"
#include "watch_path.h"
#include "watch_proc.h"
#include "workers.h"

struct config cfg = {
	.max_frame = FRAME_DEFAULT_MAX,
	/* Within the default fd limit this machine kind gives (20000). */
	.max_clients = 10000,
	/* A subscriber may lag this far behind before it loses events. */
	.max_output = 4 * 1024 * 1024,
	/* Enough for a reconnecting client to catch up on a busy minute. */
	.retain_events = 10000,
	/* Task output makes events large: bound the ring's memory too. */
	.retain_bytes = 16 * 1024 * 1024,
	.keep_finished = 10000,
	/* A day: long enough for tomorrow's script to collect tonight's run. */
	.keep_finished_us = UINT64_C(86400) * 1000000,
	.max_objects_per_client = 100000,
	.max_objects = 2000000,
	.slow_lap_us = 50000,
	/* Queued work costs memory, not processes: generous, but bounded. */
	.max_queued_tasks = 100000,
	.max_tasks_per_user = 100000,
	.max_watched_dirs = 100000,
	.frame_timeout_us = 30 * UINT64_C(1000000),
	.kill_grace_us = 5000000,
};
struct event_base *ev_base;

static struct event *shutdown_ev, *finish_ev, *tasks_grace_ev, *sigterm_ev, *sigint_ev;
static bool shutting_down;
bool daemon_stopping;
static const char *shutdown_why;
static char default_path[108];

static const char usage_text[] =
"usage: waiterd [-S PATH] [--foreground | --daemonize] [options]\n"
"\n"
"Run one event loop and lend it to every process on the host: timers,\n"
"watches and tasks, requested over a Unix socket (see waiter(1)).\n"
"\n"
"  -S, --socket PATH        socket to serve (default: $WAITER_SOCKET, else\n"
"                           $XDG_RUNTIME_DIR/waiter/waiterd.sock, else\n"
"                           /tmp/waiter-$UID/waiterd.sock)\n"
"  -f, --foreground         stay in the foreground, log to stderr (default)\n"
"  -d, --daemonize          detach once the socket is ready; log to PATH.log\n"
"      --log-file FILE      append the log to FILE instead of stderr\n"
"      --max-frame BYTES    largest request frame accepted (default 1048576)\n"
"      --frame-timeout DURATION\n"
"                           a client that began a frame must finish it within\n"
"                           this, or it is closed (default 30s)\n"
"      --max-clients N      connections served at once (default 10000)\n"
"      --max-output BYTES   per-connection output limit; a subscriber past it\n"
"                           loses events and gets EVENTS_LOST (default 4194304)\n"
"      --retain-events N    events kept for replay with --since (default 10000)\n"
"      --retain-bytes BYTES and at most this many bytes of them (16777216)\n"
"      --keep-finished N    finished objects kept for wait/list (default 10000)\n"
"      --keep-finished-for DURATION\n"
"                           and for at most this long after they end (1d)\n"
"      --max-objects N      active objects in the daemon (default 2000000)\n"
"      --max-objects-per-client N\n"
"                           active objects one connection may create (100000)\n"
"      --slow-lap DURATION  log callbacks slower than this (default 50ms)\n"
"      --allow-uid UID      also serve this user (name or number; repeatable)\n"
"      --allow-group GROUP  also serve members of this group\n"
"      --no-tasks           refuse task submissions (permission denied)\n"
"      --max-queued-tasks N tasks waiting to run, daemon-wide (default 100000)\n"
"      --max-tasks-per-user N\n"
"                           tasks not yet ended (waiting, queued or running)\n"
"                           that one uid may have (default 100000)\n"
"      --kill-grace DURATION\n"
"                           a killed or timed-out task gets SIGTERM, then\n"
"                           SIGKILL after this (default 5s)\n"
"      --max-watched-dirs N directories (inotify watches) the path watches of\n"
"                           one connection may hold (default 100000)\n"
"      --no-pidfd           notice task exits by SIGCHLD, not pidfd (what\n"
"                           happens anyway where pidfd_open is missing:\n"
"                           Linux before 5.3, valgrind)\n"
"  -v, --verbose            log every connection and close\n"
"  -V, --version            print the version and exit\n"
"  -h, --help               print this help and exit\n"
"\n"
"Exits cleanly on SIGTERM or SIGINT: stops accepting, tells clients, removes\n"
"its socket. Refuses to start when another waiterd serves the socket.\n";

static noreturn void
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "waiterd: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'waiterd --help'.\n");
	exit(2);
}

static uint64_t
parse_count(const char *s, const char *what, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "waiterd: %s must be a number from %llu to %llu, not '%s'\n",
		    what, (unsigned long long)min, (unsigned long long)max, s);
		exit(2);
	}
	return v;
}

static void
add_allow_uid(const char *s)
{
	struct passwd *pw = getpwnam(s);
	uid_t uid;

	if (pw != NULL)
		uid = pw->pw_uid;
	else
		uid = (uid_t)parse_count(s, "--allow-uid", 0, UINT32_MAX - 1);
	if (cfg.n_allow_uids == MAX_ALLOW_UIDS)
		usage_error("at most %s --allow-uid options", "32");
	cfg.allow_uids[cfg.n_allow_uids++] = uid;
}

static void
set_allow_group(const char *s)
{
	struct group *gr = getgrnam(s);

	cfg.allow_gid = gr != NULL ? gr->gr_gid :
	    (gid_t)parse_count(s, "--allow-group", 0, UINT32_MAX - 1);
	cfg.have_allow_gid = true;
}

enum {
	OPT_LOG_FILE = 256, OPT_MAX_FRAME, OPT_MAX_CLIENTS, OPT_MAX_OUTPUT,
	OPT_RETAIN, OPT_KEEP, OPT_MAX_OBJECTS, OPT_MAX_OBJECTS_CLIENT,
	OPT_SLOW_LAP, OPT_ALLOW_UID, OPT_ALLOW_GROUP, OPT_NO_TASKS, OPT_MAX_QUEUED,
	OPT_KILL_GRACE, OPT_RETAIN_BYTES, OPT_KEEP_FOR, OPT_NO_PIDFD, OPT_MAX_USER_TASKS,
	OPT_MAX_WATCHED_DIRS, OPT_FRAME_TIMEOUT
};

static void
parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "daemonize", no_argument, NULL, 'd' },
		{ "log-file", required_argument, NULL, OPT_LOG_FILE },
		{ "max-frame", required_argument, NULL, OPT_MAX_FRAME },
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "max-output", required_argument, NULL, OPT_MAX_OUTPUT },
		{ "retain-events", required_argument, NULL, OPT_RETAIN },
		{ "retain-bytes", required_argument, NULL, OPT_RETAIN_BYTES },
		{ "keep-finished", required_argument, NULL, OPT_KEEP },
		{ "keep-finished-for", required_argument, NULL, OPT_KEEP_FOR },
		{ "max-objects", required_argument, NULL, OPT_MAX_OBJECTS },
		{ "max-objects-per-client", required_argument, NULL, OPT_MAX_OBJECTS_CLIENT },
		{ "slow-lap", required_argument, NULL, OPT_SLOW_LAP },
		{ "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
		{ "allow-group", required_argument, NULL, OPT_ALLOW_GROUP },
		{ "no-tasks", no_argument, NULL, OPT_NO_TASKS },
		{ "no-pidfd", no_argument, NULL, OPT_NO_PIDFD },
		{ "max-tasks-per-user", required_argument, NULL, OPT_MAX_USER_TASKS },
		{ "max-watched-dirs", required_argument, NULL, OPT_MAX_WATCHED_DIRS },
		{ "frame-timeout", required_argument, NULL, OPT_FRAME_TIMEOUT },
		{ "max-queued-tasks", required_argument, NULL, OPT_MAX_QUEUED },
		{ "kill-grace", required_argument, NULL, OPT_KILL_GRACE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *err;
	int ch;

	while ((ch = getopt_long(argc, argv, "S:fdvVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'S': cfg.socket_path = optarg; break;
		case 'f': cfg.daemonize = false; break;
		case 'd': cfg.daemonize = true; break;
		case OPT_LOG_FILE: cfg.log_file = optarg; break;
		case OPT_MAX_FRAME:
			cfg.max_frame = (uint32_t)parse_count(optarg, "--max-frame", 64,
			    FRAME_HARD_MAX);
			break;
		case OPT_MAX_CLIENTS:
			cfg.max_clients = (unsigned)parse_count(optarg, "--max-clients", 1,
			    1000000);
			break;
		case OPT_MAX_OUTPUT:
			cfg.max_output = parse_count(optarg, "--max-output", 1024,
			    UINT64_C(1) << 32);
			break;
		case OPT_RETAIN:
			cfg.retain_events = parse_count(optarg, "--retain-events", 1, 100000000);
			break;
		case OPT_KEEP_FOR:
			if (waiter_parse_duration(optarg, &cfg.keep_finished_us, &err) < 0)
				usage_error("--keep-finished-for: %s", err);
			break;
		case OPT_RETAIN_BYTES:
			cfg.retain_bytes = parse_count(optarg, "--retain-bytes", 65536,
			    UINT64_C(1) << 36);
			break;
		case OPT_KEEP:
			cfg.keep_finished = parse_count(optarg, "--keep-finished", 0, 100000000);
			break;
		case OPT_MAX_OBJECTS:
			cfg.max_objects = parse_count(optarg, "--max-objects", 1, UINT32_MAX);
			break;
		case OPT_MAX_OBJECTS_CLIENT:
			cfg.max_objects_per_client = (unsigned)parse_count(optarg,
			    "--max-objects-per-client", 1, UINT32_MAX);
			break;
		case OPT_SLOW_LAP:
			if (waiter_parse_duration(optarg, &cfg.slow_lap_us, &err) < 0)
				usage_error("--slow-lap: %s", err);
			break;
		case OPT_ALLOW_UID: add_allow_uid(optarg); break;
		case OPT_ALLOW_GROUP: set_allow_group(optarg); break;
		case OPT_NO_TASKS: cfg.no_tasks = true; break;
		case OPT_NO_PIDFD: cfg.no_pidfd = true; break;
		case OPT_MAX_QUEUED:
			cfg.max_queued_tasks = parse_count(optarg, "--max-queued-tasks", 0,
			    UINT32_MAX);
			break;
		case OPT_MAX_WATCHED_DIRS:
			cfg.max_watched_dirs = parse_count(optarg, "--max-watched-dirs", 1,
			    UINT32_MAX);
			break;
		case OPT_MAX_USER_TASKS:
			cfg.max_tasks_per_user = parse_count(optarg, "--max-tasks-per-user", 0,
			    UINT32_MAX);
			break;
		case OPT_KILL_GRACE:
			if (waiter_parse_duration(optarg, &cfg.kill_grace_us, &err) < 0)
				usage_error("--kill-grace: %s", err);
			break;
		case OPT_FRAME_TIMEOUT:
			if (waiter_parse_duration(optarg, &cfg.frame_timeout_us, &err) < 0)
				usage_error("--frame-timeout: %s", err);
			if (cfg.frame_timeout_us == 0)
				usage_error("--frame-timeout: %s", "must be longer than 0");
			break;
		case 'v': cfg.verbose++; break;
		case 'V': printf("waiterd %s (protocol %d)\n", PACKAGE_VERSION,
		    WAITER_PROTOCOL_VERSION); exit(0);
		case 'h': fputs(usage_text, stdout); exit(0);
		default: fputs("Try 'waiterd --help'.\n", stderr); exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (cfg.socket_path == NULL)
		cfg.socket_path = getenv("WAITER_SOCKET");
	if (cfg.socket_path == NULL || cfg.socket_path[0] == '\0') {
		if (waiter_default_socket(default_path, sizeof default_path) < 0)
			usage_error("the default socket path is too long%s", "");
		cfg.socket_path = default_path;
	}
}

/* Detach; the parent exits once the child is serving, or with its error. */
static int
daemonize(void)
{
	int fds[2];
	pid_t pid;
	char msg[512];
	ssize_t n;

	if (pipe(fds) < 0)
		fatal("pipe");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0) {
		close(fds[1]);
		n = read(fds[0], msg, sizeof msg - 1);
		if (n > 0 && msg[0] == '+')
			exit(0);
		msg[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "waiterd: %s\n", n > 0 ? msg : "failed to start");
		exit(1);
	}
	close(fds[0]);
	setsid();
	if (chdir("/") < 0)
		fatal("chdir /");
	return fds[1];
}

static void
redirect_stdio(void)
{
	char path[PATH_MAX];
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		fatal("/dev/null");
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	if (cfg.log_file == NULL) {
		snprintf(path, sizeof path, "%s.log", cfg.socket_path);
		cfg.log_file = path;
	}
	if (log_open_file(cfg.log_file) < 0)
		dup2(STDOUT_FILENO, STDERR_FILENO);
	cfg.log_file = NULL;
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

void
daemon_shutdown(const char *why)
{
	if (shutting_down)
		return;
	shutting_down = true;
	shutdown_why = why;
	event_active(shutdown_ev, EV_TIMEOUT, 1);
}

/* Shutdown, second half: tell everyone, answer waits, flush, exit. */
static void
finish_cb(evutil_socket_t fd, short what, void *arg)
{
	Event ev = WAITER__V1__EVENT__INIT;
	static bool done;

	(void)fd, (void)what, (void)arg;
	if (done)
		return;
	done = true;
	objects_shutdown();
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_SHUTDOWN;
	events_broadcast(&ev);
	server_drain_and_exit();
	arena_reset();
}

static void
tasks_idle(void)
{
	event_active(finish_ev, EV_TIMEOUT, 1);
}

/* Shutdown, first half: stop accepting and cancel everything. Running tasks
 * get SIGTERM; while they exit (KILL after the grace) clients stay
 * connected, so followers see each TASK_DONE. */
static void
shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = clock_tv((int64_t)cfg.kill_grace_us + 1000000);

	(void)fd, (void)what, (void)arg;
	log_info("shutdown reason=%s connections=%llu objects_cancelled=%llu "
	    "tasks_running=%llu", shutdown_why, (unsigned long long)stats.connections,
	    (unsigned long long)stats.objects, (unsigned long long)tasks_running());
	daemon_stopping = true;
	server_stop_listening();
	objects_cancel_all();
	if (tasks_running() == 0) {
		finish_cb(-1, 0, NULL);
		return;
	}
	tasks_on_idle(tasks_idle);
	evtimer_add(tasks_grace_ev, &tv);       /* KILL came at the grace; bound it */
	arena_reset();
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (shutting_down) {
		/* A second signal: the user does not want to wait. */
		log_warn("shutdown_forced signal=%d", (int)sig);
		event_base_loopbreak(ev_base);
		return;
	}
	daemon_shutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

int
main(int argc, char **argv)
{
	struct event_config *ecfg;
	const char *cause = NULL;
	int ready_fd = -1;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (cfg.daemonize) {
		ready_fd = daemonize();
		redirect_stdio();
	}
	if (cfg.log_file != NULL && log_open_file(cfg.log_file) < 0)
		fatal("cannot open log file %s", cfg.log_file);
	log_init(cfg.verbose);

	/* Without PRECISE_TIMER libevent reads a coarse clock that ticks every
	 * 4 ms here, and timers fire 2-3 ms late. */
	ecfg = event_config_new();
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	/* Poll for I/O and timeouts again after this many callbacks (or this
	 * long) of ordinary work: an event that re-activates itself to continue
	 * next lap (a client past its request budget) would otherwise run again
	 * before anyone else's I/O, and a due timer would wait behind a whole
	 * lap of writes to subscribers. */
	{
		struct timeval most = { 0, 200 };

		event_config_set_max_dispatch_interval(ecfg, &most, 32, EV_PRIO_WORK);
	}
	ev_base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (ev_base == NULL)
		fatalx("cannot create the event base");
	/* Two priorities: timers' deadlines first, then everything else (the
	 * default for new events). */
	if (event_base_priority_init(ev_base, EV_PRIORITIES) < 0)
		fatalx("cannot set the event base's priorities");

	stats_init();
	events_init();
	objects_init();
	timers_init();
	tasks_init();
	watch_path_init();
	if (server_listen(&cause) < 0) {
		server_stop_listening();        /* let go of the lock we took */
		if (ready_fd >= 0 && write(ready_fd, cause, strlen(cause)) < 0)
			log_warn("ready_pipe errno=%d", errno);
		fatalx("cannot serve %s: %s", cfg.socket_path, cause);
	}
	/* Threads only once we serve: a daemon refused at start (another owns
	 * the socket) exits at once and leaves no thread unjoined. */
	workers_init();
	shutdown_ev = event_new(ev_base, -1, 0, shutdown_cb, NULL);
	finish_ev = event_new(ev_base, -1, 0, finish_cb, NULL);
	tasks_grace_ev = evtimer_new(ev_base, finish_cb, NULL);
	sigterm_ev = evsignal_new(ev_base, SIGTERM, signal_cb, NULL);
	sigint_ev = evsignal_new(ev_base, SIGINT, signal_cb, NULL);
	if (shutdown_ev == NULL || finish_ev == NULL || tasks_grace_ev == NULL ||
	    sigterm_ev == NULL || sigint_ev == NULL ||
	    event_add(sigterm_ev, NULL) < 0 || event_add(sigint_ev, NULL) < 0)
		fatalx("cannot set up signals");
	watch_proc_init();      /* logged before --daemonize returns */
	if (ready_fd >= 0) {
		if (write(ready_fd, "+", 1) < 0)
			log_warn("ready_pipe errno=%d", errno);
		close(ready_fd);
	}
	log_info("started version=%s pid=%d max_clients=%u max_frame=%u",
	    PACKAGE_VERSION, (int)getpid(), cfg.max_clients, cfg.max_frame);

	event_base_dispatch(ev_base);

	workers_free();          /* its done callbacks may still reach objects */
	server_free();
	objects_free_all();
	watch_endpoint_free();
	watch_path_free();
	tasks_free();
	timers_free();
	events_free();
	stats_free();
	event_free(shutdown_ev);
	event_free(finish_ev);
	event_free(tasks_grace_ev);
	event_free(sigterm_ev);
	event_free(sigint_ev);
	event_base_free(ev_base);
	libevent_global_shutdown();
	arena_reset();
	log_info("stopped");
	return 0;
}
