/*
 * workers.h - a small thread pool for work that must not run on the loop
 * (DESIGN 4.1, rule 1): name resolution, directory walks.
 *
 * workers_submit(fn, done, arg) runs fn(arg) on a worker thread, then
 * done(arg) on the loop thread, in a later callback. fn must touch nothing
 * the loop owns; it reads and writes only what arg gives it. done runs
 * even if whoever submitted the job lost interest meanwhile (an object
 * cancelled while its job ran): arg must say so, and done frees it.
 * Jobs are served in submission order by WORKERS_THREADS threads.
 */
#ifndef WAITERD_WORKERS_H
#define WAITERD_WORKERS_H

#define WORKERS_THREADS 4       /* enough to overlap slow lookups; not a CPU pool */

/* Kinds of job, each with at most so many threads, so that four slow
 * name lookups cannot hold up every directory walk, nor walks lookups. */
enum workers_class {
	WORKERS_RESOLVE,        /* getaddrinfo: may wait seconds on the network */
	WORKERS_WALK,           /* directory walks: may be long on large trees */
	WORKERS_CLASSES
};
#define WORKERS_RESOLVE_MAX 2
#define WORKERS_WALK_MAX 3

void workers_init(void);
/* At exit: finish the queued jobs, run their done callbacks, stop. */
void workers_free(void);
void workers_submit(enum workers_class cls, void (*fn)(void *), void (*done)(void *),
    void *arg);
/* Jobs submitted whose done has not run yet. */
unsigned workers_pending(void);

#endif
