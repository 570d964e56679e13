/* cmd_daemon.c - ping, stats, version, shutdown: talking to the daemon itself. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "frame.h"

/* Commands with no options of their own. */
static void
no_options(const struct cmd *c, int argc, char **argv)
{
	static const struct option none[] = { { NULL, 0, NULL, 0 } };

	if (getopt_long(argc, argv, "", none, NULL) != -1)
		cli_usage(c, "unknown option");
	if (optind < argc)
		cli_usage(c, "unexpected argument '%s'", argv[optind]);
}

static int
ping_main(const struct cmd *c, int argc, char **argv)
{
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Ping ping = WAITER__V1__PING__INIT;
	ServerMessage *m;
	int rc;

	no_options(c, argc, argv);
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_PING;
	req.ping = &ping;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		return rc;
	if (cli.json)
		out_json(&m->reply->pong->base);
	else
		puts("pong");
	waiter_message_free(m);
	return EXIT_OK;
}

const struct cmd cmd_ping = {
	"ping", "", "check that the daemon answers",
	"Send a Ping and print \"pong\" when the daemon answers.\n"
	"Exit status 69 when no daemon is reachable.\n",
	ping_main,
};

static int
stats_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "prometheus", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__StatsRequest sr = WAITER__V1__STATS_REQUEST__INIT;
	ServerMessage *m;
	bool prometheus = false;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch != 'p')
			cli_usage(c, "unknown option");
		prometheus = true;
	}
	if (optind < argc)
		cli_usage(c, "unexpected argument '%s'", argv[optind]);
	/* Two output formats: asking for both is a mistake, not a choice. */
	if (prometheus && cli.json)
		cli_usage(c, "--prometheus and --json are two formats; give one of them");
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_STATS;
	req.stats = &sr;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		return rc;
	if (prometheus) {
		rc = waiter_stats_prometheus(stdout, m->reply->stats);
		if (fflush(stdout) != 0 || rc < 0)
			rc = cli_fail(EXIT_ERROR, "cannot write the metrics to stdout");
	} else {
		out_message_sep(&m->reply->stats->base, "\n");
	}
	waiter_message_free(m);
	return rc;
}

const struct cmd cmd_stats = {
	"stats", "[--prometheus]",
	"show the daemon's counters and loop lag (--prometheus: for Prometheus)",
	"Print the daemon's counters, one key=value per line: connections,\n"
	"requests, objects, tasks by state, events published/delivered/lost, the\n"
	"retention ring, the loop lag (p50, p99, max over the last minute, and a\n"
	"histogram since start) and the daemon's CPU time, memory and descriptors.\n"
	"\n"
	"  --prometheus   print them in the Prometheus text exposition format\n"
	"                 instead (doc/metrics.md lists the series); not with --json\n",
	stats_main,
};

static int
version_main(const struct cmd *c, int argc, char **argv)
{
	struct waiter_error err;
	struct waiter *w = NULL;
	const char *sv;

	no_options(c, argc, argv);
	/* Never starts a daemon: it only reports one that is running. */
	waiter_connect(cli.socket, "waiter-cli", &w, &err);
	sv = w != NULL ? waiter_server_version(w) : NULL;
	if (cli.json) {
		json_t *j = json_pack("{s:s, s:i}", "version", PACKAGE_VERSION,
		    "protocol_version", WAITER_PROTOCOL_VERSION);
		char *s;

		if (sv != NULL)
			json_object_set_new(j, "server_version", json_string(sv));
		s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(j);
	} else {
		printf("waiter %s (protocol %d)\n", PACKAGE_VERSION, WAITER_PROTOCOL_VERSION);
		if (sv != NULL)
			printf("waiterd %s\n", sv);
		else
			printf("waiterd not running\n");
	}
	waiter_close(w);
	return EXIT_OK;
}

const struct cmd cmd_version = {
	"version", "", "print the client's and the daemon's versions",
	"Print this command's version and protocol, and the running daemon's\n"
	"version (it does not start one).\n",
	version_main,
};

static int
shutdown_main(const struct cmd *c, int argc, char **argv)
{
	Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__Shutdown sd = WAITER__V1__SHUTDOWN__INIT;
	ServerMessage *m;
	struct waiter_error err;
	int rc;

	no_options(c, argc, argv);
	cli.no_autostart = true;        /* never start a daemon to stop it */
	cli_connect();
	req.op_case = WAITER__V1__REQUEST__OP_SHUTDOWN;
	req.shutdown = &sd;
	if ((rc = cli_call(&req, &m)) != EXIT_OK)
		return rc;
	waiter_message_free(m);
	/* Return once the daemon has let go of us: its socket is gone then. */
	while (waiter_next_event(cli.w, 5000, &m, &err) == 1)
		waiter_message_free(m);
	return EXIT_OK;
}

const struct cmd cmd_shutdown = {
	"shutdown", "", "stop the daemon",
	"Ask the daemon to stop: it stops accepting, tells its clients, removes\n"
	"its socket and exits. Returns once the daemon has closed the connection.\n"
	"Objects that were not complete are dropped.\n",
	shutdown_main,
};
