/*
 * test_store.c - daemon/store.c against a real SQLite file in a temporary
 * directory and a real event loop: records survive a close and reopen,
 * the latest record per key wins, retained events are appended in seq
 * order and trimmed below the ring's oldest seq (pending ones too, which
 * bounds them), a failed commit (a real file size limit) is reported,
 * retried and then durable, and files waiter cannot trust are refused and
 * left byte for byte as they were.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "store.h"
#include "tap.h"

static struct event_base *base;
static char top[] = "/tmp/waiter-store.XXXXXX";

struct wait {
	bool called, ok;
};

static void
after_cb(void *arg, bool ok)
{
	struct wait *w = arg;

	w->called = true;
	w->ok = ok;
}

/* Hand a store_after() over and run the loop until it is answered. */
static bool
durable(void)
{
	struct wait w = { 0 };

	store_after(after_cb, &w);
	while (!w.called)
		event_base_loop(base, EVLOOP_ONCE);
	return w.ok;
}

static char *
path_in(const char *dir, const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
	return buf[i];
}

static bool
open_ok(const char *dir)
{
	char *why = NULL;
	int rc = store_open(base, dir, STORE_SYNC_FULL, &why);

	if (rc < 0)
		printf("# store_open: %s\n", why);
	free(why);
	return rc == 0;
}

/* store_open must refuse dir; returns the sentence (caller frees). */
static char *
open_refused(const char *dir)
{
	char *why = NULL;

	if (store_open(base, dir, STORE_SYNC_FULL, &why) == 0) {
		store_close();
		return NULL;
	}
	return why;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	fclose(f);
	return buf;
}

static void
spit(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	fwrite(buf, 1, len, f);
	fclose(f);
}

struct seen {
	uint64_t ids[16];
	char recs[16][64];
	size_t big;             /* length of a record over 64 bytes */
	int n;
};

static int
each_cb(uint64_t id, uint32_t kind, const void *rec, size_t len, void *arg)
{
	struct seen *s = arg;

	(void)kind;
	if (s->n == 16)
		return 1;
	s->ids[s->n] = id;
	if (len < 64)
		memcpy(s->recs[s->n], rec, len);
	else
		s->big = len;
	s->n++;
	return 0;
}

static void
test_round_trip(const char *dir)
{
	struct seen s = { 0 };
	struct stat sb;
	char *why = NULL;
	char rec[32];

	ok(open_ok(dir), "a new state directory is created and opened");
	ok(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700, "the directory is 0700");
	ok(stat(path_in(dir, "state.db"), &sb) == 0 && (sb.st_mode & 0777) == 0600,
	    "the file is 0600");
	store_start();
	store_put(1, 7, "one", 4);
	store_put(2, 7, "two", 4);
	store_put(3, 8, "three", 6);
	store_meta_set(1, 42);
	ok(durable(), "records handed over are committed");
	for (int i = 0; i < 1000; i++) {
		snprintf(rec, sizeof rec, "five-%d", i);
		store_put(5, 9, rec, strlen(rec) + 1);
	}
	store_delete(2);
	store_put(6, 9, "gone", 5);
	store_delete(6);
	ok(durable(), "a burst of puts and deletes is committed");
	store_close();

	ok(open_ok(dir), "the state reopens");
	is_int(store_meta_get(1, 0), 42, "a meta value survives");
	is_int(store_meta_get(9, 7), 7, "an unset meta value is the default");
	is_int(store_each(each_cb, &s, &why), 0, "the objects are read back");
	is_int(s.n, 3, "three objects: deleted ones are gone");
	ok(s.ids[0] == 1 && s.ids[1] == 3 && s.ids[2] == 5, "in id order");
	is_str(s.recs[0], "one", "a record comes back as it was");
	is_str(s.recs[2], "five-999", "the latest of 1000 puts to one id wins");
	free(why);
	store_close();
}

struct evseen {
	uint64_t seqs[64], object_ids[64];
	char msgs[64][32];
	int n;
};

static int
event_cb(uint64_t seq, uint64_t object_id, uint32_t kind, const void *msg, size_t len,
    void *arg)
{
	struct evseen *s = arg;

	(void)kind;
	if (s->n == 64)
		return 1;
	s->seqs[s->n] = seq;
	s->object_ids[s->n] = object_id;
	snprintf(s->msgs[s->n], sizeof s->msgs[s->n], "%.*s", (int)len, (const char *)msg);
	s->n++;
	return 0;
}

/* The message of event seq in these tests. */
static size_t
event_msg(uint64_t seq, char *buf, size_t size)
{
	return (size_t)snprintf(buf, size, "event-%llu", (unsigned long long)seq);
}

/* Hand event seq over, for object 7, with the ring's oldest seq. */
static size_t
put_event(uint64_t seq, uint64_t keep_from)
{
	char msg[32];
	size_t len = event_msg(seq, msg, sizeof msg);

	store_event_put(seq, 7, 1, msg, len, keep_from);
	return len;
}

