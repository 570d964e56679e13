/* tasks.c - the task source (see tasks.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <search.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "objects.h"
#include "procid.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "store.h"
#include "strv.h"
#include "tasks.h"

/* Bytes read from one output pipe per callback: a task writing gigabytes
 * gets a turn, not the loop. */
#define TASK_READ_CHUNK (64 * 1024)

struct queue {
	char *name;
	uint32_t slot;                  /* its record is STATE_QUEUE_ID + slot; 0 none */
	unsigned parallel;
	unsigned running;
	unsigned queued;
	TAILQ_HEAD(, task) ready;       /* FIFO: tasks start in submission order */
	LIST_ENTRY(queue) link;
};

struct stream {
	int fd;
	struct event ev;
	struct evbuffer *tail;          /* the kept tail, at most limit bytes */
	uint64_t total, dropped;
};

struct task {
	struct object obj;
	Waiter__V1__TaskState state;
	struct queue *q;
	char **argv, **env;             /* NULL-terminated, owned */
	char *cwd;
	uint8_t *stdin_data;
	size_t stdin_len, stdin_off;
	int stdin_fd;
	struct event stdin_ev;
	uint64_t *after;                /* as submitted (reported) */
	size_t n_after;
	uint64_t met[TASK_MAX_AFTER / 64];      /* bit i: after[i] succeeded */
	size_t n_unmet;                 /* after tasks that have not ended yet */
	uint64_t *dependents;           /* ids of tasks that wait for this one */
	size_t n_dependents, cap_dependents;
	uint64_t timeout_us, output_limit, kill_grace_us;
	pid_t pid;
	uint64_t proc_start;            /* its starttime in /proc/PID/stat */
	int pidfd;
	struct event pid_ev, timer;
	Waiter__V1__TaskState kill_state;   /* the state a kill ends it in, or 0 */
	bool term_sent;
	int exit_code, signal;
	int64_t started_us, ended_us;
	struct stream out[2];           /* stdout, stderr */
	uid_t uid;                      /* of the submitting connection */
	char *error;
	bool paced;                     /* the owner's reading paces its output */
	bool paused;                    /* on `paused`: pipes not read for now */
	bool unwatched;                 /* on `unwatched`: no pidfd, see sigchld_cb */
	bool output_released;           /* its tails went for --max-kept-output */
	size_t kept_len;                /* on `kept` with this many bytes, or 0 */
	TAILQ_ENTRY(task) q_link;       /* q->ready, or `waiting` */
	TAILQ_ENTRY(task) kept_link;
	LIST_ENTRY(task) paused_link;
	LIST_ENTRY(task) unwatched_link;
};

static LIST_HEAD(, queue) queues = LIST_HEAD_INITIALIZER(queues);
static unsigned n_queues;
static TAILQ_HEAD(, task) waiting = TAILQ_HEAD_INITIALIZER(waiting);
static uint64_t n_pending;      /* waiting + queued, for --max-queued-tasks */
static uint64_t n_running;
static void (*idle_cb)(void);   /* shutdown: called when none runs any more */
/* Paced tasks whose owner is behind: their pipes are read again once it
 * has caught up (tasks_conn_drained). */
static LIST_HEAD(, task) paused = LIST_HEAD_INITIALIZER(paused);
/* Running tasks without a pidfd (the kernel or valgrind lacks pidfd_open,
 * or --no-pidfd): reaped by pid when SIGCHLD arrives. */
static LIST_HEAD(, task) unwatched = LIST_HEAD_INITIALIZER(unwatched);
static struct event *sigchld_ev;
/* Ended tasks that hold output, oldest end first, and the bytes they hold:
 * past --max-kept-output the oldest let theirs go (kept_trim). */
static TAILQ_HEAD(kept_list, task) kept = TAILQ_HEAD_INITIALIZER(kept);
static uint64_t kept_bytes;
static bool resuming;   /* tasks_resume: queue, start nothing yet */
/* Tasks read back from the state file still active, in id order, for
 * tasks_resume; and the last queue slot given (StoredQueue). */
static uint64_t *restored;
static size_t n_restored, cap_restored;
static uint32_t last_slot;

/* Active tasks per uid, for --max-tasks-per-user: scripts connect and go,
 * so a connection is not what a host with several users wants to bound. */
struct user_tasks {
	uid_t uid;
	uint64_t n;
};
static void *users;     /* tsearch tree of struct user_tasks */

static int
user_cmp(const void *a, const void *b)
{
	uid_t x = ((const struct user_tasks *)a)->uid, y = ((const struct user_tasks *)b)->uid;

	return x < y ? -1 : x > y;
}

static struct user_tasks *
user_find(uid_t uid)
{
	struct user_tasks key = { uid, 0 };
	void *p = tfind(&key, &users, user_cmp);

	return p ? *(struct user_tasks **)p : NULL;
}

static void
user_count(uid_t uid, int delta)
{
	struct user_tasks *u = user_find(uid);

	if (u == NULL) {
		if ((u = calloc(1, sizeof *u)) == NULL)
			fatal("calloc");
		u->uid = uid;
		if (tsearch(u, &users, user_cmp) == NULL)
			fatal("tsearch");
	}
	u->n += (uint64_t)(int64_t)delta;
	if (u->n == 0) {
		tdelete(u, &users, user_cmp);
		free(u);
	}
}

static void task_pump(struct queue *q);
static void task_signal(struct task *t, int sig);
static void task_settle(uint64_t from, uint64_t *ids, size_t n, bool succeeded);
static void task_persist(struct object *o);
static int task_deps(struct task *t);
static bool task_resumes(struct object *o);

/* ------------------------------------------------------------- queues */

static struct queue *
queue_get(const char *name, bool create)
{
	struct queue *q;
	long cpus;

	LIST_FOREACH(q, &queues, link)
		if (strcmp(q->name, name) == 0)
			return q;
	if (!create || n_queues >= QUEUES_MAX)
		return NULL;
	q = calloc(1, sizeof *q);
	if (q == NULL || (q->name = strdup(name)) == NULL)
		fatal("calloc");
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	q->parallel = cpus > 0 ? (unsigned)cpus : 1;
	TAILQ_INIT(&q->ready);
	LIST_INSERT_HEAD(&queues, q, link);
	n_queues++;
	return q;
}

static bool
queue_name_valid(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= QUEUE_NAME_MAX &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._:@/+-") == n;
}

/* --------------------------------------------------------- the object */

static void
stream_close(struct stream *s)
{
	if (s->fd >= 0) {
		event_del(&s->ev);
		close(s->fd);
		s->fd = -1;
	}
}

static void
task_fill_info(struct task *t, Waiter__V1__TaskInfo *ti)
{
	waiter__v1__task_info__init(ti);
	ti->state = t->state;
	ti->queue = t->q->name;
	for (ti->n_argv = 0; t->argv[ti->n_argv] != NULL; ti->n_argv++)
		;
	ti->argv = t->argv;
	ti->n_after = t->n_after;
	ti->after = t->after;
	ti->pid = t->pid;
	ti->exit_code = t->exit_code;
	ti->signal = t->signal;
	ti->started_us = t->started_us;
	ti->ended_us = t->ended_us;
	ti->stdout_bytes = t->out[0].total;
	ti->stderr_bytes = t->out[1].total;
	ti->stdout_dropped = t->out[0].dropped;
	ti->stderr_dropped = t->out[1].dropped;
	ti->output_released = t->output_released;
	ti->error = t->error ? t->error : (char *)"";
	ti->timeout_us = t->timeout_us;
}

static void
task_describe(struct object *o, ObjectInfo *info)
{
	Waiter__V1__TaskInfo *ti = arena_alloc(sizeof *ti);

	task_fill_info((struct task *)o, ti);
	info->detail_case = WAITER__V1__OBJECT_INFO__DETAIL_TASK;
	info->task = ti;
}

