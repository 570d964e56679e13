#!/usr/bin/env bats
# waiterd as a sidecar (doc/sidecar.md), without containers: each test reads
# contrib/kubernetes/waiter-sidecar.yaml or contrib/compose.yaml and lays
# out what a cluster or docker would make of it on this machine: the shared
# volume as the kubelet makes an emptyDir (root's, mode 0777, and 2777 with
# the group fsGroup) or as compose's tmpfs options say, waiterd started with
# the manifest's own arguments under its uid, gid and groups, the app under
# its own, behind a read-only bind mount where the manifest mounts the
# volume read-only. The probes and the app's script are the manifest's,
# with only the volumes' paths and the binaries' places changed. So a
# change to a manifest that breaks the layout fails here.
#
# Who may connect in general (--allow-group, modes, planted files) is
# tested in permissions.bats and lifecycle.bats; this file tests the
# layouts we ship. Runs as root (setpriv, unshare -m).

load helpers

SRCDIR=${WAITER_SRCDIR:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
K8S=$SRCDIR/contrib/kubernetes/waiter-sidecar.yaml
COMPOSE=$SRCDIR/contrib/compose.yaml
DOCKERFILE=$SRCDIR/contrib/Dockerfile
# Debian's python3 (with python3-yaml); one in root's PATH may lack it.
PY=/usr/bin/python3

setup_file() {
	# Reads the manifests: `check` asserts their structure; `layout KIND RUN
	# STATE APPRUN` prints bash assignments of the layout with the volumes'
	# mount paths replaced by these directories.
	cat >"$BATS_FILE_TMPDIR/manifest.py" <<'EOF'
import re, shlex, sys, yaml

def load(path):
    with open(path) as f:
        return yaml.safe_load(f)

def seconds(v):
    m = re.fullmatch(r'(\d+)(s|m)?', str(v))
    assert m, "not a duration: %r" % (v,)
    return int(m.group(1)) * (60 if m.group(2) == 'm' else 1)

def flag(argv, name):
    assert argv.count(name) == 1, "waiterd has no (or more than one) %s: %s" % (name, argv)
    return argv[argv.index(name) + 1]

def under(path, mount):
    return path.startswith(mount.rstrip('/') + '/')

def remap(s, mount, host):
    # mount as a path prefix only: /run/waiter, not /run/waiterx
    return re.sub(re.escape(mount.rstrip('/')) + r'(?=/|\b|$)', host, s)

class Layout:
    pass

def k8s(path):
    pod = load(path)
    L = Layout()
    assert pod['apiVersion'] == 'v1' and pod['kind'] == 'Pod', "not a v1 Pod"
    spec = pod['spec']
    psc = spec['securityContext']
    assert psc.get('runAsNonRoot') is True, "pod: runAsNonRoot is not true"
    side = [c for c in spec.get('initContainers', []) if c['name'] == 'waiterd']
    assert len(side) == 1, "no init container named waiterd"
    d = side[0]
    assert d.get('restartPolicy') == 'Always', "waiterd: not a native sidecar (restartPolicy: Always)"
    apps = [c for c in spec['containers'] if c['name'] == 'app']
    assert len(apps) == 1, "no container named app"
    a = apps[0]
    assert 'command' not in d, "waiterd: command replaces the image's tini; use args"
    L.daemon_argv = [str(x) for x in d['args']]
    for c in (d, a):
        sc = c['securityContext']
        assert sc.get('allowPrivilegeEscalation') is False, c['name'] + ": allowPrivilegeEscalation"
        assert sc.get('readOnlyRootFilesystem') is True, c['name'] + ": readOnlyRootFilesystem"
        assert sc['capabilities']['drop'] == ['ALL'], c['name'] + ": capabilities not dropped"
        assert c['resources']['requests'] and c['resources']['limits']['memory'], c['name'] + ": resources"
    L.daemon_uid, L.daemon_gid = d['securityContext']['runAsUser'], d['securityContext']['runAsGroup']
    L.app_uid, L.app_gid = a['securityContext']['runAsUser'], a['securityContext']['runAsGroup']
    extra = ([psc['fsGroup']] if 'fsGroup' in psc else []) + psc.get('supplementalGroups', [])
    L.daemon_groups = L.app_groups = extra
    L.fs_group = psc.get('fsGroup')
    vols = {v['name']: v for v in spec['volumes']}
    dm = {m['name']: m for m in d['volumeMounts']}
    am = {m['name']: m for m in a['volumeMounts']}
    shared = [n for n in dm if n in am]
    assert len(shared) == 1, "the containers share not exactly one volume: %s" % shared
    run = shared[0]
    assert 'emptyDir' in vols[run], "the shared volume is not an emptyDir"
    L.run_mount, L.app_run_mount = dm[run]['mountPath'], am[run]['mountPath']
    L.app_run_ro = bool(am[run].get('readOnly'))
    state = flag(L.daemon_argv, '--state-dir')
    smounts = [m['mountPath'] for m in d['volumeMounts'] if under(state, m['mountPath'])]
    assert len(smounts) == 1, "--state-dir %s is in no volume (or the root of one)" % state
    L.state_mount = smounts[0]
    L.probes = {}
    for p in ('startupProbe', 'readinessProbe', 'livenessProbe'):
        L.probes[p] = [str(x) for x in d[p]['exec']['command']]
    env = {e['name']: e['value'] for e in a.get('env', [])}
    L.app_socket = env.get('WAITER_SOCKET')
    L.app_mount_for_socket = L.app_run_mount
    assert a['args'][:2] == ['sh', '-c'], "app: args are not sh -c SCRIPT"
    L.app_script = a['args'][2]
    L.grace = spec['terminationGracePeriodSeconds']
    L.vol = 'emptyDir'
    return L

def compose(path):
    doc = load(path)
    L = Layout()
    s = doc['services']
    d, a = s['waiterd'], s['app']
    L.daemon_argv = [str(x) for x in d['command']]
    for c, name in ((d, 'waiterd'), (a, 'app')):
        assert c.get('read_only') is True, name + ": read_only"
        assert c.get('cap_drop') == ['ALL'], name + ": cap_drop"
        assert 'no-new-privileges:true' in c.get('security_opt', []), name + ": no-new-privileges"
        assert c.get('mem_limit'), name + ": mem_limit"
    L.daemon_uid, L.daemon_gid = (int(x) for x in str(d['user']).split(':'))
    L.app_uid, L.app_gid = (int(x) for x in str(a['user']).split(':'))
    L.daemon_groups = [int(x) for x in d.get('group_add', [])]
    L.app_groups = [int(x) for x in a.get('group_add', [])]
    L.fs_group = None
    assert a['depends_on']['waiterd']['condition'] == 'service_healthy', \
        "app does not wait for waiterd's healthcheck"
    def mounts(c):
        out = {}
        for v in c['volumes']:
            parts = v.split(':')
            out[parts[0]] = (parts[1], len(parts) > 2 and 'ro' in parts[2].split(','))
        return out
    dm, am = mounts(d), mounts(a)
    shared = [n for n in dm if n in am]
    assert len(shared) == 1, "the services share not exactly one volume: %s" % shared
    run = shared[0]
    assert run in doc['volumes'], "the shared volume %s is not a named volume" % run
    L.run_mount, L.app_run_mount = dm[run][0], am[run][0]
    L.app_run_ro = am[run][1]
    opts = dict(o.split('=', 1) for o in doc['volumes'][run]['driver_opts']['o'].split(','))
    L.vol = 'tmpfs %s %s %s' % (opts['uid'], opts['gid'], opts['mode'])
    state = flag(L.daemon_argv, '--state-dir')
    smounts = [p for p, ro in dm.values() if under(state, p)]
    assert len(smounts) == 1, "--state-dir %s is in no volume (or the root of one)" % state
    L.state_mount = smounts[0]
    test = [str(x) for x in d['healthcheck']['test']]
    assert test[0] == 'CMD', "healthcheck: not CMD form"
    L.probes = {'healthcheck': test[1:]}
    L.app_socket = a['environment']['WAITER_SOCKET']
    assert a['command'][:2] == ['sh', '-c'], "app: command is not sh -c SCRIPT"
    L.app_script = a['command'][2].replace('$$', '$')   # compose's escape
    L.grace = seconds(d['stop_grace_period'])
    return L

def common(L, what):
    argv = L.daemon_argv
    assert argv[0] == 'waiterd', what + ": the sidecar does not run waiterd"
    sock = flag(argv, '-S')
    assert under(sock, L.run_mount), what + ": the socket is not on the shared volume"
    assert sock.rsplit('/', 1)[0] != L.run_mount.rstrip('/'), \
        what + ": the socket is at the volume's root, which waiterd refuses (others may write it)"
    assert flag(argv, '--state-dir') != L.state_mount, what + ": --state-dir is a volume's root"
    group = int(flag(argv, '--allow-group'))
    assert group in L.app_groups or group == L.app_gid, what + ": the app is not in the allowed group"
    assert group in L.daemon_groups or group == L.daemon_gid, \
        what + ": waiterd is not in the group it allows, and cannot give it the socket"
    assert L.app_uid != L.daemon_uid, what + ": the app runs as waiterd's uid"
    for name, cmd in L.probes.items():
        assert cmd == ['waiter', '-S', sock, 'ping'], "%s: %s is not waiter -S SOCKET ping" % (what, name)
    rel = sock[len(L.run_mount.rstrip('/')):]
    assert L.app_socket == L.app_run_mount.rstrip('/') + rel, \
        what + ": the app's WAITER_SOCKET is not waiterd's socket"
    grace = seconds(flag(argv, '--kill-grace'))
    assert L.grace > grace + 3, what + ": the stop grace does not cover --kill-grace plus 3 s"
    return sock

def dockerfile(path, k, c):
    text = open(path).read()
    final = text.split('\nFROM ')[-1]
    assert final.startswith('debian:bookworm-slim'), "the runtime stage is not bookworm-slim"
    assert re.search(r'^FROM debian:bookworm AS build$', text, re.M), "the build stage is not bookworm"
    user = re.search(r'^USER (\d+):(\d+)$', final, re.M)
    assert user, "the image has no numeric USER"
    for L, what in ((k, 'kubernetes'), (c, 'compose')):
        assert (L.daemon_uid, L.daemon_gid) == (int(user.group(1)), int(user.group(2))), \
            what + ": waiterd's uid:gid is not the image's USER"
    env = re.search(r'^ENV WAITER_SOCKET=(\S+)$', final, re.M)
    assert env and env.group(1) == flag(k.daemon_argv, '-S'), "the image's WAITER_SOCKET differs"
    vols = re.search(r'^VOLUME (\[.*\])$', final, re.M)
    assert vols and {k.run_mount, k.state_mount} <= set(yaml.safe_load(vols.group(1))), \
        "the image's VOLUMEs are not the manifest's"
    assert re.search(r'^ENTRYPOINT \["/usr/bin/tini", "--"\]$', final, re.M), "no tini"

def emit(name, v):
    if isinstance(v, list):
        print('%s=(%s)' % (name, ' '.join(shlex.quote(str(x)) for x in v)))
    else:
        print('%s=%s' % (name, shlex.quote('' if v is None else str(v))))

if sys.argv[1] == 'check':
    k, c = k8s(sys.argv[2]), compose(sys.argv[3])
    sk, sc = common(k, 'kubernetes'), common(c, 'compose')
    assert k.daemon_argv == c.daemon_argv, "waiterd's arguments differ between the manifests"
    dockerfile(sys.argv[4], k, c)
    print('ok')
    sys.exit(0)

kind, path, run, state, apprun = sys.argv[1:6]
L = (k8s if kind == 'k8s' else compose)(path)
common(L, kind)
argv = [remap(remap(x, L.run_mount, run), L.state_mount, state) for x in L.daemon_argv]
emit('DAEMON_ARGV', argv)
emit('SOCKET', flag(argv, '-S'))
emit('STATE_DIR', flag(argv, '--state-dir'))
emit('ALLOW_GROUP', flag(argv, '--allow-group'))
emit('KILL_GRACE', seconds(flag(argv, '--kill-grace')))
for n in ('daemon_uid', 'daemon_gid', 'app_uid', 'app_gid', 'fs_group', 'app_run_ro', 'grace', 'vol'):
    emit(n.upper(), int(getattr(L, n)) if isinstance(getattr(L, n), bool) else getattr(L, n))
emit('DAEMON_GROUPS', ','.join(str(g) for g in L.daemon_groups))
emit('APP_GROUPS', ','.join(str(g) for g in L.app_groups))
emit('PROBES', list(L.probes))
for name, cmd in L.probes.items():
    emit('PROBE_' + name, [remap(x, L.run_mount, run) for x in cmd])
emit('APP_SOCKET', remap(L.app_socket, L.app_run_mount, apprun))
emit('APP_SCRIPT', remap(L.app_script, L.app_run_mount, apprun))
EOF
}

setup() {
	unset WAITER_TEST_SOCKET WAITER_SOCKET
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	export TESTDIR
	# Every uid here passes through; what is inside decides.
	chmod 711 "$TESTDIR"
	mkdir -m 755 "$TESTDIR/bin"
	# The manifests name the binaries; these are the build's.
	ln -s "$WAITER" "$TESTDIR/bin/waiter"
	ln -s "$WAITERD" "$TESTDIR/bin/waiterd"
	DAEMON_PID=
	APP_PID=
	DAEMON_LOG="$TESTDIR/waiterd.log"
}

teardown() {
	local rc=0
	if [ -n "$APP_PID" ]; then
		kill -TERM "$APP_PID" 2>/dev/null || true
		wait_gone "$APP_PID" || true
	fi
	stop_daemon || rc=1
	# Under valgrind the daemon's logs are in a directory its uid may write.
	TESTDIR="$TESTDIR/vg" valgrind_check || rc=1
	rm -rf "$TESTDIR"
	return $rc
}

# Lay out the volumes as KIND (k8s or compose) makes them, and read the
# layout: RUN is the shared volume, STATE waiterd's state volume, APPRUN
# the app's view of RUN (read-only where the manifest says so).
layout() {
	local kind=$1 file=$K8S
	[ "$kind" = compose ] && file=$COMPOSE
	RUN="$TESTDIR/run"
	STATE="$TESTDIR/state"
	APPRUN="$TESTDIR/app-run"
	eval "$("$PY" "$BATS_FILE_TMPDIR/manifest.py" "$kind" "$file" "$RUN" "$STATE" "$APPRUN")"
	[ -n "$SOCKET" ]
	mkdir "$RUN" "$STATE" "$APPRUN"
	case $VOL in
	emptyDir)
		# The kubelet makes an emptyDir root's and 0777; with fsGroup it
		# gives it that group and the set-group-ID bit (what is made in
		# it then has the group too).
		if [ -n "$FS_GROUP" ]; then
			chown "0:$FS_GROUP" "$RUN" "$STATE"
			chmod 2777 "$RUN" "$STATE"
		else
			chmod 0777 "$RUN" "$STATE"
		fi ;;
	tmpfs\ *)
		# compose: driver_opts o=uid=,gid=,mode= of the tmpfs; the state
		# volume takes the image's /var/lib/waiter (its user's, 0700).
		set -- $VOL
		chown "$2:$3" "$RUN"
		chmod "$4" "$RUN"
		chown "$DAEMON_UID:$DAEMON_GID" "$STATE"
		chmod 0700 "$STATE" ;;
	*) echo "unknown volume kind $VOL" >&2; return 1 ;;
	esac
	# valgrind's logs (WAITER_VALGRIND) go where waiterd's uid may write.
	mkdir -m 700 "$TESTDIR/vg"
	chown "$DAEMON_UID" "$TESTDIR/vg"
}

