/* watch_path.c - the path-watch source (see watch_path.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "objects.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "strv.h"
#include "watch_path.h"
#include "workers.h"

/* Every kernel watch has the same mask, so watches share them freely;
 * each path watch filters what it reports. Only directories are watched:
 * a file is watched through its directory, which also sees it replaced. */
#define KMASK (IN_CREATE | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
	IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/* Bytes of inotify events read per callback: a storm of changes gets a
 * turn, not the loop. */
#define READ_CHUNK (64 * 1024)
/* Events for a directory whose worker has not reported yet are held (the
 * worker added the kernel watch; the loop does not know it yet). */
#define HELD_MAX 4096

struct pw;

/* One kernel watch: a directory. */
struct kdir {
	int wd;
	char *path;                     /* absolute, as last reported */
	unsigned refs;                  /* uses */
	LIST_HEAD(, use) uses;
	LIST_ENTRY(kdir) unused_link;   /* on `unused` while refs is 0 */
};

/* A path watch's use of a kernel directory. */
struct use {
	struct pw *w;
	struct kdir *d;
	int root;                       /* index in w->roots */
	char *rel;                      /* d relative to the root; "" for the root */
	char *only;                     /* a file root: only this entry; or --create:
	                                 * the next component awaited */
	bool awaiting;                  /* --create: waiting for `only` to appear */
	LIST_ENTRY(use) d_link;
	LIST_ENTRY(use) w_link;
};

struct change {
	Waiter__V1__PathEventKind kind;
	char *path, *old_path;
	bool dir;
};

/* A worker's walk of a directory tree, or of a root being established. */
struct scan {
	struct pw *w;                   /* NULL once the watch stopped */
	int root;
	char *path;                     /* what to walk (or establish) */
	char *rel;
	bool establish;                 /* a root: may be a file, may not exist */
	bool create;                    /* establish: wait for a missing root */
	bool recursive, report;         /* report: what is found is new */
	unsigned budget;                /* directories it may add */
	char **exclude;
	size_t n_exclude;
	/* results */
	int err;                        /* errno of the failure, 0 */
	char *errmsg;
	bool over_budget;
	bool is_file, awaiting;
	bool appeared;                  /* awaiting, yet it is there already */
	bool initial;                   /* one of the create request's walks */
	bool restore;                   /* one of a restored watch's walks */
	char *only;
	struct { int wd; char *path, *rel; } *dirs;
	size_t n_dirs, cap_dirs;
	struct { char *rel; bool dir; } *found;
	size_t n_found, cap_found;
	LIST_ENTRY(scan) w_link;
};

struct pw {
	struct object obj;
	char **roots;
	size_t n_roots;
	bool recursive, once, create;
	uint32_t on;                    /* bit per PathEventKind; 0 all */
	char **include, **exclude;
	size_t n_include, n_exclude;
	uint64_t settle_us;
	struct event settle_ev;
	struct change *pending;         /* settle: the burst so far */
	size_t n_pending;
	uint64_t more;
	uint64_t events;
	unsigned n_dirs;
	bool ended;
	/* Establishing: the create request is answered (or, restored, the
	 * watch says it may have missed changes) when every root's walk is
	 * done. */
	unsigned establishing;
	bool resume;                    /* restored: its walks start on the first lap */
	/* In place, its create not yet answered (its record is being
	 * written): changes are gathered, and an end kept, until the reply
	 * is sent, which comes before any event (pw_answered). */
	bool unanswered;
	struct {
		Waiter__V1__WatchEndReason reason;
		char *path, *message;   /* message set: it ended meanwhile */
	} end;
	struct conn *creator;
	uint64_t req_id;
	char *fail;                     /* the first failure while establishing */
	Waiter__V1__ErrorCode fail_code;
	LIST_HEAD(, use) uses;
	LIST_HEAD(, scan) scans;
	bool in_all;
	LIST_ENTRY(pw) all_link;
};

struct held {
	int wd;
	uint32_t mask, cookie;
	char *name;
	STAILQ_ENTRY(held) link;
};

static int ifd = -1;
static struct event *ifd_ev;
static struct event *sweep_ev;
static struct event *resume_ev;         /* restored watches' walks: first lap */
static void *kdirs;                     /* tsearch tree by wd */
static unsigned scans_in_flight;
static STAILQ_HEAD(, held) held = STAILQ_HEAD_INITIALIZER(held);
static unsigned n_held;
static bool held_overflow;
static LIST_HEAD(, pw) all = LIST_HEAD_INITIALIZER(all);  /* for overflow */
/* Kernel watches no use holds, kept while a worker could be adding the
 * same wd again; removed once no walk is in flight. */
static LIST_HEAD(, kdir) unused = LIST_HEAD_INITIALIZER(unused);
static unsigned n_kdirs;