static void
task_stop(struct object *o)
{
	struct task *t = (struct task *)o;

	event_del(&t->timer);
	if (t->stdin_fd >= 0) {
		event_del(&t->stdin_ev);
		close(t->stdin_fd);
		t->stdin_fd = -1;
	}
}

/* ------------------------------------------------ output of ended tasks */

static void
kept_remove(struct task *t)
{
	if (t->kept_len == 0)
		return;
	TAILQ_REMOVE(&kept, t, kept_link);
	kept_bytes -= t->kept_len;
	t->kept_len = 0;
}

/*
 * t has ended: its tails count against --max-kept-output. A task ending
 * now is the newest; one read back from the state file (in id order) finds
 * its place by end time.
 */
static void
kept_add(struct task *t, bool by_end_time)
{
	struct task *u = NULL;
	size_t n = 0;

	for (int i = 0; i < 2; i++)
		if (t->out[i].tail != NULL)
			n += evbuffer_get_length(t->out[i].tail);
	if (n == 0)
		return;
	t->kept_len = n;
	kept_bytes += n;
	if (!by_end_time) {
		TAILQ_INSERT_TAIL(&kept, t, kept_link);
		return;
	}
	for (u = TAILQ_LAST(&kept, kept_list); u != NULL && u->ended_us > t->ended_us;
	    u = TAILQ_PREV(u, kept_list, kept_link))
		;
	if (u == NULL)
		TAILQ_INSERT_HEAD(&kept, t, kept_link);
	else
		TAILQ_INSERT_AFTER(&kept, u, t, kept_link);
}

/*
 * Let the oldest ended tasks' output go until what is left fits in
 * --max-kept-output. The newest ended task keeps its own, whatever its
 * size (its output_limit bounds it): its owner has not had a chance to
 * read it yet. A released tail counts as dropped, and the task says so.
 * A durable task's record is written again without them, so the state
 * file does not keep them either, and a restart does not bring them back
 * (restored tasks are trimmed by end time in tasks_resume, for a smaller
 * limit).
 */
static void
kept_trim(void)
{
	struct task *t;

	while (kept_bytes > cfg.max_kept_output &&
	    (t = TAILQ_FIRST(&kept)) != TAILQ_LAST(&kept, kept_list)) {
		for (int i = 0; i < 2; i++) {
			struct stream *s = &t->out[i];

			if (s->tail != NULL) {
				s->dropped += evbuffer_get_length(s->tail);
				evbuffer_free(s->tail);
				s->tail = NULL;
			}
		}
		kept_remove(t);
		t->output_released = true;
		stats.task_outputs_released++;
		if (t->obj.durable)
			task_persist(&t->obj);
	}
}

uint64_t
tasks_kept_output(void)
{
	return kept_bytes;
}

/* Processes killed at exit, reaped by tasks_free once the loop is gone. */
static pid_t *exit_pids;
static size_t n_exit_pids, cap_exit_pids;

static void
reap_at_exit(pid_t pid)
{
	if (n_exit_pids == cap_exit_pids) {
		cap_exit_pids = cap_exit_pids ? cap_exit_pids * 2 : 16;
		if ((exit_pids = realloc(exit_pids, cap_exit_pids * sizeof *exit_pids)) == NULL)
			fatal("realloc");
	}
	exit_pids[n_exit_pids++] = pid;
}

static void
task_free(struct object *o)
{
	struct task *t = (struct task *)o;

	task_stop(o);
	kept_remove(t);
	for (int i = 0; i < 2; i++) {
		stream_close(&t->out[i]);
		if (t->out[i].tail != NULL)
			evbuffer_free(t->out[i].tail);
	}
	if (t->state == WAITER__V1__TASK_STATE__TASK_STATE_RUNNING) {
		/* Only at exit, after the loop, is a task freed while running
		 * (a finished one is what eviction frees): kill its group now,
		 * reap it in tasks_free, so none is left running or a zombie. */
		task_signal(t, SIGKILL);
		reap_at_exit(t->pid);
		if (t->pidfd >= 0) {
			event_del(&t->pid_ev);
			close(t->pidfd);
		}
		if (t->unwatched)
			LIST_REMOVE(t, unwatched_link);
	}
	if (t->paused)
		LIST_REMOVE(t, paused_link);
	strv_free(t->argv);
	strv_free(t->env);
	free(t->cwd);
	free(t->stdin_data);
	free(t->after);
	free(t->dependents);
	free(t->error);
	free(t);
}

/* Publish TASK_DONE and finish the object in the state reached. */
static void
task_done(struct task *t, Waiter__V1__TaskState state)
{
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__TaskDone td = WAITER__V1__TASK_DONE__INIT;
	Waiter__V1__TaskInfo ti;
	Waiter__V1__ObjectState os;
	struct queue *q = t->q;
	bool was_running = t->state == WAITER__V1__TASK_STATE__TASK_STATE_RUNNING;
	uint64_t seq, id = t->obj.id, *dependents = t->dependents;
	size_t n_dependents = t->n_dependents;
	bool ok = state == WAITER__V1__TASK_STATE__TASK_STATE_SUCCEEDED;

	if (t->state == WAITER__V1__TASK_STATE__TASK_STATE_QUEUED) {
		TAILQ_REMOVE(&q->ready, t, q_link);
		q->queued--;
		n_pending--;
	} else if (t->state == WAITER__V1__TASK_STATE__TASK_STATE_WAITING) {
		TAILQ_REMOVE(&waiting, t, q_link);
		n_pending--;
	}
	if (t->paused) {
		LIST_REMOVE(t, paused_link);
		t->paused = false;
	}
	t->state = state;
	t->ended_us = clock_wall_us();
	stats.tasks_ended[state]++;
	user_count(t->uid, -1);
	t->dependents = NULL;   /* settled below, t or not */
	t->n_dependents = 0;
	task_fill_info(t, &ti);
	td.task = &ti;
	ev.object_id = t->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_TASK_DONE;
	ev.body_case = WAITER__V1__EVENT__BODY_TASK_DONE;
	ev.task_done = &td;
	seq = events_publish(&ev, t->obj.owner);
	kept_add(t, false);
	os = ok ? WAITER__V1__OBJECT_STATE__OBJECT_STATE_COMPLETED :
	    state == WAITER__V1__TASK_STATE__TASK_STATE_CANCELLED ?
	    WAITER__V1__OBJECT_STATE__OBJECT_STATE_CANCELLED :
	    WAITER__V1__OBJECT_STATE__OBJECT_STATE_FAILED;
	objects_finish(&t->obj, os, seq);       /* t may be freed from here */
	kept_trim();
	if (was_running) {
		n_running--;
		q->running--;
		task_pump(q);
		if (n_running == 0 && idle_cb != NULL)
			idle_cb();
	}
	task_settle(id, dependents, n_dependents, ok);
}

/* --------------------------------------------------------- processes */

static void
task_signal(struct task *t, int sig)
{
	if (t->pid > 0 && kill(-t->pid, sig) < 0 && errno != ESRCH)
		log_warn("killpg task=%llu pid=%d errno=%d", (unsigned long long)t->obj.id,
		    (int)t->pid, errno);
}

/* The timeout passed, or TERM was sent and the grace is over. */
static void
task_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task *t = arg;
	struct timeval tv = clock_tv((int64_t)t->kill_grace_us);

	(void)fd, (void)what;
	if (t->term_sent) {
		task_signal(t, SIGKILL);
		return;
	}
	if (t->kill_state == 0)
		t->kill_state = WAITER__V1__TASK_STATE__TASK_STATE_TIMED_OUT;
	task_signal(t, SIGTERM);
	t->term_sent = true;
	evtimer_add(&t->timer, &tv);
}

/* Stop a running task: TERM now, KILL after the grace. */
static void
task_terminate(struct task *t, Waiter__V1__TaskState as)
{
	struct timeval tv = clock_tv((int64_t)t->kill_grace_us);

	if (t->kill_state == 0)
		t->kill_state = as;
	if (t->term_sent)
		return;
	event_del(&t->timer);
	task_signal(t, SIGTERM);
	t->term_sent = true;
	evtimer_add(&t->timer, &tv);
}

