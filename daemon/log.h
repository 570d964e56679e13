/*
 * log.h - one line per event on stderr (or --log-file), key=value fields:
 *   time=2026-11-26T10:00:00.123Z level=info msg=listening path=/run/...
 * The first word of the format is the event's name.
 */
#ifndef WAITERD_LOG_H
#define WAITERD_LOG_H

#include <stdnoreturn.h>

void log_init(int verbose);
int log_open_file(const char *path);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Start-up failures and broken invariants only. fatal() adds strerror(errno). */
noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
