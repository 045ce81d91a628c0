#!/usr/bin/env python
"""The clients of ``maps.py``: lock-step map lookups (as Postfix makes them) and idle
connections held open.

``lockstep`` opens CONNECTIONS connections to each of several map servers (TARGETs) and
then takes them in turn, *phases* of PHASE seconds, cycling through them CYCLES times:
so that every server sees the same mix of the machine's good and bad moments (a shared
VM's speed drifts over seconds), each server's figures are many short slices spread
over the whole run rather than one stretch of it. In a phase, every connection of the
server in turn sends one request, waits for its reply, checks it and sends the next;
after WARMUP seconds the client reads the server's CPU counters (``utime`` and
``stime`` of ``/proc/PID/stat``, summed over the target's PIDS), its own
(``getrusage``) and the machine's (``/proc/stat``), counts replies for PHASE seconds
and reads them again; then it stops sending, waits for the replies still due, and
moves on to the next server (each cycle in a rotated order: cycle c starts with
target c). The first WARM_CYCLES cycles are marked as warm-up.
It prints one line of JSON: per target, per phase, the requests, seconds and CPU.

Requests ask for keys ``user<N>@example.com`` with N drawn at random below
``ENTRIES * 4 / 3``, so about a quarter miss (the map holds N < ENTRIES, each with the
value ``smtp:[mx<N>.example.net]``). Every reply is checked: a hit must carry exactly
that value (tcp_table: %XX-decoded), a miss must say not found. A TARGET is
``HOST:PORT:MODE:PID[+PID...]``, MODE one of:

* ``tcp``: tcp_table(5), ``get KEY\\n``, replies ``200 VALUE\\n`` / ``500 ...\\n``;
* ``socketmap``: socketmap_table(5), netstring ``MAPNAME KEY``, replies ``OK VALUE``
  / ``NOTFOUND ``;
* ``line``: tcp_table requests, any one line is a good reply (the floor servers).

The client is C (``C_SOURCE``, compiled by :func:`build` with the system's ``cc``
into a cache directory): one epoll loop whose own cost per request is a few hundred
nanoseconds beside its two system calls. Without a C compiler the Python client here
(same arguments, same output) is used; it costs more CPU per request than the servers
measured, so it may be the bottleneck (``maps.py`` says so).

``idle`` opens N connections (raising its open-file limit), sends one tcp_table
request on each and reads the reply, reads the server's resident memory, holds them
all for a while, then checks that every one still answers; prints one line of JSON.

    python benchmarks/map_client.py lockstep 0.5 0.1 20 1 64 bench 100000 1 \\
        127.0.0.1:4001:tcp:1234 127.0.0.1:4002:line:1240
    python benchmarks/map_client.py idle 127.0.0.1 PORT 10000 PID
    python benchmarks/map_client.py build        # compile the C client; print its path
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

USAGE = (
    "lockstep PHASE WARMUP CYCLES WARM_CYCLES CONNECTIONS MAPNAME ENTRIES SEED "
    "HOST:PORT:MODE:PID[+PID...]..."
)

C_SOURCE = r"""
/* maps.py's lock-step client: see map_client.py. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { TCP, SOCKETMAP, LINE };

struct target {
    char host[256], port[16], pids[512];
    int mode;
};

struct conn {
    int fd, target, busy;
    unsigned key;
    int hit;
    size_t len;
    char buf[8192];
};

static unsigned entries, span;
static const char *mapname;
static unsigned rng = 2463534242u;
static long hits, misses, bad, replies;

static unsigned next_key(void) {
    rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5;
    return rng % span;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double own_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6
         + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* utime + stime of every pid in the '+'-separated list, in seconds (-1: unreadable);
   *user gets the utime part */
