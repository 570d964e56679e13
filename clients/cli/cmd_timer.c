/* cmd_timer.c - after, every, at, timers. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct timer_opts {
	const char *name;
	uint64_t count;
	bool wait;              /* --wait (after, at) */
	bool follow;            /* --follow (every) */
};

static int
timer_opts_parse(const struct cmd *c, int argc, char **argv, struct timer_opts *o,
    bool periodic)
{
	static const struct option oneshot_opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "wait", no_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct option every_opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "count", required_argument, NULL, 'c' },
		{ "follow", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	memset(o, 0, sizeof *o);
	while ((ch = getopt_long(argc, argv, "", periodic ? every_opts : oneshot_opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'n': o->name = optarg; break;
		case 'c':
			o->count = cli_parse_count(c, "--count", optarg);
			if (o->count == 0)
				cli_usage(c, "--count must be at least 1");
			break;
		case 'w': o->wait = true; break;
		case 'f': o->follow = true; break;
		default: cli_usage(c, "unknown option");
		}
	}
	if (optind != argc - 1)
		cli_usage(c, argc - optind < 1 ? "missing %s" : "one %s only",
		    periodic ? "DURATION" : c == &cmd_at ? "TIME" : "DURATION");
	return optind;
}

/* Create the timer tc; print its id; then wait or follow as asked. */
static int
timer_create_run(Waiter__V1__TimerCreate *tc, const struct timer_opts *o)
{
	Request req = WAITER__V1__REQUEST__INIT;

	/* What the CLI returns from at once lives on; what it stays with
	 * goes away with it (Ctrl-C cancels a --wait or --follow timer). */
	tc->lifetime = o->wait || o->follow ? WAITER__V1__LIFETIME__LIFETIME_CONNECTION :
	    WAITER__V1__LIFETIME__LIFETIME_DAEMON;
	tc->name = (char *)(o->name ? o->name : "");
	req.op_case = WAITER__V1__REQUEST__OP_TIMER_CREATE;
	req.timer_create = tc;
	return cli_create(&req, o->wait, o->follow);
}

static int
after_main(const struct cmd *c, int argc, char **argv)
{
	Waiter__V1__TimerCreate tc = WAITER__V1__TIMER_CREATE__INIT;
	struct timer_opts o;
	int i = timer_opts_parse(c, argc, argv, &o, false);

	tc.after_us = cli_parse_duration(c, "DURATION", argv[i]);
	return timer_create_run(&tc, &o);
}

const struct cmd cmd_after = {
	"after", "DURATION [--name N] [--wait]", "a timer that fires once, DURATION from now",
	"Create a one-shot timer on the daemon's monotonic clock and print its id.\n"
	"\n"
	"  --name N   an idempotency key: if a timer named N exists (pending or\n"
	"             recently finished), print its id instead of creating one\n"
	"  --wait     stay until it fires (exit 0); Ctrl-C cancels it\n"
	"\n"
	"Without --wait the timer outlives this command (lifetime daemon);\n"
	"collect it later with `waiter wait ID`.\n",
	after_main,
};

static int
at_main(const struct cmd *c, int argc, char **argv)
{
	Waiter__V1__TimerCreate tc = WAITER__V1__TIMER_CREATE__INIT;
	struct timer_opts o;
	int i = timer_opts_parse(c, argc, argv, &o, false);
	const char *err;

	if (waiter_parse_time(argv[i], &tc.at_us, &err) < 0)
		cli_usage(c, "TIME '%s': %s", argv[i], err);
	if (tc.at_us == 0)
		tc.at_us = 1;           /* 0 means "not set" on the wire */
	return timer_create_run(&tc, &o);
}

const struct cmd cmd_at = {
	"at", "TIME [--name N] [--wait]", "a timer that fires at a wall-clock time",
	"Create a one-shot timer on the wall clock and print its id. TIME is\n"
	"RFC 3339 (2026-11-26T10:00:00Z, 2026-11-26T11:00:00+01:00) or\n"
	"@UNIX_SECONDS. It stays right if the system clock is changed; a time\n"
	"in the past fires at once.\n"
	"\n"
	"  --name N   an idempotency key (see waiter after --help)\n"
	"  --wait     stay until it fires; Ctrl-C cancels it\n",
	at_main,
};

static int
every_main(const struct cmd *c, int argc, char **argv)
{
	Waiter__V1__TimerCreate tc = WAITER__V1__TIMER_CREATE__INIT;
	struct timer_opts o;
	int i = timer_opts_parse(c, argc, argv, &o, true);

	tc.every_us = cli_parse_duration(c, "DURATION", argv[i]);
	if (tc.every_us == 0)
		cli_usage(c, "the period must be longer than 0");
	tc.count = o.count;
	return timer_create_run(&tc, &o);
}

const struct cmd cmd_every = {
	"every", "DURATION [--count N] [--name N] [--follow]", "a periodic timer",
	"Create a timer that fires every DURATION (at least 1ms), first one\n"
	"period from now, and print its id. It does not drift: each deadline is\n"
	"the previous deadline plus the period; periods missed while the daemon\n"
	"was busy are counted in the event (missed=N), not fired in a burst.\n"
	"\n"
	"  --count N  fire N times, then complete (default: until cancelled)\n"
	"  --name N   an idempotency key (see waiter after --help)\n"
	"  --follow   print each fire as it happens until the timer completes;\n"
	"             Ctrl-C cancels it\n",
	every_main,
};

static void
timers_row(const Waiter__V1__ObjectInfo *o)
{
	const Waiter__V1__TimerInfo *t = o->timer;
	char next[40] = "-", every[32] = "-", fires[48], state[32];

	if (t != NULL && t->next_us != 0)
		out_time(t->next_us, next, sizeof next);
	if (t != NULL && t->every_us != 0)
		waiter_format_duration(t->every_us, every, sizeof every);
	if (t != NULL && t->count != 0)
		snprintf(fires, sizeof fires, "%llu/%llu", (unsigned long long)t->fire_count,
		    (unsigned long long)t->count);
	else
		snprintf(fires, sizeof fires, "%llu", t ? (unsigned long long)t->fire_count : 0ULL);
	snprintf(state, sizeof state, "%s",
	    out_enum(&waiter__v1__object_state__descriptor, o->state));
	printf("%-8llu %-20s %-9s %-27s %-8s %-9s %s\n", (unsigned long long)o->id,
	    o->name[0] ? o->name : "-", state, next, every, fires,
	    out_enum(&waiter__v1__lifetime__descriptor, o->lifetime));
}

static int
timers_main(const struct cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 }
	};
	char header[128];
	bool all = false;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'a')
			cli_usage(c, "unknown option");
		all = true;
	}
	if (optind < argc)
		cli_usage(c, "unexpected argument '%s'", argv[optind]);
	snprintf(header, sizeof header, "%-8s %-20s %-9s %-27s %-8s %-9s %s\n", "ID", "NAME",
	    "STATE", "NEXT", "EVERY", "FIRES", "LIFETIME");
	return cli_list(WAITER__V1__OBJECT_KIND__OBJECT_KIND_TIMER, all, header, timers_row);
}

const struct cmd cmd_timers = {
	"timers", "[--all]", "list timers",
	"List the pending timers: id, name, state, next deadline, period,\n"
	"fires so far (of count), lifetime.\n"
	"\n"
	"  --all   also list finished timers the daemon still keeps\n",
	timers_main,
};
