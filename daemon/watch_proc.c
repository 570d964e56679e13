/* watch_proc.c - the process-watch source (see watch_proc.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event_struct.h>

#include "events.h"
#include "log.h"
#include "objects.h"
#include "procid.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "watch_proc.h"

struct watch_proc {
	struct object obj;
	/* EV_READ on pidfd: the process has exited; or, restored, the end
	 * of a watch whose process went while the daemon was down. */
	struct event ev;
	bool armed;             /* ev is assigned and may be pending */
	bool unwatchable;       /* restored, its process still there: no pidfd */
	int pidfd;              /* -1 when none */
	pid_t pid;
	uint64_t proc_start;    /* its start time (procid.h), 0 if unknown */
	uint64_t events;        /* events published: 0, then 1 */
};

static void
watch_proc_stop(struct object *o)
{
	struct watch_proc *w = (struct watch_proc *)o;

	if (w->armed)
		event_del(&w->ev);
	w->armed = false;
	if (w->pidfd >= 0)
		close(w->pidfd);
	w->pidfd = -1;
}

static void
watch_proc_describe(struct object *o, ObjectInfo *info)
{
	struct watch_proc *w = (struct watch_proc *)o;
	Waiter__V1__WatchInfo *wi = arena_alloc(sizeof *wi);

	waiter__v1__watch_info__init(wi);
	wi->type = WAITER__V1__WATCH_TYPE__WATCH_TYPE_PID;
	wi->pid = w->pid;
	wi->events = w->events;
	info->detail_case = WAITER__V1__OBJECT_INFO__DETAIL_WATCH;
	info->watch = wi;
}

static void
watch_proc_free(struct object *o)
{
	watch_proc_stop(o);
	free(o);
}

/* The record of a process watch: the pid, and what tells its process
 * from another one given the same pid later (procid.h). */
static void
watch_proc_persist(struct object *o)
{
	struct watch_proc *w = (struct watch_proc *)o;
	Waiter__State__V1__StoredObject so = WAITER__STATE__V1__STORED_OBJECT__INIT;
	Waiter__State__V1__StoredProcWatch sp = WAITER__STATE__V1__STORED_PROC_WATCH__INIT;

	sp.pid = w->pid;
	sp.proc_start = w->proc_start;
	/* An active watch is of this boot: a restored one resumes only if
	 * its boot is this one. */
	sp.boot_id = (char *)procid_boot_id();
	sp.events = w->events;
	so.kind_case = WAITER__STATE__V1__STORED_OBJECT__KIND_PROC_WATCH;
	so.proc_watch = &sp;
	state_put(o, &so);
}

static const struct object_ops watch_proc_ops = {
	.kind = WAITER__V1__OBJECT_KIND__OBJECT_KIND_WATCH,
	.name = "watch",
	.stop = watch_proc_stop,
	.describe = watch_proc_describe,
	.free = watch_proc_free,
	.persist = watch_proc_persist,
};

/*
 * The exit status, if the kernel gives it without reaping: only for a
 * child of the daemon (a task) not reaped yet. WNOWAIT leaves the zombie
 * to tasks.c, which reaps its own; for any other process waitid fails
 * with ECHILD and the event says only that the process is gone.
 */
static void
watch_proc_status(int pidfd, Waiter__V1__ProcessExited *pe)
{
	siginfo_t si;

	memset(&si, 0, sizeof si);
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
	    si.si_pid == 0)
		return;
	pe->has_status = true;
	if (si.si_code == CLD_EXITED)
		pe->exit_code = si.si_status;
	else
		pe->signal = si.si_status;
}

/* The process has exited: publish PROCESS_EXITED (with the status if
 * pidfd, when not -1, gives it) and complete the watch. */
static void
watch_proc_exited(struct watch_proc *w, int pidfd)
{
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__ProcessExited pe = WAITER__V1__PROCESS_EXITED__INIT;
	uint64_t seq;

	pe.pid = w->pid;
	if (pidfd >= 0)
		watch_proc_status(pidfd, &pe);
	ev.object_id = w->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_PROCESS_EXITED;
	ev.body_case = WAITER__V1__EVENT__BODY_PROCESS_EXITED;
	ev.process_exited = &pe;
	w->events++;
	seq = events_publish(&ev, w->obj.owner);
	objects_finish(&w->obj, WAITER__V1__OBJECT_STATE__OBJECT_STATE_COMPLETED, seq);
}

