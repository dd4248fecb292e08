"""sink: the upload end of the benchmark's upstream. An HTTP/1.1 server on 127.0.0.1 that
reads each request body whole (Content-Length or chunked) into a fixed 1 MiB buffer, throws
it away and only then answers 200 with a JSON message id and the byte count it received, so
an upload's time covers every byte reaching the upstream. One thread per connection (at most
MAX_CONNS), keep-alive, every read with a timeout. Prints {"port": N} once listening.

Usage: python3 sink.py [--port 0]"""
import argparse
import json
import socket
import sys
import threading

MAX_CONNS = 64
MAX_HEAD = 65536
TIMEOUT_S = 120
BUF = 1 << 20


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray(BUF)
        self.view = memoryview(self.buf)
        self.pending = b""          # bytes read past what the parser consumed

    def fill(self, limit=BUF):
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        n = self.sock.recv_into(self.view[:limit])
        if n == 0:
            raise EOFError
        return self.view[:n]

    def head(self):
        data = b""
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEAD:
                raise ValueError("head too long")
            data += bytes(self.fill())
        head, _, rest = data.partition(b"\r\n\r\n")
        self.pending = rest
        return head.decode("latin-1")

    def skip(self, n):
        """Reads and discards exactly n body bytes."""
        while n > 0:
            chunk = self.fill(min(n, BUF))
            if len(chunk) > n:
                self.pending = bytes(chunk[n:])
                chunk = chunk[:n]
            n -= len(chunk)

    def line(self):
        data = b""
        while b"\r\n" not in data:
            if len(data) > 4096:
                raise ValueError("chunk line too long")
            data += bytes(self.fill(4096))
        ln, _, rest = data.partition(b"\r\n")
        self.pending = rest + self.pending
        return ln

    def chunked(self):
        total = 0
        while True:
            size = int(self.line().split(b";")[0], 16)
            if size == 0:
                while self.line():
                    pass
                return total
            self.skip(size)
            total += size
            self.line()


def serve(sock, slots):
    c = Conn(sock)
    try:
        sock.settimeout(TIMEOUT_S)
        while True:
            lines = c.head().split("\r\n")
            hdrs = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            if "100-continue" in hdrs.get("expect", "").lower():
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if "chunked" in hdrs.get("transfer-encoding", "").lower():
                got = c.chunked()
            else:
                got = int(hdrs.get("content-length", "0"))
                c.skip(got)
            body = json.dumps({"id": "5c2f9a51-7d1e-4d0b-9a61-3f1e2d4c5b6a",
                               "bytes": got}).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    except (EOFError, OSError, ValueError):
        pass
    finally:
        sock.close()
        slots.release()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(128)
    print(json.dumps({"port": ls.getsockname()[1]}), flush=True)
    slots = threading.BoundedSemaphore(MAX_CONNS)
    while True:
        s, _ = ls.accept()
        if not slots.acquire(timeout=TIMEOUT_S):
            s.close()
            continue
        threading.Thread(target=serve, args=(s, slots), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
