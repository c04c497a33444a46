#!/usr/bin/env python3
"""Presence benchmark: Confab vs Kamailio 5.6's presence modules (in memory, -x tlsf) (issue 8).

Run it through run.sh (which builds Confab, raises the UDP buffer limits and pins this
process, the load generator, to CPU 1); bench/README.md explains the output. Standard
library only; the process, SIPp and server helpers are bench/frontend/bench.py's.

Parts (--part, default all):
  publish    SIPp PUBLISHes a PIDF for a new presentity per request at stepped rates:
             server CPU per PUBLISH, clean rate.
  fanout     W watchers (--watchers, default 1000 and 10000) SUBSCRIBE to one presentity
             (CPU per SUBSCRIBE, including its 200, the first NOTIFY and that NOTIFY's 200),
             then --fanouts PUBLISHes change its state: time from the PUBLISH to the last
             NOTIFY (kernel receive time at the watcher) and server CPU per NOTIFY.
  memory     --mem-subs (100,000) subscriptions over --mem-presentities (1,000): Confab's
             RSS growth and Kamailio's shm growth per subscription.
Every part runs --rounds times (default 3), the servers alternated, medians printed.
"""

import argparse
import importlib.util
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/frontend/bench.py: processes, CPU of a process tree, SIPp, Confab provisioning.
_spec = importlib.util.spec_from_file_location("frontend_bench", os.path.join(HERE, "..", "frontend", "bench.py"))
fe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fe)

DOMAIN = fe.DOMAIN
HOST = fe.HOST
SETTLE = 6.5   # > Kamailio tm's 5 s wait timer and Confab's Timer K (5 s): transactions freed
IDLE = 2.0     # seconds of idle CPU measured before each window (timers), subtracted
# Kamailio 5.6 -x tlsf on this machine kind (shared/research/anchor-bench/presence/README.md).
ANCHOR = {"publish": 32.0, "subscribe": 77.0, "notify1000": 28.0, "notify10000": 187.0,
          "sub_bytes": 830.0}
GOAL_RATIO = 0.6
GOAL_NOTIFY_US = 20.0
GOAL_SUB_BYTES = 1024.0
SO_RCVBUFFORCE, SO_SNDBUFFORCE, SO_TIMESTAMPNS = 33, 32, 35
BUF = 8 * 1024 * 1024

PIDF = ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:{u}@{d}">\r\n'
        '<tuple id="t1"><status><basic>{b}</basic></status>'
        '<note>{note}</note></tuple>\r\n</presence>\r\n')

log = fe.log


# ---------------------------------------------------------------------------------------
# Servers


class Kamailio(fe.Server):
    name = "kamailio"
    # After the load: tm keeps each finished transaction 5 s (wait timer) before freeing it.
    settle = SETTLE

    def cpu(self):
        return fe.tree_schedstat_seconds(self.proc.pid)

    def __init__(self, args, work):
        super().__init__(args, work)
        self.port = args.kam_port
        self.ctl = os.path.join(work, "kamctl.sock")

    def command(self):
        return ["kamailio", "-f", os.path.join(HERE, "kamailio.cfg"), "-DD", "-E",
                "-x", "tlsf", "-X", "tlsf", "-m", "2048", "-M", "16",
                "-n", str(self.args.kam_children),
                "-A", f"BENCH_LISTEN=udp:{HOST}:{self.port}",
                "-A", f'BENCH_CTL="unix:{self.ctl}"']

    def kamcmd(self, cmd):
        return subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", cmd],
                              capture_output=True, text=True, timeout=20).stdout

    def shmmem(self):
        out = self.kamcmd("core.shmmem")
        return {k: int(v) % 2**32 for k, v in re.findall(r"(\w+):\s*(-?\d+)", out)}

    def wait_no_transactions(self, max_wait=30.0):
        end = time.time() + max_wait
        while time.time() < end:
            m = re.search(r"current:\s*(\d+)", self.kamcmd("tm.stats"))
            if m and int(m.group(1)) == 0:
                return 0
            time.sleep(0.5)
        return -1

    def mem_reading(self):
        self.wait_no_transactions()
        return self.shmmem()


