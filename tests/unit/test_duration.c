/* test_duration.c - durations and times as the CLI parses them. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "tap.h"
#include "waiter.h"

static void
dur(const char *s, long long want)
{
	uint64_t us = 0;
	const char *err;
	int rc = waiter_parse_duration(s, &us, &err);

	if (want < 0)
		ok(rc < 0 && err != NULL, "duration '%s' is refused (%s)", s, err ? err : "");
	else if (!ok(rc == 0 && us == (uint64_t)want, "duration '%s' = %lld us", s, want))
		printf("#   got rc=%d us=%llu err=%s\n", rc, (unsigned long long)us,
		    err ? err : "");
}

static void
tm(const char *s, long long want)
{
	int64_t us = 0;
	const char *err;
	int rc = waiter_parse_time(s, &us, &err);

	if (want < 0)
		ok(rc < 0 && err != NULL, "time '%s' is refused", s);
	else if (!ok(rc == 0 && us == want, "time '%s' = %lld", s, want))
		printf("#   got rc=%d us=%lld\n", rc, (long long)us);
}

static void
fmt(uint64_t us, const char *want)
{
	char buf[64];

	waiter_format_duration(us, buf, sizeof buf);
	is_str(buf, want, "format %llu us", (unsigned long long)us);
}

int
main(void)
{
	dur("250ms", 250000);
	dur("5s", 5000000);
	dur("2m", 120000000);
	dur("1h30m", 5400000000LL);
	dur("1.5s", 1500000);
	dur("0.25", 250000);
	dur("10", 10000000);
	dur("7us", 7);
	dur("1d", 86400000000LL);
	dur("1m30s250ms", 90250000);
	dur("0", 0);
	dur("3650d", 3650LL * 86400 * 1000000);
	dur("3651d", -1);
	dur("99999999999999999999s", -1);
	dur("-5s", -1);
	dur("", -1);
	dur("5", 5000000);
	dur("5x", -1);
	dur("s", -1);
	dur("5 s", -1);
	dur("1h30", -1);
	dur("ms", -1);
	dur("1.2.3s", -1);
	/* Found by fuzz_duration: a fraction of a day overflowed (0.5d was
	 * 6306.5 s). */
	dur("0.5d", 43200000000LL);
	dur("0.25d", 21600000000LL);
	dur("1.999999999d", 172799999913LL);
	dur("0.5h", 1800000000LL);
	dur("0.0005ms", 0);
	dur("1.5ms", 1500);

	tm("2026-11-26T10:00:00Z", 1795687200LL * 1000000);
	tm("2026-11-26t10:00:00z", 1795687200LL * 1000000);
	tm("2026-11-26T11:00:00+01:00", 1795687200LL * 1000000);
	tm("2026-11-26T09:30:00-00:30", 1795687200LL * 1000000);
	tm("2026-11-26T10:00:00.5Z", 1795687200LL * 1000000 + 500000);
	tm("@1795687200", 1795687200LL * 1000000);
	tm("@1795687200.25", 1795687200LL * 1000000 + 250000);
	tm("@0", 0);
	tm("2024-02-29T00:00:00Z", 1709164800LL * 1000000);
	tm("2026-02-29T00:00:00Z", -1);
	tm("2026-13-01T00:00:00Z", -1);
	tm("2026-11-26T24:00:00Z", -1);
	tm("2026-11-26T10:00:00", -1);
	tm("2026-11-26", -1);
	tm("tomorrow", -1);
	tm("@-5", -1);
	tm("@abc", -1);
	tm("1969-12-31T23:59:59Z", -1);

	fmt(0, "0s");
	fmt(250000, "250ms");
	fmt(5400000000ULL, "1h30m");
	fmt(7, "7us");
	fmt(90250000, "1m30s250ms");
	/* Found by fuzz_duration: "%g" printed 2.59465e+07s, which does not
	 * parse back, and rounded. */
	fmt(25946463000400ULL, "25946463.000400s");
	fmt(1500001, "1.500001s");
	fmt(999999, "999999us");
	return done_testing();
}
