"""bench/soak.py - the Python client's part of bench/soak.

    python3 soak.py SOCKET TREE TMPDIR

Until TMPDIR/stop exists, round after round: a client that creates
objects of lifetime connection (timers, a periodic timer, path and process
watches, a subscription), reads some events and closes, after which every
one of those objects must be cancelled; the same from a child process
killed with SIGKILL (a crashed client); asyncio timers; a task's output.
Writes its operation count to TMPDIR/n.python and each unexpected result
as one line to TMPDIR/errors; exits 1 if there was one.
"""
import asyncio
import os
import signal
import subprocess
import sys

import waiter
import waiter.aio

sock, tree, tmp = sys.argv[1:4]
ops = 0
errors = 0


def err(what):
    global errors
    errors += 1
    with open(os.path.join(tmp, "errors"), "a") as f:
        f.write("python: %s\n" % what)


def running():
    return not os.path.exists(os.path.join(tmp, "stop"))


def check_cancelled(c, ids, why):
    """Each object in ids ended cancelled (its connection closed)."""
    for i in ids:
        info = c.wait(i, timeout=10)
        if info.state != "cancelled":
            err("%s: object %d is %s, not cancelled" % (why, i, info.state))


def connection_objects(c):
    """A client's objects of lifetime connection; returns their ids."""
    with waiter.Client(sock, client_name="soak") as w:
        hs = [w.after(3600) for _ in range(5)]
        hs.append(w.every(0.01))
        hs.append(w.watch_path(tree, recursive=True, settle=0.01))
        hs.append(w.watch_pid(os.getpid()))
        seen = 0
        for ev in w.events(kinds=["timer_fired"]):
            seen += 1
            if seen == 5:
                break
        return [h.id for h in hs]


CRASHER = """
import os, sys, waiter
w = waiter.Client(sys.argv[1])
ids = [w.after(3600).id for _ in range(3)]
ids.append(w.every(0.005).id)
ids.append(w.watch_path(sys.argv[2], recursive=True).id)
print(" ".join(map(str, ids)), flush=True)
for ev in w.events():   # reads until it is killed
    pass
"""


def crashed_client():
    """A child holding objects, killed with SIGKILL mid-stream."""
    p = subprocess.Popen([sys.executable, "-c", CRASHER, sock, tree],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
    if not line.strip():
        err("the crashing client printed no ids (exit %s)" % p.returncode)
        return []
    return [int(x) for x in line.split()]


async def aio_timers():
    async with waiter.aio.connect(sock) as w:
        timers = await asyncio.gather(*(w.after(0.01) for _ in range(50)))
        done = await asyncio.gather(*(t.wait() for t in timers))
        bad = [d for d in done if d.state != "completed"]
        if bad:
            err("aio: %d of 50 timers did not complete" % len(bad))


def main():
    global ops
    with waiter.Client(sock, client_name="soak-checker") as c:
        while running():
            try:
                check_cancelled(c, connection_objects(c), "closed client")
                check_cancelled(c, crashed_client(), "killed client")
                asyncio.run(aio_timers())
                r = c.submit(["sh", "-c", "echo py; exit 4"]).wait(timeout=30)
                if r.exit_code != 4 or r.stdout != b"py\n":
                    err("task: exit %s, stdout %r" % (r.exit_code, r.stdout))
                ops += 8 + 5 + 50 + 1
            except waiter.Error as e:
                err("%s: %s" % (type(e).__name__, e))
    with open(os.path.join(tmp, "n.python"), "w") as f:
        f.write("%d\n" % ops)
    return 1 if errors else 0


sys.exit(main())
