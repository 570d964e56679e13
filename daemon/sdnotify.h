/*
 * sdnotify.h - the two halves of systemd's service protocol that waiterd
 * speaks (doc/systemd.md):
 *
 *   readiness: newline-separated KEY=VALUE lines ("READY=1", "STATUS=...",
 *   "STOPPING=1", "MAINPID=N") sent as one datagram to the Unix socket
 *   named by $NOTIFY_SOCKET, a path or an abstract name "@..." (sd_notify(3));
 *
 *   socket activation: the listening sockets the service manager passed,
 *   from descriptor 3 on, announced by LISTEN_PID (this process),
 *   LISTEN_FDS (how many) and LISTEN_FDNAMES (their names, colon-separated;
 *   sd_listen_fds(3)).
 *
 * libsystemd does both when configure found it (HAVE_LIBSYSTEMD); without
 * it, or when built with SDNOTIFY_FALLBACK (tests/unit/test_sdnotify.c
 * builds it both ways), this module speaks the protocol itself. Nothing
 * here logs: the callers turn failures into log lines or start-up errors.
 */
#ifndef WAITERD_SDNOTIFY_H
#define WAITERD_SDNOTIFY_H

#include <stddef.h>

/* The first passed descriptor (SD_LISTEN_FDS_START). */
#define SDNOTIFY_FDS_START 3
/* The longest message sent; waiterd's are a few lines. */
#define SDNOTIFY_MAX_MESSAGE 1024

/* Send one message to $NOTIFY_SOCKET: 1 sent, 0 when the variable is unset
 * (not run by a service manager), -1 with errno when it could not be sent
 * (EINVAL: the variable names no Unix socket; EMSGSIZE: the message is over
 * SDNOTIFY_MAX_MESSAGE). The fallback never blocks (MSG_DONTWAIT). */
int sdnotify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether this build uses libsystemd (for the log and the unit test). */
const char *sdnotify_impl(void);

/*
 * The descriptors the service manager passed to this process: their number,
 * the first being SDNOTIFY_FDS_START; 0 when there are none or they are
 * meant for another process (LISTEN_PID). Each is made close-on-exec, so no
 * task inherits it, and LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are
 * removed from the environment in every case. name (len bytes) receives the
 * first one's name (FileDescriptorName=, "unknown" when none was given).
 * -1 when the variables are malformed or a descriptor is not open; *cause
 * is then a sentence naming the variables' values.
 */
int sdnotify_listen_fds(char *name, size_t len, const char **cause);

#endif