/* The pidfd is readable: the process has exited. */
static void
watch_proc_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t begin = stats_lap_begin();

	(void)what;
	watch_proc_exited(arg, fd);
	stats_lap_end(begin, "watch_pid", 0);
	arena_reset();
}

/* Start listening on the pidfd: once the create is answered, so the event
 * (at once for a process gone already) follows the reply. */
static void
watch_proc_arm(struct object *o)
{
	struct watch_proc *w = (struct watch_proc *)o;

	if (w->pidfd < 0 || w->armed)
		return;
	if (event_add(&w->ev, NULL) < 0) {
		log_warn("watch_pid_arm_failed id=%llu pid=%d: cancelled",
		    (unsigned long long)o->id, (int)w->pid);
		objects_cancel(o, WAITER__V1__CANCEL_REASON__CANCEL_REASON_UNSPECIFIED);
		return;
	}
	w->armed = true;
}

/* Validate a WatchPid; 0, or -1 with rep holding the error. */
static int
watch_proc_check(const Waiter__V1__WatchPid *wp, Reply *rep)
{
	const char *why = NULL;

	if (wp->pid < 1)
		why = "pid must be 1 or more";
	else if (wp->lifetime < 0 || wp->lifetime > WAITER__V1__LIFETIME__LIFETIME_DAEMON)
		why = "unknown lifetime";
	if (why == NULL)
		return 0;
	op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", why);
	return -1;
}

/* Say at start when pidfd_open is missing (Linux before 5.3, or valgrind,
 * which does not know it): process watches will answer UNSUPPORTED and
 * task exits come by SIGCHLD. Operators and tests read it in the log. */
void
watch_proc_init(void)
{
	int fd = pidfd_open(getpid(), 0);

	if (fd >= 0) {
		close(fd);
		return;
	}
	log_warn("pidfd_unavailable errno=%d process_watches=unsupported "
	    "task_exits=sigchld", errno);
}

/* pidfd_open failed with err: the error for the client. */
static enum op_result
watch_proc_open_error(int err, pid_t pid, Reply *rep)
{
	switch (err) {
	case ESRCH:
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND,
		    "no process with pid %d", (int)pid);
	case EINVAL:
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT,
		    "pid %d is a thread, not a process: watch its process (Tgid in "
		    "/proc/%d/status)", (int)pid, (int)pid);
	case ENOSYS:
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_UNSUPPORTED_OPERATION,
		    "this kernel cannot watch processes: pidfd_open needs Linux 5.3 "
		    "or later (or the daemon runs where it is not allowed, e.g. "
		    "under valgrind)");
	case EMFILE:
	case ENFILE:
	case ENOMEM:
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "the daemon cannot open a pidfd for pid %d: %s", (int)pid,
		    strerror(err));
	default:
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
		    "cannot watch pid %d: pidfd_open: %s", (int)pid, strerror(err));
	}
}

enum op_result
watch_proc_op_create(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__WatchPid *wp = req->watch_pid;
	struct object *existing;
	struct watch_proc *w;
	int fd;

	if (watch_proc_check(wp, rep) < 0)
		return OP_REPLY;
	/* An existing name answers before any limit: a retry must succeed. */
	if ((existing = objects_find_name(wp->name)) != NULL) {
		if (existing->ops != &watch_proc_ops)
			return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_FAILED_PRECONDITION,
			    "the name %s belongs to %s %llu", wp->name,
			    existing->ops->name, (unsigned long long)existing->id);
		return objects_reply_durable(c, req, existing, true, rep,
		    WAITER__V1__REPLY__RESULT_WATCH_PID);
	}
	if (objects_check_create(c, wp->name, rep) < 0)
		return OP_REPLY;
	if ((fd = pidfd_open(wp->pid, 0)) < 0) {
		int err = errno;

		log_debug("pidfd_open pid=%d errno=%d", (int)wp->pid, err);
		return watch_proc_open_error(err, wp->pid, rep);
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		close(fd);
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "out of memory");
	}
	w->pidfd = fd;
	w->pid = wp->pid;
	/* Read after pidfd_open: if the process is still there, this is its
	 * start time; if it went already, the watch ends on the next lap. */
	w->proc_start = procid_start(wp->pid);
	/* A process gone since pidfd_open leaves the pidfd readable at once:
	 * the event comes on a later lap, after the reply (watch_proc_arm). */
	event_assign(&w->ev, ev_base, fd, EV_READ, watch_proc_exit_cb, w);
	objects_register(&w->obj, &watch_proc_ops, c, wp->name,
	    wp->lifetime == WAITER__V1__LIFETIME__LIFETIME_DAEMON ?
	    WAITER__V1__LIFETIME__LIFETIME_DAEMON : WAITER__V1__LIFETIME__LIFETIME_CONNECTION);
	objects_persist(&w->obj);
	return objects_reply_durable_then(c, req, &w->obj, false, rep,
	    WAITER__V1__REPLY__RESULT_WATCH_PID, watch_proc_arm);
}

