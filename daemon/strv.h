/*
 * strv.h - NULL-terminated string vectors the sources own (a task's argv
 * and env, a path watch's roots and globs). Out of memory is fatal, as
 * everywhere in the daemon.
 */
#ifndef WAITERD_STRV_H
#define WAITERD_STRV_H

#include <stddef.h>

/* Copies of v[0..n), then NULL. */
char **strv_dup(char *const *v, size_t n);
/* Free each string up to the NULL, then v; NULL is fine. */
void strv_free(char **v);

#endif
