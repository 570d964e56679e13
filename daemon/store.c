/* store.c - the durable state (see store.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/sys/tree.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "log.h"
#include "store.h"

/* PRAGMA application_id of a waiter state database: "WAIT". */
#define STORE_APP_ID 0x57414954

/* How long a statement waits for a lock another connection holds (only a
 * tool reading the file can hold one: one daemon per directory). */
#define BUSY_TIMEOUT_MS 5000
/* Retries after a failed commit: 100 ms, doubling, at most 5 s. */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000

enum { TABLE_OBJECTS, TABLE_META };

/* The latest record handed over for one key, waiting to be committed. */
struct op {
	RB_ENTRY(op) link;
	uint8_t table;
	bool del;
	uint32_t kind;
	uint64_t key;
	void *rec;
	size_t len;
};

static int
op_cmp(const struct op *a, const struct op *b)
{
	if (a->table != b->table)
		return a->table < b->table ? -1 : 1;
	return a->key < b->key ? -1 : a->key > b->key;
}

RB_HEAD(ops, op);
RB_GENERATE_INTERNAL(ops, op, link, op_cmp, __attribute__((unused)) static)

/* A retained event waiting to be committed. Events are a FIFO in seq
 * order, not keyed: each is a row of its own. */
struct ev_op {
	STAILQ_ENTRY(ev_op) link;
	uint64_t seq;
	uint64_t object_id;
	uint32_t kind;
	size_t len;
	uint8_t msg[];
};
STAILQ_HEAD(ev_ops, ev_op);

/* What one commit writes. */
struct batch {
	struct ops ops;
	struct ev_ops evs;
	uint64_t keep_from;     /* delete event rows below this seq */
};

/* A store_after() callback, loop thread only. */
struct store_waiter {
	uint64_t ticket;
	void (*fn)(void *, bool);
	void *arg;
	TAILQ_ENTRY(store_waiter) link;
};
TAILQ_HEAD(store_waiters, store_waiter);

static sqlite3 *db;
static char *db_path;
static int lock_fd = -1;        /* DIR/lock, flock'ed while open */
static sqlite3_stmt *st_put, *st_del, *st_meta, *st_ev_put, *st_ev_trim;

static pthread_t writer;
static bool writer_started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t written = PTHREAD_COND_INITIALIZER;  /* a commit ended */
/* Under lock: */
static struct ops pending = RB_INITIALIZER(&pending);
static struct ev_ops pending_evs = STAILQ_HEAD_INITIALIZER(pending_evs);
static uint64_t n_pending;
static uint64_t ev_bytes;       /* of pending_evs */
static uint64_t ev_keep_from;   /* the newest keep_from handed over */
static uint64_t handed;         /* ticket of the latest record handed over */
static uint64_t committed;      /* every ticket up to this is durable */
static uint64_t failed;         /* a commit of every ticket up to this failed */
static bool stopping;
static struct store_stats counts;

/* The writer's (the loop's before store_start and after the writer ends): */
static uint64_t ev_trimmed;     /* event rows below this seq are deleted */

/* Loop thread only: */
static struct store_waiters waiters = TAILQ_HEAD_INITIALIZER(waiters);
static int efd = -1;            /* the writer tells the loop it committed */
static struct event *efd_ev;

static char * __attribute__((format(printf, 1, 2)))
sentence(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static void
op_free(struct op *o)
{
	free(o->rec);
	free(o);
}

/* ---------------------------------------------------------------- opening */

/* One integer from a PRAGMA; -1 with *why on failure. */
static int
pragma_int(sqlite3 *h, const char *pragma, int64_t *v, char **why)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(h, pragma, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*v = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
		sqlite3_finalize(st);
	}
	if (rc == SQLITE_OK)
		return 0;
	*why = sentence("%s", sqlite3_errstr(rc));
	return -1;
}

/* Check an existing file without writing to it: a read-only connection,
 * the header's application id and format, then quick_check. */
