/*
 * tasks.h - the task source: commands run in named queues with a
 * parallelism limit, FIFO within a queue, after dependencies, timeouts,
 * bounded capture of stdout and stderr (the tail is kept), exit through
 * pidfd. Spawning uses posix_spawn (glibc's is vfork-based); each task is
 * its own process group, so a timeout or kill reaches its children too.
 */
#ifndef WAITERD_TASKS_H
#define WAITERD_TASKS_H

#include "state.pb-c.h"
#include "waiterd.h"

/* Defaults and bounds, each with its reason. */
#define TASK_OUTPUT_DEFAULT (1024 * 1024)       /* kept per stream: a log tail */
#define TASK_OUTPUT_MAX (256 * 1024 * 1024)     /* one task cannot take the host */
#define TASK_KILL_GRACE_US (5 * 1000000)        /* TERM, then KILL after this */
#define TASK_STDIN_MAX (16 * 1024 * 1024)       /* stdin bytes travel in one frame */
#define TASK_MAX_AFTER 256                      /* dependencies per task */
#define TASK_MAX_ARGS 4096                      /* argv and env entries */
#define QUEUE_NAME_MAX 64
#define QUEUES_MAX 1024                         /* queues are created on first use */

void tasks_init(void);
/* Tasks running now; during shutdown, cb runs when the last one ends. */
uint64_t tasks_running(void);
void tasks_on_idle(void (*cb)(void));
/* Active tasks by state, for Stats. */
void tasks_count(uint64_t *waiting, uint64_t *queued, uint64_t *running);
uint64_t tasks_kept_output(void);
/* The daemon is exiting: kill every process group still running, reap. */
void tasks_free(void);
/* c's output drained and it has caught up with the bus: read again the
 * pipes of paced tasks it owns (or that lost their owner). */
void tasks_conn_drained(struct conn *c);

/* Start-up with a state directory (state.c): put back a task or a queue's
 * setting read from the state file; then, once events can be published,
 * end the tasks that were running as lost (killing what is left of them)
 * and queue the rest, to start on the loop's first lap. */
void tasks_restore(uint64_t id, const Waiter__State__V1__StoredObject *so);
void tasks_restore_queue(uint64_t id, const Waiter__State__V1__StoredObject *so);
void tasks_resume(void);

op_fn tasks_op_submit;
op_fn tasks_op_kill;
op_fn tasks_op_logs;
op_fn tasks_op_queue_set;
op_fn tasks_op_queue_list;

#endif
