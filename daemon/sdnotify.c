/* sdnotify.c - readiness notification and socket activation (sdnotify.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

#if defined(HAVE_LIBSYSTEMD) && !defined(SDNOTIFY_FALLBACK)
#define SDNOTIFY_LIBSYSTEMD 1
#include <systemd/sd-daemon.h>
#endif

#ifdef SDNOTIFY_LIBSYSTEMD

const char *
sdnotify_impl(void)
{
	return "libsystemd";
}

static int
notify(const char *msg)
{
	int r = sd_notify(0, msg);

	if (r < 0) {
		errno = -r;
		return -1;
	}
	return r > 0 ? 1 : 0;
}

static int
listen_fds(char *name, size_t len)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);

	if (n < 0) {
		errno = -n;
		return -1;
	}
	if (n > 0)
		snprintf(name, len, "%s", names != NULL && names[0] != NULL ?
		    names[0] : "unknown");
	for (char **p = names; p != NULL && *p != NULL; p++)
		free(*p);
	free(names);
	return n;
}

#else /* the protocol spoken here */

const char *
sdnotify_impl(void)
{
	return "builtin";
}

static int
notify(const char *msg)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n;
	ssize_t sent;
	int fd, err;

	if (e == NULL)
		return 0;
	n = strlen(e);
	if ((e[0] != '/' && e[0] != '@') || n < 2 || n > sizeof sa.sun_path) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sa.sun_path, e, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';  /* abstract: the name is the n bytes, no NUL */
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	/* A manager too busy to take it loses a status line; the loop does
	 * not wait for it. */
	sent = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
	    (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	err = errno;
	close(fd);
	errno = err;
	return sent < 0 ? -1 : 1;
}

/* A whole decimal number from 0 to max, else -1. */
static long long
parse_number(const char *s, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max)
		return -1;
	return v;
}

static int
listen_fds(char *name, size_t len)
{
	const char *e = getenv("LISTEN_PID"), *names;
	long long pid, n, count = 1;

	if (e == NULL)
		return 0;
	if ((pid = parse_number(e, INT_MAX)) <= 0)
		goto invalid;
	if (pid != getpid())
		return 0;
	if ((e = getenv("LISTEN_FDS")) == NULL)
		return 0;
	/* As libsystemd: LISTEN_FDS=0 is malformed, not "none". */
	if ((n = parse_number(e, INT_MAX - SDNOTIFY_FDS_START)) <= 0)
		goto invalid;
	if ((names = getenv("LISTEN_FDNAMES")) != NULL) {
		for (const char *p = names; *p != '\0'; p++)
			count += *p == ':';
		if (count != n)
			goto invalid;
	}
	for (int fd = SDNOTIFY_FDS_START; fd < SDNOTIFY_FDS_START + n; fd++) {
		int flags = fcntl(fd, F_GETFD);

		if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
			return -1;
	}
	if (names != NULL)
		snprintf(name, len, "%.*s", (int)strcspn(names, ":"), names);
	else
		snprintf(name, len, "unknown");
	return (int)n;
invalid:
	errno = EINVAL;
	return -1;
}

#endif

int
sdnotify_send(const char *fmt, ...)
{
	char msg[SDNOTIFY_MAX_MESSAGE + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof msg) {
		errno = EMSGSIZE;
		return -1;
	}
	return notify(msg);
}

int
sdnotify_listen_fds(char *name, size_t len, const char **cause)
{
	static char why[512];
	const char *vars[] = { "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES" };
	char seen[3][64];
	int n, err;

	for (size_t i = 0; i < 3; i++) {
		const char *v = getenv(vars[i]);

		snprintf(seen[i], sizeof seen[i], "%s%s%s", v ? "'" : "", v ? v : "unset",
		    v ? "'" : "");
	}
	if (len > 0)
		name[0] = '\0';
	n = listen_fds(name, len);
	err = errno;
	for (size_t i = 0; i < 3; i++)
		unsetenv(vars[i]);
	if (n < 0) {
		snprintf(why, sizeof why, "the sockets passed by the service manager "
		    "cannot be used (LISTEN_PID=%s, LISTEN_FDS=%s, LISTEN_FDNAMES=%s; "
		    "this is pid %d): %s", seen[0], seen[1], seen[2], (int)getpid(),
		    err == EINVAL ? "the values are malformed or do not agree" :
		    err == EBADF ? "a descriptor they name is not open" : strerror(err));
		*cause = why;
		errno = err;
	}
	return n;
}
