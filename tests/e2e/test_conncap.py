"""End to end: the connection cap (issue 11, item 3). At limits.max_connections fogate closes
the longest-idle keep-alive connection to make room, and with none idle it stops accepting
(new connections wait in the kernel's backlog) instead of accepting and closing them; each
episode is logged once. One client holding thousands of idle connections must not lock a
fresh client out."""

import resource
import socket
import time

from frontkit import Reader, read_until_close, request

FLOOD = 2000
CAP = 1024          # the default limits.max_connections


def sizes():
    """The flood and the cap, scaled down only when the hard descriptor limit is too low
    for this process to hold FLOOD sockets (fogate gets its own limit in preexec_fn)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= FLOOD + 300:
        return FLOOD, CAP
    flood = hard - 300
    assert flood >= 200, "RLIMIT_NOFILE hard limit %d is too low for this test" % hard
    return flood, flood // 2


def cap_lines(f):
    return [l for l in f.log_lines() if "connection cap" in l.get("msg", "")]


def is_closed(s, timeout):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_idle_flood_from_one_address_does_not_lock_out_a_fresh_client(start_front):
    flood, cap = sizes()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < flood + 300:
        resource.setrlimit(resource.RLIMIT_NOFILE, (flood + 300, hard))

    def fogate_nofile():  # the cap plus fogate's own descriptors, whatever the CI ulimit
        resource.setrlimit(resource.RLIMIT_NOFILE, (cap + 64, cap + 64))

    f = start_front(limits={"max_connections": cap}, preexec_fn=fogate_nofile,
                    timeouts={"request_head_ms": 60000, "idle_ms": 60000})
    held = []
    try:
        for i in range(flood):
            s = socket.create_connection(("127.0.0.1", f.port), timeout=10)
            if i < 20:  # some are keep-alive connections after a request, the rest never spoke
                s.sendall(request("/healthz"))
                assert Reader(s).next().status == 200
            held.append(s)
        t0 = time.monotonic()  # the kernel accepted the flood; fogate takes it in order
        fresh = f.connect(timeout=5)
        fresh.sendall(request("/healthz"))
        r = Reader(fresh).next(timeout=5)
        elapsed = time.monotonic() - t0
        assert r.status == 200
        print("fresh client served in %.3f s after %d idle connections (cap %d)" % (elapsed, flood, cap))
        assert elapsed < 1.0, "a fresh client waited %.2fs" % elapsed
        fresh.close()
        f.wait_log(lambda l: "connection cap (%d) reached" % cap in l.get("msg", ""))
        # the longest idle went first; the newest flood connections are still open
        assert is_closed(held[0], 5)
        assert not is_closed(held[-1], 0.2)
        # one episode, logged once however many connections it shed
        assert len(cap_lines(f)) == 1, cap_lines(f)
        # shed sockets are closed as fast as new ones come: fogate, given only cap + 64
        # descriptors, never ran out of them (it did when a backlog's worth of shed sockets
        # waited for libevent to close them)
        assert not [l for l in f.log_lines() if "accept failed" in l.get("msg", "")]
    finally:
        for s in held:
            s.close()
    f.wait_log(lambda l: "connection cap episode over" in l.get("msg", ""))
    over = [l for l in cap_lines(f) if "episode over" in l["msg"]]
    assert len(over) == 1
    shed = int(over[0]["msg"].split(": ")[1].split()[0])
    assert shed >= flood - cap, over[0]


def test_at_the_cap_with_nothing_idle_new_connections_wait_in_the_backlog(start_front):
    f = start_front(limits={"max_connections": 3}, timeouts={"request_head_ms": 60000})
    busy = [f.connect() for _ in range(3)]
    for s in busy:  # a head under way: not idle, never shed
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
    time.sleep(0.2)
    waiting = f.connect()  # completed by the kernel, not accepted by fogate
    waiting.sendall(request("/healthz"))
    assert not is_closed(waiting, 0.7), "accepted and closed instead of left in the backlog"
    busy[0].sendall(b"\r\n")  # that request ends; its connection becomes idle and is shed
    assert Reader(busy[0]).next().status == 200
    r = Reader(waiting).next(timeout=3)
    assert r.status == 200
    assert read_until_close(busy[0], timeout=3) == b""
    for s in busy[1:] + [waiting]:
        s.close()
    f.wait_log(lambda l: "connection cap (3) reached" in l.get("msg", ""))


def test_connections_beyond_the_cap_are_served_as_the_longest_idle_go(start_front):
    n = 3
    f = start_front(limits={"max_connections": n})
    conns = []
    for _ in range(3 * n):  # each new one sheds the connection idle longest
        s = f.connect()
        s.sendall(request("/healthz"))
        assert Reader(s).next(timeout=3).status == 200
        conns.append(s)
    for s in conns[:2 * n]:
        assert is_closed(s, 3)
    for s in conns[2 * n:]:
        assert not is_closed(s, 0.1)
    for s in conns:
        s.close()
    assert f.wait_log(lambda l: "connection cap (3) reached" in l.get("msg", ""))


def connect_from(f, source_ip):
    s = socket.socket()
    s.settimeout(5)
    s.bind((source_ip, 0))
    s.connect(("127.0.0.1", f.port))
    return s


def test_per_address_cap_closes_new_connections_of_that_address_only(start_front):
    f = start_front(limits={"max_connections": 100, "max_connections_per_ip": 3})
    mine = [connect_from(f, "127.0.0.1") for _ in range(3)]
    for s in mine:
        s.sendall(request("/healthz"))
        assert Reader(s).next().status == 200
    for _ in range(5):  # over the address's cap: closed at once, without a response
        extra = connect_from(f, "127.0.0.1")
        extra.sendall(request("/healthz"))
        assert is_closed(extra, 2)
        extra.close()
    other = connect_from(f, "127.0.0.2")  # another address is not affected
    other.sendall(request("/healthz"))
    assert Reader(other).next().status == 200
    mine[0].close()  # below the cap again: the address is served once fogate saw the close
    deadline = time.monotonic() + 3
    while True:
        again = connect_from(f, "127.0.0.1")
        again.sendall(request("/healthz"))
        try:
            assert Reader(again).next().status == 200
            break
        except (AssertionError, ConnectionResetError):
            again.close()
            assert time.monotonic() < deadline, "the address stayed over its cap"
    lines = [l for l in f.log_lines() if "max_connections_per_ip" in l.get("msg", "")]
    assert len(lines) == 1 and "127.0.0.1 " in lines[0]["msg"], lines
    for s in mine[1:] + [other, again]:
        s.close()