# setpriv arguments for a uid, a gid and a comma list of groups.
ids() {
	local groups=--clear-groups
	[ -n "$3" ] && groups="--groups=$3"
	echo "--reuid=$1 --regid=$2 $groups --no-new-privs"
}

# Start waiterd as the sidecar: its arguments, uid, gid and groups, a
# clean environment, in the foreground (as in a container); returns once
# it serves. Each start has a fresh log (stop_daemon checked the last).
sidecar_start() {
	local argv=("${DAEMON_ARGV[@]}")
	[ "${argv[0]}" = waiterd ]
	argv[0]=$WAITERD
	(cd / && exec env -i PATH="$TESTDIR/bin:/usr/bin:/bin" TESTDIR="$TESTDIR/vg" \
		setpriv $(ids "$DAEMON_UID" "$DAEMON_GID" "$DAEMON_GROUPS") \
		$WAITERD_WRAPPER "${argv[@]}") >"$DAEMON_LOG" 2>&1 &
	DAEMON_PID=$!
	wait_for_line "$DAEMON_LOG" 'msg=started'
}

# Run a command as in the sidecar's container (a probe: its uid and groups).
in_sidecar() {
	(cd / && exec env -i PATH="$TESTDIR/bin:/usr/bin:/bin" \
		setpriv $(ids "$DAEMON_UID" "$DAEMON_GID" "$DAEMON_GROUPS") "$@")
}

