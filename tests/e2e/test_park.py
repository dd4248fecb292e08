"""End to end: parked idle connections (issue 16, item 3). Beyond the newest 256 idle
keep-alive connections of a worker (CONN_HOT_IDLE), the one idle longest gives back its
bufferevent, request and timer and waits on a single event. A parked connection must behave
exactly like any other: its next request is answered (also a pipelined pair, a head in
pieces, a body), its idle deadline still closes it, the client's close frees it, the
connection cap sheds it first, and a drain closes it at once. What a parked connection costs
is measured by test_memory.py."""

import random
import time

from frontkit import Reader, idle_connections as idle_conns, open_fds, read_until_close, request

HOT = 256           # CONN_HOT_IDLE (proxy/front/conn.h)
N = HOT + 144       # the oldest 144 end up parked
ROOM = {"max_connections": N + 64, "max_body_bytes": 1000}


def test_parked_connections_answer_their_next_requests(start_front):
    f = start_front(limits=ROOM, timeouts={"request_head_ms": 60000, "idle_ms": 60000})
    conns = idle_conns(f, N)
    order = list(range(N))
    random.Random(16).shuffle(order)  # wake parked and hot ones interleaved
    ids = set()
    for i in order:
        s, r = conns[i]
        kind = i % 4
        if kind == 0:    # one request
            s.sendall(request("/healthz"))
            got = [r.next(timeout=10)]
        elif kind == 1:  # two pipelined in one write
            s.sendall(request("/healthz") + request("/healthz"))
            got = [r.next(timeout=10), r.next(timeout=10)]
        elif kind == 2:  # a head in two pieces: the wake sees only its first bytes
            data = request("/healthz")
            s.sendall(data[:7])
            time.sleep(0.002)
            s.sendall(data[7:])
            got = [r.next(timeout=10)]
        else:            # a request with a body, which the route does not read
            s.sendall(request("/healthz", method="POST", body=b"x" * 500))
            got = [r.next(timeout=10)]
            s.sendall(request("/healthz"))  # the connection is still in step
            got.append(r.next(timeout=10))
        for resp in got:
            assert resp.status in (200, 405), (i, resp.status, resp.body[:200])
            ids.add(resp.header("X-Request-Id"))
        assert got[-1].status == 200
    assert len(ids) == sum(2 if i % 4 in (1, 3) else 1 for i in range(N))
    for s, r in conns:  # and again, after the first round parked others
        s.sendall(request("/healthz"))
        assert r.next(timeout=10).status == 200
    for s, _ in conns:
        s.close()


def test_the_idle_deadline_closes_parked_connections(start_front):
    idle = 10.0  # long enough that opening N connections under load leaves some to check
    f = start_front(limits=ROOM, timeouts={"request_head_ms": 60000, "idle_ms": int(idle * 1000)})
    conns, answered = [], []
    for _ in range(N):  # each one's idle deadline runs from its answer
        conns += idle_conns(f, 1)
        answered.append(time.monotonic())
    checked = 0
    for (s, _), t in zip(conns[:N - HOT], answered):  # parked ones, before their deadline...
        if time.monotonic() > t + idle - 1.0:
            continue  # a slow machine: too close to this one's deadline to tell
        s.setblocking(False)
        try:
            assert s.recv(1) != b"", "a parked connection closed before its idle deadline"
        except BlockingIOError:
            pass
        s.setblocking(True)
        checked += 1
    assert checked > 0, "opening %d connections took longer than the idle timeout" % N
    for s, _ in conns:  # ...and closed by it, parked and hot alike
        assert read_until_close(s, timeout=idle + 15) == b""
        s.close()


def test_clients_closing_parked_connections_free_them(start_front):
    f = start_front(limits=ROOM, timeouts={"request_head_ms": 60000, "idle_ms": 60000})
    pid = f.proc.pid
    before = open_fds(pid)  # may hold a passing socket of the token manager's retries
    conns = idle_conns(f, N)
    assert open_fds(pid) >= N
    for s, _ in conns:
        s.close()
    deadline = time.monotonic() + 10
    while open_fds(pid) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds(pid) <= before, "%d descriptors left open" % (open_fds(pid) - before)
    s = f.connect()
    s.sendall(request("/healthz"))
    assert Reader(s).next().status == 200
    s.close()


def test_the_cap_sheds_parked_connections_first_and_a_drain_closes_them(start_front):
    cap = N + 2
    f = start_front(limits={"max_connections": cap},
                    timeouts={"request_head_ms": 60000, "idle_ms": 60000})
    conns = idle_conns(f, cap)
    more = idle_conns(f, 3)  # each sheds the connection idle longest: a parked one
    for s, _ in conns[:3]:
        assert read_until_close(s, timeout=5) == b""
    s, r = conns[3]          # the next oldest, still parked, still served
    s.sendall(request("/healthz"))
    assert r.next(timeout=5).status == 200
    t0 = time.monotonic()
    f.signal()
    for s, _ in conns[4:] + more:
        assert read_until_close(s, timeout=10) == b""
    assert f.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 8, "idle connections were not closed at the drain's start"
    for s, _ in conns + more:
        s.close()
