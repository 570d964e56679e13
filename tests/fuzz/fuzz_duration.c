/*
 * fuzz_duration - libFuzzer target for the duration and time parsers the
 * CLI and waiterd's options use (clients/c/duration.c).
 *
 * Beyond "no crash, no UB" it checks what the parsers promise: a duration
 * accepted is at most ten years and survives a round trip through
 * waiter_format_duration; a time accepted is not before 1970; every
 * refusal comes with a message.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waiter.h"

#define MAX_US (UINT64_C(3650) * 86400 * 1000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok, const char *what, const char *s)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_duration: %s (input \"%s\")\n", what, s);
	abort();
}

static void
fuzz_duration(const char *s)
{
	uint64_t us, again;
	const char *err;
	char buf[64];

	if (waiter_parse_duration(s, &us, &err) < 0) {
		check(err != NULL, "duration refused without a message", s);
		return;
	}
	check(err == NULL, "duration accepted with a message", s);
	check(us <= MAX_US, "duration over ten years accepted", s);
	waiter_format_duration(us, buf, sizeof buf);
	check(waiter_parse_duration(buf, &again, &err) == 0,
	    "a formatted duration does not parse", buf);
	check(again == us, "duration changed in a round trip", s);
}

static void
fuzz_time(const char *s)
{
	int64_t wall;
	const char *err;

	if (waiter_parse_time(s, &wall, &err) < 0) {
		check(err != NULL, "time refused without a message", s);
		return;
	}
	check(err == NULL, "time accepted with a message", s);
	/* RFC 3339 dates are checked before the offset: 1970-01-01 with +23:59
	 * is the latest a time can fall before the epoch. */
	check(wall > -86400 * INT64_C(1000000), "time before 1970 accepted", s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	/* The parsers take C strings: what follows a NUL is never seen. */
	if (size > 256)
		return 0;
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_duration(s);
	fuzz_time(s);
	free(s);
	return 0;
}