/* Keep the tail: append, then drop from the head past the limit. */
static void
stream_keep(struct task *t, struct stream *s, const uint8_t *data, size_t n)
{
	size_t len;

	s->total += n;
	if (s->tail == NULL && (s->tail = evbuffer_new()) == NULL)
		fatal("evbuffer_new");
	evbuffer_add(s->tail, data, n);
	len = evbuffer_get_length(s->tail);
	if (len > t->output_limit) {
		evbuffer_drain(s->tail, len - t->output_limit);
		s->dropped += len - t->output_limit;
	}
}

/* Read one chunk; -1 at EOF or error (the stream is closed). */
static int
stream_read(struct task *t, int which)
{
	struct stream *s = &t->out[which];
	static uint8_t buf[TASK_READ_CHUNK];
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__TaskOutput to = WAITER__V1__TASK_OUTPUT__INIT;
	ssize_t n = read(s->fd, buf, sizeof buf);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		stream_close(s);
		return -1;
	}
	stream_keep(t, s, buf, (size_t)n);
	to.stream = which == 0 ? WAITER__V1__STREAM__STREAM_STDOUT :
	    WAITER__V1__STREAM__STREAM_STDERR;
	to.data.data = buf;
	to.data.len = (size_t)n;
	ev.object_id = t->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_TASK_OUTPUT;
	ev.body_case = WAITER__V1__EVENT__BODY_TASK_OUTPUT;
	ev.task_output = &to;
	events_publish(&ev, t->obj.owner);
	return (size_t)n == sizeof buf ? 1 : 0;
}

/* A paced task's owner cannot take more now: its output buffer is full,
 * or it is still catching up on the ring. */
static bool
owner_congested(const struct task *t)
{
	const struct conn *c = t->obj.owner;

	return t->paced && c != NULL && c->closing == CONN_OPEN &&
	    (c->bus.behind || conn_output_len(c) >= cfg.max_output);
}

/* Stop reading t's pipes: the task blocks on write, as in a pipeline. */
static void
task_pause(struct task *t)
{
	for (int i = 0; i < 2; i++)
		if (t->out[i].fd >= 0)
			event_del(&t->out[i].ev);
	t->paused = true;
	LIST_INSERT_HEAD(&paused, t, paused_link);
}

static void
stream_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task *t = arg;
	int64_t begin = stats_lap_begin();

	(void)what;
	if (owner_congested(t))
		task_pause(t);
	else
		stream_read(t, fd == t->out[0].fd ? 0 : 1);
	stats_lap_end(begin, "task_output", 0);
}

void
tasks_conn_drained(struct conn *c)
{
	struct task *t, *next;

	for (t = LIST_FIRST(&paused); t != NULL; t = next) {
		next = LIST_NEXT(t, paused_link);
		if (t->obj.owner != c && t->obj.owner != NULL)
			continue;
		if (owner_congested(t))
			continue;
		LIST_REMOVE(t, paused_link);
		t->paused = false;
		for (int i = 0; i < 2; i++)
			if (t->out[i].fd >= 0)
				event_add(&t->out[i].ev, NULL);
	}
}

static void
stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task *t = arg;
	ssize_t n = write(fd, t->stdin_data + t->stdin_off, t->stdin_len - t->stdin_off);

	(void)what;
	if (n > 0)
		t->stdin_off += (size_t)n;
	if ((n < 0 && errno != EAGAIN && errno != EINTR) || t->stdin_off == t->stdin_len) {
		event_del(&t->stdin_ev);
		close(t->stdin_fd);
		t->stdin_fd = -1;
	}
}

/* The process exited (reaped already): collect what is left in the pipes
 * and end the task. */
static void
task_exited(struct task *t, int exit_code, int sig)
{
	Waiter__V1__TaskState state;

	/* Its group is being stopped: the grace timer goes with the task, so
	 * whatever of the group is left gets KILL now. */
	if (t->term_sent)
		task_signal(t, SIGKILL);
	t->exit_code = exit_code;
	t->signal = sig;
	/* What it wrote before exiting is in the pipes (at most their buffer
	 * size); children it left behind may keep them open, so read what is
	 * there now and stop. */
	for (int i = 0; i < 2; i++) {
		int queued = 0;

		if (t->out[i].fd >= 0 && ioctl(t->out[i].fd, FIONREAD, &queued) < 0)
			queued = 0;
		for (; queued > 0 && t->out[i].fd >= 0; queued -= TASK_READ_CHUNK)
			stream_read(t, i);
		stream_close(&t->out[i]);
	}
	if (t->kill_state != 0)
		state = t->kill_state;
	else if (t->signal == 0 && t->exit_code == 0)
		state = WAITER__V1__TASK_STATE__TASK_STATE_SUCCEEDED;
	else
		state = WAITER__V1__TASK_STATE__TASK_STATE_FAILED;
	task_stop(&t->obj);
	task_done(t, state);
	arena_reset();
}

static void
task_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task *t = arg;
	siginfo_t si;
	int64_t begin = stats_lap_begin();

	(void)what;
	memset(&si, 0, sizeof si);
	if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return;
	event_del(&t->pid_ev);
	close(t->pidfd);
	t->pidfd = -1;
	if (si.si_code == CLD_EXITED)
		task_exited(t, si.si_status, 0);
	else
		task_exited(t, 0, si.si_status);
	stats_lap_end(begin, "task_exit", 0);
}

/*
 * Without pidfds: reap each unwatched task by its pid (never waitpid(-1),
 * which would take the status of tasks a pidfd watches). Ending one task
 * may start others, inserted at the head, so the list is walked again on
 * the next lap whenever this pass reaped something.
 */
static void
sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task *t, *next;
	int64_t begin = stats_lap_begin();
	bool reaped = false;
	int status;

	(void)fd, (void)what, (void)arg;
	for (t = LIST_FIRST(&unwatched); t != NULL; t = next) {
		next = LIST_NEXT(t, unwatched_link);
		if (waitpid(t->pid, &status, WNOHANG) != t->pid)
			continue;
		LIST_REMOVE(t, unwatched_link);
		t->unwatched = false;
		reaped = true;
		if (WIFEXITED(status))
			task_exited(t, WEXITSTATUS(status), 0);
		else
			task_exited(t, 0, WTERMSIG(status));
	}
	if (reaped)
		event_active(sigchld_ev, EV_SIGNAL, 1);
	stats_lap_end(begin, "task_exit", 0);
}

/*
 * A path given with a slash, checked here as exec would (relative to the
 * task's cwd): not left to posix_spawn, whose report of a failed exec does
 * not reach the parent everywhere (valgrind runs its vfork child as a
 * fork), and the task would then fail as 127 with no reason.
 */
static char *
task_resolve_path(struct task *t, int *err)
{
	const char *name = t->argv[0];
	char buf[4096];
	struct stat st;

	if (name[0] != '/' && t->cwd != NULL &&
	    snprintf(buf, sizeof buf, "%s/%s", t->cwd, name) < (int)sizeof buf)
		name = buf;
	if (stat(name, &st) < 0)
		*err = errno;
	else if (!S_ISREG(st.st_mode) || access(name, X_OK) < 0)
		*err = EACCES;
	else
		return strdup(t->argv[0]);
	return NULL;
}

/* argv[0] as execvp would find it, but on the task's PATH. */
static char *
task_resolve(struct task *t, int *err)
{
	const char *name = t->argv[0], *path = "/usr/local/bin:/usr/bin:/bin";
	char buf[4096];

	*err = ENOENT;
	if (strchr(name, '/') != NULL)
		return task_resolve_path(t, err);
	for (char **e = t->env; e != NULL && *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	while (*path != '\0') {
		size_t n = strcspn(path, ":");
		struct stat st;

		if (snprintf(buf, sizeof buf, "%.*s%s%s", (int)n, path, n ? "/" : "",
		    name) < (int)sizeof buf && stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(buf, X_OK) == 0)
				return strdup(buf);
			*err = EACCES;
		}
		path += n + (path[n] == ':');
	}
	return NULL;
}

