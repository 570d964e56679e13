"""Event streams: replay with since, filters, resuming after a reconnect, a
slow consumer that gets EventsLost, and unsubscribe."""

import pytest

import waiter

from conftest import wait_until


def test_replay_since_then_live(w, daemon):
    a = w.after(0)
    a.wait()
    b = w.after(0)
    b.wait()
    with daemon.client() as c:
        stream = c.events(since=0)
        assert [(e.seq, e.object_id) for e in (next(stream), next(stream))] == [(1, a.id), (2, b.id)]
        assert stream.last_seq == 2
        live = w.after(0)                   # published after the replay
        ev = next(stream)
        assert (ev.seq, ev.object_id, ev.kind) == (3, live.id, "timer_fired")
        assert isinstance(ev.time, float) and ev.body.fire_count == 1
        again = c.events(since=2)           # only what came after seq 2
        assert next(again).seq == 3


def test_filters_kinds_and_ids(w, daemon):
    fired = w.after(0)
    fired.wait()
    gone = w.after(3600)
    gone.cancel()
    with daemon.client() as c:
        s = c.events(since=0, kinds=["cancelled"])
        ev = next(s)
        assert (ev.object_id, ev.kind, ev.body.reason) == (gone.id, "cancelled", "requested")
        s = c.events(since=0, ids=[fired.id])
        assert next(s).kind == "timer_fired"
        c.unsubscribe()
        assert c.stats().subscribers == 0


def test_resume_after_reconnect(w, daemon):
    c = daemon.client()
    stream = c.events(since=0)
    w.after(0).wait()
    first = next(stream)
    c.close()
    missed = [w.after(0) for _ in range(3)]
    for t in missed:
        t.wait()
    c.reconnect()
    assert c.last_seq >= first.seq                       # the same daemon
    resumed = c.events(since=stream.last_seq)
    assert [next(resumed).object_id for _ in missed] == [t.id for t in missed]
    c.close()


def test_slow_consumer_gets_events_lost(start_daemon):
    d = start_daemon("--max-output", "4096", "--retain-events", "200")
    slow = d.client()
    stream = slow.events()              # subscribed, and not reading
    with d.client() as w:
        wait_until(lambda: w.stats().subscribers == 1)
        t = w.every(0.001, count=2000, lifetime="daemon")
        w.close()
    with d.client() as other:
        other.wait(t.id)
        end = other.after(0, lifetime="daemon")
        end.wait()
    seqs, lost = [], []
    while True:
        try:
            ev = next(stream)
        except waiter.EventsLost as e:
            assert e.from_seq <= e.to_seq and e.from_seq > (seqs[-1] if seqs else 0)
            lost.append(e)
            continue                    # the stream goes on after the gap
        seqs.append(ev.seq)
        if ev.object_id == end.id:
            break
    assert lost and seqs == sorted(seqs)
    assert len(seqs) + sum(e.to_seq - e.from_seq + 1 for e in lost) >= 2001
    assert stream.last_seq == seqs[-1]
    assert slow.stats().events_lost > 0
    slow.close()


def test_shutdown_event_ends_a_stream(daemon):
    c = daemon.client()
    s = c.events()
    with daemon.client() as b:
        wait_until(lambda: b.stats().subscribers == 1)
        b.shutdown()
    kinds = [e.kind for e in s]
    assert kinds[-1] == "shutdown"
    with pytest.raises(waiter.ConnectionLost):
        next(c.events())
    c.close()
    daemon.kill()


def test_client_buffer_overflow_is_events_lost_not_silence(daemon):
    # A client that keeps at most 4 unread events: the 10 fires no stream
    # reads are parked for their timers' streams; the 6 oldest are dropped,
    # never silently: the stream of a timer whose fire was dropped raises
    # EventsLost for that seq, then ends (the timer has ended).
    with waiter.Client(daemon.sock, event_buffer=4) as c:
        timers = [c.after(0) for _ in range(10)]
        for t in timers:
            t.wait()                        # every fire has been read by now
        assert c._events.dropped == 6
        kept = [list(t.events()) for t in timers[6:]]
        assert [evs[0].object_id for evs in kept] == [t.id for t in timers[6:]]
        fired = [evs[0].seq for evs in kept]
        for t in timers[:6]:
            stream = t.events()
            with pytest.raises(waiter.EventsLost) as lost:
                next(stream)
            assert lost.value.from_seq == lost.value.to_seq < min(fired)
            assert list(stream) == []       # ended: nothing hangs


def test_every_stream_sees_the_events_it_matches(w):
    s = w.events()
    t = w.after(0)
    ev = next(s)
    assert ev.object_id == t.id and ev.final
    assert [e.seq for e in t.events()] == [ev.seq]       # kept for t's own stream
    # Two streams active at once each get their copy.
    p = w.every(0.001, count=3)
    both = [e.seq for e in p.events()]
    assert [next(s).seq for _ in range(3)] == both
    # A re-subscription with a replay does not take owned objects' events.
    u = w.after(0)
    u.wait()
    w.events(since=0, kinds=["cancelled"])
    assert [e.object_id for e in u.events()] == [u.id]


def test_unread_owned_events_do_not_make_a_filtered_stream_lose(daemon):
    with waiter.Client(daemon.sock, event_buffer=8) as c:
        s = c.events(kinds=["cancelled"])
        p = c.every(0.001, count=20)
        p.wait()                            # 20 fires, more than 8, unread
        x = c.after(3600)
        x.cancel()
        ev = next(s)                        # no EventsLost: it lost nothing
        assert (ev.kind, ev.object_id) == ("cancelled", x.id)
        # 21 events parked for p's and x's streams (none read them), 8 kept.
        assert c._events.dropped == 13
        ps = p.events()
        with pytest.raises(waiter.EventsLost) as lost:
            next(ps)                        # p's own stream did lose 13
        assert lost.value.to_seq - lost.value.from_seq + 1 == 13
        assert [e.body.fire_count for e in ps] == list(range(14, 21))
        # A stream that matches but does not read loses its own oldest.
        every = c.events(kinds=["timer_fired"])
        q = c.every(0.001, count=10)
        q.wait()
        with pytest.raises(waiter.EventsLost) as lost:
            next(every)
        # 8 places: the marker (the 3 oldest fires) and fires 4 to 10
        assert lost.value.to_seq - lost.value.from_seq + 1 == 3
        assert [next(every).body.fire_count for _ in range(7)] == list(range(4, 11))


def test_events_ids_by_name_and_final(w, daemon):
    t = w.every(0.001, count=2, name="by-name", lifetime="daemon")
    t.wait()
    with daemon.client() as c:
        s = c.events(since=0, ids=["by-name"])
        evs = [next(s), next(s)]
        assert [e.object_id for e in evs] == [t.id, t.id]
        assert [e.final for e in evs] == [False, True]
