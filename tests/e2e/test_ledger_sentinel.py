"""The ack ledger through Redis Sentinel (redis.sentinel): fogate asks the sentinels for the
master before each (re)connect, checks it with ROLE, and follows a failover.

Real processes on 127.0.0.1: a master and a replica (redis-server --replicaof), three
sentinels (redis-server sentinel.conf --sentinel, quorum 2, down-after 1000 ms), fosim and
fogate. The first configured sentinel address is a port nobody listens on. The master is
killed with SIGKILL after the consumer confirmed a message (and after the replica has
acknowledged that write: WAIT); dequeues answer 503 fail-closed meanwhile, then work
against the promoted replica, and the confirmed message is not delivered again.
A second test uses a scripted sentinel (a small TCP server in this file) to show the
ROLE check and the READONLY reaction deterministically."""

import os
import shutil
import signal
import socketserver
import ssl
import threading
import time

import pytest

import harness
import ledgerkit as lk
from harness import Resp, resp
from ledgerkit import certs  # noqa: F401  (module-wide fixture; sim: conftest)
from harness import workdir  # noqa: F401  (module-wide temporary directory fixture)

NAME = "fogate-master"
VISIBILITY = 1800
FOLLOW_BOUND_S = 15.0


def try_resp(port, *args):
    try:
        return resp(port, *args)
    except OSError:
        return None


def fields(flat):
    """SENTINEL replicas/sentinels entries are flat [k, v, k, v, ...] lists."""
    return dict(zip(flat[0::2], flat[1::2]))


# ---- processes ----

def start_sentinel(workdir, master_port):
    port = harness.free_port()
    conf = os.path.join(workdir, f"sentinel-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                f"sentinel monitor {NAME} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {NAME} 1000\n"
                f"sentinel failover-timeout {NAME} 4000\n"
                f"sentinel parallel-syncs {NAME} 1\n")
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    p = harness.Proc(f"sentinel-{port}", [exe, conf, "--sentinel"], workdir)
    p.port = port
    harness.wait_port(port)
    return p


def replica_synced(replica_port):
    info = try_resp(replica_port, "INFO", "replication") or ""
    return "master_link_status:up" in info


def sentinels_ready(sentinels, replica_port):
    """Every sentinel knows the replica (not down) and the two other sentinels."""
    for s in sentinels:
        reps = try_resp(s.port, "SENTINEL", "replicas", NAME)
        sens = try_resp(s.port, "SENTINEL", "sentinels", NAME)
        if not isinstance(reps, list) or not isinstance(sens, list) or len(sens) != 2:
            return False
        ok = [r for r in map(fields, reps)
              if r.get("port") == str(replica_port) and "s_down" not in r.get("flags", "")]
        if not ok:
            return False
    return True


def named_master(sentinel_port):
    r = try_resp(sentinel_port, "SENTINEL", "get-master-addr-by-name", NAME)
    return int(r[1]) if isinstance(r, list) else None


@pytest.fixture
def cluster(workdir):
    procs = []
    try:
        master = harness.start_redis(workdir)
        procs.append(master)
        replica = harness.start_redis(workdir, extra_conf=f"replicaof 127.0.0.1 {master.port}")
        procs.append(replica)
        harness.wait_until(lambda: replica_synced(replica.port), what="replica in sync")
        sentinels = [start_sentinel(workdir, master.port) for _ in range(3)]
        procs.extend(sentinels)
        harness.wait_until(lambda: sentinels_ready(sentinels, replica.port), timeout=30,
                           what="sentinels see the replica and each other")
        yield master, replica, sentinels
    finally:
        for p in reversed(procs):
            if p.alive():
                p.stop()


def sentinel_gate(workdir, sim, addresses, name, **ledger):
    red = {"url": "redis://", "sentinel": {"master_name": NAME, "addresses": addresses}}
    return lk.Gate(workdir, sim, 0, name=name, redis=red, ledger=ledger or None)


def redis_status(g):
    return g.status()["redis"]


# ---- the failover ----