static int
check_existing(const char *path, char **why)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	int64_t app = 0, format = 0;
	char *err = NULL;
	int rc, ret = -1;

	rc = sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		*why = sentence("cannot open the state file %s: %s", path, sqlite3_errstr(rc));
		goto out;
	}
	if (pragma_int(h, "PRAGMA application_id", &app, &err) < 0 ||
	    pragma_int(h, "PRAGMA user_version", &format, &err) < 0) {
		*why = sentence("the state file %s is not a database waiter can read (%s): "
		    "it is left as it is; move it away, or start with --no-state", path, err);
		goto out;
	}
	if (app == 0 && format == 0) {
		/* An empty file (created, never written) is a fresh store. */
		struct stat sb;

		if (stat(path, &sb) == 0 && sb.st_size == 0) {
			ret = 0;
			goto out;
		}
	}
	if (app != STORE_APP_ID) {
		*why = sentence("the state file %s is not a waiter state database "
		    "(application id %lld): it is left as it is", path, (long long)app);
		goto out;
	}
	if (format > STORE_FORMAT) {
		*why = sentence("the state file %s has format %lld, newer than this waiterd "
		    "reads (%d): run a newer waiterd; the file is left as it is",
		    path, (long long)format, STORE_FORMAT);
		goto out;
	}
	if (format < 1) {
		*why = sentence("the state file %s has no format number: it is left as it is",
		    path);
		goto out;
	}
	rc = sqlite3_prepare_v2(h, "PRAGMA quick_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW || sqlite3_column_text(st, 0) == NULL ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
		const char *what = rc != SQLITE_ROW ? sqlite3_errstr(rc) :
		    sqlite3_column_text(st, 0) != NULL ?
		    (const char *)sqlite3_column_text(st, 0) : "no answer";

		/* quick_check lists every problem under a heading; the
		 * first problem will do. */
		if (strncmp(what, "*** ", 4) == 0 && strchr(what, '\n') != NULL)
			what = strchr(what, '\n') + 1;
		*why = sentence("the state file %s is corrupt (%.*s): it is left as it is; "
		    "move it away, or start with --no-state", path,
		    (int)strcspn(what, "\n"), what);
		goto out;
	}
	ret = 0;
out:
	free(err);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return ret;
}

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta ("
	" key INTEGER PRIMARY KEY, value INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS objects ("
	" id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, record BLOB NOT NULL);"
	/* Added after format 1 shipped: a format-1 file just gains it, and a
	 * waiterd that does not know it ignores it, so the format stays 1. */
	"CREATE TABLE IF NOT EXISTS events ("
	" seq INTEGER PRIMARY KEY, object_id INTEGER NOT NULL, kind INTEGER NOT NULL,"
	" message BLOB NOT NULL);";

static int
exec(const char *sql, char **why)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK)
		return 0;
	*why = sentence("cannot set up the state file %s: %s", db_path,
	    err != NULL ? err : sqlite3_errmsg(db));
	sqlite3_free(err);
	return -1;
}

static void writer_done_cb(evutil_socket_t, short, void *);

/* mkdir -p of dir's parents (0700, as XDG asks of ~/.local/state). */
static int
mkdir_parents(const char *dir)
{
	char *p = strdup(dir), *s;
	int ret = 0;

	if (p == NULL)
		return -1;
	for (s = strchr(p + 1, '/'); s != NULL && ret == 0; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			ret = -1;
		*s = '/';
	}
	free(p);
	return ret;
}