/*
 * The environment of a task the state file keeps, plus WAITER_TASK=
 * INSTANCE/ID (any such entry it inherited from a task that submitted it
 * replaced): after a crash the daemon finds by it the processes of a task
 * whose start it had not yet written down (task_orphans), and the task may
 * read its id there. Other tasks get exactly the environment they were
 * given: NULL. The array is malloc'd, its strings are t's and one static
 * buffer.
 */
static char **
task_env(struct task *t)
{
	static char mark[64];
	size_t n = 0, i = 0;
	char **env;

	if (!t->obj.durable)
		return NULL;
	snprintf(mark, sizeof mark, "WAITER_TASK=%llx/%llu",
	    (unsigned long long)state_instance(), (unsigned long long)t->obj.id);
	while (t->env != NULL && t->env[n] != NULL)
		n++;
	if ((env = calloc(n + 2, sizeof *env)) == NULL)
		fatal("calloc");
	for (size_t j = 0; j < n; j++)
		if (strncmp(t->env[j], "WAITER_TASK=", 12) != 0)
			env[i++] = t->env[j];
	env[i++] = mark;
	env[i] = NULL;
	return env;
}

static int
task_spawn(struct task *t, const char **why)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int out[2][2] = { { -1, -1 }, { -1, -1 } }, in[2] = { -1, -1 }, rc, err;
	char *exe = task_resolve(t, &err), **env;

	struct stat st;

	if (exe == NULL) {
		*why = strerror(err);
		return err;
	}
	if (t->cwd != NULL && (stat(t->cwd, &st) < 0 || !S_ISDIR(st.st_mode))) {
		free(exe);
		*why = "its working directory does not exist";
		return ENOENT;
	}
	if (pipe2(out[0], O_CLOEXEC) < 0 || pipe2(out[1], O_CLOEXEC) < 0 ||
	    (t->stdin_len > 0 && pipe2(in, O_CLOEXEC) < 0)) {
		rc = errno;
		*why = strerror(rc);
		goto fail;
	}
	posix_spawn_file_actions_init(&fa);
	if (t->stdin_len > 0)
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[0][1], 1);
	posix_spawn_file_actions_adddup2(&fa, out[1][1], 2);
	if (t->cwd != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, t->cwd);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);      /* its own process group */
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);   /* we ignore SIGPIPE; it must not */
	env = task_env(t);
	rc = posix_spawn(&t->pid, exe, &fa, &at, t->argv, env != NULL ? env : t->env);
	free(env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		*why = strerror(rc);
		t->pid = 0;
		goto fail;
	}
	free(exe);
	close(out[0][1]);
	close(out[1][1]);
	for (int i = 0; i < 2; i++) {
		t->out[i].fd = out[i][0];
		fcntl(t->out[i].fd, F_SETFL, O_NONBLOCK);
		event_assign(&t->out[i].ev, ev_base, t->out[i].fd, EV_READ | EV_PERSIST,
		    stream_cb, t);
		event_add(&t->out[i].ev, NULL);
	}
	if (in[0] >= 0) {
		close(in[0]);
		t->stdin_fd = in[1];
		fcntl(in[1], F_SETFL, O_NONBLOCK);
		event_assign(&t->stdin_ev, ev_base, in[1], EV_WRITE | EV_PERSIST, stdin_cb, t);
		event_add(&t->stdin_ev, NULL);
	}
	return 0;
fail:
	free(exe);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			if (out[i][j] >= 0)
				close(out[i][j]);
	if (in[0] >= 0) {
		close(in[0]);
		close(in[1]);
	}
	return rc;
}

/* Start t (taken off its queue's ready list by the caller). */
static void
task_start(struct task *t)
{
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__TaskStarted ts = WAITER__V1__TASK_STARTED__INIT;
	const char *why = NULL;
	int rc = task_spawn(t, &why);

	t->started_us = clock_wall_us();
	if (rc != 0) {
		/* As a shell would: 127 not found, 126 found but not runnable. */
		t->exit_code = rc == ENOENT ? 127 : 126;
		if (asprintf(&t->error, "cannot run %s: %s", t->argv[0], why) < 0)
			t->error = NULL;
		task_done(t, WAITER__V1__TASK_STATE__TASK_STATE_FAILED);
		return;
	}
	t->pidfd = cfg.no_pidfd ? -1 : pidfd_open(t->pid, 0);
	if (t->pidfd >= 0) {
		event_assign(&t->pid_ev, ev_base, t->pidfd, EV_READ | EV_PERSIST,
		    task_exit_cb, t);
		event_add(&t->pid_ev, NULL);
	} else {
		/* ENOSYS (before Linux 5.3, or under valgrind), EMFILE...:
		 * SIGCHLD tells instead. It may have exited already. */
		if (!cfg.no_pidfd)
			log_debug("pidfd_open task=%llu errno=%d: watching by SIGCHLD",
			    (unsigned long long)t->obj.id, errno);
		t->unwatched = true;
		LIST_INSERT_HEAD(&unwatched, t, unwatched_link);
		event_active(sigchld_ev, EV_SIGNAL, 1);
	}
	if (t->timeout_us > 0) {
		struct timeval tv = clock_tv((int64_t)t->timeout_us);

		evtimer_add(&t->timer, &tv);
	}
	t->state = WAITER__V1__TASK_STATE__TASK_STATE_RUNNING;
	t->q->running++;
	n_running++;
	if (t->obj.durable) {
		/* Enough to find its processes after a crash (task_lost). */
		t->proc_start = procid_start(t->pid);
		task_persist(&t->obj);
	}
	ts.pid = t->pid;
	ev.object_id = t->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_TASK_STARTED;
	ev.body_case = WAITER__V1__EVENT__BODY_TASK_STARTED;
	ev.task_started = &ts;
	events_publish(&ev, t->obj.owner);
	log_debug("task_started task=%llu pid=%d queue=%s", (unsigned long long)t->obj.id,
	    (int)t->pid, t->q->name);
}

/* Start ready tasks while the queue has free slots, oldest first. */
static void
task_pump(struct queue *q)
{
	struct task *t;

	/* Stopping: what is queued stays queued (in the state file, for the
	 * next start), whatever slots the ending tasks free. */
	if (daemon_stopping)
		return;
	while (q->running < q->parallel && (t = TAILQ_FIRST(&q->ready)) != NULL) {
		TAILQ_REMOVE(&q->ready, t, q_link);
		q->queued--;
		n_pending--;
		t->state = WAITER__V1__TASK_STATE__TASK_STATE_UNSPECIFIED;   /* starting */
		task_start(t);
	}
}

static void
task_enqueue(struct task *t)
{
	t->state = WAITER__V1__TASK_STATE__TASK_STATE_QUEUED;
	TAILQ_INSERT_TAIL(&t->q->ready, t, q_link);
	t->q->queued++;
	n_pending++;
	if (!resuming)
		task_pump(t->q);
}

