/* workers.c - the thread pool (see workers.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "waiterd.h"
#include "stats.h"
#include "workers.h"

struct job {
	enum workers_class cls;
	void (*fn)(void *);
	void (*done)(void *);
	void *arg;
	STAILQ_ENTRY(job) link;
};

STAILQ_HEAD(jobq, job);

static pthread_t threads[WORKERS_THREADS];
static unsigned n_threads;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static struct jobq todo = STAILQ_HEAD_INITIALIZER(todo);   /* under lock */
static struct jobq done = STAILQ_HEAD_INITIALIZER(done);   /* under lock */
static bool stopping;                                       /* under lock */
static unsigned running[WORKERS_CLASSES];                   /* under lock */
static const unsigned class_max[WORKERS_CLASSES] = {
	[WORKERS_RESOLVE] = WORKERS_RESOLVE_MAX,
	[WORKERS_WALK] = WORKERS_WALK_MAX,
};

/* The oldest queued job whose class has a thread to spare, or NULL. */
static struct job *
next_job(void)
{
	struct job *j;

	STAILQ_FOREACH(j, &todo, link)
		if (running[j->cls] < class_max[j->cls])
			return j;
	return NULL;
}
static unsigned pending;                                    /* loop thread only */
static int efd = -1;            /* written by workers when a job is done */
static struct event *done_ev;

static void *
worker_main(void *unused)
{
	struct job *j;
	uint64_t one = 1;

	(void)unused;
	pthread_mutex_lock(&lock);
	for (;;) {
		while ((j = next_job()) == NULL && !(stopping && STAILQ_EMPTY(&todo)))
			pthread_cond_wait(&more, &lock);
		if (j == NULL)
			break;          /* stopping, and nothing left to do */
		STAILQ_REMOVE(&todo, j, job, link);
		running[j->cls]++;
		pthread_mutex_unlock(&lock);
		j->fn(j->arg);
		pthread_mutex_lock(&lock);
		running[j->cls]--;
		pthread_cond_broadcast(&more);  /* a job of its class may go now */
		STAILQ_INSERT_TAIL(&done, j, link);
		/* An eventfd counter cannot overflow at our rates; EAGAIN
		 * would only mean it is already readable. */
		if (write(efd, &one, sizeof one) < 0 && errno != EAGAIN)
			log_warn("workers: eventfd write errno=%d", errno);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Run the done callbacks of the finished jobs, on the loop thread. */
static void
workers_reap(void)
{
	struct jobq mine = STAILQ_HEAD_INITIALIZER(mine);
	struct job *j;

	pthread_mutex_lock(&lock);
	STAILQ_CONCAT(&mine, &done);
	pthread_mutex_unlock(&lock);
	while ((j = STAILQ_FIRST(&mine)) != NULL) {
		STAILQ_REMOVE_HEAD(&mine, link);
		pending--;
		j->done(j->arg);
		free(j);
	}
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;
	int64_t begin = stats_lap_begin();

	(void)what, (void)arg;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_warn("workers: eventfd read errno=%d", errno);
	workers_reap();
	stats_lap_end(begin, "workers_done", 0);
}

void
workers_init(void)
{
	sigset_t all, old;

	stopping = false;       /* a second setup (the fuzz targets) */
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		fatal("eventfd");
	done_ev = event_new(ev_base, efd, EV_READ | EV_PERSIST, done_cb, NULL);
	if (done_ev == NULL || event_add(done_ev, NULL) < 0)
		fatal("event_new workers");
	/* Signals are the loop's: the threads block them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (n_threads = 0; n_threads < WORKERS_THREADS; n_threads++)
		if (pthread_create(&threads[n_threads], NULL, worker_main, NULL) != 0)
			fatal("pthread_create");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void
workers_submit(enum workers_class cls, void (*fn)(void *), void (*done_fn)(void *),
    void *arg)
{
	struct job *j = calloc(1, sizeof *j);

	if (j == NULL)
		fatal("calloc");
	j->cls = cls;
	j->fn = fn;
	j->done = done_fn;
	j->arg = arg;
	pending++;
	pthread_mutex_lock(&lock);
	STAILQ_INSERT_TAIL(&todo, j, link);
	pthread_cond_signal(&more);
	pthread_mutex_unlock(&lock);
}

unsigned
workers_pending(void)
{
	return pending;
}

void
workers_free(void)
{
	if (efd < 0)
		return;
	/* The threads finish what is queued, then exit; every done runs
	 * here, so each job's memory is freed by its owner as usual. */
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_broadcast(&more);
	pthread_mutex_unlock(&lock);
	for (unsigned i = 0; i < n_threads; i++)
		pthread_join(threads[i], NULL);
	workers_reap();
	event_free(done_ev);
	close(efd);
	efd = -1;
}