/* Rows of table in dir's state file, read by a connection of our own. */
static long long
count_rows(const char *dir, const char *table)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	char sql[64];
	long long n = -1;

	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
	if (sqlite3_open_v2(path_in(dir, "state.db"), &h, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(h);
	return n;
}

/* Read the events table back: reopen dir, read, close. */
static void
read_events(const char *dir, struct evseen *s)
{
	char *why = NULL;

	memset(s, 0, sizeof *s);
	if (!open_ok(dir))
		return;
	if (store_event_each(event_cb, s, &why) < 0)
		printf("# store_event_each: %s\n", why);
	free(why);
	store_close();
}

static void
test_events(const char *dir)
{
	struct store_stats st;
	struct evseen s;
	size_t bytes = 0;
	char want[32];
	bool in_order = true;
	sqlite3 *h;

	ok(open_ok(dir), "a state for the events test");
	/* No writer yet: everything stays pending, as behind a slow disk. A
	 * ring of 10: each event comes with keep_from = its seq - 9. */
	for (uint64_t seq = 1; seq <= 1000; seq++) {
		size_t len = put_event(seq, seq > 9 ? seq - 9 : 1);

		if (seq > 990)
			bytes += len;
	}
	store_stats(&st);
	is_int(st.pending, 10, "1000 events handed over, 10 pending: the ring's");
	is_int(st.event_bytes, bytes, "their bytes are all that waits");
	store_start();
	ok(durable(), "the pending events are committed");
	is_int(count_rows(dir, "events"), 10, "store_after waits for events too: "
	    "another reader sees them before the store closes");
	/* Not latest-wins: five more events of the same object, each kept. */
	for (uint64_t seq = 1001; seq <= 1005; seq++)
		put_event(seq, seq - 9);
	ok(durable(), "five more are committed");
	store_close();

	read_events(dir, &s);
	is_int(s.n, 10, "10 events are kept: those below the ring's oldest are deleted");
	for (int i = 0; i < s.n; i++) {
		event_msg(996 + (uint64_t)i, want, sizeof want);
		if (s.seqs[i] != 996 + (uint64_t)i || s.object_ids[i] != 7 ||
		    strcmp(s.msgs[i], want) != 0)
			in_order = false;
	}
	ok(in_order, "in seq order, each as it was handed over");

	/* A jump in seqs (after a crash) is just the next row. */
	ok(open_ok(dir), "the state reopens for a jump in seqs");
	store_start();
	put_event(1u << 20, 997);
	ok(durable(), "an event past a jump is committed");
	store_close();
	read_events(dir, &s);
	ok(s.n == 10 && s.seqs[0] == 997 && s.seqs[8] == 1005 && s.seqs[9] == 1u << 20,
	    "the oldest is trimmed, the jump kept: %d rows, %llu .. %llu", s.n,
	    (unsigned long long)s.seqs[0], (unsigned long long)s.seqs[s.n ? s.n - 1 : 0]);

	/* A file from before the events table (format 1 all the same). */
	sqlite3_open(path_in(dir, "state.db"), &h);
	sqlite3_exec(h, "DROP TABLE events", NULL, NULL, NULL);
	sqlite3_close(h);
	ok(open_ok(dir), "a state file without the events table opens");
	store_start();
	put_event(5, 5);
	ok(durable(), "and gains it");
	store_close();
	read_events(dir, &s);
	ok(s.n == 1 && s.seqs[0] == 5, "with the one event written since");
}

/* A real write failure: a file size limit below what the commit needs. */
static void
test_failure(const char *dir)
{
	struct rlimit old, lim;
	struct store_stats st;
	struct seen s = { 0 };
	struct stat a, b;
	char *why = NULL;
	size_t big = 4 << 20;
	char *blob = calloc(1, big);

	ok(open_ok(dir), "the state reopens for the failure test");
	store_start();
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	stat(path_in(dir, "state.db"), &a);
	if (stat(path_in(dir, "state.db-wal"), &b) < 0)
		b.st_size = 0;
	lim.rlim_cur = (rlim_t)(a.st_size > b.st_size ? a.st_size : b.st_size) + 65536;
	setrlimit(RLIMIT_FSIZE, &lim);
	memset(blob, 'x', big);
	put_event(41, 41);
	store_put(10, 1, blob, big);
	put_event(42, 41);
	ok(!durable(), "a commit the disk refuses is reported as failed");
	store_stats(&st);
	ok(st.failures >= 1 && st.pending >= 1, "it is counted and the record stays pending");
	/* 41 may have been committed alone or have failed with the record:
	 * either way, once the ring lets go of it, it is not kept. */
	put_event(43, 42);
	setrlimit(RLIMIT_FSIZE, &old);
	ok(durable(), "once the disk takes it again, the retry commits it");
	store_close();

	ok(open_ok(dir), "the state reopens after the failure");
	store_each(each_cb, &s, &why);
	ok(s.n == 4 && s.ids[3] == 10 && s.big == big, "the record that failed once is there");
	free(why);
	store_close();
	{
		struct evseen e;

		read_events(dir, &e);
		ok(e.n == 2 && e.seqs[0] == 42 && e.seqs[1] == 43,
		    "so are the events the ring holds, in order: %d rows", e.n);
	}
	ok(open_ok(dir), "the state reopens after the events");
	free(blob);
	store_close();
}

static void
test_refusals(void)
{
	char *d, *why, *before, *after;
	size_t lb, la;
	sqlite3 *h;

	/* Not a database at all. */
	d = path_in(top, "garbage");
	mkdir(d, 0700);
	before = malloc(4096);
	for (int i = 0; i < 4096; i++)
		before[i] = (char)(i * 7 + 3);
	spit(path_in(d, "state.db"), before, 4096);
	why = open_refused(d);
	ok(why != NULL && strstr(why, "not a database waiter can read") != NULL &&
	    strstr(why, "left as it is") != NULL, "a garbage file is refused: %s",
	    why ? why : "(opened)");
	after = slurp(path_in(d, "state.db"), &la);
	ok(la == 4096 && memcmp(before, after, 4096) == 0, "and left byte for byte");
	free(why), free(before), free(after);

	/* Another program's SQLite database. */
	d = path_in(top, "foreign");
	mkdir(d, 0700);
	sqlite3_open(path_in(d, "state.db"), &h);
	sqlite3_exec(h, "CREATE TABLE t (x); INSERT INTO t VALUES (1);", NULL, NULL, NULL);
	sqlite3_close(h);
	before = slurp(path_in(d, "state.db"), &lb);
	why = open_refused(d);
	ok(why != NULL && strstr(why, "not a waiter state database") != NULL,
	    "another program's database is refused: %s", why ? why : "(opened)");
	after = slurp(path_in(d, "state.db"), &la);
	ok(la == lb && memcmp(before, after, la) == 0, "and left byte for byte");
	free(why), free(before), free(after);

	/* A newer format. */
	d = path_in(top, "newer");
	ok(open_ok(d), "a state for the newer-format test");
	store_close();
	sqlite3_open(path_in(d, "state.db"), &h);
	sqlite3_exec(h, "PRAGMA user_version = 99", NULL, NULL, NULL);
	sqlite3_close(h);
	before = slurp(path_in(d, "state.db"), &lb);
	why = open_refused(d);
	ok(why != NULL && strstr(why, "format 99, newer") != NULL,
	    "a newer format is refused: %s", why ? why : "(opened)");
	after = slurp(path_in(d, "state.db"), &la);
	ok(la == lb && memcmp(before, after, la) == 0, "and left byte for byte");
	free(why), free(before), free(after);

	/* A waiter database damaged inside. */
	d = path_in(top, "corrupt");
	ok(open_ok(d), "a state for the corruption test");
	store_start();
	{
		char rec[2000];

		memset(rec, 'r', sizeof rec);
		for (uint64_t id = 1; id <= 200; id++)
			store_put(id, 1, rec, sizeof rec);
		ok(durable(), "200 records committed");
	}
	store_close();
	before = slurp(path_in(d, "state.db"), &lb);
	ok(lb > 8 * 4096, "the file has many pages");
	for (size_t i = 2 * 4096; i < 6 * 4096; i++)
		before[i] = (char)(i * 13);
	spit(path_in(d, "state.db"), before, lb);
	why = open_refused(d);
	ok(why != NULL && (strstr(why, "corrupt") != NULL ||
	    strstr(why, "not a database waiter can read") != NULL),
	    "a damaged file is refused: %s", why ? why : "(opened)");
	after = slurp(path_in(d, "state.db"), &la);
	ok(la == lb && memcmp(before, after, la) == 0, "and left byte for byte");
	free(why), free(before), free(after);

	/* A directory others can write to. */
	d = path_in(top, "open");
	mkdir(d, 0700);
	chmod(d, 0777);
	why = open_refused(d);
	ok(why != NULL && strstr(why, "writable by it alone") != NULL,
	    "a world-writable state directory is refused: %s", why ? why : "(opened)");
	free(why);

	/* A symlink planted where the file goes. */
	d = path_in(top, "link");
	mkdir(d, 0700);
	spit(path_in(top, "target"), "keep", 4);
	symlink(path_in(top, "target"), path_in(d, "state.db"));
	why = open_refused(d);
	ok(why != NULL && strstr(why, "symbolic link") != NULL,
	    "a symlink at the state file is not followed: %s",
	    why ? why : "(opened)");
	after = slurp(path_in(top, "target"), &la);
	ok(la == 4 && memcmp(after, "keep", 4) == 0, "its target is untouched");
	free(why), free(after);
}

int
main(void)
{
	char *dir;

	alarm(60);      /* a hang is a failure, not a stuck CI */
	if (mkdtemp(top) == NULL)
		return 1;
	base = event_base_new();
	dir = strdup(path_in(top, "state"));
	test_round_trip(dir);
	test_failure(dir);
	test_events(path_in(top, "events"));
	test_refusals();
	event_base_free(base);
	free(dir);
	{
		char cmd[600];

		snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", top);
	}
	return done_testing();
}