class Confab(fe.Confab):
    # After PUBLISH/SUBSCRIBE load: a non-INVITE server transaction lives Timer J (64*T1 =
    # 32 s on UDP) before it is freed; that work belongs to the request that created it.
    settle = 33.0

    def cpu(self):
        return fe.tree_schedstat_seconds(self.proc.pid)

    def config_text(self):
        with open(self.args.confab_config) as f:
            text = f.read()
        return text.replace(f"udp:{HOST}:15270", f"udp:{HOST}:{self.port}")

    def mem_reading(self):
        return {"rss": fe.status_kb(self.proc.pid, "VmRSS") * 1024,
                "pss": fe.pss_kb(self.proc.pid) * 1024}


def make_users(work, n_pub, n_pres):
    """confab-users.csv: pub0000000.. (one per PUBLISH) and pres1..presN (watched)."""
    with open(os.path.join(work, "confab-users.csv"), "w") as f:
        f.write("address,password,display name,phone\n")
        for i in range(n_pub):
            f.write(f"pub{i:07d}@{DOMAIN},secret,,\n")
        for i in range(1, n_pres + 1):
            f.write(f"pres{i}@{DOMAIN},secret,,\n")


# ---------------------------------------------------------------------------------------
# PUBLISH rate (SIPp)


def sipp_publish(args, server, run_dir, tag, start, count, rate):
    csvp = os.path.join(run_dir, f"{tag}.csv")
    with open(csvp, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(start, start + count):
            f.write(f"pub{i:07d}\n")
    stat = os.path.join(run_dir, f"{tag}-stat.csv")
    cmd = fe.sipp_cmd(args, server.port, os.path.join(HERE, "scenarios", "publish.xml"),
                      args.sipp_port,
                      ["-inf", csvp, "-r", f"{rate:g}", "-rp", "1000", "-m", str(count),
                       "-trace_stat", "-stf", stat, "-fd", "1",
                       "-timeout", str(int(count / rate + 120))])
    p = fe.spawn(cmd, os.path.join(run_dir, f"{tag}.out"), run_dir)
    p.wait()
    try:
        final, _ = fe.parse_stat(stat)
    except (OSError, ValueError) as e:
        raise fe.ServerError(f"SIPp gave no statistics ({e}): {fe.tail(os.path.join(run_dir, f'{tag}.out'), 4)}")
    return (int(final["SuccessfulCall(C)"]), int(final["FailedCall(C)"]),
            int(final["Retransmissions(C)"]),
            fe.epoch(final["CurrentTime"]) - fe.epoch(final["StartTime"]))


def publish_run(args, server, rate, run_dir):
    os.makedirs(run_dir, exist_ok=True)
    server.start(run_dir)
    try:
        count = int(rate * args.duration)
        warm = int(rate * args.warmup)
        if warm:
            # Warm-up with other presentities (as the anchor did): a fresh server pays
            # first-touch page faults that a long-running one does not.
            sipp_publish(args, server, run_dir, "warm", count, warm, rate)
            time.sleep(SETTLE)
        idle = fe.idle_cpu_rate(server, IDLE)
        c0, t0 = server.cpu(), time.time()
        succ, failed, retrans, elapsed = sipp_publish(args, server, run_dir, "load", 0, count, rate)
        t1 = time.time()
        c1 = server.cpu()
        time.sleep(server.settle)
        c2, t2 = server.cpu(), time.time()
        cpu = (c2 - c0) - idle * (t2 - t0)
        return dict(rate=rate, count=count, succ=succ, failed=failed, retrans=retrans,
                    elapsed=elapsed, achieved=succ / max(elapsed, 1e-9),
                    busy=(c1 - c0) / max(t1 - t0, 1e-9),
                    us=cpu * 1e6 / succ if succ else float("nan"),
                    clean=(failed == 0 and succ >= count and retrans <= succ * 0.001))
    finally:
        server.stop()


def part_publish(args, servers, work):
    log(f"\n== PUBLISH: a new presentity per request, {args.duration:g} s per step "
        f"(+{args.warmup:g} s warm-up), rates {args.publish_rates}")
    per_round = []
    for rnd in range(1, args.rounds + 1):
        order = servers if rnd % 2 else list(reversed(servers))
        res = {}
        for srv in order:
            res[srv.name] = []
            for rate in args.publish_rates:
                try:
                    r = publish_run(args, srv, rate, os.path.join(work, f"pub-{rnd}-{srv.name}-{rate:g}"))
                except fe.ServerError as e:
                    log(f"  round {rnd} {srv.name}: {e}")
                    break
                res[srv.name].append(r)
                log(f"  round {rnd} {srv.name:8} offered {rate:>6.0f}/s  achieved {r['achieved']:>6.0f}/s  "
                    f"ok {r['succ']:>6}  failed {r['failed']}  retrans {r['retrans']}  "
                    f"server {r['busy'] * 100:3.0f}% of a core  {r['us']:6.1f} us/PUBLISH  "
                    f"{'clean' if r['clean'] else 'NOT CLEAN'}")
                if not r["clean"]:
                    break
        per_round.append(res)
    return summarize_rate("PUBLISH", "publish", per_round, servers)


def summarize_rate(what, key, per_round, servers):
    """Per round: CPU/op at the highest rate both servers ran clean; medians, ratio."""
    names = [s.name for s in servers]
    us = {n: [] for n in names}
    ratios = []
    clean = {n: [] for n in names}
    for res in per_round:
        for n in names:
            cr = [r["rate"] for r in res.get(n, []) if r["clean"]]
            clean[n].append(max(cr) if cr else 0)
        common = set.intersection(*[{r["rate"] for r in res.get(n, []) if r["clean"]} for n in names]) \
            if names else set()
        if not common:
            continue
        top = max(common)
        vals = {n: next(r["us"] for r in res[n] if r["rate"] == top) for n in names}
        for n in names:
            us[n].append(vals[n])
        if "confab" in vals and "kamailio" in vals:
            ratios.append(vals["confab"] / vals["kamailio"])
    out = {n: fe.median(us[n]) for n in names}
    log(f"\n{what}: CPU per {what} at the highest rate both ran clean (median of {len(ratios) or len(per_round)} rounds)")
    for n in names:
        log(f"  {n:8} {out[n]:7.1f} us   per round {', '.join(f'{x:.1f}' for x in us[n])}   "
            f"clean rate per round {', '.join(f'{x:.0f}/s' for x in clean[n])}")
    if ratios:
        rm = fe.median(ratios)
        log(f"  ratio Confab/Kamailio {rm:.2f} (goal <= {GOAL_RATIO}: {'met' if rm <= GOAL_RATIO else 'MISSED'}); "
            f"per round {', '.join(f'{x:.2f}' for x in ratios)}")
    anchor_check("kamailio", key, out.get("kamailio"))
    return out


def anchor_check(name, key, value):
    a = ANCHOR.get(key)
    if value is None or a is None or value != value:
        return
    log(f"  anchor (Kamailio -x tlsf, this machine kind): {a:g} us; measured {value:.1f} us")
    if not (a / 1.6 <= value <= a * 1.6):
        log(f"  WARNING: Kamailio's own figure is far off its anchor ({value:.1f} vs {a:g}): the machine "
            "was busy or the harness is wrong; do not trust the ratio")


# ---------------------------------------------------------------------------------------
# Watchers (SUBSCRIBE, NOTIFY fan-out, memory): many UDP sockets in this process


def mk_sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUF)
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, BUF)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUF)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUF)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((HOST, 0))
    s.setblocking(False)
    return s