static double server_cpu(const char *pids, double *user) {
    double total = 0, utotal = 0;
    long tck = sysconf(_SC_CLK_TCK);
    char list[512], *save = NULL;
    snprintf(list, sizeof list, "%s", pids);
    for (char *p = strtok_r(list, "+", &save); p; p = strtok_r(NULL, "+", &save)) {
        char path[64], text[2048];
        snprintf(path, sizeof path, "/proc/%s/stat", p);
        FILE *f = fopen(path, "r");
        if (!f) return -1;
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = 0;
        char *rest = strrchr(text, ')');
        if (!rest) return -1;
        unsigned long long utime = 0, stime = 0;
        /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt
           cmajflt utime stime */
        if (sscanf(rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                   &utime, &stime) != 2) return -1;
        total += (double)(utime + stime) / tck;
        utotal += (double)utime / tck;
    }
    *user = utotal;
    return total;
}

/* the first line of /proc/stat in seconds: user nice system idle iowait irq softirq
   steal (summed over every CPU) */
static int machine(double v[8]) {
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long t[8] = {0};
    if (!f) return 0;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
                   &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6], &t[7]);
    fclose(f);
    for (int i = 0; i < 8; i++) v[i] = (double)t[i] / sysconf(_SC_CLK_TCK);
    return n == 8;
}