static void pw_end(struct pw *w, Waiter__V1__WatchEndReason reason, const char *path,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static struct scan *scan_start(struct pw *w, int root, const char *path,
    const char *rel, bool establish, bool report);
static void scan_done(void *arg);
static void busy_begin(void);
static void busy_end(void);

/* ------------------------------------------------------- kernel watches */

static int
kdir_cmp(const void *a, const void *b)
{
	int x = ((const struct kdir *)a)->wd, y = ((const struct kdir *)b)->wd;

	return x < y ? -1 : x > y;
}

static struct kdir *
kdir_find(int wd)
{
	struct kdir key = { .wd = wd };
	void *p = tfind(&key, &kdirs, kdir_cmp);

	return p ? *(struct kdir **)p : NULL;
}

/* d has no use left: forget it (the kernel watch is gone or removed). */
static void
kdir_forget(struct kdir *d)
{
	LIST_REMOVE(d, unused_link);
	n_kdirs--;
	tdelete(d, &kdirs, kdir_cmp);
	free(d->path);
	free(d);
}

/* Remove the kernel watches nobody uses, unless a walk could be adding
 * one of them again right now. */
static void
kdir_sweep(void)
{
	struct kdir *d;

	while (scans_in_flight == 0 && (d = LIST_FIRST(&unused)) != NULL) {
		inotify_rm_watch(ifd, d->wd);
		kdir_forget(d);
	}
}

static struct kdir *
kdir_get(int wd, const char *path)
{
	struct kdir *d = kdir_find(wd);

	if (d != NULL) {
		if (strcmp(d->path, path) != 0) {       /* moved, and found again */
			free(d->path);
			if ((d->path = strdup(path)) == NULL)
				fatal("strdup");
		}
		return d;
	}
	if ((d = calloc(1, sizeof *d)) == NULL || (d->path = strdup(path)) == NULL)
		fatal("calloc");
	d->wd = wd;
	LIST_INIT(&d->uses);
	if (tsearch(d, &kdirs, kdir_cmp) == NULL)
		fatal("tsearch");
	LIST_INSERT_HEAD(&unused, d, unused_link);      /* until its first use */
	n_kdirs++;
	return d;
}

static void
use_add(struct pw *w, struct kdir *d, int root, const char *rel, const char *only,
    bool awaiting)
{
	struct use *u;

	/* A walk may meet a directory this watch already has (d's uses are
	 * few: one per watch covering it). */
	LIST_FOREACH(u, &d->uses, d_link)
		if (u->w == w && u->root == root && u->awaiting == awaiting &&
		    ((u->only == NULL && only == NULL) ||
		    (u->only != NULL && only != NULL && strcmp(u->only, only) == 0)))
			return;
	if ((u = calloc(1, sizeof *u)) == NULL || (u->rel = strdup(rel)) == NULL ||
	    (only != NULL && (u->only = strdup(only)) == NULL))
		fatal("calloc");
	u->w = w;
	u->d = d;
	u->root = root;
	u->awaiting = awaiting;
	if (d->refs++ == 0)
		LIST_REMOVE(d, unused_link);
	LIST_INSERT_HEAD(&d->uses, u, d_link);
	LIST_INSERT_HEAD(&w->uses, u, w_link);
	w->n_dirs++;
	if (w->obj.owner != NULL)
		w->obj.owner->watched_dirs++;
}

static void
use_del(struct use *u)
{
	struct pw *w = u->w;

	LIST_REMOVE(u, d_link);
	LIST_REMOVE(u, w_link);
	if (--u->d->refs == 0)
		LIST_INSERT_HEAD(&unused, u->d, unused_link);
	w->n_dirs--;
	if (w->obj.owner != NULL)
		w->obj.owner->watched_dirs--;
	free(u->rel);
	free(u->only);
	free(u);
}

/* ------------------------------------------------------------- walking */

/* Does rel match a glob: the whole relative path, or for a glob without
 * '/' its last component? */
static bool
globs_match(char *const *globs, size_t n, const char *rel)
{
	const char *base = strrchr(rel, '/');

	base = base ? base + 1 : rel;
	for (size_t i = 0; i < n; i++) {
		if (fnmatch(globs[i], rel, 0) == 0)
			return true;
		if (strchr(globs[i], '/') == NULL && fnmatch(globs[i], base, 0) == 0)
			return true;
	}
	return false;
}

static char *
path_join(const char *a, const char *b)
{
	char *s;

	if (a[0] == '\0')
		return strdup(b);
	if (asprintf(&s, "%s/%s", strcmp(a, "/") == 0 ? "" : a, b) < 0)
		return NULL;
	return s;
}

static void
scan_dir_add(struct scan *s, int wd, const char *path, const char *rel)
{
	if (s->n_dirs == s->cap_dirs) {
		s->cap_dirs = s->cap_dirs ? s->cap_dirs * 2 : 16;
		if ((s->dirs = realloc(s->dirs, s->cap_dirs * sizeof *s->dirs)) == NULL)
			fatal("realloc");
	}
	s->dirs[s->n_dirs].wd = wd;
	s->dirs[s->n_dirs].path = strdup(path);
	s->dirs[s->n_dirs++].rel = strdup(rel);
}

static void
scan_found(struct scan *s, const char *rel, bool dir)
{
	if (s->n_found == s->cap_found) {
		s->cap_found = s->cap_found ? s->cap_found * 2 : 16;
		if ((s->found = realloc(s->found, s->cap_found * sizeof *s->found)) == NULL)
			fatal("realloc");
	}
	s->found[s->n_found].rel = strdup(rel);
	s->found[s->n_found++].dir = dir;
}

static void
scan_fail(struct scan *s, int err, const char *path)
{
	s->err = err;
	if (err == ENOSPC)
		(void)!asprintf(&s->errmsg, "the kernel's limit of inotify watches for this "
		    "user was reached at %s (sysctl fs.inotify.max_user_watches)", path);
	else if (err == EMFILE)
		(void)!asprintf(&s->errmsg, "the kernel's limit of inotify instances was "
		    "reached (sysctl fs.inotify.max_user_instances)");
	else
		(void)!asprintf(&s->errmsg, "cannot watch %s: %s", path, strerror(err));
}

/* Add a kernel watch to path and, recursively, its subdirectories. Runs on
 * a worker; an explicit stack, not recursion. */
static void
scan_walk(struct scan *s, const char *top, const char *top_rel)
{
	struct frame { char *path, *rel; } *stack = NULL;
	size_t n = 0, cap = 0;

	stack = malloc(sizeof *stack);
	if (stack == NULL)
		fatal("malloc");
	cap = 1;
	stack[n].path = strdup(top);
	stack[n++].rel = strdup(top_rel);
	while (n > 0) {
		struct frame f = stack[--n];
		DIR *dir;
		struct dirent *de;
		int wd;

		if (s->n_dirs >= s->budget) {
			s->over_budget = true;
			goto next;
		}
		wd = inotify_add_watch(ifd, f.path, KMASK);
		if (wd < 0) {
			/* A subdirectory gone or unreadable meanwhile is skipped;
			 * the top one, or a kernel limit, fails the walk. */
			if (s->n_dirs == 0 || errno == ENOSPC || errno == EMFILE) {
				scan_fail(s, errno, f.path);
				free(f.path);
				free(f.rel);
				break;
			}
			goto next;
		}
		scan_dir_add(s, wd, f.path, f.rel);
		if (!s->recursive && !s->report)
			goto next;
		if ((dir = opendir(f.path)) == NULL)
			goto next;
		while ((de = readdir(dir)) != NULL) {
			char *p, *r;
			bool is_dir;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (de->d_type == DT_UNKNOWN) {
				struct stat st;

				is_dir = fstatat(dirfd(dir), de->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
			} else {
				is_dir = de->d_type == DT_DIR;
			}
			r = path_join(f.rel, de->d_name);
			if (r == NULL)
				fatal("asprintf");
			if (s->report && !(is_dir && globs_match(s->exclude, s->n_exclude, r)))
				scan_found(s, r, is_dir);
			if (is_dir && s->recursive && !globs_match(s->exclude, s->n_exclude, r)) {
				if ((p = path_join(f.path, de->d_name)) == NULL)
					fatal("asprintf");
				if (n == cap) {
					cap *= 2;
					if ((stack = realloc(stack, cap * sizeof *stack)) == NULL)
						fatal("realloc");
				}
				stack[n].path = p;
				stack[n++].rel = r;
			} else {
				free(r);
			}
		}
		closedir(dir);
next:
		free(f.path);
		free(f.rel);
	}
	while (n > 0) {
		free(stack[--n].path);
		free(stack[n].rel);
	}
	free(stack);
}

/* Establish a root: a directory is walked; a file is watched through its
 * directory; a missing path, with --create, through its nearest existing
 * ancestor, awaiting the next component. */
static void
scan_establish(struct scan *s)
{
	struct stat st;
	char *copy, *slash;
	int wd;

	if (stat(s->path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			scan_walk(s, s->path, "");
			return;
		}
		s->is_file = true;
		copy = strdup(s->path);
		slash = strrchr(copy, '/');
		s->only = strdup(slash + 1);
		*slash = '\0';
		wd = inotify_add_watch(ifd, copy[0] ? copy : "/", KMASK);
		if (wd < 0)
			scan_fail(s, errno, copy[0] ? copy : "/");
		else
			scan_dir_add(s, wd, copy[0] ? copy : "/", "");
		free(copy);
		return;
	}
	if (errno != ENOENT || !s->create) {
		s->err = errno;
		if (s->err == ENOENT)
			(void)!asprintf(&s->errmsg, "%s does not exist (--create waits for it)",
			    s->path);
		else
			(void)!asprintf(&s->errmsg, "cannot watch %s: %s", s->path,
			    strerror(s->err));
		return;
	}
	/* The nearest existing ancestor, and the component after it. */
	copy = strdup(s->path);
	for (;;) {
		slash = strrchr(copy, '/');
		free(s->only);
		s->only = strdup(slash + 1);
		*slash = '\0';
		if (stat(copy[0] ? copy : "/", &st) == 0 && S_ISDIR(st.st_mode))
			break;
		if (copy[0] == '\0') {
			s->err = ENOENT;
			(void)!asprintf(&s->errmsg, "no directory above %s exists", s->path);
			free(copy);
			return;
		}
	}
	s->awaiting = true;
	wd = inotify_add_watch(ifd, copy[0] ? copy : "/", KMASK);
	if (wd < 0) {
		scan_fail(s, errno, copy[0] ? copy : "/");
	} else {
		char *next = path_join(copy[0] ? copy : "/", s->only);

		scan_dir_add(s, wd, copy[0] ? copy : "/", "");
		/* It may have appeared before the watch: no event will say. */
		s->appeared = next != NULL && stat(next, &st) == 0;
		free(next);
	}
	free(copy);
}

static void
scan_run(void *arg)
{
	struct scan *s = arg;

	if (s->establish)
		scan_establish(s);
	else
		scan_walk(s, s->path, s->rel);
}

static void
scan_free(struct scan *s)
{
	for (size_t i = 0; i < s->n_dirs; i++) {
		free(s->dirs[i].path);
		free(s->dirs[i].rel);
	}
	for (size_t i = 0; i < s->n_found; i++)
		free(s->found[i].rel);
	free(s->dirs);
	free(s->found);
	strv_free(s->exclude);
	free(s->path);
	free(s->rel);
	free(s->errmsg);
	free(s->only);
	free(s);
}

/* ------------------------------------------------------------ reporting */

static void
pw_publish(struct pw *w, Waiter__V1__PathChange **changes, size_t n, uint64_t more)
{
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__PathChanged pc = WAITER__V1__PATH_CHANGED__INIT;
	uint64_t seq;

	pc.changes = changes;
	pc.n_changes = n;
	pc.more = more;
	pc.last = w->once;
	ev.object_id = w->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_PATH_CHANGED;
	ev.body_case = WAITER__V1__EVENT__BODY_PATH_CHANGED;
	ev.path_changed = &pc;
	w->events++;
	seq = events_publish(&ev, w->obj.owner);
	if (w->once) {
		w->ended = true;
		objects_finish(&w->obj, WAITER__V1__OBJECT_STATE__OBJECT_STATE_COMPLETED, seq);
	}
}

static void
settle_flush(struct pw *w)
{
	Waiter__V1__PathChange **list, *pcs;

	if (w->n_pending == 0)
		return;
	list = calloc(w->n_pending, sizeof *list);
	pcs = calloc(w->n_pending, sizeof *pcs);
	if (list == NULL || pcs == NULL)
		fatal("calloc");
	for (size_t i = 0; i < w->n_pending; i++) {
		waiter__v1__path_change__init(&pcs[i]);
		pcs[i].kind = w->pending[i].kind;
		pcs[i].path = w->pending[i].path;
		pcs[i].old_path = w->pending[i].old_path ? w->pending[i].old_path : (char *)"";
		pcs[i].is_dir = w->pending[i].dir;
		list[i] = &pcs[i];
	}
	{
		size_t n = w->n_pending;
		uint64_t more = w->more;
		struct change *pending = w->pending;

		w->pending = NULL;
		w->n_pending = 0;
		w->more = 0;
		pw_publish(w, list, n, more);   /* may finish (and stop) w */
		for (size_t i = 0; i < n; i++) {
			free(pending[i].path);
			free(pending[i].old_path);
		}
		free(pending);
	}
	free(list);
	free(pcs);
}

static void
settle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pw *w = arg;
	int64_t begin = stats_lap_begin();

	(void)fd, (void)what;
	busy_begin();
	settle_flush(w);
	busy_end();
	arena_reset();
	stats_lap_end(begin, "watch_settle", 0);
}

/* A change this watch may report: filter it, then publish or gather it;
 * false if the filters dropped it. */
static bool
pw_change(struct pw *w, Waiter__V1__PathEventKind kind, const char *path,
    const char *old_path, const char *rel, bool dir)
{
	if (w->ended)
		return false;
	if (w->on != 0 && !(w->on & (1u << kind)))
		return false;
	if (rel[0] != '\0') {
		if (w->n_include > 0 && !globs_match(w->include, w->n_include, rel))
			return false;
		if (globs_match(w->exclude, w->n_exclude, rel))
			return false;
	}
	if (w->settle_us == 0 && !w->unanswered) {
		Waiter__V1__PathChange pc = WAITER__V1__PATH_CHANGE__INIT, *list = &pc;

		pc.kind = kind;
		pc.path = (char *)path;
		pc.old_path = (char *)(old_path ? old_path : "");
		pc.is_dir = dir;
		pw_publish(w, &list, 1, 0);
		return true;
	}
	for (size_t i = 0; i < w->n_pending; i++)
		if (w->pending[i].kind == kind && strcmp(w->pending[i].path, path) == 0)
			goto rearm;
	if (w->n_pending >= WATCH_SETTLE_MAX_CHANGES) {
		w->more++;
	} else {
		struct change *ch;

		if (w->pending == NULL &&
		    (w->pending = calloc(WATCH_SETTLE_MAX_CHANGES, sizeof *w->pending)) == NULL)
			fatal("calloc");
		ch = &w->pending[w->n_pending++];
		ch->kind = kind;
		ch->path = strdup(path);
		ch->old_path = old_path ? strdup(old_path) : NULL;
		ch->dir = dir;
	}
rearm:
	if (!w->unanswered) {
		struct timeval tv = clock_tv((int64_t)w->settle_us);

		evtimer_add(&w->settle_ev, &tv);
	}
	return true;
}

/* Publish WATCH_ENDED and fail w, after what it gathered (if that did
 * not complete it: once). */
static void
pw_end_publish(struct pw *w, Waiter__V1__WatchEndReason reason, const char *path,
    const char *msg)
{
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__WatchEnded we = WAITER__V1__WATCH_ENDED__INIT;
	uint64_t seq;

	settle_flush(w);
	if (w->obj.state != WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
		return;
	we.reason = reason;
	we.path = (char *)path;
	we.message = (char *)msg;
	ev.object_id = w->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_WATCH_ENDED;
	ev.body_case = WAITER__V1__EVENT__BODY_WATCH_ENDED;
	ev.watch_ended = &we;
	w->ended = true;
	seq = events_publish(&ev, w->obj.owner);
	objects_finish(&w->obj, WAITER__V1__OBJECT_STATE__OBJECT_STATE_FAILED, seq);
}

static void
pw_end(struct pw *w, Waiter__V1__WatchEndReason reason, const char *path, const char *fmt,
    ...)
{
	va_list ap;
	char *msg = NULL;

	if (w->ended)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (w->unanswered) {
		/* Told once the create is answered; nothing more to gather. */
		w->ended = true;
		w->end.reason = reason;
		if ((w->end.path = strdup(path)) == NULL)
			fatal("strdup");
		w->end.message = msg != NULL ? msg : strdup("");
		return;
	}
	pw_end_publish(w, reason, path, msg ? msg : "");
	free(msg);
}

/* Publish the changes gathered while the create was unanswered, one per
 * event as without settle (the last one says how many were left out). */
static void
pw_flush_each(struct pw *w)
{
	size_t n = w->n_pending;
	uint64_t more = w->more;
	struct change *pending = w->pending;

	w->pending = NULL;
	w->n_pending = 0;
	w->more = 0;
	for (size_t i = 0; i < n; i++) {
		Waiter__V1__PathChange pc = WAITER__V1__PATH_CHANGE__INIT, *list = &pc;

		pc.kind = pending[i].kind;
		pc.path = pending[i].path;
		pc.old_path = pending[i].old_path ? pending[i].old_path : (char *)"";
		pc.is_dir = pending[i].dir;
		if (w->obj.state == WAITER__V1__OBJECT_STATE__OBJECT_STATE_ACTIVE)
			pw_publish(w, &list, 1, i + 1 == n ? more : 0);   /* once: may end */
		free(pending[i].path);
		free(pending[i].old_path);
	}
	free(pending);
}

/* The create is answered (or its connection is gone): what happened since
 * the watch was in place is told now, after the reply. */
static void
pw_answered(struct object *o)
{
	struct pw *w = (struct pw *)o;

	if (!w->unanswered)
		return;
	w->unanswered = false;
	busy_begin();
	if (w->settle_us == 0)
		pw_flush_each(w);
	if (w->end.message != NULL)
		pw_end_publish(w, w->end.reason, w->end.path, w->end.message);
	else if (w->n_pending > 0) {
		struct timeval tv = clock_tv((int64_t)w->settle_us);

		evtimer_add(&w->settle_ev, &tv);
	}
	busy_end();
}

/* ------------------------------------------------------------- the object */

static void
pw_stop(struct object *o)
{
	struct pw *w = (struct pw *)o;
	struct scan *s;
	struct use *u;

	w->ended = true;
	event_del(&w->settle_ev);
	while ((s = LIST_FIRST(&w->scans)) != NULL) {
		LIST_REMOVE(s, w_link);
		s->w = NULL;    /* its done callback only frees it */
	}
	while ((u = LIST_FIRST(&w->uses)) != NULL)
		use_del(u);
	if (w->in_all) {
		LIST_REMOVE(w, all_link);
		w->in_all = false;
	}
	event_active(sweep_ev, EV_TIMEOUT, 1);  /* not now: a dispatch may hold d */
}

static void
pw_describe(struct object *o, ObjectInfo *info)
{
	struct pw *w = (struct pw *)o;
	Waiter__V1__WatchInfo *wi = arena_alloc(sizeof *wi);

	waiter__v1__watch_info__init(wi);
	wi->type = WAITER__V1__WATCH_TYPE__WATCH_TYPE_PATH;
	wi->paths = w->roots;
	wi->n_paths = w->n_roots;
	wi->recursive = w->recursive;
	wi->include = w->include;
	wi->n_include = w->n_include;
	wi->exclude = w->exclude;
	wi->n_exclude = w->n_exclude;
	wi->settle_us = w->settle_us;
	wi->once = w->once;
	wi->create = w->create;
	wi->events = w->events;
	wi->directories = w->n_dirs;
	wi->n_on = 0;
	wi->on = arena_alloc(8 * sizeof *wi->on);
	for (int k = 1; k <= 5; k++)
		if (w->on & (1u << k))
			wi->on[wi->n_on++] = (Waiter__V1__PathEventKind)k;
	info->detail_case = WAITER__V1__OBJECT_INFO__DETAIL_WATCH;
	info->watch = wi;
}

/*
 * Handling one event can end a watch, and ending it can free it at once
 * (--keep-finished 0), while the handler still holds it: frees wait until
 * the callback that began them returns (busy_begin, busy_end).
 */
static unsigned busy;
static LIST_HEAD(, pw) zombies = LIST_HEAD_INITIALIZER(zombies);

static void pw_free_now(struct pw *w);

static void
busy_begin(void)
{
	busy++;
}

static void
busy_end(void)
{
	struct pw *w;

	if (--busy > 0)
		return;
	while ((w = LIST_FIRST(&zombies)) != NULL) {
		LIST_REMOVE(w, all_link);
		pw_free_now(w);
	}
}

static void
pw_free(struct object *o)
{
	struct pw *w = (struct pw *)o;

	if (busy > 0) {
		LIST_INSERT_HEAD(&zombies, w, all_link);   /* off `all` since stop */
		return;
	}
	pw_free_now(w);
}

static void
pw_free_now(struct pw *w)
{

	for (size_t i = 0; i < w->n_pending; i++) {
		free(w->pending[i].path);
		free(w->pending[i].old_path);
	}
	free(w->pending);
	free(w->end.path);
	free(w->end.message);
	strv_free(w->roots);
	strv_free(w->include);
	strv_free(w->exclude);
	free(w->fail);
	free(w);
}

/* The record of a path watch: what its create request carried. Written
 * once it is in place, when it ends and at a clean stop; not at each
 * event (a storm of changes must not be a storm of writes), so after a
 * crash its events count is the one of its last record. */
static void
pw_persist(struct object *o)
{
	struct pw *w = (struct pw *)o;
	Waiter__State__V1__StoredObject so = WAITER__STATE__V1__STORED_OBJECT__INIT;
	Waiter__State__V1__StoredPathWatch sp = WAITER__STATE__V1__STORED_PATH_WATCH__INIT;

	sp.paths = w->roots;
	sp.n_paths = w->n_roots;
	sp.recursive = w->recursive;
	sp.on = w->on;
	sp.include = w->include;
	sp.n_include = w->n_include;
	sp.exclude = w->exclude;
	sp.n_exclude = w->n_exclude;
	sp.settle_us = w->settle_us;
	sp.once = w->once;
	sp.create = w->create;
	sp.events = w->events;
	so.kind_case = WAITER__STATE__V1__STORED_OBJECT__KIND_PATH_WATCH;
	so.path_watch = &sp;
	state_put(o, &so);
}

/* The daemon stops: a kept watch resumes at the next start; its record
 * takes the events count so far. */
static bool
pw_resumes(struct object *o)
{
	pw_persist(o);
	return true;
}

static const struct object_ops pw_ops = {
	.kind = WAITER__V1__OBJECT_KIND__OBJECT_KIND_WATCH,
	.name = "watch",
	.stop = pw_stop,
	.describe = pw_describe,
	.free = pw_free,
	.persist = pw_persist,
	.resumes = pw_resumes,
};

/* ------------------------------------------------------------ dispatch */

/* Remove w's uses of the directories at or below path (moved away). */
static void
pw_drop_below(struct pw *w, const char *path)
{
	size_t n = strlen(path);
	struct use *u, *next;

	for (u = LIST_FIRST(&w->uses); u != NULL; u = next) {
		next = LIST_NEXT(u, w_link);
		if (u->rel[0] != '\0' && strncmp(u->d->path, path, n) == 0 &&
		    (u->d->path[n] == '\0' || u->d->path[n] == '/'))
			use_del(u);
	}
}

static char *
arena_join(const char *a, const char *b)
{
	if (a[0] == '\0')
		return arena_printf("%s", b);
	return arena_printf("%s/%s", strcmp(a, "/") == 0 ? "" : a, b);
}

static Waiter__V1__PathEventKind
kind_of(uint32_t mask)
{
	if (mask & IN_CREATE)
		return WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_CREATED;
	if (mask & IN_CLOSE_WRITE)
		return WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_MODIFIED;
	if (mask & IN_DELETE)
		return WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_DELETED;
	if (mask & (IN_MOVED_FROM | IN_MOVED_TO))
		return WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_MOVED;
	if (mask & IN_ATTRIB)
		return WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_ATTRIBUTES;
	return WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_UNSPECIFIED;
}

/*
 * One inotify event as use u sees it. For a move the kernel paired,
 * other is the absolute path at the other end (where it went for
 * IN_MOVED_FROM, where it came from for IN_MOVED_TO), else NULL. With
 * report false (the watch reported the other half of the move) only the
 * bookkeeping is done: dropping a directory moved away, walking one moved
 * in. True if a change was reported.
 */
static bool
use_event(struct use *u, uint32_t mask, const char *name, const char *other, bool report)
{
	struct pw *w = u->w;
	const char *root = w->roots[u->root];
	Waiter__V1__PathEventKind kind = kind_of(mask);
	bool dir = (mask & IN_ISDIR) != 0, reported;
	char *path, *rel;

	if (w->ended)
		return false;
	if (name == NULL) {     /* about the directory itself */
		if (u->rel[0] != '\0')
			return false;   /* a subdirectory: its parent reports it */
		if (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
			Waiter__V1__WatchEndReason r = mask & IN_UNMOUNT ?
			    WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_UNMOUNTED :
			    mask & IN_MOVE_SELF ?
			    WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_MOVED :
			    WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_DELETED;

			pw_end(w, r, u->d->path, "%s was %s", u->d->path,
			    r == WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_UNMOUNTED ?
			    "unmounted" : r == WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_MOVED ?
			    "moved away" : "deleted");
		} else if ((mask & IN_ATTRIB) && u->only == NULL && !u->awaiting) {
			return report && pw_change(w,
			    WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_ATTRIBUTES, root, NULL, "",
			    true);
		}
		return false;
	}
	if (u->awaiting) {
		/* --create: the awaited component appeared; go on from there. */
		if ((mask & (IN_CREATE | IN_MOVED_TO)) && strcmp(name, u->only) == 0) {
			int r = u->root;

			use_del(u);
			scan_start(w, r, root, "", true, true);
		}
		return false;
	}
	if (u->only != NULL) {  /* a file root, through its directory */
		if (strcmp(name, u->only) != 0)
			return false;
		if (mask & IN_MOVED_TO)         /* replaced by rename: how editors save */
			kind = WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_MODIFIED;
		if (mask & IN_MOVED_FROM) {
			reported = report && pw_change(w, kind, other ? other : "", root, name, dir);
			pw_end(w, WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_MOVED, root,
			    "%s was moved away", root);
			return reported;
		}
		reported = report && pw_change(w, kind, root, NULL, name, dir);
		if (mask & IN_DELETE)
			pw_end(w, WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_DELETED, root,
			    "%s was deleted", root);
		return reported;
	}
	path = arena_join(u->d->path, name);
	rel = arena_join(u->rel, name);
	if (mask & IN_MOVED_FROM) {
		reported = report && pw_change(w, kind, other ? other : "", path, rel, dir);
		if (dir && w->recursive)
			pw_drop_below(w, path);
		return reported;
	}
	reported = report && pw_change(w, kind, path, (mask & IN_MOVED_TO) ? other : NULL,
	    rel, dir);
	if (dir && w->recursive && (mask & (IN_CREATE | IN_MOVED_TO)) && !w->ended &&
	    !globs_match(w->exclude, w->n_exclude, rel))
		scan_start(w, u->root, path, rel, false, true);
	return reported;
}

/* Is u still one of d's uses? (Handling one use may end a watch.) */
static bool
use_alive(struct kdir *d, struct use *u)
{
	struct use *x;

	LIST_FOREACH(x, &d->uses, d_link)
		if (x == u)
			return true;
	return false;
}

/* Hand one event to every use of its directory. skip: watches already
 * told (the other half of a move: they only keep their books); told:
 * where to record the watches this event was reported to. */
static void
dispatch(struct kdir *d, uint32_t mask, const char *name, const char *other,
    struct pw **skip, size_t n_skip, struct pw ***told, size_t *n_told)
{
	struct use **snap;
	size_t n = 0;
	struct use *u;
	struct pw *w;

	LIST_FOREACH(u, &d->uses, d_link)
		n++;
	if (n == 0)
		return;
	snap = arena_alloc(n * sizeof *snap);
	n = 0;
	LIST_FOREACH(u, &d->uses, d_link)
		snap[n++] = u;
	if (told != NULL)
		*told = arena_alloc(n * sizeof **told);
	for (size_t i = 0; i < n; i++) {
		bool skipped = false;

		if (!use_alive(d, snap[i]))
			continue;
		w = snap[i]->w;
		for (size_t k = 0; k < n_skip; k++)
			skipped |= skip[k] == w;
		if (use_event(snap[i], mask, name, other, !skipped) && told != NULL)
			(*told)[(*n_told)++] = w;
	}
}

/* The kernel dropped d's watch (deleted, or unmounted). */
static void
kdir_gone(struct kdir *d)
{
	struct use *u;

	while ((u = LIST_FIRST(&d->uses)) != NULL) {
		struct pw *w = u->w;
		bool root = u->rel[0] == '\0';

		use_del(u);
		if (root && !w->ended)
			pw_end(w, WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_DELETED, d->path,
			    "%s is gone", d->path);
	}
	kdir_forget(d);
}

/* Tell w's client that changes may have been lost: rescan. */
static void
pw_overflow(struct pw *w, const char *message)
{
	Event ev = WAITER__V1__EVENT__INIT;
	Waiter__V1__WatchOverflow wo = WAITER__V1__WATCH_OVERFLOW__INIT;

	wo.message = (char *)message;
	ev.object_id = w->obj.id;
	ev.kind = WAITER__V1__EVENT_KIND__EVENT_KIND_WATCH_OVERFLOW;
	ev.body_case = WAITER__V1__EVENT__BODY_WATCH_OVERFLOW;
	ev.watch_overflow = &wo;
	w->events++;
	events_publish(&ev, w->obj.owner);
}

static void
overflow_all(void)
{
	struct pw *w;

	/* A watch not yet answered is not told: what was lost happened
	 * before its reply, and only changes after it are promised. */
	LIST_FOREACH(w, &all, all_link)
		if (!w->unanswered)
			pw_overflow(w, "the kernel's inotify queue overflowed: changes were "
			    "lost; rescan what you watch (sysctl fs.inotify.max_queued_events)");
}

static void
hold(const struct inotify_event *ie)
{
	struct held *h;

	if (n_held >= HELD_MAX) {
		held_overflow = true;
		return;
	}
	if ((h = calloc(1, sizeof *h)) == NULL ||
	    (ie->len > 0 && (h->name = strdup(ie->name)) == NULL))
		fatal("calloc");
	h->wd = ie->wd;
	h->mask = ie->mask;
	h->cookie = ie->cookie;
	STAILQ_INSERT_TAIL(&held, h, link);
	n_held++;
}

/* One event, or a paired move (from, to). */
static void
handle(const struct inotify_event *ie, const struct inotify_event *to)
{
	struct kdir *d = kdir_find(ie->wd), *dt;
	const char *name = ie->len > 0 ? ie->name : NULL;

	if (ie->wd == -1) {
		if (ie->mask & IN_Q_OVERFLOW)
			overflow_all();
		return;
	}
	if (ie->mask & IN_IGNORED) {
		if (d != NULL)
			kdir_gone(d);
		/* A walk in flight may have met this directory before it went,
		 * and will report it: then it must go again. */
		if (scans_in_flight > 0)
			hold(ie);
		return;
	}
	if (to != NULL) {
		struct pw **told = NULL;
		size_t n_told = 0;
		char *from_path = d ? arena_join(d->path, ie->name) : NULL;
		char *to_path;

		dt = kdir_find(to->wd);
		to_path = dt ? arena_join(dt->path, to->name) : NULL;
		if (d == NULL && dt == NULL && scans_in_flight > 0) {
			hold(ie);
			hold(to);
			return;
		}
		if (d != NULL)
			dispatch(d, ie->mask, ie->name, to_path, NULL, 0, &told, &n_told);
		if (dt != NULL)
			dispatch(dt, to->mask, to->name, from_path, told, n_told, NULL, NULL);
		return;
	}
	/* Unknown, or known but unused (a directory moved, dropped, and
	 * being walked again): a walk in flight may be about to claim it. */
	if (d == NULL || d->refs == 0) {
		if (scans_in_flight > 0)
			hold(ie);
		return;
	}
	dispatch(d, ie->mask, name, NULL, NULL, 0, NULL, NULL);
}

/* A held event as inotify gave it, name included (ie.name is a flexible
 * array: the union gives it room). */
union held_event {
	struct inotify_event ie;
	char room[sizeof(struct inotify_event) + NAME_MAX + 1];
};

static void
held_event(union held_event *e, const struct held *h)
{
	memset(e, 0, sizeof *e);
	e->ie.wd = h->wd;
	e->ie.mask = h->mask;
	e->ie.cookie = h->cookie;
	if (h->name != NULL) {
		snprintf(e->ie.name, NAME_MAX + 1, "%s", h->name);
		e->ie.len = (uint32_t)strlen(e->ie.name) + 1;
	}
}

static void
replay_held(void)
{
	STAILQ_HEAD(, held) mine = STAILQ_HEAD_INITIALIZER(mine);
	struct held *h, *h2;

	if (held_overflow && scans_in_flight == 0) {
		held_overflow = false;
		overflow_all();
	}
	STAILQ_CONCAT(&mine, &held);
	n_held = 0;
	while ((h = STAILQ_FIRST(&mine)) != NULL) {
		union held_event e[2];

		STAILQ_REMOVE_HEAD(&mine, link);
		held_event(&e[0], h);
		/* The two halves of a move were held together: keep them so. */
		h2 = STAILQ_FIRST(&mine);
		if ((h->mask & IN_MOVED_FROM) && h2 != NULL && (h2->mask & IN_MOVED_TO) &&
		    h2->cookie == h->cookie) {
			STAILQ_REMOVE_HEAD(&mine, link);
			held_event(&e[1], h2);
			handle(&e[0].ie, &e[1].ie);
			free(h2->name);
			free(h2);
		} else {
			handle(&e[0].ie, NULL); /* held again if unknown and walks run */
		}
		free(h->name);
		free(h);
	}
}

static void
ifd_cb(evutil_socket_t fd, short what, void *arg)
{
	static char buf[READ_CHUNK] __attribute__((aligned(__alignof__(struct inotify_event))));
	int64_t begin = stats_lap_begin();
	ssize_t n;

	(void)what, (void)arg;
	busy_begin();
	n = read(fd, buf, sizeof buf);
	for (char *p = buf; n > 0 && p < buf + n;) {
		struct inotify_event *ie = (struct inotify_event *)p, *next;

		p += sizeof *ie + ie->len;
		next = p < buf + n ? (struct inotify_event *)p : NULL;
		if ((ie->mask & IN_MOVED_FROM) && next != NULL && (next->mask & IN_MOVED_TO) &&
		    next->cookie == ie->cookie) {
			p += sizeof *next + next->len;
			handle(ie, next);
		} else {
			handle(ie, NULL);
		}
	}
	busy_end();
	kdir_sweep();
	arena_reset();
	stats_lap_end(begin, "watch_path", 0);
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	kdir_sweep();
}

/* ------------------------------------------------------------- walks */

static struct scan *
scan_start(struct pw *w, int root, const char *path, const char *rel, bool establish,
    bool report)
{
	struct scan *s = calloc(1, sizeof *s);
	uint64_t used = w->obj.owner ? w->obj.owner->watched_dirs : 0;

	if (s == NULL || (s->path = strdup(path)) == NULL || (s->rel = strdup(rel)) == NULL)
		fatal("calloc");
	s->w = w;
	s->root = root;
	s->establish = establish;
	s->create = w->create;
	s->recursive = w->recursive;
	s->report = report;
	s->budget = used >= cfg.max_watched_dirs ? 0 : (unsigned)(cfg.max_watched_dirs - used);
	s->exclude = strv_dup(w->exclude, w->n_exclude);
	s->n_exclude = w->n_exclude;
	LIST_INSERT_HEAD(&w->scans, s, w_link);
	scans_in_flight++;
	workers_submit(WORKERS_WALK, scan_run, scan_done, s);
	return s;
}

/* Answer the create request once every root is established. */
static void
pw_established(struct pw *w)
{
	Reply rep = WAITER__V1__REPLY__INIT;
	struct conn *c = w->obj.owner;

	if (--w->establishing > 0)
		return;
	rep.id = w->req_id;
	if (w->fail != NULL) {
		char *why = arena_printf("%s", w->fail);

		if (c != NULL) {
			op_error(&rep, w->fail_code, "%s", why);
			conn_send_reply(c, &rep);
		}
		/* Answered: what the roots in place saw is told, then the end
		 * (whatever end one of them came to meanwhile). */
		w->unanswered = false;
		busy_begin();
		if (w->settle_us == 0)
			pw_flush_each(w);
		pw_end_publish(w, WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_UNSPECIFIED, "",
		    why);
		busy_end();
		return;
	}
	/* In place: kept from now on, and answered once that is durable. */
	objects_persist(&w->obj);
	if (c != NULL) {
		Request req = WAITER__V1__REQUEST__INIT;

		req.id = w->req_id;
		objects_reply_durable_then(c, &req, &w->obj, false, &rep,
		    WAITER__V1__REPLY__RESULT_WATCH_PATH, pw_answered);
	} else {
		pw_answered(&w->obj);   /* its creator is gone: no reply to wait for */
	}
}

/* A restored watch's walks are done: it watches again, and says that
 * what changed while the daemon was down was not seen. */
static void
pw_rearmed(struct pw *w)
{
	if (--w->establishing > 0 || w->ended)
		return;
	log_info("watch_path_resumed id=%llu directories=%u", (unsigned long long)w->obj.id,
	    w->n_dirs);
	pw_overflow(w, "waiterd restarted: changes made while it was down were not seen; "
	    "rescan what you watch");
}

/* A restored watch's root could not be set up again. */
static void
pw_restore_failed(struct pw *w, const struct scan *s, const char *why)
{
	if (s->err == ENOENT || s->err == ENOTDIR)
		pw_end(w, WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_DELETED, s->path,
		    "%s is gone: it went while waiterd was down", s->path);
	else
		pw_end(w, WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_UNSPECIFIED, s->path,
		    "%s", why);
}

static void
scan_done(void *arg)
{
	struct scan *s = arg;
	struct pw *w = s->w;
	struct kdir **dirs = arena_alloc((s->n_dirs + 1) * sizeof *dirs);
	const char *why = NULL;
	bool limit = false;

	busy_begin();
	scans_in_flight--;
	/* Whatever the walk added is known from now on, used or not. */
	for (size_t i = 0; i < s->n_dirs; i++)
		dirs[i] = kdir_get(s->dirs[i].wd, s->dirs[i].path);
	if (w == NULL)
		goto out;
	LIST_REMOVE(s, w_link);
	if (s->over_budget || (w->obj.owner != NULL &&
	    w->obj.owner->watched_dirs + s->n_dirs > cfg.max_watched_dirs)) {
		limit = true;
		why = arena_printf("watching %s would take this connection past %llu watched "
		    "directories, the limit (waiterd --max-watched-dirs)", s->path,
		    (unsigned long long)cfg.max_watched_dirs);
	} else if (s->err != 0) {
		why = s->errmsg ? arena_printf("%s", s->errmsg) : "cannot watch";
		limit = s->err == ENOSPC || s->err == EMFILE;
	}
	if (why != NULL) {
		if (s->initial) {
			if (w->fail == NULL) {
				w->fail = strdup(why);
				w->fail_code = limit ?
				    WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED :
				    s->err == ENOENT ? WAITER__V1__ERROR_CODE__ERROR_CODE_NOT_FOUND :
				    s->err == EACCES ?
				    WAITER__V1__ERROR_CODE__ERROR_CODE_PERMISSION_DENIED :
				    WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT;
			}
			pw_established(w);
		} else if (limit) {
			pw_end(w, WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_LIMIT, s->path,
			    "%s", why);
		} else if (s->restore) {
			pw_restore_failed(w, s, why);
		} else if (s->establish) {
			/* A root that appeared (--create) went again, or
			 * cannot be read: the watch cannot go on. */
			pw_end(w, WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_DELETED, s->path,
			    "%s", why);
		}
		goto out;
	}
	for (size_t i = 0; i < s->n_dirs && !w->ended; i++)
		use_add(w, dirs[i], s->root, s->dirs[i].rel,
		    s->is_file || s->awaiting ? s->only : NULL, s->awaiting);
	if (s->awaiting && s->appeared && !w->ended) {
		struct use *u;

		LIST_FOREACH(u, &w->uses, w_link)
			if (u->awaiting && u->root == s->root)
				break;
		if (u != NULL) {
			use_del(u);
			scan_start(w, s->root, w->roots[s->root], "", true, true);
		}
	}
	if (s->initial) {
		pw_established(w);
		goto out;
	}
	if (s->restore) {
		pw_rearmed(w);
		goto out;
	}
	/* A root that appeared (--create), then what a new directory held
	 * before its watch existed. */
	if (s->establish && !s->awaiting) {
		const char *base = strrchr(s->path, '/');

		pw_change(w, WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_CREATED, s->path, NULL,
		    base ? base + 1 : s->path, !s->is_file);
	}
	for (size_t i = 0; i < s->n_found && !w->ended; i++) {
		const char *rel = s->found[i].rel;
		char *path = arena_join(w->roots[s->root], rel);

		pw_change(w, WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_CREATED, path, NULL, rel,
		    s->found[i].dir);
	}
out:
	replay_held();
	busy_end();
	kdir_sweep();
	scan_free(s);
	arena_reset();
}

/* ------------------------------------------------------------ requests */

static const char *
pw_check(const Waiter__V1__WatchPath *wp)
{
	if (wp->n_paths == 0)
		return "give at least one path";
	if (wp->n_paths > WATCH_PATHS_MAX)
		return "at most 64 paths in one watch";
	for (size_t i = 0; i < wp->n_paths; i++) {
		if (wp->paths[i][0] != '/')
			return "paths must be absolute";
		if (strlen(wp->paths[i]) >= PATH_MAX)
			return "a path is longer than PATH_MAX";
	}
	for (size_t i = 0; i < wp->n_on; i++)
		if (wp->on[i] < WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_CREATED ||
		    wp->on[i] > WAITER__V1__PATH_EVENT_KIND__PATH_EVENT_KIND_ATTRIBUTES)
			return "unknown path event kind in on";
	if (wp->n_include + wp->n_exclude > WATCH_GLOBS_MAX)
		return "at most 64 include and exclude globs";
	for (size_t i = 0; i < wp->n_include + wp->n_exclude; i++) {
		const char *g = i < wp->n_include ? wp->include[i] : wp->exclude[i - wp->n_include];

		if (g[0] == '\0' || strlen(g) > 1024)
			return "a glob is empty or longer than 1024 bytes";
	}
	if (wp->settle_us > (uint64_t)WAITER_MAX_DURATION_US)
		return "settle is longer than the longest duration allowed (10 years)";
	if (wp->lifetime < 0 || wp->lifetime > WAITER__V1__LIFETIME__LIFETIME_DAEMON)
		return "unknown lifetime";
	return NULL;
}

/* "/a/b/" -> "/a/b"; "/" stays. */
static char *
path_clean(const char *p)
{
	char *s = strdup(p);
	size_t n;

	if (s == NULL)
		fatal("strdup");
	n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

enum op_result
watch_path_op_create(struct conn *c, const Request *req, Reply *rep)
{
	const Waiter__V1__WatchPath *wp = req->watch_path;
	struct object *existing;
	const char *why;
	struct pw *w;

	if ((why = pw_check(wp)) != NULL)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "%s", why);
	if ((existing = objects_find_name(wp->name)) != NULL) {
		if (existing->ops != &pw_ops)
			return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_FAILED_PRECONDITION,
			    "the name %s belongs to %s %llu", wp->name, existing->ops->name,
			    (unsigned long long)existing->id);
		return objects_reply_durable(c, req, existing, true, rep,
		    WAITER__V1__REPLY__RESULT_WATCH_PATH);
	}
	if (objects_check_create(c, wp->name, rep) < 0)
		return OP_REPLY;
	if (ifd < 0)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_INTERNAL,
		    "this waiterd could not open inotify at start: it cannot watch paths");
	if (c->watched_dirs >= cfg.max_watched_dirs)
		return op_error(rep, WAITER__V1__ERROR_CODE__ERROR_CODE_RESOURCE_EXHAUSTED,
		    "this connection watches %llu directories, the limit "
		    "(waiterd --max-watched-dirs)", (unsigned long long)c->watched_dirs);
	if ((w = calloc(1, sizeof *w)) == NULL)
		fatal("calloc");
	w->roots = calloc(wp->n_paths + 1, sizeof *w->roots);
	if (w->roots == NULL)
		fatal("calloc");
	for (size_t i = 0; i < wp->n_paths; i++)
		w->roots[i] = path_clean(wp->paths[i]);
	w->n_roots = wp->n_paths;
	w->recursive = wp->recursive;
	w->once = wp->once;
	w->create = wp->create;
	for (size_t i = 0; i < wp->n_on; i++)
		w->on |= 1u << wp->on[i];
	w->include = strv_dup(wp->include, wp->n_include);
	w->n_include = wp->n_include;
	w->exclude = strv_dup(wp->exclude, wp->n_exclude);
	w->n_exclude = wp->n_exclude;
	w->settle_us = wp->settle_us;
	evtimer_assign(&w->settle_ev, ev_base, settle_cb, w);
	LIST_INIT(&w->uses);
	LIST_INIT(&w->scans);
	objects_register(&w->obj, &pw_ops, c, wp->name,
	    wp->lifetime == WAITER__V1__LIFETIME__LIFETIME_DAEMON ?
	    WAITER__V1__LIFETIME__LIFETIME_DAEMON : WAITER__V1__LIFETIME__LIFETIME_CONNECTION);
	LIST_INSERT_HEAD(&all, w, all_link);
	w->in_all = true;
	/* Answered once every root is in place (pw_established); what the
	 * first roots in place see before that is told after the reply. */
	w->req_id = req->id;
	w->unanswered = true;
	w->establishing = (unsigned)w->n_roots;
	for (size_t i = 0; i < w->n_roots; i++)
		scan_start(w, (int)i, w->roots[i], "", true, false)->initial = true;
	return OP_DEFERRED;
}