# Set APP_CMD to run a command as in the app's container: its uid and
# groups, its WAITER_SOCKET, and the shared volume at APPRUN, a bind mount
# of RUN in a mount namespace of its own, read-only if the manifest mounts
# it read-only. One process from start to end (each step execs the next).
app_cmd() {
	local ro=
	[ "$APP_RUN_RO" = 1 ] && ro='mount -o remount,bind,ro "$2" &&'
	APP_CMD=(unshare -m sh -c "mount --bind \"\$1\" \"\$2\" && $ro shift 2 && exec \"\$@\""
		sh "$RUN" "$APPRUN" env -i PATH="$TESTDIR/bin:/usr/bin:/bin"
		WAITER_SOCKET="$APP_SOCKET"
		setpriv $(ids "$APP_UID" "$APP_GID" "$APP_GROUPS") "$@")
}

in_app() {
	app_cmd "$@"
	(cd / && exec "${APP_CMD[@]}")
}

# The sidecar's probes, exactly as the manifest has them, pass.
probes_pass() {
	local p
	for p in "${PROBES[@]}"; do
		local -n cmd="PROBE_$p"
		[ "${cmd[0]}" = waiter ]
		run in_sidecar "${cmd[@]}"
		assert_success
		assert_output pong
	done
}

# The app's script from the manifest runs as the app: it submits a task
# that runs in the sidecar, as the sidecar's uid, and follows events.
app_script_runs() {
	app_cmd sh -c "$APP_SCRIPT"
	(cd / && exec "${APP_CMD[@]}") >"$TESTDIR/app.out" 2>&1 &
	APP_PID=$!
	wait_for_line "$TESTDIR/app.out" "^task [0-9a-f]+/[0-9]+ ran as uid $DAEMON_UID\$"
	grep -qx pong "$TESTDIR/app.out"
	# Its last step follows events, so it is still running.
	kill -0 "$APP_PID"
	kill -TERM "$APP_PID"
	wait_gone "$APP_PID"
	APP_PID=
}