static void complain(struct conn *c, const char *why, const char *data, size_t n) {
    bad++;
    if (bad <= 3)
        fprintf(stderr, "map_client: bad reply (%s) to key user%u@example.com: %.*s\n",
                why, c->key, (int)(n > 200 ? 200 : n), data);
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* a found value: must be smtp:[mx<key>.example.net] (after %XX-decoding if quoted) */
static void check_value(struct conn *c, const char *value, size_t n, int quoted,
                        const char *reply, size_t reply_len) {
    char want[64], got[8192];
    size_t w = (size_t)snprintf(want, sizeof want, "smtp:[mx%u.example.net]", c->key), g = 0;
    for (size_t i = 0; i < n && g < sizeof got; i++) {
        if (quoted && value[i] == '%' && i + 2 < n && hexval(value[i + 1]) >= 0
            && hexval(value[i + 2]) >= 0) {
            got[g++] = (char)(hexval(value[i + 1]) * 16 + hexval(value[i + 2]));
            i += 2;
        } else {
            got[g++] = value[i];
        }
    }
    if (g != w || memcmp(got, want, w) != 0) complain(c, "wrong value", reply, reply_len);
}

/* bytes of a complete reply at the start of c->buf, 0 if incomplete, -1 if broken */
static long complete(struct conn *c, int mode) {
    if (mode == SOCKETMAP) {
        size_t i = 0, n = 0;
        while (i < c->len && c->buf[i] >= '0' && c->buf[i] <= '9' && i < 7)
            n = n * 10 + (size_t)(c->buf[i++] - '0');
        if (i == c->len) return 0;
        if (i == 0 || c->buf[i] != ':') return -1;
        if (c->len < i + 1 + n + 1) return c->len == sizeof c->buf ? -1 : 0;
        if (c->buf[i + 1 + n] != ',') return -1;
        return (long)(i + 1 + n + 1);
    }
    char *nl = memchr(c->buf, '\n', c->len);
    if (!nl) return c->len == sizeof c->buf ? -1 : 0;
    return nl - c->buf + 1;
}

static void check(struct conn *c, size_t n, int mode) {
    const char *r = c->buf;
    replies++;
    if (mode == LINE) return;
    if (mode == TCP) {
        if (c->hit) {
            if (n >= 5 && memcmp(r, "200 ", 4) == 0) { hits++; check_value(c, r + 4, n - 5, 1, r, n); }
            else complain(c, "expected 200", r, n);
        } else {
            if (n >= 4 && memcmp(r, "500 ", 4) == 0) misses++;
            else complain(c, "expected 500", r, n);
        }
        return;
    }
    const char *payload = (const char *)memchr(r, ':', n) + 1;
    size_t len = (size_t)(r + n - 1 - payload);
    if (c->hit) {
        if (len >= 3 && memcmp(payload, "OK ", 3) == 0) { hits++; check_value(c, payload + 3, len - 3, 0, r, n); }
        else complain(c, "expected OK", r, n);
    } else {
        if (len == 9 && memcmp(payload, "NOTFOUND ", 9) == 0) misses++;
        else complain(c, "expected NOTFOUND", r, n);
    }
}

static int send_request(struct conn *c, int mode) {
    char req[256];
    int n;
    c->key = next_key();
    c->hit = c->key < entries;
    if (mode == SOCKETMAP) {
        char body[200];
        int b = snprintf(body, sizeof body, "%s user%u@example.com", mapname, c->key);
        n = snprintf(req, sizeof req, "%d:%s,", b, body);
    } else {
        n = snprintf(req, sizeof req, "get user%u@example.com\n", c->key);
    }
    ssize_t sent = send(c->fd, req, (size_t)n, MSG_NOSIGNAL);
    if (sent != n) {
        fprintf(stderr, "map_client: send: %s\n", sent < 0 ? strerror(errno) : "short write");
        return -1;
    }
    c->busy = 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 10) {
        fprintf(stderr, "usage: %s PHASE WARMUP CYCLES WARM_CYCLES CONNECTIONS MAPNAME "
                "ENTRIES SEED HOST:PORT:MODE:PID[+PID...]...\n", argv[0]);
        return 2;
    }
    double phase = atof(argv[1]), warmup = atof(argv[2]);
    int cycles = atoi(argv[3]), warm_cycles = atoi(argv[4]), nconn = atoi(argv[5]);
    mapname = argv[6];
    entries = (unsigned)atol(argv[7]);
    span = entries + entries / 3;
    rng = (unsigned)atol(argv[8]) * 2654435761u | 1u;
    int ntargets = argc - 9;
    struct target *targets = calloc((size_t)ntargets, sizeof *targets);
    for (int t = 0; t < ntargets; t++) {
        char spec[1024], mode[32];
        snprintf(spec, sizeof spec, "%s", argv[9 + t]);
        char *a = strtok(spec, ":"), *b = strtok(NULL, ":"), *m = strtok(NULL, ":"),
             *p = strtok(NULL, ":");
        if (!a || !b || !m || !p) { fprintf(stderr, "map_client: bad target %s\n", argv[9 + t]); return 2; }
        snprintf(targets[t].host, sizeof targets[t].host, "%s", a);
        snprintf(targets[t].port, sizeof targets[t].port, "%s", b);
        snprintf(mode, sizeof mode, "%s", m);
        snprintf(targets[t].pids, sizeof targets[t].pids, "%s", p);
        targets[t].mode = strcmp(mode, "socketmap") == 0 ? SOCKETMAP
                        : strcmp(mode, "line") == 0 ? LINE : TCP;
    }

    int total = nconn * ntargets;
    struct conn *conns = calloc((size_t)total, sizeof *conns);
    int ep = epoll_create1(0);
    for (int t = 0; t < ntargets; t++) {
        struct addrinfo hints = {0}, *ai;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(targets[t].host, targets[t].port, &hints, &ai) != 0) {
            fprintf(stderr, "map_client: bad address %s\n", targets[t].host);
            return 1;
        }
        for (int i = 0; i < nconn; i++) {
            struct conn *c = &conns[t * nconn + i];
            int fd = socket(ai->ai_family, SOCK_STREAM, 0), one = 1;
            if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                fprintf(stderr, "map_client: connect to %s:%s: %s\n", targets[t].host,
                        targets[t].port, strerror(errno));
                return 1;
            }
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            c->fd = fd;
            c->target = t;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        freeaddrinfo(ai);
    }

    printf("{\"client\": \"C\", \"connections\": %d, \"phases\": [", nconn);
    struct epoll_event events[512];
    long bad_before = 0;
    for (int cycle = 0; cycle < cycles; cycle++) {
        for (int k = 0; k < ntargets; k++) {
            int t = (k + cycle) % ntargets;  /* each round in a rotated order */
            int mode = targets[t].mode, outstanding = 0, timing = 0, draining = 0;
            double t0 = 0, t1 = 0, cpu0 = 0, cpu1 = 0, user0 = 0, user1 = 0, own0 = 0, own1 = 0;
            double m0[8] = {0}, m1[8] = {0};
            int have_machine = 1;
            long warm_replies = 0;
            replies = hits = misses = 0;
            for (int i = 0; i < nconn; i++) {
                if (send_request(&conns[t * nconn + i], mode) != 0) return 1;
                outstanding++;
            }
            double start = now(), begin = start + warmup, end = begin + phase;
            while (outstanding > 0) {
                int n = epoll_wait(ep, events, 512, 100);
                if (n < 0) {
                    if (errno == EINTR) continue;
                    perror("epoll_wait");
                    return 1;
                }
                double tnow = now();
                if (!timing && tnow >= begin) {
                    timing = 1;
                    warm_replies = replies;
                    replies = hits = misses = 0;
                    t0 = now(); cpu0 = server_cpu(targets[t].pids, &user0); own0 = own_cpu();
                    have_machine &= machine(m0);
                } else if (timing && !draining && tnow >= end) {
                    draining = 1;
                    t1 = now(); cpu1 = server_cpu(targets[t].pids, &user1); own1 = own_cpu();
                    have_machine &= machine(m1);
                }
                if (n == 0 && tnow - start > warmup + phase + 30) {
                    fprintf(stderr, "map_client: no reply for a while: giving up\n");
                    return 1;
                }
                for (int i = 0; i < n; i++) {
                    struct conn *c = events[i].data.ptr;
                    ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
                    if (got <= 0) {
                        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                        fprintf(stderr, "map_client: the server on port %s closed a connection (%s)\n",
                                targets[c->target].port, got < 0 ? strerror(errno) : "end of stream");
                        return 1;
                    }
                    c->len += (size_t)got;
                    int cmode = targets[c->target].mode;
                    long size = complete(c, cmode);
                    if (size == 0) continue;
                    if (size < 0 || (size_t)size != c->len || !c->busy) {
                        complain(c, size < 0 ? "malformed" : "unexpected data", c->buf, c->len);
                        return 1;
                    }
                    if (!draining || c->target != t) {
                        check(c, (size_t)size, cmode);
                    } else {
                        long r = replies, h = hits, m = misses;
                        check(c, (size_t)size, cmode);  /* checked, not counted */
                        replies = r; hits = h; misses = m;
                    }
                    c->len = 0;
                    c->busy = 0;
                    if (c->target == t && !draining) {
                        if (send_request(c, mode) != 0) return 1;
                    } else {
                        outstanding--;
                    }
                }
            }
            if (!timing || !draining) {
                fprintf(stderr, "map_client: phase ended early\n");
                return 1;
            }
            printf("%s{\"target\": %d, \"cycle\": %d, \"warm\": %s, \"requests\": %ld, "
                   "\"seconds\": %.6f, \"server_cpu\": %.4f, \"server_user_cpu\": %.4f, "
                   "\"client_cpu\": %.4f, \"hits\": %ld, \"misses\": %ld, \"bad\": %ld, "
                   "\"warmup_requests\": %ld",
                   cycle == 0 && k == 0 ? "" : ", ", t, cycle,
                   cycle < warm_cycles ? "true" : "false", replies, t1 - t0,
                   cpu0 < 0 || cpu1 < 0 ? -1.0 : cpu1 - cpu0, user1 - user0, own1 - own0,
                   hits, misses, bad - bad_before, warm_replies);
            if (have_machine) {
                static const char *names[8] = {"user", "nice", "system", "idle", "iowait",
                                               "irq", "softirq", "steal"};
                printf(", \"machine\": {");
                for (int i = 0; i < 8; i++)
                    printf("%s\"%s\": %.4f", i ? ", " : "", names[i], m1[i] - m0[i]);
                printf("}");
            }
            printf("}");
            bad_before = bad;
        }
    }
    printf("]}\n");
    return bad ? 3 : 0;
}
"""


# -- building the C client -----------------------------------------------------------


def build(quiet: bool = True) -> str | None:
    """Compile ``C_SOURCE`` (once per version of it) and return the binary's path,
    or None when there is no C compiler or it fails."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None
    digest = hashlib.sha256(C_SOURCE.encode()).hexdigest()[:16]
    cache = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(tempfile.gettempdir()),
        f"txframe-bench-{os.getuid()}",
    )
    binary = os.path.join(cache, f"map_client-{digest}")
    if os.path.exists(binary):
        return binary
    os.makedirs(cache, exist_ok=True)
    source = os.path.join(cache, f"map_client-{digest}.c")
    with open(source, "w") as f:
        f.write(C_SOURCE)
    partial = f"{binary}.{os.getpid()}"
    proc = subprocess.run(
        [cc, "-O2", "-o", partial, source], capture_output=True, text=True
    )
    if proc.returncode != 0:
        if not quiet:
            print(proc.stderr, file=sys.stderr)
        return None
    os.replace(partial, binary)
    return binary


