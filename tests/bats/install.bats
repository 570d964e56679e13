#!/usr/bin/env bats
# make install DESTDIR=... from the build under test (WAITER_BUILDDIR): every
# file is installed, the installed programs, C library (through pkg-config)
# and Python package work against a daemon, the manuals render without
# warnings, and make uninstall leaves no file. The tests run in order: the
# first installs, the last uninstalls.

load helpers

SRCDIR="$BATS_TEST_DIRNAME/../.."

# make in the build under test, on its own: not a part of the make that
# runs the tests (its flags and variables stay out).
build_make() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
		make --no-print-directory -C "$WAITER_BUILDDIR" "$@"
}

# One install for the file (the last test uninstalls it); its output and
# status are checked by the first test.
setup_file() {
	DEST="$BATS_FILE_TMPDIR/dest"
	export DEST
	mkdir -p "$DEST"
	rc=0
	build_make install DESTDIR="$DEST" >"$BATS_FILE_TMPDIR/install.out" 2>&1 || rc=$?
	echo "$rc" >"$BATS_FILE_TMPDIR/install.rc"
}

setup() {
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	export TESTDIR
}

teardown() {
	# A daemon the installed waiter started: stop it by the pid in its lock.
	if [ -n "${AUTO_SOCK:-}" ] && [ -s "$AUTO_SOCK.lock" ]; then
		pid=$(head -n1 "$AUTO_SOCK.lock")
		kill -TERM "$pid" 2>/dev/null && wait_gone "$pid" || true
	fi
	daemon_teardown
}

# The value of a make variable of the build, expanded (bindir, CFLAGS, ...).
make_var() {
	printf 'print-var-%%:\n\t@echo $($*)\n' >"$TESTDIR/print.mk"
	build_make -s -f Makefile -f "$TESTDIR/print.mk" "print-var-$1"
}

# Every file make install should put in DESTDIR, one a line.
expected_files() {
	local f d bindir libdir includedir pkgpythondir mandir docdir
	bindir=$(make_var bindir)
	libdir=$(make_var libdir)
	includedir=$(make_var includedir)
	pkgpythondir=$(make_var pkgpythondir)
	mandir=$(make_var mandir)
	docdir=$(make_var docdir)
	echo "$bindir/waiter"
	echo "$bindir/waiterd"
	echo "$libdir/libwaiter.a"
	echo "$libdir/pkgconfig/libwaiter.pc"
	echo "$includedir/waiter.h"
	echo "$includedir/waiter.pb-c.h"
	for f in __init__ __main__ errors _codec _ops client aio waiter_pb2 _version; do
		echo "$pkgpythondir/$f.py"
	done
	echo "$mandir/man1/waiter.1"
	echo "$mandir/man8/waiterd.8"
	d=$(make_var bashcompletiondir)
	echo "$d/waiter"
	echo "$d/waiterd"
	echo "$(make_var zshcompletiondir)/_waiter"
	for f in $(make_var dist_doc_DATA); do
		echo "$docdir/${f##*/}"
	done
	# The systemd units Makefile.am lists, if any.
	d=$(make_var systemdsystemunitdir)
	for f in $(make_var dist_systemdsystemunit_DATA) \
		$(make_var nodist_systemdsystemunit_DATA); do
		echo "$d/${f##*/}"
	done
	d=$(make_var systemduserunitdir)
	for f in $(make_var dist_systemduserunit_DATA) $(make_var nodist_systemduserunit_DATA); do
		echo "$d/${f##*/}"
	done
}

@test "make install DESTDIR=... installs every file" {
	[ "$(cat "$BATS_FILE_TMPDIR/install.rc")" = 0 ] || {
		cat "$BATS_FILE_TMPDIR/install.out"
		return 1
	}
	(cd "$DEST" && find . \( -type f -o -type l \) | sed 's/^\.//' | sort) >"$TESTDIR/installed"
	expected_files | sort >"$TESTDIR/expected"
	[ "$(wc -l <"$TESTDIR/expected")" -ge 25 ]
	missing=$(comm -23 "$TESTDIR/expected" "$TESTDIR/installed")
	[ -z "$missing" ] || {
		echo "not installed:"; echo "$missing"
		echo "installed:"; cat "$TESTDIR/installed"
		return 1
	}
	# bash-completion finds waiterd's completion by its name: the link.
	[ "$(readlink "$DEST$(make_var bashcompletiondir)/waiterd")" = waiter ]
	# The manuals installed are the ones in the tree.
	cmp "$DEST$(make_var mandir)/man1/waiter.1" "$SRCDIR/doc/waiter.1"
	cmp "$DEST$(make_var mandir)/man8/waiterd.8" "$SRCDIR/doc/waiterd.8"
}