/* A restored watch whose process cannot be watched again: it went while
 * the daemon was down (or its pid now names another process), so it ended
 * as exited, status unknown; or it is there but pidfd_open fails now. */
static void
watch_proc_gone_cb(evutil_socket_t fd, short what, void *arg)
{
	struct watch_proc *w = arg;
	int64_t begin = stats_lap_begin();

	(void)fd, (void)what;
	w->armed = false;
	if (w->unwatchable) {
		log_warn("watch_pid_cancelled id=%llu pid=%d detail=\"its process runs, "
		    "but it cannot be watched now (no pidfd)\"", (unsigned long long)w->obj.id,
		    (int)w->pid);
		objects_cancel(&w->obj, WAITER__V1__CANCEL_REASON__CANCEL_REASON_UNSPECIFIED);
	} else {
		watch_proc_exited(w, -1);
	}
	stats_lap_end(begin, "watch_pid", 0);
	arena_reset();
}

/*
 * Watch a restored watch's process again, if it is the same process: the
 * pid, the start time and the boot all match. The start time is read
 * after pidfd_open, so a match means the pidfd is that process's (it ran
 * before the open and still runs after it). Anything else ends the watch
 * on the first lap (the event seqs are not set up yet), never waiting on
 * a stranger.
 */
static void
watch_proc_resume(struct watch_proc *w, const char *boot_id)
{
	bool same = w->proc_start != 0 && strcmp(boot_id, procid_boot_id()) == 0;
	int fd = -1, err = 0;
	const char *why = w->proc_start == 0 ? "start_unknown" : "other_boot";

	if (same) {
		fd = pidfd_open(w->pid, 0);
		err = fd < 0 ? errno : 0;
		same = !(fd < 0 && err == ESRCH) && procid_start(w->pid) == w->proc_start;
		why = same ? "not_watchable" : "exited_or_pid_reused";
	}
	if (same && fd >= 0) {
		w->pidfd = fd;
		event_assign(&w->ev, ev_base, fd, EV_READ, watch_proc_exit_cb, w);
		if (event_add(&w->ev, NULL) == 0) {
			w->armed = true;
			return;
		}
		err = errno;
		close(fd);
		w->pidfd = -1;
	} else if (fd >= 0) {
		close(fd);
	}
	w->unwatchable = same;
	log_info("watch_pid_not_resumed id=%llu pid=%d reason=%s errno=%d",
	    (unsigned long long)w->obj.id, (int)w->pid, why, err);
	event_assign(&w->ev, ev_base, -1, 0, watch_proc_gone_cb, w);
	event_active(&w->ev, EV_TIMEOUT, 1);
	w->armed = true;
}

void
watch_proc_restore(uint64_t id, const Waiter__State__V1__StoredObject *so)
{
	const Waiter__State__V1__StoredProcWatch *sp = so->proc_watch;
	struct watch_proc *w = calloc(1, sizeof *w);

	if (w == NULL)
		fatal("calloc");
	w->pidfd = -1;
	w->pid = sp->pid;
	w->proc_start = sp->proc_start;
	w->events = sp->events;
	objects_restore(&w->obj, &watch_proc_ops, id, so);
	if (objects_restored_active(&w->obj))
		watch_proc_resume(w, sp->boot_id);
}