/* The first lap: walk the restored watches' roots again, on the workers
 * (which start after the state is read), as a create would. */
static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pw *w, *next;

	(void)fd, (void)what, (void)arg;
	busy_begin();
	for (w = LIST_FIRST(&all); w != NULL; w = next) {
		next = LIST_NEXT(w, all_link);
		if (!w->resume)
			continue;
		w->resume = false;
		if (ifd < 0) {
			pw_end(w, WAITER__V1__WATCH_END_REASON__WATCH_END_REASON_UNSPECIFIED, "",
			    "this waiterd could not open inotify at start: it cannot watch paths");
			continue;
		}
		w->establishing = (unsigned)w->n_roots;
		for (size_t i = 0; i < w->n_roots; i++)
			scan_start(w, (int)i, w->roots[i], "", true, false)->restore = true;
	}
	busy_end();
	arena_reset();
}

void
watch_path_restore(uint64_t id, const Waiter__State__V1__StoredObject *so)
{
	const Waiter__State__V1__StoredPathWatch *sp = so->path_watch;
	struct pw *w;

	if (sp->n_paths == 0 || sp->n_paths > WATCH_PATHS_MAX) {
		log_warn("state_record_bad id=%llu detail=\"path watch with %zu paths\": "
		    "skipped", (unsigned long long)id, sp->n_paths);
		return;
	}
	if ((w = calloc(1, sizeof *w)) == NULL)
		fatal("calloc");
	w->roots = strv_dup(sp->paths, sp->n_paths);
	w->n_roots = sp->n_paths;
	w->recursive = sp->recursive;
	w->once = sp->once;
	w->create = sp->create;
	w->on = sp->on;
	w->include = strv_dup(sp->include, sp->n_include);
	w->n_include = sp->n_include;
	w->exclude = strv_dup(sp->exclude, sp->n_exclude);
	w->n_exclude = sp->n_exclude;
	w->settle_us = sp->settle_us;
	w->events = sp->events;
	evtimer_assign(&w->settle_ev, ev_base, settle_cb, w);
	LIST_INIT(&w->uses);
	LIST_INIT(&w->scans);
	objects_restore(&w->obj, &pw_ops, id, so);
	if (!objects_restored_active(&w->obj)) {
		w->ended = true;
		return;
	}
	LIST_INSERT_HEAD(&all, w, all_link);
	w->in_all = true;
	w->resume = true;
	event_active(resume_ev, EV_TIMEOUT, 1);
}