int
store_open(struct event_base *base, const char *dir, enum store_sync sync, char **why)
{
	struct stat sb;
	char *sql;
	int fd, rc;

	*why = NULL;
	if (mkdir_parents(dir) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
		*why = sentence("cannot create the state directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		*why = sentence("the state directory %s is not a directory", dir);
		return -1;
	}
	if (sb.st_uid != geteuid() || (sb.st_mode & 022) != 0) {
		*why = sentence("the state directory %s must belong to uid %u and be writable "
		    "by it alone (it is uid %u, mode %03o)", dir, (unsigned)geteuid(),
		    (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 0777));
		return -1;
	}
	/* One daemon per state directory, whatever socket each serves. */
	if ((db_path = sentence("%s/lock", dir)) == NULL) {
		*why = sentence("out of memory");
		return -1;
	}
	lock_fd = open(db_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		*why = errno == EWOULDBLOCK ?
		    sentence("the state directory %s is in use by another waiterd", dir) :
		    sentence("cannot lock %s: %s", db_path, strerror(errno));
		goto fail;
	}
	free(db_path);
	if ((db_path = sentence("%s/state.db", dir)) == NULL) {
		*why = sentence("out of memory");
		goto fail;
	}
	if (lstat(db_path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
		*why = sentence("the state file %s is a symbolic link: not followed, "
		    "left as it is", db_path);
		goto fail;
	}
	/* Create the file ourselves so it is 0600 whatever the umask; SQLite
	 * gives its -wal and -shm files the database file's mode. */
	fd = open(db_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST) {
		*why = sentence("cannot create the state file %s: %s", db_path, strerror(errno));
		goto fail;
	}
	if (check_existing(db_path, why) < 0)
		goto fail;
	rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
	    NULL);
	if (rc != SQLITE_OK) {
		*why = sentence("cannot open the state file %s: %s", db_path, sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	sql = sentence("PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
	    "BEGIN IMMEDIATE; %s PRAGMA application_id=%d; PRAGMA user_version=%d; COMMIT;",
	    sync == STORE_SYNC_FULL ? "FULL" : "NORMAL", schema, STORE_APP_ID, STORE_FORMAT);
	rc = sql == NULL ? -1 : exec(sql, why);
	free(sql);
	if (rc < 0)
		goto fail;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO objects (id, kind, record) "
	    "VALUES (?, ?, ?)", -1, &st_put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "DELETE FROM objects WHERE id = ?", -1, &st_del,
	    NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
	    -1, &st_meta, NULL) != SQLITE_OK ||
	    /* OR REPLACE: a seq given again after a crash that came before
	     * its block was reserved (seq_not_durable) must not fail every
	     * commit from then on. */
	    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO events (seq, object_id, kind, "
	    "message) VALUES (?, ?, ?, ?)", -1, &st_ev_put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "DELETE FROM events WHERE seq < ?", -1, &st_ev_trim,
	    NULL) != SQLITE_OK) {
		*why = sentence("cannot set up the state file %s: %s", db_path,
		    sqlite3_errmsg(db));
		goto fail;
	}
	if ((efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		*why = sentence("cannot set up the state writer: eventfd: %s", strerror(errno));
		goto fail;
	}
	if ((efd_ev = event_new(base, efd, EV_READ | EV_PERSIST, writer_done_cb,
	    NULL)) == NULL || event_add(efd_ev, NULL) < 0) {
		*why = sentence("cannot set up the state writer's event");
		goto fail;
	}
	/* A full disk or a file size limit must fail a write, not kill us. */
	signal(SIGXFSZ, SIG_IGN);
	return 0;
fail:
	store_close();
	return -1;
}

const char *
store_path(void)
{
	return db_path;
}

bool
store_is_open(void)
{
	return db != NULL;
}

/* ---------------------------------------------------------------- reading */

/* The reader of one table: objects or events. */
struct each {
	store_each_fn *object;
	store_event_fn *event;
	void *arg;
};

static int
each_row(sqlite3_stmt *st, const struct each *e)
{
	if (e->object != NULL)
		return e->object((uint64_t)sqlite3_column_int64(st, 0),
		    (uint32_t)sqlite3_column_int64(st, 1), sqlite3_column_blob(st, 2),
		    (size_t)sqlite3_column_bytes(st, 2), e->arg);
	return e->event((uint64_t)sqlite3_column_int64(st, 0),
	    (uint64_t)sqlite3_column_int64(st, 1), (uint32_t)sqlite3_column_int64(st, 2),
	    sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3), e->arg);
}

/* Run sql and hand each row over; stops early and returns the callback's
 * non-zero value; -1 with *why on a read error. */
static int
each(const char *sql, const struct each *e, char **why)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	*why = NULL;
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((ret = each_row(st, e)) != 0)
			break;
		rc = SQLITE_OK;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		*why = sentence("cannot read the state file %s: %s", db_path, sqlite3_errmsg(db));
		ret = -1;
	}
	sqlite3_finalize(st);
	return ret;
}

int
store_each(store_each_fn *fn, void *arg, char **why)
{
	struct each e = { .object = fn, .arg = arg };

	return each("SELECT id, kind, record FROM objects ORDER BY id", &e, why);
}

int
store_event_each(store_event_fn *fn, void *arg, char **why)
{
	struct each e = { .event = fn, .arg = arg };

	return each("SELECT seq, object_id, kind, message FROM events ORDER BY seq", &e,
	    why);
}

uint64_t
store_meta_get(uint32_t key, uint64_t dflt)
{
	sqlite3_stmt *st;
	uint64_t v = dflt;

	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st,
	    NULL) != SQLITE_OK)
		return dflt;
	sqlite3_bind_int64(st, 1, key);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* ---------------------------------------------------------------- writing */