/* Submitted (and durable): wait for its `after` tasks, or queue it. */
static void
task_admit(struct object *o)
{
	struct task *t = (struct task *)o;
	int d = task_deps(t);

	if (d < 0) {
		t->state = WAITER__V1__TASK_STATE__TASK_STATE_UNSPECIFIED;
		task_done(t, WAITER__V1__TASK_STATE__TASK_STATE_DEPENDENCY_FAILED);
	} else if (d == 0) {
		t->state = WAITER__V1__TASK_STATE__TASK_STATE_WAITING;
		TAILQ_INSERT_TAIL(&waiting, t, q_link);
		n_pending++;
	} else {
		task_enqueue(t);
	}
	/* The `after` tasks that had succeeded already are met: say so in its
	 * record, before they can be forgotten. */
	if (d >= 0 && t->n_after > 0 && t->obj.durable &&
	    t->obj.state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
		task_persist(&t->obj);
}

static bool
task_met(const struct task *t, size_t i)
{
	return (t->met[i / 64] >> (i % 64)) & 1;
}

/* At submission or restore: 1 all `after` tasks succeeded, -1 one of them
 * did not (or, after a restart, is gone), 0 not yet (each one still active
 * has t among its dependents). */
static int
task_deps(struct task *t)
{
	for (size_t i = 0; i < t->n_after; i++) {
		struct task *d = (struct task *)objects_find(t->after[i]);

		if (task_met(t, i))
			continue;
		if (d == NULL) {
			/* Only after a restart: it was not kept (lifetime
			 * connection) or forgotten before it succeeded. */
			free(t->error);
			if (asprintf(&t->error, "task %llu, which it runs after, did not "
			    "survive the restart of the daemon",
			    (unsigned long long)t->after[i]) < 0)
				t->error = NULL;
			return -1;
		}
		if (d->obj.state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE &&
		    d->state != WAITER__V1__TASK_STATE__TASK_STATE_SUCCEEDED)
			return -1;
	}
	for (size_t i = 0; i < t->n_after; i++) {
		struct task *d = (struct task *)objects_find(t->after[i]);

		if (task_met(t, i))
			continue;
		if (d->obj.state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE) {
			t->met[i / 64] |= UINT64_C(1) << (i % 64);
			continue;
		}
		if (d->n_dependents == d->cap_dependents) {
			d->cap_dependents = d->cap_dependents ? d->cap_dependents * 2 : 4;
			d->dependents = realloc(d->dependents,
			    d->cap_dependents * sizeof *d->dependents);
			if (d->dependents == NULL)
				fatal("realloc");
		}
		d->dependents[d->n_dependents++] = t->obj.id;
		t->n_unmet++;
	}
	return t->n_unmet == 0 ? 1 : 0;
}

/*
 * A task ended; ids are its dependents (taken over: freed here). Each one
 * still waiting loses that dependency if it succeeded (and is queued once
 * it has none left), or ends as dependency_failed if it did not. A
 * dependent cancelled or forgotten meanwhile is skipped: ids are never
 * reused. Failing a task ends another one, whose dependents go on a
 * worklist, not the stack. The cost is the number of dependents.
 */
static void
task_settle(uint64_t from, uint64_t *ids, size_t n, bool succeeded)
{
	static struct settle { uint64_t from, *ids; size_t n; bool ok; } *work;
	static size_t n_work, cap_work;
	static bool settling;

	if (n == 0) {
		free(ids);
		return;
	}
	if (n_work == cap_work) {
		cap_work = cap_work ? cap_work * 2 : 16;
		if ((work = realloc(work, cap_work * sizeof *work)) == NULL)
			fatal("realloc");
	}
	work[n_work++] = (struct settle){ from, ids, n, succeeded };
	if (settling)
		return;
	settling = true;
	while (n_work > 0) {
		struct settle w = work[--n_work];

		for (size_t i = 0; i < w.n; i++) {
			struct task *t = (struct task *)objects_find(w.ids[i]);

			if (t == NULL || t->obj.state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE ||
			    t->state != WAITER__V1__TASK_STATE__TASK_STATE_WAITING)
				continue;
			if (!w.ok) {
				task_done(t, WAITER__V1__TASK_STATE__TASK_STATE_DEPENDENCY_FAILED);
				continue;
			}
			/* Which dependency is met is in its record: after a
			 * restart, the one that succeeded may be forgotten. */
			for (size_t j = 0; j < t->n_after; j++)
				if (t->after[j] == w.from)
					t->met[j / 64] |= UINT64_C(1) << (j % 64);
			if (--t->n_unmet == 0) {
				TAILQ_REMOVE(&waiting, t, q_link);
				n_pending--;
				task_enqueue(t);
			}
			if (t->obj.durable)
				task_persist(&t->obj);
		}
		free(w.ids);
	}
	settling = false;
	if (cap_work > 1024) {
		free(work);
		work = NULL;
		cap_work = 0;
	}
}

static bool
task_cancel(struct object *o, Waiter__V1__CancelReason reason)
{
	struct task *t = (struct task *)o;

	(void)reason;
	if (t->state == WAITER__V1__TASK_STATE__TASK_STATE_RUNNING) {
		task_terminate(t, WAITER__V1__TASK_STATE__TASK_STATE_CANCELLED);
		return true;
	}
	task_done(t, WAITER__V1__TASK_STATE__TASK_STATE_CANCELLED);
	return true;
}

static const struct object_ops task_ops = {
	.kind = WAITER__V1__OBJECT_KIND__OBJECT_KIND_TASK,
	.name = "task",
	.stop = task_stop,
	.cancel = task_cancel,
	.describe = task_describe,
	.free = task_free,
	.persist = task_persist,
	.resumes = task_resumes,
};

/* ---------------------------------------------------------- durability */

static void
tail_copy(struct stream *s, ProtobufCBinaryData *out)
{
	size_t n = s->tail ? evbuffer_get_length(s->tail) : 0;

	out->len = n;
	out->data = NULL;
	if (n > 0) {
		if ((out->data = malloc(n)) == NULL)
			fatal("malloc");
		evbuffer_copyout(s->tail, out->data, n);
	}
}

static void
task_persist(struct object *o)
{
	struct task *t = (struct task *)o;
	Waiter__State__V1__StoredObject so = WAITER__STATE__V1__STORED_OBJECT__INIT;
	Waiter__State__V1__StoredTask st = WAITER__STATE__V1__STORED_TASK__INIT;
	uint64_t met[TASK_MAX_AFTER];
	bool ended = o->state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE;

	for (st.n_argv = 0; t->argv[st.n_argv] != NULL; st.n_argv++)
		;
	st.argv = t->argv;
	for (st.n_env = 0; t->env != NULL && t->env[st.n_env] != NULL; st.n_env++)
		;
	st.env = t->env;
	st.cwd = t->cwd ? t->cwd : (char *)"";
	/* Its stdin matters only until it starts. */
	if (t->pid == 0 && !ended) {
		st.stdin.data = t->stdin_data;
		st.stdin.len = t->stdin_len;
	}
	st.queue = t->q->name;
	st.n_after = t->n_after;
	st.after = t->after;
	for (size_t i = 0; i < t->n_after; i++)
		if (task_met(t, i))
			met[st.n_met++] = t->after[i];
	st.met = met;
	st.timeout_us = t->timeout_us;
	st.kill_grace_us = t->kill_grace_us;
	st.output_limit = t->output_limit;
	st.uid = t->uid;
	st.state = t->state;
	st.paced = t->paced;
	st.pid = t->pid;
	st.proc_start = t->proc_start;
	st.boot_id = (char *)procid_boot_id();
	st.started_us = t->started_us;
	st.ended_us = t->ended_us;
	st.exit_code = t->exit_code;
	st.signal = t->signal;
	st.error = t->error ? t->error : (char *)"";
	if (ended) {
		tail_copy(&t->out[0], &st.stdout_tail);
		tail_copy(&t->out[1], &st.stderr_tail);
		st.stdout_total = t->out[0].total;
		st.stderr_total = t->out[1].total;
		st.stdout_dropped = t->out[0].dropped;
		st.stderr_dropped = t->out[1].dropped;
		st.output_released = t->output_released;
	}
	so.kind_case = WAITER__STATE__V1__STORED_OBJECT__KIND_TASK;
	so.task = &st;
	state_put(o, &so);
	free(st.stdout_tail.data);
	free(st.stderr_tail.data);
}

static bool
task_resumes(struct object *o)
{
	/* Its processes are stopped with the daemon: it ends, as cancelled. */
	return ((struct task *)o)->state != WAITER__V1__TASK_STATE__TASK_STATE_RUNNING;
}

/*
 * A task that was running when the daemon died: make sure nothing of it
 * runs on unattended, and say what became of it. Its process group has
 * the id of its first process, and the kernel does not give that number
 * to a new process while any member of the group lives: so if the pid
 * is not in use, or is in use by the same process (same start time, same
 * boot), what is in that group is the task's, and gets SIGKILL.
 */
static void
task_lost(struct task *t, const char *was_boot)
{
	pid_t grp = 0, pid = t->pid;
	uint64_t start = pid > 0 ? procid_start_group(pid, &grp) : 0;
	bool ours = false;
	const char *what;

	if (pid <= 0 || strcmp(was_boot, procid_boot_id()) != 0) {
		what = "the host restarted while it ran";
	} else if (start != 0 && (start != t->proc_start || grp != pid)) {
		what = "it had ended before the restart; its exit status is unknown";
	} else if (start != 0) {
		ours = true;
	} else {
		/* Its first process is gone: any member left is ours. */
		DIR *d = opendir("/proc");
		struct dirent *de;

		while (d != NULL && !ours && (de = readdir(d)) != NULL) {
			pid_t p = (pid_t)atoi(de->d_name), g = 0;

			if (p > 0 && procid_start_group(p, &g) != 0 && g == pid)
				ours = true;
		}
		if (d != NULL)
			closedir(d);
		what = "it had ended before the restart; its exit status is unknown";
	}
	if (ours) {
		if (kill(-pid, SIGKILL) < 0 && errno != ESRCH)
			log_warn("killpg lost task=%llu pgid=%d errno=%d",
			    (unsigned long long)t->obj.id, (int)pid, errno);
		what = "its processes were still running, and were killed";
	}
	free(t->error);
	if (asprintf(&t->error, "the daemon stopped while it ran (pid %d): %s", (int)pid,
	    what) < 0)
		t->error = NULL;
	log_info("task_lost task=%llu pid=%d killed=%s", (unsigned long long)t->obj.id,
	    (int)pid, ours ? "yes" : "no");
}

static void
restored_add(uint64_t id)
{
	if (n_restored == cap_restored) {
		cap_restored = cap_restored ? cap_restored * 2 : 64;
		if ((restored = realloc(restored, cap_restored * sizeof *restored)) == NULL)
			fatal("realloc");
	}
	restored[n_restored++] = id;
}

static void
stream_restore(struct stream *s, const ProtobufCBinaryData *tail, uint64_t total,
    uint64_t dropped)
{
	s->fd = -1;
	s->total = total;
	s->dropped = dropped;
	if (tail->len > 0) {
		if ((s->tail = evbuffer_new()) == NULL)
			fatal("evbuffer_new");
		evbuffer_add(s->tail, tail->data, tail->len);
	}
}

void
tasks_restore(uint64_t id, const Waiter__State__V1__StoredObject *so)
{
	const Waiter__State__V1__StoredTask *st = so->task;
	struct task *t = calloc(1, sizeof *t);
	size_t n_after = st->n_after < TASK_MAX_AFTER ? st->n_after : TASK_MAX_AFTER;

	if (t == NULL)
		fatal("calloc");
	if ((t->q = queue_get(queue_name_valid(st->queue) ? st->queue : "default",
	    true)) == NULL)
		t->q = queue_get("default", true);
	if (st->n_argv > 0) {
		t->argv = strv_dup(st->argv, st->n_argv);
	} else {
		char *none[] = { "false" };

		t->argv = strv_dup(none, 1);
	}
	t->env = strv_dup(st->env, st->n_env);
	t->cwd = st->cwd[0] != '\0' ? strdup(st->cwd) : NULL;
	if (st->stdin.len > 0) {
		if ((t->stdin_data = malloc(st->stdin.len)) == NULL)
			fatal("malloc");
		memcpy(t->stdin_data, st->stdin.data, st->stdin.len);
		t->stdin_len = st->stdin.len;
	}
	if (n_after > 0) {
		if ((t->after = malloc(n_after * sizeof *t->after)) == NULL)
			fatal("malloc");
		memcpy(t->after, st->after, n_after * sizeof *t->after);
		t->n_after = n_after;
	}
	for (size_t i = 0; i < n_after; i++)
		for (size_t j = 0; j < st->n_met; j++)
			if (st->met[j] == t->after[i])
				t->met[i / 64] |= UINT64_C(1) << (i % 64);
	t->timeout_us = st->timeout_us;
	t->kill_grace_us = st->kill_grace_us ? st->kill_grace_us : cfg.kill_grace_us;
	t->output_limit = st->output_limit ? st->output_limit : TASK_OUTPUT_DEFAULT;
	t->uid = st->uid;
	t->state = st->state;
	t->paced = st->paced;
	t->pid = st->pid;
	t->proc_start = st->proc_start;
	t->started_us = st->started_us;
	t->ended_us = st->ended_us;
	t->exit_code = st->exit_code;
	t->signal = st->signal;
	t->error = st->error[0] != '\0' ? strdup(st->error) : NULL;
	stream_restore(&t->out[0], &st->stdout_tail, st->stdout_total, st->stdout_dropped);
	stream_restore(&t->out[1], &st->stderr_tail, st->stderr_total, st->stderr_dropped);
	t->output_released = st->output_released;
	t->stdin_fd = t->pidfd = -1;
	evtimer_assign(&t->timer, ev_base, task_timer_cb, t);
	objects_restore(&t->obj, &task_ops, id, so);
	if (!objects_restored_active(&t->obj)) {
		kept_add(t, true);      /* trimmed once all are back: tasks_resume */
		return;
	}
	user_count(t->uid, 1);
	if (t->state == WAITER__V1__TASK_STATE__TASK_STATE_RUNNING) {
		task_lost(t, st->boot_id);
		/* Not running in this daemon: task_done must not count it. */
		t->state = WAITER__V1__TASK_STATE__TASK_STATE_LOST;
	} else {
		/* Whatever it was (submitted, waiting, queued), it starts over. */
		t->state = WAITER__V1__TASK_STATE__TASK_STATE_UNSPECIFIED;
		t->pid = 0;
	}
	restored_add(id);
}

void
tasks_restore_queue(uint64_t id, const Waiter__State__V1__StoredObject *so)
{
	const Waiter__State__V1__StoredQueue *sq = so->queue;
	struct queue *q;

	if (!queue_name_valid(sq->name) || sq->parallel < 1 || sq->parallel > 100000 ||
	    (q = queue_get(sq->name, true)) == NULL) {
		log_warn("state_queue_skipped name=%s parallel=%u", sq->name,
		    (unsigned)sq->parallel);
		return;
	}
	q->parallel = sq->parallel;
	q->slot = (uint32_t)(id - STATE_QUEUE_ID);
	if (q->slot > last_slot)
		last_slot = q->slot;
}

static void
queue_persist(struct queue *q)
{
	Waiter__State__V1__StoredObject so = WAITER__STATE__V1__STORED_OBJECT__INIT;
	Waiter__State__V1__StoredQueue sq = WAITER__STATE__V1__STORED_QUEUE__INIT;

	if (!store_is_open())
		return;
	if (q->slot == 0)
		q->slot = ++last_slot;
	sq.name = q->name;
	sq.parallel = q->parallel;
	so.kind_case = WAITER__STATE__V1__STORED_OBJECT__KIND_QUEUE;
	so.queue = &sq;
	state_put_record(STATE_QUEUE_ID + q->slot, STATE_KIND_QUEUE, &so);
}

/*
 * After a crash: the processes whose environment carries WAITER_TASK of a
 * task the state file holds as active (task_env). One whose record does
 * not say it runs was started all the same, its start not yet written
 * down when the daemon died: it is lost too. Every such process, and its
 * process group, gets SIGKILL: also what a lost task started in a group
 * or session of its own. (A process that replaced its environment is not
 * found this way; its group is, by task_lost.)
 */
static void
task_orphans(void)
{
	char prefix[64], path[64], *buf;
	size_t plen, cap = 256 * 1024;
	struct dirent *de;
	DIR *d;

	if (n_restored == 0 || (d = opendir("/proc")) == NULL)
		return;
	plen = (size_t)snprintf(prefix, sizeof prefix, "WAITER_TASK=%llx/",
	    (unsigned long long)state_instance());
	if ((buf = malloc(cap)) == NULL)
		fatal("malloc");
	while ((de = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(de->d_name), grp = 0;
		size_t n = 0;
		ssize_t r;
		int fd;

		if (pid <= 0 || pid == getpid())
			continue;
		snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;       /* gone, or another user's */
		while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
			n += (size_t)r;
		close(fd);
		buf[n] = '\0';
		for (char *e = buf; e < buf + n; e += strlen(e) + 1) {
			struct task *t;

			if (strncmp(e, prefix, plen) != 0)
				continue;
			t = (struct task *)objects_find(strtoull(e + plen, NULL, 10));
			if (t == NULL || t->obj.ops != &task_ops ||
			    t->obj.state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
				break;
			if (t->state != WAITER__V1__TASK_STATE__TASK_STATE_LOST) {
				t->state = WAITER__V1__TASK_STATE__TASK_STATE_LOST;
				t->pid = pid;
				free(t->error);
				if (asprintf(&t->error, "the daemon stopped as it started the task, "
				    "before it wrote that down (pid %d): its processes were still "
				    "running, and were killed", (int)pid) < 0)
					t->error = NULL;
			}
			log_info("task_orphan task=%llu pid=%d", (unsigned long long)t->obj.id,
			    (int)pid);
			if (procid_start_group(pid, &grp) != 0 && grp > 1 && grp != getpgrp())
				kill(-grp, SIGKILL);
			kill(pid, SIGKILL);
			break;
		}
	}
	closedir(d);
	free(buf);
}

/* The first lap: start what the queues allow. */
static void
tasks_pump_all(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q;

	(void)fd, (void)what, (void)arg;
	LIST_FOREACH(q, &queues, link)
		task_pump(q);
	arena_reset();
}

void
tasks_resume(void)
{
	struct timeval now = { 0, 0 };

	task_orphans();
	kept_trim();    /* the ended tasks read back, by end time */
	/* In id order, so a task's `after` tasks are settled before it. */
	resuming = true;
	for (size_t i = 0; i < n_restored; i++) {
		struct task *t = (struct task *)objects_find(restored[i]);

		if (t == NULL || t->obj.state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
			continue;
		if (t->state == WAITER__V1__TASK_STATE__TASK_STATE_LOST)
			task_done(t, WAITER__V1__TASK_STATE__TASK_STATE_LOST);
		else
			task_admit(&t->obj);
	}
	resuming = false;
	free(restored);
	restored = NULL;
	n_restored = cap_restored = 0;
	/* Start them once the loop runs, the daemon fully up. */
	if (event_base_once(ev_base, -1, EV_TIMEOUT, tasks_pump_all, NULL, &now) < 0)
		fatal("event_base_once");
	arena_reset();
}

/* ------------------------------------------------------------ requests */

/* Check a submission; NULL, or the reason it is refused. */
static const char *
task_check(const Waiter__V1__TaskSubmit *ts)
{
	if (ts->n_argv == 0 && ts->shell[0] == '\0')
		return "give a command: argv, or a shell string";
	if (ts->n_argv > 0 && ts->argv[0][0] == '\0')
		return "the command is an empty string";
	if (ts->n_argv > TASK_MAX_ARGS || ts->n_env > TASK_MAX_ARGS)
		return "too many arguments or environment entries (at most 4096)";
	if (ts->stdin.len > TASK_STDIN_MAX)
		return "stdin is larger than 16 MiB";
	if (ts->n_after > TASK_MAX_AFTER)
		return "at most 256 after dependencies";
	if (ts->timeout_us > (uint64_t)WAITER_MAX_DURATION_US ||
	    ts->kill_grace_us > (uint64_t)WAITER_MAX_DURATION_US)
		return "timeout is longer than the longest duration allowed (10 years)";
	if (ts->output_limit > TASK_OUTPUT_MAX)
		return "output limit is larger than 256 MiB";
	if (ts->queue[0] != '\0' && !queue_name_valid(ts->queue))
		return "a queue name is 1 to 64 characters of letters, digits and ._:@/+-";
	if (ts->cwd[0] != '\0' && ts->cwd[0] != '/')
		return "cwd must be an absolute path";
	if (ts->lifetime < 0 || ts->lifetime > WAITER__V1__LIFETIME__LIFETIME_DAEMON)
		return "unknown lifetime";
	return NULL;
}

/* The after ids must name existing tasks. */
static enum op_result
task_check_after(const Waiter__V1__TaskSubmit *ts, Reply *rep)
{
	for (size_t i = 0; i < ts->n_after; i++) {
		struct object *d = objects_find(ts->after[i]);

		if (d == NULL)
			return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
			    "after: no task with id %llu", (unsigned long long)ts->after[i]);
		if (d->ops != &task_ops)
			return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
			    "after: %llu is a %s, not a task", (unsigned long long)ts->after[i],
			    d->ops->name);
	}
	return OP_DEFERRED;     /* meaning: fine */
}

static struct task *
task_new(const Waiter__V1__TaskSubmit *ts, struct queue *q)
{
	struct task *t = calloc(1, sizeof *t);

	if (t == NULL)
		fatal("calloc");
	t->q = q;
	if (ts->n_argv > 0) {
		t->argv = strv_dup(ts->argv, ts->n_argv);
	} else {
		char *sh[] = { "sh", "-c", ts->shell };

		t->argv = strv_dup(sh, 3);
	}
	t->env = strv_dup(ts->env, ts->n_env);
	t->cwd = ts->cwd[0] != '\0' ? strdup(ts->cwd) : NULL;
	if (ts->stdin.len > 0) {
		t->stdin_data = malloc(ts->stdin.len);
		if (t->stdin_data == NULL)
			fatal("malloc");
		memcpy(t->stdin_data, ts->stdin.data, ts->stdin.len);
		t->stdin_len = ts->stdin.len;
	}
	if (ts->n_after > 0) {
		t->after = malloc(ts->n_after * sizeof *t->after);
		if (t->after == NULL)
			fatal("malloc");
		memcpy(t->after, ts->after, ts->n_after * sizeof *t->after);
		t->n_after = ts->n_after;
	}
	t->timeout_us = ts->timeout_us;
	t->paced = ts->paced;
	t->output_limit = ts->output_limit ? ts->output_limit : TASK_OUTPUT_DEFAULT;
	t->kill_grace_us = ts->kill_grace_us ? ts->kill_grace_us : cfg.kill_grace_us;
	t->stdin_fd = t->pidfd = t->out[0].fd = t->out[1].fd = -1;
	evtimer_assign(&t->timer, ev_base, task_timer_cb, t);
	return t;
}

enum op_result
tasks_op_submit(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__TaskSubmit *ts = req->task_submit;
	const char *why;
	struct object *existing;
	struct user_tasks *u;
	struct queue *q;
	struct task *t;

	if (cfg.no_tasks)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_PERMISSION_DENIED,
		    "this waiterd runs no tasks (started with --no-tasks)");
	if ((why = task_check(ts)) != NULL)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", why);
	if ((existing = objects_find_name(ts->name)) != NULL) {
		if (existing->ops != &task_ops)
			return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_FAILED_PRECONDITION,
			    "the name %s belongs to %s %llu", ts->name, existing->ops->name,
			    (unsigned long long)existing->id);
		return objects_reply_created(existing, true, rep,
		    WAITER__V1__REPLY__RESULT_TASK_SUBMIT);
	}
	if (task_check_after(ts, rep) != OP_DEFERRED ||
	    objects_check_create(c, ts->name, rep) < 0)
		return OP_REPLY;
	if (n_pending >= cfg.max_queued_tasks)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "%llu tasks are already waiting to run, the limit (--max-queued-tasks)",
		    (unsigned long long)n_pending);
	if ((u = user_find(c->uid)) != NULL && u->n >= cfg.max_tasks_per_user)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "uid %u has %llu tasks not yet ended, the limit (--max-tasks-per-user)",
		    (unsigned)c->uid, (unsigned long long)u->n);
	q = queue_get(ts->queue[0] ? ts->queue : "default", true);
	if (q == NULL)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "there are %d queues, the limit", QUEUES_MAX);
	t = task_new(ts, q);
	t->uid = c->uid;
	user_count(t->uid, 1);
	objects_register(&t->obj, &task_ops, c, ts->name,
	    ts->lifetime == WAITER__V1__LIFETIME__LIFETIME_CONNECTION ?
	    WAITER__V1__LIFETIME__LIFETIME_CONNECTION : WAITER__V1__LIFETIME__LIFETIME_DAEMON);
	/* The reply comes before the task can start or end, so the id
	 * reaches the client first; with a state directory, once the record
	 * is durable: a task never runs that a crash could forget. */
	objects_persist(&t->obj);
	return objects_reply_durable_then(c, req, &t->obj, false, rep,
	    WAITER__V1__REPLY__RESULT_TASK_SUBMIT, task_admit);
}