unsigned
watch_path_kernel_watches(void)
{
	return n_kdirs;
}

void
watch_path_init(void)
{
	resume_ev = event_new(ev_base, -1, 0, resume_cb, NULL);
	if (resume_ev == NULL)
		fatal("event_new");
	ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ifd < 0) {
		log_warn("inotify_init1 errno=%d: path watches are refused", errno);
		return;
	}
	ifd_ev = event_new(ev_base, ifd, EV_READ | EV_PERSIST, ifd_cb, NULL);
	sweep_ev = event_new(ev_base, -1, 0, sweep_cb, NULL);
	if (ifd_ev == NULL || sweep_ev == NULL || event_add(ifd_ev, NULL) < 0)
		fatal("event_new inotify");
}

static void
kdir_free_node(void *p)
{
	struct kdir *d = p;

	free(d->path);
	free(d);
}

void
watch_path_free(void)
{
	struct held *h;

	while ((h = STAILQ_FIRST(&held)) != NULL) {
		STAILQ_REMOVE_HEAD(&held, link);
		free(h->name);
		free(h);
	}
	n_held = 0;
	held_overflow = false;
	tdestroy(kdirs, kdir_free_node);
	kdirs = NULL;
	LIST_INIT(&unused);     /* its kdirs were in the tree */
	n_kdirs = 0;
	if (ifd_ev != NULL)
		event_free(ifd_ev);
	if (sweep_ev != NULL)
		event_free(sweep_ev);
	if (resume_ev != NULL)
		event_free(resume_ev);
	ifd_ev = sweep_ev = resume_ev = NULL;
	if (ifd >= 0)
		close(ifd);
	ifd = -1;
}
