/* log.c - key=value logging to stderr, with libevent's messages routed in. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

static int log_verbose;

static void
log_vwrite(const char *level, const char *fmt, va_list ap, const char *suffix)
{
	char line[2048], ts[32];
	struct timeval tv;
	struct tm tm;
	int n, m;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof line, "time=%s.%03ldZ level=%s msg=", ts,
	    (long)tv.tv_usec / 1000, level);
	m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof line - 64)
		n = (int)sizeof line - 64;
	if (suffix != NULL)
		n += snprintf(line + n, sizeof line - (size_t)n, " error=\"%s\"", suffix);
	line[n++] = '\n';
	/* One write per line so lines from a crash are never interleaved. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to complain */
	}
}

#define LOG_BODY(level, suffix) do {				\
	va_list ap;						\
	va_start(ap, fmt);					\
	log_vwrite(level, fmt, ap, suffix);			\
	va_end(ap);						\
} while (0)

void
log_debug(const char *fmt, ...)
{
	if (log_verbose > 0)
		LOG_BODY("debug", NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY("info", NULL);
}

void
log_warn(const char *fmt, ...)
{
	LOG_BODY("warn", NULL);
}

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);

	LOG_BODY("fatal", err);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal", NULL);
	exit(1);
}

static void
log_libevent(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warn("libevent detail=\"%s\"", msg);
	else
		log_debug("libevent detail=\"%s\"", msg);
}

void
log_init(int verbose)
{
	log_verbose = verbose;
	event_set_log_callback(log_libevent);
}

/* Point stderr at a file (daemonized waiterd). */
int
log_open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return -1;
	if (dup2(fd, STDERR_FILENO) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}
