/* duration.c - durations and times as people write them. */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "waiter.h"

#define US_PER_S UINT64_C(1000000)
/* Same bound as the daemon's: ten years. */
#define MAX_US (UINT64_C(3650) * 86400 * US_PER_S)

static const struct unit {
	const char *name;
	uint64_t us;
} units[] = {
	{ "us", 1 }, { "ms", 1000 }, { "s", US_PER_S }, { "m", 60 * US_PER_S },
	{ "h", 3600 * US_PER_S }, { "d", 86400 * US_PER_S },
};

/* Parse digits[.digits] at *p into whole and a fraction scaled to 1e9. */
static int
parse_number(const char **p, uint64_t *whole, uint64_t *frac_ns)
{
	const char *s = *p;
	uint64_t scale = 100000000;

	*whole = 0;
	*frac_ns = 0;
	if (!isdigit((unsigned char)*s) && !(*s == '.' && isdigit((unsigned char)s[1])))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		if (*whole > MAX_US)
			return -1;
		*whole = *whole * 10 + (uint64_t)(*s - '0');
	}
	if (*s == '.') {
		for (s++; isdigit((unsigned char)*s); s++, scale /= 10)
			*frac_ns += (uint64_t)(*s - '0') * scale;
	}
	*p = s;
	return 0;
}

int
waiter_parse_duration(const char *s, uint64_t *us, const char **err)
{
	uint64_t total = 0, whole, frac;
	const char *p = s;
	bool first = true;

	*err = NULL;
	if (s == NULL || *s == '\0') {
		*err = "empty duration";
		return -1;
	}
	if (*s == '-') {
		*err = "a duration cannot be negative";
		return -1;
	}
	while (*p != '\0') {
		const struct unit *u = NULL;
		size_t best = 0;

		if (parse_number(&p, &whole, &frac) < 0) {
			*err = "not a duration (try 250ms, 5s, 2m, 1h30m)";
			return -1;
		}
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			size_t n = strlen(units[i].name);

			if (strncmp(p, units[i].name, n) == 0 && n > best &&
			    !isalpha((unsigned char)p[n])) {
				u = &units[i];
				best = n;
			}
		}
		if (u == NULL && first && *p == '\0')
			u = &units[2];          /* a bare number is seconds */
		if (u == NULL) {
			*err = "unknown unit (use us, ms, s, m, h or d)";
			return -1;
		}
		p += best;
		first = false;
		if (whole > MAX_US / u->us) {
			*err = "duration is longer than 10 years";
			return -1;
		}
		/* frac (ns, < 1e9) times a day's 8.64e10 us would overflow:
		 * scale units of whole milliseconds down by 1000 first. */
		if (u->us % 1000 == 0)
			total += whole * u->us + frac * (u->us / 1000) / 1000000;
		else
			total += whole * u->us + frac * u->us / 1000000000;
		if (total > MAX_US) {
			*err = "duration is longer than 10 years";
			return -1;
		}
	}
	*us = total;
	return 0;
}

void
waiter_format_duration(uint64_t us, char *buf, size_t len)
{
	size_t n = 0;

	if (us == 0) {
		snprintf(buf, len, "0s");
		return;
	}
	if (us % 1000 != 0 || us < 1000) {
		/* Exact, and in the syntax waiter_parse_duration reads back
		 * ("%g" gave "2.59465e+07s"). */
		if (us < US_PER_S)
			snprintf(buf, len, "%lluus", (unsigned long long)us);
		else
			snprintf(buf, len, "%llu.%06llus", (unsigned long long)(us / US_PER_S),
			    (unsigned long long)(us % US_PER_S));
		return;
	}
	buf[0] = '\0';
	for (int i = 5; i >= 1 && n < len; i--) {
		uint64_t q = us / units[i].us;

		if (q == 0)
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%llu%s", (unsigned long long)q,
		    units[i].name);
		us -= q * units[i].us;
	}
}

static int
digits(const char **p, int n, int *out)
{
	*out = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		*out = *out * 10 + (**p - '0');
	}
	return 0;
}

static int
days_in_month(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : d[m - 1];
}

static int
parse_rfc3339(const char *p, int64_t *wall_us)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	uint64_t frac_ns = 0, scale = 100000000;
	time_t t;

	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ') ||
	    (p++, digits(&p, 2, &h)) || *p++ != ':' || digits(&p, 2, &mi) ||
	    *p++ != ':' || digits(&p, 2, &sec))
		return -1;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return -1;
		for (; isdigit((unsigned char)*p); p++, scale /= 10)
			frac_ns += (uint64_t)(*p - '0') * scale;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 ||
	    d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	t -= sign * (oh * 3600 + om * 60);
	*wall_us = (int64_t)t * 1000000 + (int64_t)(frac_ns / 1000);
	return 0;
}

int
waiter_parse_time(const char *s, int64_t *wall_us, const char **err)
{
	uint64_t whole, frac;
	const char *p;

	*err = NULL;
	if (s != NULL && s[0] == '@') {
		p = s + 1;
		if (parse_number(&p, &whole, &frac) < 0 || *p != '\0' ||
		    whole > UINT64_C(253402300799)) {
			*err = "not a time: @ takes seconds since 1970 (@1767225600)";
			return -1;
		}
		*wall_us = (int64_t)(whole * US_PER_S + frac / 1000);
		return 0;
	}
	if (s == NULL || parse_rfc3339(s, wall_us) < 0) {
		*err = "not a time: give RFC 3339 (2026-11-26T10:00:00Z, "
		    "2026-11-26T11:00:00+01:00) or @UNIX_SECONDS";
		return -1;
	}
	return 0;
}