def test_failover_follows_the_sentinels(workdir, sim, cluster):
    """A confirmed message whose upstream ack is still pending survives a SIGKILL of the
    master: after the promotion fogate dequeues again, suppresses the message D365 offers
    again (acking it upstream) and hands out the next one."""
    master, replica, sentinels = cluster
    dead = harness.free_port()  # the first sentinel in the list is down
    addresses = [f"127.0.0.1:{dead}"] + [f"127.0.0.1:{s.port}" for s in sentinels]
    sim.reset()
    sim.configure(redelivery="keep")
    g = sentinel_gate(workdir, sim, addresses, "fogate-sentinel",
                      ack_retry_min_ms=60000, ack_retry_max_ms=60000)
    try:
        harness.wait_until(lambda: redis_status(g)["connected"], what="connected via sentinel")
        st = redis_status(g)
        assert st["address"] == f"127.0.0.1:{master.port}", st
        assert st["sentinel"] in addresses[1:], st

        # the simple export flow, with the upstream ack failing: confirmed, ack pending
        (a_data, a), = lk.feed(sim, 1, tag="before-failover").items()
        sim.fault(endpoint="ack", kind="status", status=500)
        r = g.next()
        assert r.status == 200 and r.body == a_data, r
        ack = g.ack(r.header("X-Fogate-Message-Id"))
        assert ack.status == 202 and ack.json()["ack"] == "pending", ack

        # make sure the replica has every write so far: a fence write, then WAIT for it
        c = Resp(master.port)
        try:
            assert c.call("SET", "sentinel-test-fence", "1") == "OK"
            assert c.call("WAIT", "1", "2000") == 1, "the replica did not acknowledge"
        finally:
            c.close()
        assert resp(replica.port, "DBSIZE") > 1

        os.kill(master.pid, signal.SIGKILL)
        master.popen.wait(10)
        killed = time.monotonic()
        sim.clear_faults()
        b_data = b"after-failover"
        sim.feed_export(b_data)
        sim.advance(VISIBILITY + 5)  # D365 offers A again, and B

        refused, promoted_at, followed = 0, None, None
        while time.monotonic() - killed < FOLLOW_BOUND_S + 5:
            if promoted_at is None and named_master(sentinels[1].port) == replica.port:
                promoted_at = time.monotonic() - killed
            r, ms = lk.wait_ms(g.next)
            assert ms < 2500, f"dequeue took {ms:.0f} ms during the failover"
            if r.status == 503:
                assert r.json()["code"] == "ledger_unavailable", r
                refused += 1
                time.sleep(0.2)
                continue
            followed = time.monotonic() - killed
            break
        assert followed is not None, "fogate never dequeued after the failover"
        assert refused >= 1, "no 503 while the master was gone"
        assert r.status == 200, r
        assert r.body == b_data, "the message confirmed before the failover came again"
        with open(os.path.join(workdir, "failover-times.txt"), "a") as f:
            f.write(f"sentinels promoted after {promoted_at}s; fogate followed after "
                    f"{followed:.2f}s; {refused} dequeues refused\n")
        print(f"\nfailover: promoted {promoted_at}s, fogate followed {followed:.2f}s, "
              f"{refused} x 503")
        assert followed < FOLLOW_BOUND_S

        lk.wait_acked(sim, a["message_id"])  # acked upstream again with the new PopReceipt
        assert g.ack(r.header("X-Fogate-Message-Id")).status == 200
        st = redis_status(g)
        assert st["connected"] and st["address"] == f"127.0.0.1:{replica.port}", st
        assert st["sentinel"] in addresses[1:], st
        assert g.status()["local"]["duplicates_suppressed"] == 1
    finally:
        g.stop()


# ---- a scripted sentinel: ROLE check and READONLY ----