/* Run st (bound) to its end, and reset it; an SQLite result code. */
static int
step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Write one op in the open transaction; an SQLite result code. */
static int
apply(const struct op *o)
{
	sqlite3_stmt *st;

	if (o->table == TABLE_META) {
		st = st_meta;
		sqlite3_bind_int64(st, 1, (int64_t)o->key);
		sqlite3_bind_int64(st, 2, (int64_t)o->len);
	} else if (o->del) {
		st = st_del;
		sqlite3_bind_int64(st, 1, (int64_t)o->key);
	} else {
		st = st_put;
		sqlite3_bind_int64(st, 1, (int64_t)o->key);
		sqlite3_bind_int64(st, 2, o->kind);
		sqlite3_bind_blob(st, 3, o->rec != NULL ? o->rec : "", (int)o->len,
		    SQLITE_STATIC);
	}
	return step(st);
}

static int
apply_event(const struct ev_op *e)
{
	sqlite3_bind_int64(st_ev_put, 1, (int64_t)e->seq);
	sqlite3_bind_int64(st_ev_put, 2, (int64_t)e->object_id);
	sqlite3_bind_int64(st_ev_put, 3, e->kind);
	sqlite3_bind_blob(st_ev_put, 4, e->msg, (int)e->len, SQLITE_STATIC);
	return step(st_ev_put);
}

/* Commit a batch in one transaction; an SQLite result code. */
static int
commit(struct batch *b)
{
	struct op *o;
	struct ev_op *e;
	int rc;

	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	RB_FOREACH(o, ops, &b->ops) {
		if (rc != SQLITE_OK)
			break;
		rc = apply(o);
	}
	STAILQ_FOREACH(e, &b->evs, link) {
		if (rc != SQLITE_OK)
			break;
		rc = apply_event(e);
	}
	if (rc == SQLITE_OK && b->keep_from > ev_trimmed) {
		sqlite3_bind_int64(st_ev_trim, 1, (int64_t)b->keep_from);
		rc = step(st_ev_trim);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == SQLITE_OK && b->keep_from > ev_trimmed)
		ev_trimmed = b->keep_from;
	return rc;
}

/* Under lock: forget the pending events the ring no longer holds. They
 * would be deleted in the commit that writes them; dropping them now
 * bounds what waits for the disk by the ring's own bounds (count and
 * --retain-bytes), however far the loop runs ahead of the writer. */
static void
ev_prune(void)
{
	struct ev_op *e;

	while ((e = STAILQ_FIRST(&pending_evs)) != NULL && e->seq < ev_keep_from) {
		STAILQ_REMOVE_HEAD(&pending_evs, link);
		ev_bytes -= e->len;
		n_pending--;
		free(e);
	}
}

/* Under lock: everything pending becomes the batch of one commit. */
static void
batch_take(struct batch *b)
{
	b->ops = pending;
	RB_INIT(&pending);
	STAILQ_INIT(&b->evs);
	STAILQ_CONCAT(&b->evs, &pending_evs);
	b->keep_from = ev_keep_from;
	n_pending = 0;
	ev_bytes = 0;
}

static void
batch_free(struct batch *b)
{
	struct op *o, *next;
	struct ev_op *e;

	RB_FOREACH_SAFE(o, ops, &b->ops, next) {
		RB_REMOVE(ops, &b->ops, o);
		op_free(o);
	}
	while ((e = STAILQ_FIRST(&b->evs)) != NULL) {
		STAILQ_REMOVE_HEAD(&b->evs, link);
		free(e);
	}
}

/* Under lock: give a failed batch back. Records: where nothing newer came
 * since. Events: before those handed over since, which are newer. */
static void
requeue(struct batch *b)
{
	struct op *o, *next;
	struct ev_op *e;

	RB_FOREACH_SAFE(o, ops, &b->ops, next) {
		RB_REMOVE(ops, &b->ops, o);
		if (RB_INSERT(ops, &pending, o) != NULL)
			op_free(o);
		else
			n_pending++;
	}
	STAILQ_FOREACH(e, &b->evs, link) {
		ev_bytes += e->len;
		n_pending++;
	}
	STAILQ_CONCAT(&b->evs, &pending_evs);
	STAILQ_CONCAT(&pending_evs, &b->evs);
	ev_prune();
}

/* Under lock: is there anything to commit? */
static bool
has_work(void)
{
	return !RB_EMPTY(&pending) || !STAILQ_EMPTY(&pending_evs) ||
	    ev_keep_from > ev_trimmed;
}

