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
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "events.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "objects.h"
#include "sdnotify.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "tasks.h"
#include "timers.h"
#include "waiter.h"
#include "watch_endpoint.h"
#include "watch_path.h"
#include "watch_proc.h"
#include "workers.h"

static struct event *sigterm_ev, *sigint_ev;
static char default_path[108];
static bool no_state;           /* --no-state: wins over --state-dir */
static const char *socket_flag; /* -S as given, or NULL */

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
"      --max-kept-output BYTES\n"
"                           output of ended tasks kept in memory, daemon-wide;\n"
"                           past it the oldest ended tasks' output is let go\n"
"                           (default 268435456)\n"
"      --kill-grace DURATION\n"
"                           a killed or timed-out task gets SIGTERM, then\n"
"                           SIGKILL after this (default 5s)\n"
"      --max-watched-dirs N directories (inotify watches) the path watches of\n"
"                           one connection may hold (default 100000)\n"
"      --state-dir DIR      keep what clients hand over (objects of lifetime\n"
"                           daemon, ids, seqs, the retained events) in\n"
"                           DIR/state.db, so a restart finds it again\n"
"                           (default: none; the waiter command starts its\n"
"                           daemon with a per-user one)\n"
"      --state-sync full|normal\n"
"                           full: each commit survives power loss (default);\n"
"                           normal: survives a crash of waiterd, not the host\n"
"      --no-state           keep nothing across restarts, even with --state-dir\n"
"      --metrics-listen ADDRESS:PORT\n"
"                           serve Prometheus metrics over HTTP at\n"
"                           http://ADDRESS:PORT/metrics (a numeric address,\n"
"                           e.g. 127.0.0.1:9100; port 0 picks one and logs it);\n"
"                           unauthenticated: keep it on loopback (default: off)\n"
"      --no-pidfd           notice task exits by SIGCHLD, not pidfd (what\n"
"                           happens anyway where pidfd_open is missing:\n"
"                           Linux before 5.3, valgrind)\n"
"  -v, --verbose            log every connection and close\n"
"  -V, --version            print the version and exit\n"
"  -h, --help               print this help and exit\n"
"\n"
"Exits cleanly on SIGTERM or SIGINT: stops accepting, tells clients, removes\n"
"its socket. Refuses to start when another waiterd serves the socket.\n"
"Under systemd it reports readiness to $NOTIFY_SOCKET (Type=notify), and\n"
"serves a socket passed by socket activation (LISTEN_FDS) instead of -S.\n";

static noreturn void
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "waiterd: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'waiterd --help'.\n");
	exit(2);
}

/* --state-dir, made absolute: --daemonize changes to / before the state
 * is opened. */
static const char *
absolute_state_dir(const char *dir)
{
	static char buf[PATH_MAX];
	char cwd[PATH_MAX];

	if (dir[0] == '\0')
		usage_error("--state-dir: %s", "an empty path");
	if (dir[0] == '/')
		return dir;
	if (getcwd(cwd, sizeof cwd) == NULL ||
	    (size_t)snprintf(buf, sizeof buf, "%s/%s", cwd, dir) >= sizeof buf)
		usage_error("--state-dir: cannot make %s absolute", dir);
	return buf;
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
	OPT_KILL_GRACE, OPT_RETAIN_BYTES, OPT_MAX_KEPT_OUTPUT, OPT_KEEP_FOR, OPT_NO_PIDFD, OPT_MAX_USER_TASKS,
	OPT_MAX_WATCHED_DIRS, OPT_FRAME_TIMEOUT, OPT_STATE_DIR, OPT_STATE_SYNC, OPT_NO_STATE,
	OPT_METRICS_LISTEN
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
		{ "max-kept-output", required_argument, NULL, OPT_MAX_KEPT_OUTPUT },
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
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "state-sync", required_argument, NULL, OPT_STATE_SYNC },
		{ "no-state", no_argument, NULL, OPT_NO_STATE },
		{ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN },
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
		case OPT_MAX_KEPT_OUTPUT:
			cfg.max_kept_output = parse_count(optarg, "--max-kept-output", 0,
			    UINT64_C(1) << 40);
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
		case OPT_STATE_DIR:
			cfg.state_dir = absolute_state_dir(optarg);
			break;
		case OPT_STATE_SYNC:
			if (strcmp(optarg, "full") == 0)
				cfg.state_sync_full = true;
			else if (strcmp(optarg, "normal") == 0)
				cfg.state_sync_full = false;
			else
				usage_error("--state-sync: '%s' is not full or normal", optarg);
			break;
		case OPT_NO_STATE: no_state = true; break;
		case OPT_METRICS_LISTEN:
			if (metrics_configure(optarg, &err) < 0)
				usage_error("--metrics-listen: %s", err);
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
	if (no_state)
		cfg.state_dir = NULL;
	socket_flag = cfg.socket_path;
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
		msg[n > 0 ? n : 0] = '\0';
		if (n > 0 && msg[0] == '+') {
			/* Under systemd we are the main process, whose word it
			 * takes: hand it the child, which serves from now on. */
			if (sdnotify_send("MAINPID=%d\nREADY=1\nSTATUS=serving %s", (int)pid,
			    msg + 1) < 0)
				fprintf(stderr, "waiterd: cannot notify $NOTIFY_SOCKET: %s\n",
				    strerror(errno));
			exit(0);
		}
		fprintf(stderr, "waiterd: %s\n", n > 0 ? msg : "failed to start");
		exit(1);
	}
	close(fds[0]);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);     /* tasks do not inherit it */
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