# The layout as made: the socket in a directory waiterd made, passable by
# the group only; the socket the group's.
socket_modes_are_right() {
	[ "$(stat -c '%a %u %g' "$(dirname "$SOCKET")")" = "710 $DAEMON_UID $ALLOW_GROUP" ]
	[ "$(stat -c '%a %u %g' "$SOCKET")" = "660 $DAEMON_UID $ALLOW_GROUP" ]
}

@test "the manifests and the Dockerfile parse and agree: layout, users, probes, hardening, grace" {
	run "$PY" "$BATS_FILE_TMPDIR/manifest.py" check "$K8S" "$COMPOSE" "$DOCKERFILE"
	assert_success
	assert_output ok
	# The checker can fail: a socket at the volume's root is caught.
	sed 's|^        - /run/waiter/sock/waiterd.sock$|        - /run/waiter/waiterd.sock|' \
		"$K8S" >"$TESTDIR/bad.yaml"
	! cmp -s "$K8S" "$TESTDIR/bad.yaml" || false
	run "$PY" "$BATS_FILE_TMPDIR/manifest.py" check "$TESTDIR/bad.yaml" "$COMPOSE" "$DOCKERFILE"
	assert_failure
	assert_output --partial "the socket is at the volume's root"
}

@test "kubernetes, emptyDir with fsGroup (2777): waiterd starts, its probes pass, the app's script runs a task" {
	layout k8s
	[ -n "$FS_GROUP" ]
	[ "$(stat -c '%a %U' "$RUN")" = "2777 root" ]
	sidecar_start
	# The directory waiterd made inherited the set-group-ID bit; it is
	# opened to the group all the same.
	socket_modes_are_right
	probes_pass
	run in_app waiter ping
	assert_success
	assert_output pong
	app_script_runs
	# The state is in its own directory on the state volume.
	[ "$(stat -c '%u %a' "$STATE_DIR")" = "$DAEMON_UID 2700" ]
	[ -f "$STATE_DIR/state.db" ]
}

