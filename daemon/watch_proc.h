/*
 * watch_proc.h - process watches: any pid, through a pidfd; the watch
 * completes with PROCESS_EXITED when the process is gone.
 */
#ifndef WAITERD_WATCH_PROC_H
#define WAITERD_WATCH_PROC_H

#include "waiterd.h"

/* Log once at start if this system (or valgrind) has no pidfd_open. */
void watch_proc_init(void);
op_fn watch_proc_op_create;

#endif