static void
notify_loop(void)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warn("store: eventfd write errno=%d", errno);
}

static void *
writer_main(void *unused)
{
	unsigned backoff = 0;

	(void)unused;
	pthread_mutex_lock(&lock);
	for (;;) {
		struct batch batch;
		uint64_t ticket, n;
		int rc;

		while (!has_work() && !stopping)
			pthread_cond_wait(&wake, &lock);
		if (!has_work())
			break;          /* stopping, and all committed */
		n = n_pending;
		batch_take(&batch);
		ticket = handed;
		pthread_mutex_unlock(&lock);

		rc = commit(&batch);
		if (rc == SQLITE_OK)
			batch_free(&batch);     /* not under lock: the loop hands over */

		pthread_mutex_lock(&lock);
		if (rc == SQLITE_OK) {
			committed = ticket;
			counts.commits++;
			counts.records += n;
			backoff = 0;
		} else {
			failed = ticket;
			counts.failures++;
			requeue(&batch);
			log_warn("store_commit_failed path=%s records=%llu error=\"%s\"",
			    db_path, (unsigned long long)n, sqlite3_errstr(rc));
		}
		notify_loop();
		pthread_cond_broadcast(&written);
		if (rc != SQLITE_OK) {
			struct timespec until;

			if (stopping)
				break;  /* one try at exit; it is logged */
			backoff = backoff == 0 ? RETRY_FIRST_MS :
			    (backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2);
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += backoff / 1000;
			until.tv_nsec += (long)(backoff % 1000) * 1000000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			while (!stopping && pthread_cond_timedwait(&wake, &lock,
			    &until) != ETIMEDOUT)
				;
		}
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int
store_commit_now(char **why)
{
	struct batch batch;
	int rc;

	*why = NULL;
	batch_take(&batch);
	rc = commit(&batch);
	if (rc != SQLITE_OK) {
		requeue(&batch);
		*why = sentence("cannot write the state file %s: %s", db_path,
		    sqlite3_errstr(rc));
		return -1;
	}
	batch_free(&batch);
	committed = handed;
	return 0;
}

uint64_t
store_counter_start(struct store_counter *sc, uint64_t floor)
{
	uint64_t first = store_meta_get(sc->key, 0);

	if (first < floor)
		first = floor;
	sc->reserved = first + STORE_BLOCK;
	/* The caller commits it (store_commit_now) before serving. */
	sc->durable = sc->reserved;
	store_meta_set(sc->key, sc->reserved);
	return first;
}

struct extension {
	struct store_counter *sc;
	uint64_t end;
};

static void
extension_cb(void *arg, bool ok)
{
	struct extension *x = arg;

	if (ok && x->end > x->sc->durable)
		x->sc->durable = x->end;
	free(x);
}

void
store_counter_extend(struct store_counter *sc)
{
	struct extension *x = malloc(sizeof *x);

	if (x == NULL)
		fatal("malloc");
	sc->reserved += STORE_BLOCK;
	store_meta_set(sc->key, sc->reserved);
	x->sc = sc;
	x->end = sc->reserved;
	store_after(extension_cb, x);
}

void
store_start(void)
{
	sigset_t all, old;

	/* Signals are the loop's: the writer blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&writer, NULL, writer_main, NULL) != 0)
		fatal("pthread_create store");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	writer_started = true;
}

/* Hand o over: it replaces any pending record with its key. */
static void
hand_over(struct op *o)
{
	struct op *old;

	if (db == NULL) {
		op_free(o);
		return;
	}
	pthread_mutex_lock(&lock);
	old = RB_INSERT(ops, &pending, o);
	if (old != NULL) {
		RB_REMOVE(ops, &pending, old);
		op_free(old);
		RB_INSERT(ops, &pending, o);
	} else {
		n_pending++;
	}
	handed++;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
}

static struct op *
op_new(uint8_t table, uint64_t key)
{
	struct op *o = calloc(1, sizeof *o);

	if (o == NULL)
		fatal("calloc");
	o->table = table;
	o->key = key;
	return o;
}

void
store_put(uint64_t id, uint32_t kind, const void *rec, size_t len)
{
	struct op *o = op_new(TABLE_OBJECTS, id);

	o->kind = kind;
	o->len = len;
	if (len > 0) {
		if ((o->rec = malloc(len)) == NULL)
			fatal("malloc");
		memcpy(o->rec, rec, len);
	}
	hand_over(o);
}

void
store_delete(uint64_t id)
{
	struct op *o = op_new(TABLE_OBJECTS, id);

	o->del = true;
	hand_over(o);
}

void
store_meta_set(uint32_t key, uint64_t value)
{
	struct op *o = op_new(TABLE_META, key);

	o->len = value;         /* a meta op carries its value in len */
	hand_over(o);
}

void
store_event_put(uint64_t seq, uint64_t object_id, uint32_t kind, const void *msg,
    size_t len, uint64_t keep_from)
{
	struct ev_op *e;

	if (db == NULL)
		return;
	if ((e = malloc(sizeof *e + len)) == NULL)
		fatal("malloc");
	e->seq = seq;
	e->object_id = object_id;
	e->kind = kind;
	e->len = len;
	memcpy(e->msg, msg, len);
	pthread_mutex_lock(&lock);
	STAILQ_INSERT_TAIL(&pending_evs, e, link);
	ev_bytes += len;
	n_pending++;
	if (keep_from > ev_keep_from)
		ev_keep_from = keep_from;
	ev_prune();
	handed++;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
}

/* Call back the waiters whose records are committed or failed. */
static void
run_waiters(void)
{
	uint64_t c, f;
	struct store_waiter *w;

	pthread_mutex_lock(&lock);
	c = committed;
	f = failed;
	pthread_mutex_unlock(&lock);
	while ((w = TAILQ_FIRST(&waiters)) != NULL && (w->ticket <= c || w->ticket <= f)) {
		TAILQ_REMOVE(&waiters, w, link);
		/* A later commit may have carried a failed record: durable. */
		w->fn(w->arg, w->ticket <= c);
		free(w);
	}
}

static void
writer_done_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what, (void)arg;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_warn("store: eventfd read errno=%d", errno);
	run_waiters();
}

void
store_after(void (*fn)(void *, bool), void *arg)
{
	struct store_waiter *w = calloc(1, sizeof *w);

	if (w == NULL)
		fatal("calloc");
	w->fn = fn;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&waiters, w, link);
	pthread_mutex_lock(&lock);
	w->ticket = handed;
	if (w->ticket <= committed)
		notify_loop();  /* nothing to wait for: answer on the next lap */
	pthread_mutex_unlock(&lock);
}

void
store_drain(unsigned max_ms)
{
	struct timespec until;

	if (!writer_started)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += max_ms / 1000;
	until.tv_nsec += (long)(max_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&lock);
	while (committed < handed && failed < handed &&
	    pthread_cond_timedwait(&written, &lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&lock);
	run_waiters();
}

void
store_stats(struct store_stats *st)
{
	pthread_mutex_lock(&lock);
	*st = counts;
	st->pending = n_pending;
	st->event_bytes = ev_bytes;
	pthread_mutex_unlock(&lock);
}

void
store_close(void)
{
	struct store_waiter *w;
	struct batch rest;

	if (writer_started) {
		pthread_mutex_lock(&lock);
		stopping = true;
		pthread_cond_signal(&wake);
		pthread_mutex_unlock(&lock);
		pthread_join(writer, NULL);
		writer_started = false;
	}
	/* Every callback runs once, so each frees what it holds: those the
	 * final commit answered with ok, the rest not. */
	if (db != NULL)
		run_waiters();
	while ((w = TAILQ_FIRST(&waiters)) != NULL) {
		TAILQ_REMOVE(&waiters, w, link);
		w->fn(w->arg, false);
		free(w);
	}
	if (n_pending > 0)
		log_warn("store_close_unwritten path=%s records=%llu", db_path,
		    (unsigned long long)n_pending);
	batch_take(&rest);
	batch_free(&rest);
	handed = committed = failed = 0;
	ev_keep_from = ev_trimmed = 0;
	stopping = false;
	memset(&counts, 0, sizeof counts);
	if (efd_ev != NULL)
		event_free(efd_ev);
	if (efd >= 0)
		close(efd);
	efd_ev = NULL;
	efd = -1;
	sqlite3_finalize(st_put);
	sqlite3_finalize(st_del);
	sqlite3_finalize(st_meta);
	sqlite3_finalize(st_ev_put);
	sqlite3_finalize(st_ev_trim);
	st_put = st_del = st_meta = st_ev_put = st_ev_trim = NULL;
	sqlite3_close(db);
	db = NULL;
	free(db_path);
	db_path = NULL;
	if (lock_fd >= 0)
		close(lock_fd);
	lock_fd = -1;
}