@test "kubernetes, emptyDir without fsGroup (0777): the same layout works" {
	layout k8s
	# As if the group came from supplementalGroups: the volume is plain.
	chown 0:0 "$RUN" "$STATE"
	chmod 0777 "$RUN" "$STATE"
	sidecar_start
	socket_modes_are_right
	probes_pass
	id=$(in_app waiter submit --cwd / -- id -u)
	run in_app waiter wait "$id"
	assert_success
	run in_app waiter logs "$id"
	assert_output "$DAEMON_UID"
}

@test "kubernetes: others are refused, the app needs no more than its read-only mount" {
	layout k8s
	[ "$APP_RUN_RO" = 1 ]
	sidecar_start
	# The app's view is read-only: it cannot touch the socket...
	run in_app sh -c 'rm -f "$WAITER_SOCKET"'
	assert_failure
	assert_output --partial "Read-only file system"
	[ -S "$SOCKET" ]
	# ... and is served through it.
	id=$(in_app waiter submit --cwd / -- true)
	run in_app waiter wait "$id"
	assert_success
	# A uid outside the group, alone or with other groups, gets nowhere.
	for groups in --clear-groups "--groups=$APP_GID,4242"; do
		run setpriv --reuid=65534 --regid=65534 "$groups" "$WAITER" -S "$SOCKET" ping
		assert_failure 1
		assert_output --partial "ermission denied"
	done
	# Not even to the socket: the directory stops it.
	run setpriv --reuid=65534 --regid=65534 --clear-groups ls "$(dirname "$SOCKET")"
	assert_failure
	# The kernel stopped them: the daemon never saw them.
	[ "$(WAITER_SOCKET=$SOCKET stat_value connections_refused)" -eq 0 ]
}