static struct task *
task_find(uint64_t id, Reply *rep)
{
	struct object *o = objects_find(id);

	if (o == NULL || o->ops != &task_ops) {
		op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
		    "no task with id %llu", (unsigned long long)id);
		return NULL;
	}
	return (struct task *)o;
}

enum op_result
tasks_op_kill(struct conn *c, const Request *req, Reply *rep)
{
	static Waiter__V1__Empty empty = WAITER__V1__EMPTY__INIT;
	const Waiter__V1__TaskKill *k = req->task_kill;
	struct task *t = task_find(k->id, rep);
	int sig = k->signal ? k->signal : SIGTERM;

	(void)c;
	if (t == NULL)
		return OP_REPLY;
	if (sig < 1 || sig >= NSIG)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
		    "no signal %d", sig);
	if (t->obj.state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_FAILED_PRECONDITION,
		    "task %llu has already ended", (unsigned long long)t->obj.id);
	if (t->state != WAITER__V1__TASK_STATE__TASK_STATE_RUNNING) {
		task_done(t, WAITER__V1__TASK_STATE__TASK_STATE_CANCELLED);
	} else if (sig == SIGTERM) {
		task_terminate(t, WAITER__V1__TASK_STATE__TASK_STATE_CANCELLED);
	} else {
		/* If this signal ends it, it was killed on request: cancelled.
		 * Job-control signals only pause or resume it. */
		if (sig != SIGSTOP && sig != SIGCONT && sig != SIGTSTP && sig != SIGTTIN &&
		    sig != SIGTTOU && t->kill_state == 0)
			t->kill_state = WAITER__V1__TASK_STATE__TASK_STATE_CANCELLED;
		task_signal(t, sig);
	}
	rep->result_case = WAITER__V1__REPLY__RESULT_TASK_KILL;
	rep->task_kill = &empty;
	return OP_REPLY;
}