class Watchers:
    """W watchers on S sockets; every NOTIFY answered 200; SUBSCRIBE window; UDP T1 resend."""

    def __init__(self, args, port, n, presentities, tag):
        self.args = args
        self.server = (HOST, port)
        self.n = n
        self.presentities = presentities
        self.tag = tag
        self.sel = selectors.DefaultSelector()
        self.socks = [mk_sock() for _ in range(max(8, min(512, n // 50)))]
        self.pub_sock = mk_sock()
        for s in self.socks + [self.pub_sock]:
            self.sel.register(s, selectors.EVENT_READ)
        self.seen = set()
        self.notify_retrans = 0
        self.notifies = 0
        self.got_initial = set()
        self.pending = {}
        self.sub_ok = self.sub_fail = self.sub_retrans = 0
        self.fail_codes = {}
        self.marker = None
        self.marked = set()
        self.t_last = 0.0
        self.pub_code = None
        self.etag = None
        self.pub_cseq = 0
        self.first_fail = None

    def close(self):
        for s in self.socks + [self.pub_sock]:
            self.sel.unregister(s)
            s.close()

    def poll(self, timeout):
        for key, _ in self.sel.select(timeout):
            sock = key.fileobj
            while True:
                try:
                    data, anc, _f, addr = sock.recvmsg(65535, 64)
                except BlockingIOError:
                    break
                ts = None
                for lvl, typ, cd in anc:
                    if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", cd[:16])
                        ts = sec + nsec * 1e-9
                self.on_msg(sock, data, addr, ts)

    def on_msg(self, sock, data, addr, ts):
        first, h, body = fe.parse_sip(data)
        if first.startswith(b"NOTIFY "):
            out = [b"SIP/2.0 200 OK"] + h.get(b"via", [])
            for k in (b"from", b"to", b"call-id", b"cseq"):
                out += h.get(k, [])
            out.append(b"Content-Length: 0")
            sock.sendto(b"\r\n".join(out) + b"\r\n\r\n", addr)
            cid = fe.header_value(h[b"call-id"][0])
            key = (cid, fe.header_value(h[b"cseq"][0]))
            if key in self.seen:
                self.notify_retrans += 1
                return
            self.seen.add(key)
            self.notifies += 1
            self.got_initial.add(cid)
            if self.marker and self.marker in body:
                self.marked.add(cid)
                if ts:
                    self.t_last = max(self.t_last, ts)
            return
        if first.startswith(b"SIP/2.0 "):
            code = int(first[8:11])
            cseq = fe.header_value(h[b"cseq"][0])
            cid = fe.header_value(h[b"call-id"][0])
            if cseq.endswith(b"PUBLISH"):
                if code >= 200:
                    self.pub_code = code
                    et = h.get(b"sip-etag")
                    if et:
                        self.etag = fe.header_value(et[0]).decode()
                return
            if cseq.endswith(b"SUBSCRIBE") and code >= 200 and cid in self.pending:
                del self.pending[cid]
                if code < 300:
                    self.sub_ok += 1
                else:
                    self.sub_fail += 1
                    self.fail_codes[code] = self.fail_codes.get(code, 0) + 1
                    self.first_fail = self.first_fail or first.decode(errors="replace")

    def wait_until(self, cond, timeout):
        end = time.time() + timeout
        while not cond():
            if time.time() > end:
                return False
            self.poll(0.05)
        return True

    def drain(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            self.poll(min(0.1, max(0.0, end - time.time())))

    def publish(self, pres, basic, note, etag=None):
        self.pub_cseq += 1
        body = PIDF.format(u=pres, d=DOMAIN, b=basic, note=note)
        port = self.pub_sock.getsockname()[1]
        m = (f"PUBLISH sip:{pres}@{DOMAIN} SIP/2.0\r\n"
             f"Via: SIP/2.0/UDP {HOST}:{port};rport;branch=z9hG4bK-pub-{self.tag}-{self.pub_cseq}\r\n"
             "Max-Forwards: 70\r\n"
             f"From: <sip:{pres}@{DOMAIN}>;tag=pub{self.tag}\r\n"
             f"To: <sip:{pres}@{DOMAIN}>\r\n"
             f"Call-ID: pub-{self.tag}@bench\r\n"
             f"CSeq: {self.pub_cseq} PUBLISH\r\n"
             "Event: presence\r\nExpires: 3600\r\n"
             + (f"SIP-If-Match: {etag}\r\n" if etag else "")
             + "Content-Type: application/pidf+xml\r\n"
             f"Content-Length: {len(body.encode())}\r\n\r\n{body}")
        self.pub_code = None
        t = time.time()
        self.pub_sock.sendto(m.encode(), self.server)
        return t

    def subscribe_msg(self, i, sock):
        P = self.presentities
        pu = "pres1" if P <= 1 else f"pres{i % P + 1}"
        port = sock.getsockname()[1]
        cid = f"w{i}-{self.tag}@bench"
        # No credentials (the generators are a trusted peer for Confab; Kamailio authenticates
        # nothing): Confab's watchers get the "public" view (availability only, no note),
        # Kamailio's the whole document. The fan-out marker is therefore the <basic> status.
        m = (f"SUBSCRIBE sip:{pu}@{DOMAIN} SIP/2.0\r\n"
             f"Via: SIP/2.0/UDP {HOST}:{port};rport;branch=z9hG4bK-s{i}-{self.tag}\r\n"
             "Max-Forwards: 70\r\n"
             f"From: <sip:w{i:06d}@{DOMAIN}>;tag=ft{i}\r\n"
             f"To: <sip:{pu}@{DOMAIN}>\r\n"
             f"Call-ID: {cid}\r\n"
             "CSeq: 1 SUBSCRIBE\r\n"
             f"Contact: <sip:w{i:06d}@{HOST}:{port}>\r\n"
             "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: 3600\r\n"
             "Content-Length: 0\r\n\r\n")
        return cid.encode(), m.encode()

    def subscribe_all(self, timeout):
        nxt = 0
        deadline = time.time() + timeout
        while (nxt < self.n or self.pending) and time.time() < deadline:
            while nxt < self.n and len(self.pending) < self.args.window:
                sock = self.socks[nxt % len(self.socks)]
                cid, msg = self.subscribe_msg(nxt, sock)
                self.pending[cid] = [time.time(), msg, sock]
                sock.sendto(msg, self.server)
                nxt += 1
            self.poll(0.01)
            now = time.time()
            for v in self.pending.values():
                if now - v[0] > 0.5:
                    v[0] = now
                    self.sub_retrans += 1
                    v[2].sendto(v[1], self.server)
        return self.wait_until(lambda: len(self.got_initial) >= self.n, 15)


def start_watchers(args, server, n, presentities):
    tag = "%08x" % int.from_bytes(os.urandom(4), "big")
    return Watchers(args, server.port, n, presentities, tag)


def fanout_run(args, server, W, run_dir):
    os.makedirs(run_dir, exist_ok=True)
    server.start(run_dir)
    w = None
    try:
        w = start_watchers(args, server, W, 1)
        w.publish("pres1", "open", "initial")
        if not w.wait_until(lambda: w.pub_code is not None, 5) or w.pub_code != 200 or not w.etag:
            raise fe.ServerError(f"initial PUBLISH failed: {w.pub_code}, SIP-ETag {w.etag}")
        w.drain(1.0)
        idle = fe.idle_cpu_rate(server, IDLE)
        c0, t0 = server.cpu(), time.time()
        u0 = fe.udp_rcvbuf_errors()
        done = w.subscribe_all(args.sub_timeout)
        t1 = time.time()
        w.drain(server.settle)
        c2, t2 = server.cpu(), time.time()
        res = dict(W=W, sub_ok=w.sub_ok, sub_fail=w.sub_fail, sub_retrans=w.sub_retrans,
                   fail_codes=w.fail_codes, first_fail=w.first_fail, initial=len(w.got_initial),
                   sub_rate=W / max(t1 - t0, 1e-9),
                   sub_us=((c2 - c0) - idle * (t2 - t0)) * 1e6 / W,
                   sub_clean=(done and w.sub_ok == W and w.sub_fail == 0
                              and w.sub_retrans <= W * 0.001 and w.notify_retrans == 0),
                   drops=fe.udp_rcvbuf_errors() - u0)
        fans = []
        for k in range(1, args.fanouts + 1):
            basic = "closed" if k % 2 else "open"
            note = f"fan-{w.tag}-{k}"
            w.marker = f"<basic>{basic}</basic>".encode()
            w.marked = set()
            w.t_last = 0.0
            r0 = w.notify_retrans
            u0 = fe.udp_rcvbuf_errors()
            idle = fe.idle_cpu_rate(server, IDLE)
            c0 = server.cpu()
            t_pub = w.publish("pres1", basic, note, w.etag)
            ok = w.wait_until(lambda: len(w.marked) >= W and w.pub_code is not None, args.fan_timeout)
            w.drain(SETTLE)
            c1, t1 = server.cpu(), time.time()
            f = dict(k=k, got=len(w.marked), pub_code=w.pub_code,
                     last_ms=(w.t_last - t_pub) * 1e3 if w.t_last else float("nan"),
                     us=((c1 - c0) - idle * (t1 - t_pub)) * 1e6 / W,
                     retrans=w.notify_retrans - r0, drops=fe.udp_rcvbuf_errors() - u0)
            f["clean"] = bool(ok and f["got"] == W and f["retrans"] == 0 and w.pub_code == 200)
            fans.append(f)
        res["fans"] = fans
        return res
    finally:
        if w:
            w.close()
        server.stop()


def part_fanout(args, servers, work):
    log(f"\n== SUBSCRIBE and NOTIFY fan-out: W watchers of one presentity, {args.fanouts} state "
        f"changes per run, W in {args.watchers}")
    data = {W: {s.name: [] for s in servers} for W in args.watchers}
    for rnd in range(1, args.rounds + 1):
        order = servers if rnd % 2 else list(reversed(servers))
        for W in args.watchers:
            for srv in order:
                try:
                    r = fanout_run(args, srv, W, os.path.join(work, f"fan-{rnd}-{srv.name}-{W}"))
                except fe.ServerError as e:
                    log(f"  round {rnd} {srv.name} W={W}: {e}")
                    continue
                data[W][srv.name].append(r)
                log(f"  round {rnd} {srv.name:8} W={W:<6} SUBSCRIBE {r['sub_ok']}/{W} ok "
                    f"(failed {r['sub_fail']} {r['fail_codes'] or ''}{' first: ' + r['first_fail'] if r['first_fail'] else ''}, "
                    f"retrans {r['sub_retrans']}) {r['sub_rate']:.0f}/s {r['sub_us']:.1f} us/SUBSCRIBE "
                    f"{'clean' if r['sub_clean'] else 'NOT CLEAN'}")
                for f in r["fans"]:
                    log(f"      fan-out {f['k']}: {f['got']}/{W} NOTIFYs, last after {f['last_ms']:.1f} ms, "
                        f"{f['us']:.1f} us/NOTIFY, NOTIFY retrans {f['retrans']}, drops {f['drops']}, "
                        f"PUBLISH {f['pub_code']}  {'clean' if f['clean'] else 'NOT CLEAN'}")
    out = {}
    log("\nSUBSCRIBE and fan-out summary (medians; fan-outs: over all clean fan-outs of all rounds)")
    for W in args.watchers:
        for srv in servers:
            runs = data[W][srv.name]
            sub = fe.median([r["sub_us"] for r in runs if r["sub_clean"]])
            fans = [f for r in runs for f in r["fans"] if f["clean"]]
            nus = fe.median([f["us"] for f in fans])
            last = fe.median([f["last_ms"] for f in fans])
            out[(W, srv.name)] = dict(sub=sub, notify=nus, last=last, n=len(fans))
            log(f"  W={W:<6} {srv.name:8} {sub:6.1f} us/SUBSCRIBE   {nus:6.1f} us/NOTIFY   "
                f"last NOTIFY after {last:7.1f} ms   ({len(fans)} clean fan-outs of "
                f"{sum(len(r['fans']) for r in runs)})")
        c, k = out.get((W, "confab")), out.get((W, "kamailio"))
        if c and c["notify"] == c["notify"]:
            log(f"  W={W}: Confab {c['notify']:.1f} us/NOTIFY (goal <= {GOAL_NOTIFY_US:g}: "
                f"{'met' if c['notify'] <= GOAL_NOTIFY_US else 'MISSED'})")
        if c and k and k["sub"] == k["sub"]:
            rs = c["sub"] / k["sub"]
            log(f"  W={W}: SUBSCRIBE ratio Confab/Kamailio {rs:.2f} (goal <= {GOAL_RATIO}: "
                f"{'met' if rs <= GOAL_RATIO else 'MISSED'})")
        if k:
            anchor_check("kamailio", f"notify{W}", k["notify"])
            if W == max(args.watchers):
                anchor_check("kamailio", "subscribe", k["sub"])
    return out


def memory_run(args, server, run_dir):
    os.makedirs(run_dir, exist_ok=True)
    server.start(run_dir)
    w = None
    try:
        w = start_watchers(args, server, args.mem_subs, args.mem_presentities)
        time.sleep(1.0)
        m0 = server.mem_reading()
        done = w.subscribe_all(max(args.sub_timeout, args.mem_subs / 200))
        w.drain(SETTLE)
        m1 = server.mem_reading()
        res = dict(ok=w.sub_ok, failed=w.sub_fail, codes=w.fail_codes, initial=len(w.got_initial),
                   done=done, m0=m0, m1=m1)
        if server.name == "confab":
            # Confab's SUBSCRIBE server transactions live Timer J (32 s on UDP): read again.
            w.drain(args.mem_settle)
            res["m2"] = server.mem_reading()
        return res
    finally:
        if w:
            w.close()
        server.stop()


def part_memory(args, servers, work):
    N = args.mem_subs
    log(f"\n== Memory: {N} subscriptions over {args.mem_presentities} presentities")
    out = {}
    for rnd in range(1, args.mem_rounds + 1):
        for srv in servers:
            try:
                r = memory_run(args, srv, os.path.join(work, f"mem-{rnd}-{srv.name}"))
            except fe.ServerError as e:
                log(f"  {srv.name}: {e}")
                continue
            head = f"  round {rnd} {srv.name:8} {r['ok']}/{N} subscribed (failed {r['failed']} {r['codes'] or ''})"
            if srv.name == "confab":
                a = (r["m1"]["rss"] - r["m0"]["rss"]) / N
                b = (r["m2"]["rss"] - r["m0"]["rss"]) / N
                p = (r["m2"]["pss"] - r["m0"]["pss"]) / N
                log(f"{head}: RSS {r['m0']['rss'] / 2**20:.1f} -> {r['m1']['rss'] / 2**20:.1f} MiB "
                    f"({a:.0f} B/subscription), {args.mem_settle:g} s later {r['m2']['rss'] / 2**20:.1f} MiB "
                    f"({b:.0f} B/subscription; PSS {p:.0f} B)  goal < {GOAL_SUB_BYTES:.0f} B: "
                    f"{'met' if b < GOAL_SUB_BYTES else 'MISSED'}")
                out.setdefault("confab", []).append(b)
            else:
                u = (r["m1"].get("used", 0) - r["m0"].get("used", 0)) / N
                ru = (r["m1"].get("real_used", 0) - r["m0"].get("real_used", 0)) / N
                log(f"{head}: shm used {u:.0f} B/subscription, real_used (with TLSF overhead) "
                    f"{ru:.0f} B/subscription  (anchor ~{ANCHOR['sub_bytes']:.0f} B real_used)")
                out.setdefault("kamailio", []).append(ru)
    return out


# ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(prog="bench/presence/run.sh",
                                 description="Presence benchmark: Confab vs Kamailio presence (in memory, -x tlsf).")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, alternating the servers (default 3)")
    ap.add_argument("--part", default="all", choices=("publish", "fanout", "memory", "all"))
    ap.add_argument("--only", choices=("kamailio", "confab"), help="run one server only")
    ap.add_argument("--publish-rates", default="2000,5000",
                    help="offered PUBLISH rates per step, stepping stops at the first unclean one")
    ap.add_argument("--duration", type=float, default=6.0, help="seconds of PUBLISH load per step (default 6)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up PUBLISH load (default 2)")
    ap.add_argument("--watchers", default="1000,10000", help="fan-out sizes (default 1000,10000)")
    ap.add_argument("--fanouts", type=int, default=3, help="state changes per fan-out run (default 3)")
    ap.add_argument("--window", type=int, default=200, help="outstanding SUBSCRIBEs (default 200)")
    ap.add_argument("--sub-timeout", type=float, default=120.0)
    ap.add_argument("--fan-timeout", type=float, default=30.0)
    ap.add_argument("--mem-subs", type=int, default=100000)
    ap.add_argument("--mem-presentities", type=int, default=1000)
    ap.add_argument("--mem-rounds", type=int, default=1)
    ap.add_argument("--mem-settle", type=float, default=35.0,
                    help="seconds before Confab's second RSS reading (its SUBSCRIBE transactions gone)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--kam-children", type=int, default=4,
                    help="Kamailio UDP workers (default 4, the anchor's: with one, the worker sending a "
                    "10,000-NOTIFY fan-out cannot take the 200s meanwhile and tm retransmits)")
    ap.add_argument("--kam-port", type=int, default=15290)
    ap.add_argument("--confab-port", type=int, default=15270)
    ap.add_argument("--sipp-port", type=int, default=15281)
    ap.add_argument("--recv-timeout-ms", type=int, default=8000)
    ap.add_argument("--start-timeout", type=float, default=60.0)
    ap.add_argument("--confab-bin", help="confab binary (run.sh passes the release build)")
    ap.add_argument("--confab-config", default=os.path.join(HERE, "confab.toml"))
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    args.publish_rates = [float(x) for x in args.publish_rates.split(",") if x]
    args.watchers = [int(x) for x in args.watchers.split(",") if x]
    if args.only != "kamailio" and not args.confab_bin:
        ap.error("--confab-bin is required unless --only kamailio (run.sh passes it)")
    parts = ("publish", "fanout", "memory") if args.part == "all" else (args.part,)

    work = tempfile.mkdtemp(prefix="confab-bench-presence-")
    log(f"Presence benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}  work folder {work}")
    la = fe.loadavg()
    log(f"loadavg {la}  (server on CPU {args.server_cpu}, generators on CPU {args.load_cpu})")
    if float(la.split()[0]) > 1.0:
        log("WARNING: the machine is busy (loadavg > 1): figures are indicative only")
    n_pub = int(max(args.publish_rates) * (args.duration + args.warmup)) + 10
    make_users(work, n_pub, max(1, args.mem_presentities))
    servers = []
    status = 0
    try:
        if args.only != "kamailio":
            c = Confab(args, work, args.confab_bin)
            c.provision()
            servers.append(c)
        if args.only != "confab":
            servers.append(Kamailio(args, work))
        if "publish" in parts:
            part_publish(args, servers, work)
        if "fanout" in parts:
            part_fanout(args, servers, work)
        if "memory" in parts:
            part_memory(args, servers, work)
    except fe.ServerError as e:
        log(f"error: {e}")
        status = 1
    finally:
        log(f"\nloadavg at the end {fe.loadavg()}")
        if args.keep or status:
            log(f"work folder kept: {work}")
        else:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, fe.on_signal)
    signal.signal(signal.SIGHUP, fe.on_signal)
    try:
        sys.exit(main())
    finally:
        fe.cleanup()
