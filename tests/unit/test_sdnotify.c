/*
 * test_sdnotify.c - daemon/sdnotify.c, both ways it is built: through
 * libsystemd when configure found it (test_sdnotify), and the protocol
 * spoken by waiterd itself (test_sdnotify_fallback, compiled with
 * SDNOTIFY_FALLBACK). The same cases run against both, so the fallback is
 * held to libsystemd's behaviour: messages reach a datagram socket named
 * by a path or an abstract "@name"; a bad or silent NOTIFY_SOCKET is an
 * error, never a hang; LISTEN_* are honoured only for this pid, their
 * descriptors become close-on-exec, malformed values are refused, and the
 * variables are gone afterwards in every case.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"
#include "tap.h"

static char dir[] = "/tmp/waiter-sdnotify.XXXXXX";

/* A datagram socket bound to path (or the abstract name after '@'). */
static int
receiver(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
		perror("receiver");
		exit(1);
	}
	return fd;
}

/* The next datagram on fd, or "" if none is queued. */
static const char *
received(int fd)
{
	static char buf[4096];
	ssize_t n = recv(fd, buf, sizeof buf - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void
test_notify(void)
{
	char path[256], abstract[64], big[SDNOTIFY_MAX_MESSAGE + 10];
	int fd, afd;

	unsetenv("NOTIFY_SOCKET");
	is_int(sdnotify_send("READY=1"), 0, "NOTIFY_SOCKET unset: nothing sent, 0");

	snprintf(path, sizeof path, "%s/notify", dir);
	fd = receiver(path);
	setenv("NOTIFY_SOCKET", path, 1);
	is_int(sdnotify_send("READY=1\nSTATUS=serving %s", "/run/w.sock"), 1,
	    "a path NOTIFY_SOCKET: sent");
	is_str(received(fd), "READY=1\nSTATUS=serving /run/w.sock",
	    "the receiver has the message as formatted");

	snprintf(abstract, sizeof abstract, "@waiter-sdnotify-test-%d", (int)getpid());
	afd = receiver(abstract);
	setenv("NOTIFY_SOCKET", abstract, 1);
	is_int(sdnotify_send("STOPPING=1"), 1, "an abstract @name NOTIFY_SOCKET: sent");
	is_str(received(afd), "STOPPING=1", "the abstract receiver has it");
	is_str(received(fd), "", "and the path receiver nothing more");
	close(afd);

	setenv("NOTIFY_SOCKET", "relative/path", 1);
	errno = 0;
	is_int(sdnotify_send("READY=1"), -1, "a NOTIFY_SOCKET that is neither /path "
	    "nor @name: -1");
	is_int(errno, EINVAL, "with EINVAL");

	snprintf(path, sizeof path, "%s/nobody", dir);
	setenv("NOTIFY_SOCKET", path, 1);
	errno = 0;
	is_int(sdnotify_send("READY=1"), -1, "a NOTIFY_SOCKET nobody listens on: -1");
	ok(errno == ENOENT || errno == ECONNREFUSED, "with ENOENT or ECONNREFUSED "
	    "(errno %d)", errno);

	snprintf(path, sizeof path, "%s/notify", dir);
	setenv("NOTIFY_SOCKET", path, 1);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	errno = 0;
	is_int(sdnotify_send("STATUS=%s", big), -1, "a message over "
	    "SDNOTIFY_MAX_MESSAGE: -1");
	is_int(errno, EMSGSIZE, "with EMSGSIZE");
	is_str(received(fd), "", "and nothing was sent");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void
set_listen(const char *pid, const char *fds, const char *names)
{
	char self[32];

	snprintf(self, sizeof self, "%d", (int)getpid());
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (pid != NULL)
		setenv("LISTEN_PID", strcmp(pid, "self") == 0 ? self : pid, 1);
	if (fds != NULL)
		setenv("LISTEN_FDS", fds, 1);
	if (names != NULL)
		setenv("LISTEN_FDNAMES", names, 1);
}

static bool
listen_env_gone(void)
{
	return getenv("LISTEN_PID") == NULL && getenv("LISTEN_FDS") == NULL &&
	    getenv("LISTEN_FDNAMES") == NULL;
}

/* One case of sdnotify_listen_fds: its result, the env gone afterwards. */
static int
listen_case(const char *pid, const char *fds, const char *names, char *name,
    const char **cause)
{
	int n;

	set_listen(pid, fds, names);
	*cause = NULL;
	n = sdnotify_listen_fds(name, 64, cause);
	ok(listen_env_gone(), "LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s: "
	    "the variables are unset afterwards", pid ? pid : "-", fds ? fds : "-",
	    names ? names : "-");
	return n;
}

static void
test_listen(void)
{
	char name[64];
	const char *cause;
	int sv[2];

	/* Descriptors 3 and 4 as the service manager would pass them:
	 * inheritable (no close-on-exec). */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || dup2(sv[0], 3) < 0 ||
	    dup2(sv[1], 4) < 0) {
		perror("socketpair");
		exit(1);
	}
	if (sv[0] != 3 && sv[0] != 4)
		close(sv[0]);
	if (sv[1] != 3 && sv[1] != 4)
		close(sv[1]);
	fcntl(3, F_SETFD, 0);
	fcntl(4, F_SETFD, 0);
	close(5);

	is_int(listen_case(NULL, NULL, NULL, name, &cause), 0, "no LISTEN_PID: 0");
	is_int(listen_case("1", "1", NULL, name, &cause), 0, "LISTEN_PID of another "
	    "process: 0");
	is_int(fcntl(3, F_GETFD) & FD_CLOEXEC, 0, "and descriptor 3 is not touched");
	is_int(listen_case("self", NULL, NULL, name, &cause), 0, "LISTEN_PID without "
	    "LISTEN_FDS: 0");

	is_int(listen_case("self", "1", NULL, name, &cause), 1, "LISTEN_FDS=1 for this pid: 1");
	is_str(name, "unknown", "without LISTEN_FDNAMES the name is 'unknown'");
	ok(fcntl(3, F_GETFD) & FD_CLOEXEC, "descriptor 3 is now close-on-exec");
	ok((fcntl(4, F_GETFD) & FD_CLOEXEC) == 0, "descriptor 4, not passed, is not");

	fcntl(3, F_SETFD, 0);
	is_int(listen_case("self", "2", "waiterd.socket:other", name, &cause), 2,
	    "LISTEN_FDS=2 with names: 2");
	is_str(name, "waiterd.socket", "the first one's name");
	ok((fcntl(3, F_GETFD) & FD_CLOEXEC) && (fcntl(4, F_GETFD) & FD_CLOEXEC),
	    "both descriptors are close-on-exec");

	is_int(listen_case("self", "abc", NULL, name, &cause), -1, "LISTEN_FDS=abc: -1");
	ok(cause != NULL && strstr(cause, "LISTEN_FDS='abc'") != NULL &&
	    strstr(cause, "malformed") != NULL, "the cause names the value: %s",
	    cause ? cause : "(null)");
	is_int(listen_case("self", "0", NULL, name, &cause), -1, "LISTEN_FDS=0: -1");
	is_int(listen_case("self", "-1", NULL, name, &cause), -1, "LISTEN_FDS=-1: -1");
	is_int(listen_case("x12", "1", NULL, name, &cause), -1, "LISTEN_PID=x12: -1");
	is_int(listen_case("self", "2", "only-one", name, &cause), -1, "two descriptors "
	    "but one name: -1");
	is_int(listen_case("self", "3", NULL, name, &cause), -1, "LISTEN_FDS=3 with "
	    "descriptor 5 closed: -1");
	ok(cause != NULL && strstr(cause, "not open") != NULL, "the cause says a "
	    "descriptor is not open: %s", cause ? cause : "(null)");
	close(3);
	close(4);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	printf("# implementation: %s\n", sdnotify_impl());
	test_notify();
	test_listen();
	{
		char path[300];

		snprintf(path, sizeof path, "%s/notify", dir);
		unlink(path);
		rmdir(dir);
	}
	return done_testing();
}