class FakeSentinel(socketserver.ThreadingTCPServer):
    """Answers AUTH and SENTINEL get-master-addr-by-name with self.master; over TLS when
    given a server context."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ssl_ctx=None):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.port = self.server_address[1]
        self.ssl_ctx = ssl_ctx
        self.master = None
        self.asks = 0
        self.auth = []
        self.tls_failures = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.shutdown()
        self.server_close()


class FakeHandler(socketserver.BaseRequestHandler):
    def read_command(self):
        head = self.rfile.readline()
        if not head.startswith(b"*"):
            return None
        args = []
        for _ in range(int(head[1:])):
            n = int(self.rfile.readline()[1:])
            args.append(self.rfile.read(n + 2)[:-2].decode())
        return args

    def answer(self, args):
        srv = self.server
        cmd = [a.lower() for a in args[:2]]
        if cmd[0] == "auth":
            srv.auth.append(args[1:])
            return b"+OK\r\n"
        if cmd == ["sentinel", "get-master-addr-by-name"] and args[2] == NAME:
            srv.asks += 1
            host, port = srv.master
            return b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
                len(host), host.encode(), len(str(port)), str(port).encode())
        if cmd == ["sentinel", "get-master-addr-by-name"]:
            return b"*-1\r\n"
        return b"-ERR unknown command\r\n"

    def handle(self):
        sock = self.request
        try:
            if self.server.ssl_ctx:
                sock = self.server.ssl_ctx.wrap_socket(sock, server_side=True)
            self.rfile, self.wfile = sock.makefile("rb"), sock.makefile("wb")
            while (args := self.read_command()):
                self.wfile.write(self.answer(args))
                self.wfile.flush()
        except ssl.SSLError:
            self.server.tls_failures += 1
        except (OSError, ValueError):
            pass


def test_role_check_and_readonly(workdir, sim):
    """A sentinel naming a replica is not believed (ROLE); a master demoted under fogate's
    feet answers READONLY, and fogate asks the sentinel again and moves to the new master.
    The sentinel's own ACL user and password are sent to it (and never logged)."""
    a = harness.start_redis(workdir)
    b = harness.start_redis(workdir, extra_conf=f"replicaof 127.0.0.1 {a.port}")
    fake = FakeSentinel()
    pw_env = "FOGATE_E2E_SENTINEL_PASSWORD"
    os.environ[pw_env] = "sentinel-password-0123456789"
    g = None
    try:
        fake.master = ("127.0.0.1", b.port)  # wrong: b is a replica
        red = {"url": "redis://", "sentinel": {"master_name": NAME, "username": "watcher",
                                               "password_env": pw_env,
                                               "addresses": [f"127.0.0.1:{fake.port}"]}}
        g = lk.Gate(workdir, sim, 0, name="fogate-fake-sentinel", redis=red)
        harness.wait_until(lambda: "not a master" in redis_status(g)["last_error"],
                           what="ROLE refused the replica")
        assert not redis_status(g)["connected"]
        asks = fake.asks
        harness.wait_until(lambda: fake.asks > asks, what="asked again after the refusal")
        assert fake.auth[0] == ["watcher", "sentinel-password-0123456789"]

        fake.master = ("127.0.0.1", a.port)
        harness.wait_until(lambda: redis_status(g)["connected"], what="connected to a")
        assert redis_status(g)["address"] == f"127.0.0.1:{a.port}"
        assert redis_status(g)["sentinel"] == f"127.0.0.1:{fake.port}"

        # demote a behind fogate's back: its connection stays up, but writes fail READONLY
        harness.wait_until(lambda: replica_synced(b.port), what="b in sync")
        fake.master = ("127.0.0.1", b.port)
        assert resp(b.port, "REPLICAOF", "NO", "ONE") == "OK"
        assert resp(a.port, "REPLICAOF", "127.0.0.1", str(b.port)) == "OK"
        assert redis_status(g)["address"] == f"127.0.0.1:{a.port}"  # PING still works on a
        # the dequeue's ledger write gets READONLY: that dequeue fails closed (the message
        # waits in D365) and fogate goes back to the sentinel
        (data, m), = lk.feed(sim, 1, tag="after-readonly").items()
        r = g.next()
        assert r.status == 503 and r.json()["code"] == "ledger_unavailable", r
        harness.wait_until(lambda: redis_status(g)["address"] == f"127.0.0.1:{b.port}"
                           and redis_status(g)["connected"], timeout=FOLLOW_BOUND_S,
                           what="moved to b after READONLY")
        assert "READONLY" in g.log()
        sim.advance(VISIBILITY + 5)  # D365 offers the message again
        r = g.next()
        assert r.status == 200 and r.body == data, r
        assert g.ack(r.header("X-Fogate-Message-Id")).status == 200
        lk.wait_acked(sim, m["message_id"])
        assert "sentinel-password-0123456789" not in g.log()
    finally:
        if g:
            g.stop()
        fake.close()
        os.environ.pop(pw_env, None)
        b.stop()
        a.stop()


# ---- TLS: the sentinels and the master both over TLS ----

@pytest.fixture(scope="module")
def tls_master(workdir, certs):
    p = lk.start_tls_redis(workdir, certs, "redis-tls-master")
    yield p
    p.stop()


@pytest.mark.parametrize("case", ["ok", "wrong_name"])
def test_tls_sentinel(workdir, sim, certs, tls_master, case):
    """rediss:// turns TLS on for the sentinels too; each is verified against its own
    address (127.0.0.1 here) unless redis.tls.server_name says otherwise. A sentinel whose
    certificate does not match is refused, and dequeues fail closed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certs, "server.crt"), os.path.join(certs, "server.key"))
    fake = FakeSentinel(ctx)
    fake.master = ("127.0.0.1", tls_master.port)
    tls = {"ca_file": os.path.join(certs, "ca.crt")}
    if case == "wrong_name":
        tls["server_name"] = "wrong.example.org"
    red = {"url": "rediss://", "tls": tls,
           "sentinel": {"master_name": NAME, "addresses": [f"127.0.0.1:{fake.port}"]}}
    sim.reset()
    g = lk.Gate(workdir, sim, 0, name=f"fogate-tls-sentinel-{case}", redis=red)
    try:
        if case == "wrong_name":
            harness.wait_until(lambda: "sentinel 127.0.0.1" in redis_status(g)["last_error"],
                               what="the sentinel refused")
            assert "certificate" in redis_status(g)["last_error"].lower() or \
                "verify" in redis_status(g)["last_error"].lower(), redis_status(g)
            assert fake.asks == 0 and fake.tls_failures >= 1
            lk.feed(sim, 1, tag="tls-wrong")
            r = g.next()
            assert r.status == 503 and r.json()["code"] == "ledger_unavailable", r
            return
        harness.wait_until(lambda: redis_status(g)["connected"], what="connected over TLS")
        st = redis_status(g)
        assert st["address"] == f"127.0.0.1:{tls_master.port} (tls)", st
        assert st["sentinel"] == f"127.0.0.1:{fake.port}" and fake.asks >= 1, st
        (data, m), = lk.feed(sim, 1, tag="tls-sentinel").items()
        r = g.next()
        assert r.status == 200 and r.body == data, r
        assert g.ack(r.header("X-Fogate-Message-Id")).status == 200
        lk.wait_acked(sim, m["message_id"])
    finally:
        g.stop()
        fake.close()