/* Tell whoever waits for the start (the --daemonize parent, systemd) why
 * it failed, then exit; what, if not NULL, prefixes the log line. */
static noreturn void
start_failed(int ready_fd, const char *what, const char *cause)
{
	if (ready_fd >= 0 && write(ready_fd, cause, strlen(cause)) < 0)
		log_warn("ready_pipe errno=%d", errno);
	sdnotify_send("STATUS=%.900s", cause);
	if (what != NULL)
		fatalx("%s: %s", what, cause);
	fatalx("%s", cause);
}

/* Readiness: once restored and serving (the --daemonize parent tells
 * systemd, with the child's pid, when it has the "+"). */
static void
start_ready(int ready_fd)
{
	char msg[sizeof ((struct sockaddr_un *)0)->sun_path + 2];

	if (ready_fd >= 0) {
		snprintf(msg, sizeof msg, "+%s", cfg.socket_path);
		if (write(ready_fd, msg, strlen(msg)) < 0)
			log_warn("ready_pipe errno=%d", errno);
		close(ready_fd);
		return;
	}
	if (sdnotify_send("READY=1\nSTATUS=serving %s", cfg.socket_path) < 0)
		log_warn("sd_notify state=READY socket=%s error=\"%s\"",
		    getenv("NOTIFY_SOCKET"), strerror(errno));
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (!daemon_shutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT")) {
		/* A second signal: the user does not want to wait. */
		log_warn("shutdown_forced signal=%d", (int)sig);
		event_base_loopbreak(ev_base);
	}
}

int
main(int argc, char **argv)
{
	const char *cause = NULL;
	char *state_why = NULL, fdname[256];
	int ready_fd = -1, n_passed;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	/* Socket activation: before --daemonize, as LISTEN_PID names us. */
	if ((n_passed = sdnotify_listen_fds(fdname, sizeof fdname, &cause)) < 0)
		start_failed(-1, NULL, cause);
	if (n_passed > 1)
		start_failed(-1, NULL, arena_printf("the service manager passed "
		    "%d sockets (LISTEN_FDS); waiterd serves one: give its .socket unit "
		    "one ListenStream=", n_passed));
	if (cfg.daemonize) {
		ready_fd = daemonize();
		redirect_stdio();
	}
	if (cfg.log_file != NULL && log_open_file(cfg.log_file) < 0)
		fatal("cannot open log file %s", cfg.log_file);
	log_init(cfg.verbose);

	daemon_setup();
	/* A passed socket is served wherever it is; -S, if given, must name it
	 * ($WAITER_SOCKET is not checked: a user manager's environment may
	 * carry one for clients). */
	if (n_passed == 1) {
		if (server_adopt(SDNOTIFY_FDS_START, fdname, socket_flag, &cause) < 0) {
			server_stop_listening();
			start_failed(ready_fd, NULL, cause);
		}
	} else if (server_listen(&cause) < 0) {
		server_stop_listening();        /* let go of the lock we took */
		start_failed(ready_fd, arena_printf("cannot serve %s", cfg.socket_path),
		    cause);
	}
	if (metrics_listen(&cause) < 0) {
		server_stop_listening();
		if (ready_fd >= 0 && write(ready_fd, cause, strlen(cause)) < 0)
			log_warn("ready_pipe errno=%d", errno);
		fatalx("%s", cause);
	}
	/* Restore before the loop serves anyone: a client sees its objects or
	 * an error. Connections wait in the listen backlog meanwhile. */
	if (cfg.state_dir != NULL)
		sdnotify_send("STATUS=restoring the state in %s", cfg.state_dir);
	if (state_open(&state_why) < 0) {
		server_stop_listening();
		start_failed(ready_fd, NULL, state_why);
	}
	/* Threads only once we serve: a daemon refused at start (another owns
	 * the socket) exits at once and leaves no thread unjoined. */
	daemon_start();
	sigterm_ev = evsignal_new(ev_base, SIGTERM, signal_cb, NULL);
	sigint_ev = evsignal_new(ev_base, SIGINT, signal_cb, NULL);
	if (sigterm_ev == NULL || sigint_ev == NULL ||
	    event_add(sigterm_ev, NULL) < 0 || event_add(sigint_ev, NULL) < 0)
		fatalx("cannot set up signals");
	watch_proc_init();      /* logged before --daemonize returns */
	start_ready(ready_fd);
	/* Every task of a root daemon runs as root: fine when meant, so say so
	 * unless the command line named who may connect. */
	if (geteuid() == 0 && cfg.n_allow_uids == 0 && !cfg.have_allow_gid)
		log_warn("running_as_root detail=\"its tasks run as root; name who may "
		    "connect with --allow-uid or --allow-group\"");
	log_info("started version=%s pid=%d max_clients=%u max_frame=%u",
	    PACKAGE_VERSION, (int)getpid(), cfg.max_clients, cfg.max_frame);

	event_base_dispatch(ev_base);

	state_close();           /* commit what was handed over, stop the writer */
	event_free(sigterm_ev);
	event_free(sigint_ev);
	daemon_teardown();
	libevent_global_shutdown();
	arena_reset();
	log_info("stopped");
	return 0;
}
