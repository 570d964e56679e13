/*
 * watch_path.h - path watches: inotify on files and directories, one
 * inotify descriptor for the daemon and one kernel watch per directory
 * however many watches share it; recursive watches follow new
 * subdirectories (walked by a worker, so a directory filled before its
 * watch existed still reports its files); globs, settle, once, --create.
 */
#ifndef WAITERD_WATCH_PATH_H
#define WAITERD_WATCH_PATH_H

#include "state.h"
#include "waiterd.h"

#define WATCH_PATHS_MAX 64              /* roots per watch */
#define WATCH_GLOBS_MAX 64              /* include + exclude patterns */
#define WATCH_SETTLE_MAX_CHANGES 1024   /* distinct changes listed per burst */

void watch_path_init(void);
void watch_path_free(void);
/* Kernel watches held now (one per directory, shared). */
unsigned watch_path_kernel_watches(void);
op_fn watch_path_op_create;
/* At start-up: put back a path watch of the state file (state.c). Its
 * roots are walked again on the first lap; once in place it publishes
 * WATCH_OVERFLOW (changes made while the daemon was down were not seen). */
void watch_path_restore(uint64_t id, const Waiter__State__V1__StoredObject *so);

#endif