static void
stream_copy(struct stream *s, ProtobufCBinaryData *out)
{
	size_t n = s->tail ? evbuffer_get_length(s->tail) : 0;

	out->len = n;
	out->data = n ? arena_alloc(n) : NULL;
	if (n)
		evbuffer_copyout(s->tail, out->data, n);
}

enum op_result
tasks_op_logs(struct conn *c, const Request *req, Reply *rep)
{
	struct task *t = task_find(req->task_logs->id, rep);
	Waiter__V1__TaskLogsReply *r;

	(void)c;
	if (t == NULL)
		return OP_REPLY;
	r = arena_alloc(sizeof *r);
	waiter__v1__task_logs_reply__init(r);
	stream_copy(&t->out[0], &r->stdout);
	stream_copy(&t->out[1], &r->stderr);
	r->stdout_dropped = t->out[0].dropped;
	r->stderr_dropped = t->out[1].dropped;
	r->output_released = t->output_released;
	r->last_seq = events_last_seq();
	r->done = t->obj.state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE;
	rep->result_case = WAITER__V1__REPLY__RESULT_TASK_LOGS;
	rep->task_logs = r;
	return OP_REPLY;
}

static Waiter__V1__QueueInfo *
queue_info(struct queue *q)
{
	Waiter__V1__QueueInfo *qi = arena_alloc(sizeof *qi);

	waiter__v1__queue_info__init(qi);
	qi->name = q->name;
	qi->parallel = q->parallel;
	qi->running = q->running;
	qi->queued = q->queued;
	return qi;
}