@test "the installed waiter starts the installed waiterd beside it" {
	bindir="$DEST$(make_var bindir)"
	run "$bindir/waiter" --help
	assert_success
	assert_line --partial 'usage: waiter'
	run "$bindir/waiterd" --version
	assert_success
	assert_output --regexp '^waiterd [0-9.]+ \(protocol [0-9]+\)$'
	# No socket named: the installed waiter starts a daemon at the default
	# socket, and finds waiterd beside itself, not on PATH or in the build.
	unset WAITER_SOCKET WAITERD
	export XDG_RUNTIME_DIR="$TESTDIR/run"
	mkdir -m 0700 "$XDG_RUNTIME_DIR"
	AUTO_SOCK="$XDG_RUNTIME_DIR/waiter/waiterd.sock"
	PATH=/usr/bin:/bin run "$bindir/waiter" ping
	assert_success
	assert_output pong
	pid=$(head -n1 "$AUTO_SOCK.lock")
	[ "$(readlink "/proc/$pid/exe")" = "$bindir/waiterd" ]
	run "$bindir/waiter" shutdown
	assert_success
	wait_gone "$pid"
}

@test "pkg-config gives libwaiter; a C program built with it talks to a daemon" {
	start_daemon
	libdir=$(make_var libdir)
	export PKG_CONFIG_PATH="$DEST$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$DEST"
	run pkg-config --modversion libwaiter
	assert_success
	assert_output "$(make_var PACKAGE_VERSION)"
	run pkg-config --cflags --libs libwaiter
	assert_success
	assert_output --partial -- "-I$DEST$(make_var includedir)"
	assert_output --partial -- "-L$DEST$libdir"
	assert_output --partial -- -lwaiter
	assert_output --partial -- -lprotobuf-c
	cat >"$TESTDIR/hello.c" <<'EOF'
/* A timer of 10 ms on the daemon, and its event. */
#include <stdio.h>
#include <waiter.h>

int
main(void)
{
	struct waiter *w;
	struct waiter_error err;
	Waiter__V1__Request req = WAITER__V1__REQUEST__INIT;
	Waiter__V1__TimerCreate tc = WAITER__V1__TIMER_CREATE__INIT;
	Waiter__V1__ServerMessage *m;
	const char *why;
	uint64_t id;

	if (waiter_connect(NULL, "install-test", &w, &err) < 0) {
		fprintf(stderr, "connect: %s\n", err.message);
		return 1;
	}
	if (waiter_parse_duration("10ms", &tc.after_us, &why) < 0) {
		fprintf(stderr, "10ms: %s\n", why);
		return 1;
	}
	req.op_case = WAITER__V1__REQUEST__OP_TIMER_CREATE;
	req.timer_create = &tc;
	if (waiter_call(w, &req, &m, &err) < 0) {
		fprintf(stderr, "timer: %s\n", err.message);
		return 1;
	}
	id = m->reply->timer_create->object->id;
	waiter_message_free(m);
	for (;;) {
		if (waiter_next_event(w, 10000, &m, &err) != 1) {
			fprintf(stderr, "no event: %s\n", err.message);
			return 1;
		}
		if (m->event->object_id == id &&
		    m->event->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_TIMER_FIRED)
			break;
		waiter_message_free(m);
	}
	printf("timer %llu fired; waiterd %s\n", (unsigned long long)id,
	    waiter_server_version(w));
	waiter_message_free(m);
	waiter_close(w);
	return 0;
}
EOF
	# The build's compiler and flags: a sanitizer build's library needs
	# its runtime at link time.
	# shellcheck disable=SC2046
	run $(make_var CC) $(make_var CFLAGS) -Wall -Wextra -Werror -o "$TESTDIR/hello" \
		"$TESTDIR/hello.c" $(pkg-config --cflags --libs libwaiter) $(make_var LDFLAGS)
	assert_success
	run "$TESTDIR/hello"
	assert_success
	assert_output --regexp '^timer [0-9]+ fired; waiterd [0-9.]+$'
}

@test "the installed Python package imports and talks to a daemon" {
	start_daemon
	pkgpythondir="$DEST$(make_var pkgpythondir)"
	PYTHONPATH="$DEST$(make_var pythondir)" run /usr/bin/python3 -c '
import waiter
print(waiter.__file__)
with waiter.Client() as w:
    w.after(0.01).wait()
    print("fired", waiter.__version__)'
	assert_success
	assert_line "$pkgpythondir/__init__.py"
	assert_line "fired $(make_var PACKAGE_VERSION)"
}

@test "the manuals render without warnings" {
	command -v man >/dev/null || { echo "man is not installed (Debian package man-db): .ci/deps installs it" >&2; return 1; }
	for page in "$SRCDIR/doc/waiter.1" "$SRCDIR/doc/waiterd.8"; do
		run env MANWIDTH=80 man --warnings -l "$page"
		assert_success
		[ "$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)" = "" ] || {
			echo "$page:"
			MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null
			return 1
		}
	done
	run env LC_ALL=C MANWIDTH=80 man -l "$SRCDIR/doc/waiter.1"
	assert_line --partial 'waiter [-S path] [--json] [--no-autostart] command'
}

@test "make uninstall removes every file it installed" {
	run build_make uninstall DESTDIR="$DEST"
	assert_success
	run find "$DEST" \( -type f -o -type l \)
	assert_success
	assert_output ""
}
