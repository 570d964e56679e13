#!/usr/bin/env bash
# Install what waiter needs, build it, and run it on a real demo: a private
# daemon (auto-started), timers, tasks, watches, events, the Python client,
# stats, shutdown.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
bash .ci/deps
autoreconf -fi >/dev/null 2>&1
mkdir -p build/demo
(cd build/demo && "$root/configure" >/dev/null && make -j2 >/dev/null)
export PATH="$root/build/demo:$PATH"

# A private runtime directory and state, so the demo's daemon is its own.
export XDG_RUNTIME_DIR=$(mktemp -d)
export WAITER_STATE_DIR="$XDG_RUNTIME_DIR/state"
unset WAITER_SOCKET
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say waiter ping "   # no daemon yet: waiter starts one"
waiter ping
say 'id=$(waiter after 1500ms)'
id=$(waiter after 1500ms)
echo "id=$id"
say waiter every 250ms --count 4 --follow
waiter every 250ms --count 4 --follow
say waiter timers
waiter timers
say waiter wait "$id" "   # returns when timer $id fires"
waiter wait "$id" && echo "timer $id fired"
say waiter --json events --since 0 --id "$id"
waiter --json events --since 0 --id "$id"
say waiter run -- sh -c "'echo hello from a task; exit 3'"
waiter run -- sh -c 'echo hello from a task; exit 3' || echo "exit status $?"
say 'a=$(waiter submit -- sleep 0.5); waiter submit --after "$a" -- date'
a=$(waiter submit -- sleep 0.5)
b=$(waiter submit --after "$a" -- date)
waiter wait "$b" && waiter logs "$b"
say waiter tasks
waiter tasks
dir=$(mktemp -d)
say 'w=$(waiter watch path "$dir" --once); touch "$dir/hello"; waiter wait "$w"'
w=$(waiter watch path "$dir" --once)
touch "$dir/hello"
waiter wait "$w" && waiter events --since 0 --id "$w"
say 'sleep 0.3 & waiter watch pid $! --wait'
sleep 0.3 &
waiter watch pid $! --wait && echo "process $! exited"
say 'waiter watch tcp 127.0.0.1:9 --timeout 300ms --wait   # nothing listens there'
waiter watch tcp 127.0.0.1:9 --timeout 300ms --wait || echo "exit status $?"
rm -rf "$dir"
say "python3 -c 'import waiter; ...'   # the Python client, same daemon"
PYTHONPATH="$root/build/demo/python" /usr/bin/python3 -c '
import waiter
with waiter.Client() as w:
    r = w.submit(["echo", "hello from python"]).wait()
    print(r.state, r.exit_code, r.stdout.decode().strip())
    print("timer fired:", w.after(0.2).wait().state)
'
say "waiter stats | grep -E 'loop_lag|events_'"
waiter stats | grep -E 'loop_lag|events_'
say 'waiter after 1h --name backup; waiter shutdown; waiter timers   # the next daemon finds it'
waiter after 1h --name backup
waiter shutdown
waiter timers
waiter cancel backup
say waiter shutdown
waiter shutdown
rm -rf "$XDG_RUNTIME_DIR"
echo
echo "Done. The binaries are in build/demo: waiterd, waiter (waiter --help)."