enum op_result
tasks_op_queue_set(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__QueueSet *qs = req->queue_set;
	struct queue *q;

	(void)c;
	if (!queue_name_valid(qs->queue))
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
		    "a queue name is 1 to 64 characters of letters, digits and ._:@/+-");
	if (qs->parallel < 1 || qs->parallel > 100000)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
		    "parallel must be from 1 to 100000");
	if ((q = queue_get(qs->queue, true)) == NULL)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "there are %d queues, the limit", QUEUES_MAX);
	q->parallel = qs->parallel;
	queue_persist(q);
	task_pump(q);
	rep->result_case = WAITER__V1__REPLY__RESULT_QUEUE_SET;
	rep->queue_set = queue_info(q);
	return OP_REPLY;
}

enum op_result
tasks_op_queue_list(struct conn *c, const Request *req, Reply *rep)
{
	Waiter__V1__QueueListReply *r = arena_alloc(sizeof *r);
	struct queue *q;
	size_t i = 0;

	(void)c, (void)req;
	waiter__v1__queue_list_reply__init(r);
	r->queues = arena_alloc((n_queues + 1) * sizeof *r->queues);
	LIST_FOREACH(q, &queues, link)
		r->queues[i++] = queue_info(q);
	r->n_queues = i;
	rep->result_case = WAITER__V1__REPLY__RESULT_QUEUE_LIST;
	rep->queue_list = r;
	return OP_REPLY;
}

void
tasks_init(void)
{
	queue_get("default", true);
	sigchld_ev = evsignal_new(ev_base, SIGCHLD, sigchld_cb, NULL);
	if (sigchld_ev == NULL || evsignal_add(sigchld_ev, NULL) < 0)
		fatal("evsignal SIGCHLD");
}

uint64_t
tasks_running(void)
{
	return n_running;
}

void
tasks_count(uint64_t *n_waiting, uint64_t *n_queued, uint64_t *n_run)
{
	struct queue *q;

	*n_queued = 0;
	LIST_FOREACH(q, &queues, link)
		*n_queued += q->queued;
	*n_waiting = n_pending - *n_queued;
	*n_run = n_running;
}

void
tasks_on_idle(void (*cb)(void))
{
	idle_cb = cb;
}

void
tasks_free(void)
{
	struct queue *q;

	/* The loop has ended (main frees objects, then us): waiting here
	 * blocks no one. Each got SIGKILL, so each wait is short. */
	for (size_t i = 0; i < n_exit_pids; i++)
		waitpid(exit_pids[i], NULL, 0);
	free(exit_pids);
	exit_pids = NULL;
	n_exit_pids = cap_exit_pids = 0;
	tdestroy(users, free);
	users = NULL;
	if (sigchld_ev != NULL)
		event_free(sigchld_ev);
	sigchld_ev = NULL;
	while ((q = LIST_FIRST(&queues)) != NULL) {
		LIST_REMOVE(q, link);
		free(q->name);
		free(q);
	}
	n_queues = 0;
	idle_cb = NULL;
	free(restored);
	restored = NULL;
	n_restored = cap_restored = 0;
	last_slot = 0;
}
