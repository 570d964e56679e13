/*
 * listenfd - socket activation for tests, as systemd does it: bind and
 * listen on a Unix socket, put it at descriptor 3, set LISTEN_FDS=1,
 * LISTEN_PID to its own pid (which exec keeps) and LISTEN_FDNAMES, then
 * exec the command. Options make the wrong kinds of descriptor a
 * misconfigured unit would pass.
 *
 *   listenfd [OPTION]... PATH -- COMMAND [ARG...]
 *
 *   --name NAME   LISTEN_FDNAMES=NAME (default: none)
 *   --mode MODE   chmod the socket file to MODE (octal)
 *   --group GID   chown the socket file to group GID
 *   --dgram       a bound datagram socket (ListenDatagram=)
 *   --connected   a connected stream socket, not a listening one (what
 *                 Accept=yes passes)
 *   --abstract    bind the abstract name PATH (ListenStream=@PATH)
 *   --count N     pass N listening sockets, the others at PATH.2, PATH.3...
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void
die(const char *what)
{
	fprintf(stderr, "listenfd: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
usage(void)
{
	fprintf(stderr, "usage: listenfd [--name NAME] [--mode MODE] [--group GID] [--dgram | "
	    "--connected | --abstract | --count N] PATH -- COMMAND [ARG...]\n");
	exit(2);
}

/* A socket bound to path (abstract: the name path), listening unless dgram. */
static int
bound(const char *path, int type, int abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	socklen_t len;
	int fd;

	if (n + 1 >= sizeof sa.sun_path)
		usage();
	memcpy(sa.sun_path + (abstract ? 1 : 0), path, n);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	if ((fd = socket(AF_UNIX, type, 0)) < 0)
		die("socket");
	if (!abstract)
		unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0)
		die(path);
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
		die("listen");
	return fd;
}

/* Move fd to descriptor want, inheritable (as systemd passes it). */
static void
place(int fd, int want)
{
	if (fd != want) {
		if (dup2(fd, want) < 0)
			die("dup2");
		close(fd);
	}
}

int
main(int argc, char **argv)
{
	const char *name = NULL, *path;
	long mode = -1, count = 1, group = -1;
	int dgram = 0, connected = 0, abstract = 0, i = 1, fd;
	char buf[64], extra[4096];

	for (; i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0'; i++) {
		if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
			mode = strtol(argv[++i], NULL, 8);
		else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc)
			group = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			count = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--dgram") == 0)
			dgram = 1;
		else if (strcmp(argv[i], "--connected") == 0)
			connected = 1;
		else if (strcmp(argv[i], "--abstract") == 0)
			abstract = 1;
		else
			usage();
	}
	if (argc - i < 3 || strcmp(argv[i + 1], "--") != 0 || count < 1 || count > 8)
		usage();
	path = argv[i];
	if (connected) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			die("socketpair");
		fd = sv[0];     /* sv[1] stays open here (and in the command) */
	} else {
		fd = bound(path, dgram ? SOCK_DGRAM : SOCK_STREAM, abstract);
		if (mode >= 0 && !abstract && chmod(path, (mode_t)mode) < 0)
			die("chmod");
		if (group >= 0 && !abstract && chown(path, (uid_t)-1, (gid_t)group) < 0)
			die("chown");
	}
	/* Keep descriptors 3.. free for the passed ones. */
	if (fd < 3 + count) {
		int moved = fcntl(fd, F_DUPFD, 3 + (int)count);

		if (moved < 0)
			die("fcntl");
		close(fd);
		fd = moved;
	}
	place(fd, 3);
	for (long k = 2; k <= count; k++) {
		snprintf(extra, sizeof extra, "%s.%ld", path, k);
		place(bound(extra, SOCK_STREAM, 0), 3 + (int)k - 1);
	}
	snprintf(buf, sizeof buf, "%d", (int)getpid());
	setenv("LISTEN_PID", buf, 1);
	snprintf(buf, sizeof buf, "%ld", count);
	setenv("LISTEN_FDS", buf, 1);
	if (name != NULL)
		setenv("LISTEN_FDNAMES", name, 1);
	execvp(argv[i + 2], argv + i + 2);
	die(argv[i + 2]);
}