# -- the Python lock-step client (without a C compiler) -------------------------------


MACHINE_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def server_cpu(pids: list[int]) -> tuple[float, float]:
    """utime + stime of *pids*, and utime alone, in seconds."""
    total = user = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
        user += int(fields[11])
    tck = os.sysconf("SC_CLK_TCK")
    return total / tck, user / tck


def machine() -> dict[str, float]:
    """The first line of /proc/stat (every CPU), in seconds."""
    with open("/proc/stat") as f:
        values = f.readline().split()[1:9]
    tck = os.sysconf("SC_CLK_TCK")
    return {name: int(v) / tck for name, v in zip(MACHINE_FIELDS, values)}


def _unquote(data: bytes) -> bytes:
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(data)


class _Conn:
    __slots__ = ("sock", "target", "mode", "key", "buf")

    def __init__(self, sock: socket.socket, target: int, mode: str) -> None:
        self.sock, self.target, self.mode, self.key, self.buf = sock, target, mode, 0, b""


def lockstep(argv: list[str]) -> int:
    """The Python twin of ``C_SOURCE`` (same arguments, same output)."""
    if len(argv) < 9:
        print("usage: map_client.py " + USAGE, file=sys.stderr)
        return 2
    phase, warmup = float(argv[0]), float(argv[1])
    cycles, warm_cycles, nconn = int(argv[2]), int(argv[3]), int(argv[4])
    name, entries = argv[5].encode(), int(argv[6])
    span = entries + entries // 3
    rng = random.Random(int(argv[7]))
    targets = []
    for spec in argv[8:]:
        host, port, mode, pids = spec.split(":")
        targets.append((host, int(port), mode, [int(p) for p in pids.split("+")]))
    ep = select.epoll()
    by_fd: dict[int, _Conn] = {}
    per_target: list[list[_Conn]] = []
    for t, (host, port, mode, _) in enumerate(targets):
        conns = []
        for _ in range(nconn):
            sock = socket.create_connection((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            conn = _Conn(sock, t, mode)
            by_fd[sock.fileno()] = conn
            ep.register(sock.fileno(), select.EPOLLIN)
            conns.append(conn)
        per_target.append(conns)
    counts = {"replies": 0, "hits": 0, "misses": 0, "bad": 0}

    def send(conn: _Conn) -> None:
        key = conn.key = rng.randrange(span)
        k = b"user%d@example.com" % key
        if conn.mode == "socketmap":
            body = name + b" " + k
            conn.sock.send(b"%d:%b," % (len(body), body))
        else:
            conn.sock.send(b"get " + k + b"\n")

    def check(conn: _Conn, reply: bytes, count: bool) -> None:
        if count:
            counts["replies"] += 1
        if conn.mode == "line":
            return
        key = conn.key
        want = b"smtp:[mx%d.example.net]" % key
        if conn.mode == "tcp":
            ok = (
                reply.startswith(b"200 ") and _unquote(reply[4:-1]) == want
                if key < entries
                else reply.startswith(b"500 ")
            )
        else:
            payload = reply.split(b":", 1)[1][:-1]
            ok = payload == (b"OK " + want if key < entries else b"NOTFOUND ")
        if not ok:
            counts["bad"] += 1
            if counts["bad"] <= 3:
                print(f"map_client: bad reply to key {key}: {reply[:200]!r}", file=sys.stderr)
        elif count:
            counts["hits" if key < entries else "misses"] += 1

    phases = []
    for cycle in range(cycles):
        for k in range(len(targets)):
            t = (k + cycle) % len(targets)  # each round in a rotated order
            pids = targets[t][3]
            counts.update(replies=0, hits=0, misses=0)
            bad_before = counts["bad"]
            for conn in per_target[t]:
                send(conn)
            outstanding = nconn
            start = time.perf_counter()
            begin, end = start + warmup, start + warmup + phase
            timing = draining = False
            warm = 0
            t0 = cpu0 = user0 = own0 = 0.0
            t1 = cpu1 = user1 = own1 = 0.0
            m0: dict[str, float] = {}
            m1: dict[str, float] = {}
            while outstanding:
                events = ep.poll(0.1)
                now = time.perf_counter()
                if not timing and now >= begin:
                    timing = True
                    warm = counts["replies"]
                    counts.update(replies=0, hits=0, misses=0)
                    t0, (cpu0, user0), own0, m0 = now, server_cpu(pids), time.process_time(), machine()
                elif timing and not draining and now >= end:
                    draining = True
                    t1, (cpu1, user1), own1, m1 = now, server_cpu(pids), time.process_time(), machine()
                for fd, _ in events:
                    conn = by_fd[fd]
                    data = conn.buf + conn.sock.recv(8192)
                    if not data:
                        print("map_client: the server closed a connection", file=sys.stderr)
                        return 1
                    if conn.mode == "socketmap":
                        head, _, rest = data.partition(b":")
                        if len(rest) < int(head) + 1:
                            conn.buf = data
                            continue
                    elif not data.endswith(b"\n"):
                        conn.buf = data
                        continue
                    conn.buf = b""
                    check(conn, data, not draining)
                    if not draining:
                        send(conn)
                    else:
                        outstanding -= 1
            phases.append({
                "target": t, "cycle": cycle, "warm": cycle < warm_cycles,
                "requests": counts["replies"], "seconds": t1 - t0,
                "server_cpu": cpu1 - cpu0, "server_user_cpu": user1 - user0,
                "client_cpu": own1 - own0, "hits": counts["hits"],
                "misses": counts["misses"], "bad": counts["bad"] - bad_before,
                "warmup_requests": warm,
                "machine": {k: m1[k] - m0[k] for k in MACHINE_FIELDS},
            })
    print(json.dumps({"client": "Python", "connections": nconn, "phases": phases}))
    return 3 if counts["bad"] else 0


# -- idle connections ------------------------------------------------------------------


def rss(pid: int) -> int:
    """Resident memory of *pid*, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _exchange(socks: list[socket.socket], request: bytes) -> int:
    """Send *request* on every socket, then read one reply line from each; returns how
    many failed."""
    failed = 0
    for s in socks:
        try:
            s.sendall(request)
        except OSError:
            failed += 1
    for s in socks:
        try:
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
        except OSError:
            failed += 1
    return failed


def idle(argv: list[str]) -> int:
    import resource
    import struct

    host, port, count, pid = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    hold = float(argv[4]) if len(argv) > 4 else 2.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 64
    limit_note = None
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < want:
            limit_note = f"the hard limit on open files ({hard}) allows {target - 64} connections"
            count = target - 64
    before = rss(pid)
    socks: list[socket.socket] = []
    out: dict[str, Any] = {"requested": count, "limit": limit_note}
    error = None
    started = time.perf_counter()
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.settimeout(30)
            socks.append(s)
            s.connect((host, port))
    except OSError as e:
        error = f"connection {len(socks)}: {e}"
        socks.pop().close()
    out["connected"] = len(socks)
    out["connect_seconds"] = time.perf_counter() - started
    failed = _exchange(socks, b"get user1@example.com\n")
    time.sleep(0.5)
    after = rss(pid)
    time.sleep(hold)
    failed_later = _exchange(socks, b"get user2@example.com\n")
    after_held = rss(pid)
    for s in socks:
        s.close()  # SO_LINGER 0: a reset, no TIME_WAIT left behind
    out.update(
        rss_before=before,
        rss_after=after,
        rss_after_held=after_held,
        bytes_per_connection=(after - before) / len(socks) if socks else None,
        failed_first=failed,
        failed_after_hold=failed_later,
        held_seconds=hold,
        error=error,
        ok=error is None and failed == 0 and failed_later == 0 and len(socks) == count,
    )
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("lockstep", "idle", "build"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "build":
        path = build(quiet=False)
        print(path or "")
        return 0 if path else 1
    if argv[0] == "idle":
        return idle(argv[1:])
    return lockstep(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
