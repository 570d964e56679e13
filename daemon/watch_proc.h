/*
 * watch_proc.h - process watches: any pid, through a pidfd; the watch
 * completes with PROCESS_EXITED when the process is gone. Kept across a
 * restart with the process's start time, so a reused pid is not taken
 * for the process watched.
 */
#ifndef WAITERD_WATCH_PROC_H
#define WAITERD_WATCH_PROC_H

#include "state.h"
#include "waiterd.h"

/* Log once at start if this system (or valgrind) has no pidfd_open. */
void watch_proc_init(void);
op_fn watch_proc_op_create;
/* At start-up: put back a process watch of the state file (state.c). The
 * same process is watched again; one gone meanwhile ends as exited. */
void watch_proc_restore(uint64_t id, const Waiter__State__V1__StoredObject *so);

#endif