@test "kubernetes: a restarted sidecar finds its socket directory and the app's finished task" {
	layout k8s
	sidecar_start
	id=$(in_app waiter submit --cwd / --name nightly -- echo kept)
	run in_app waiter wait "$id"
	assert_success
	stop_daemon
	[ ! -e "$SOCKET" ]
	# The container restarts in the same volumes.
	sidecar_start
	socket_modes_are_right
	probes_pass
	run in_app waiter logs nightly
	assert_success
	assert_output kept
	run in_app waiter wait "$id"
	assert_success
}

@test "kubernetes: on SIGTERM waiterd stops a task that ignores SIGTERM within the Pod's grace" {
	layout k8s
	sidecar_start
	id=$(in_app waiter submit --cwd / -- sh -c 'trap "" TERM; echo $$; exec sleep 600')
	# Its pid, once it ignores SIGTERM (root may use any socket).
	task_pid=
	for _ in $(seq 1 $((1000 * WAITER_TEST_SLOW))); do
		task_pid=$("$WAITER" -S "$SOCKET" logs "$id")
		[ -n "$task_pid" ] && break
		sleep 0.02
	done
	[ -n "$task_pid" ]
	kill -0 "$task_pid"
	kill -TERM "$DAEMON_PID"
	# The kubelet sends SIGKILL after terminationGracePeriodSeconds.
	wait_gone "$DAEMON_PID" "$GRACE"
	DAEMON_PID=
	! kill -0 "$task_pid" 2>/dev/null || false
	grep -q 'msg=shutdown reason=SIGTERM' "$DAEMON_LOG"
	grep -q 'msg=stopped' "$DAEMON_LOG"
}

@test "compose: in the tmpfs socket volume waiterd starts, the healthcheck passes, the app's script runs a task, others are refused" {
	layout compose
	sidecar_start
	socket_modes_are_right
	probes_pass
	app_script_runs
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$WAITER" -S "$SOCKET" ping
	assert_failure 1
	assert_output --partial "ermission denied"
}

@test "the image gets what make install installs, and the libraries waiterd needs" {
	# The files the runtime stage copies from the build stage's make install.
	prefix=$(sed -n 's|.*/src/configure --prefix=\([^ ]*\).*|\1|p' "$DOCKERFILE")
	[ -n "$prefix" ]
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$WAITER_BUILDDIR" install \
		DESTDIR="$TESTDIR/staging" prefix="$prefix" >"$TESTDIR/install.out" 2>&1 ||
		{ cat "$TESTDIR/install.out"; false; }
	copied=$(sed -n 's|^COPY --from=build \(.*\) [^ ]*$|\1|p' "$DOCKERFILE" | tr ' ' '\n' |
		grep "^/staging$prefix/")
	[ -n "$copied" ]
	for f in $copied; do
		[ -x "$TESTDIR$f" ] || { echo "make install does not install $f" >&2; false; }
	done
	# The stage's own script finds a Debian package for every library.
	script=$(sed -n '/^RUN ldd \/staging/,/cat \/staging\/runtime-packages$/p' "$DOCKERFILE" |
		sed -e 's/^RUN //' -e "s|/staging|$TESTDIR/staging|g")
	[ -n "$script" ]
	bash -o pipefail -c "$script"
	grep -qx 'libevent-core-2.1-7' "$TESTDIR/staging/runtime-packages"
	libs=$(ldd "$TESTDIR/staging$prefix/bin/waiterd" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
	for lib in $libs; do
		pkg=$({ dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")"; } | cut -d: -f1)
		grep -qx "$pkg" "$TESTDIR/staging/runtime-packages"
	done
}
