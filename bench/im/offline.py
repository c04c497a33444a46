#!/usr/bin/env python3
"""IM benchmark, offline store-and-forward: Confab vs Kamailio 5.6 with msilo (issue 9).

Run it through run.sh; bench/README.md explains the output. Standard library only; the
process, SIPp and server helpers are bench/frontend/bench.py's.

  store     SIPp sends MESSAGEs from uNNNNNN@caller.example to --recipients users of
            example.com that have no registered contact, at stepped rates (--store-rates);
            each is stored durably and answered 202 Accepted. Server CPU per stored message,
            clean rate.
  deliver   --recipients x --per-user messages are stored (--fill-rate per second),
            then a UA in this process REGISTERs every recipient (MD5 digest) and answers
            every MESSAGE the server sends with 200: messages per second delivered (first
            REGISTER to last MESSAGE received) and server CPU per delivered message
            (including the REGISTERs: two transactions per recipient, amortised).
Both run --rounds times, the servers alternated, medians printed.
"""

import argparse
import importlib.util
import hashlib
import os
import re
import selectors
import shutil
import signal
import socket
import sqlite3
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
PASSWORD = fe.PASSWORD
SETTLE = 6.0  # > Kamailio tm's 5 s wait timer and Confab's Timer K: transactions freed
IDLE = 2.0
log = fe.log


class Kamailio(fe.Server):
    name = "kamailio"
    settle = SETTLE  # tm's 5 s wait timer

    def cpu(self):
        return fe.tree_schedstat_seconds(self.proc.pid)

    def __init__(self, args, work):
        super().__init__(args, work)
        self.port = args.kam_port

    def prepare_run(self, run_dir):
        # A fresh, empty msilo table per run (the schema Debian ships for db_sqlite).
        db = os.path.join(run_dir, "silo.db")
        if os.path.exists(db):
            os.unlink(db)
        con = sqlite3.connect(db)
        for f in ("standard-create.sql", "msilo-create.sql"):
            with open(os.path.join(self.args.kam_sql_dir, f)) as fh:
                con.executescript(fh.read())
        con.commit()
        # WAL, as Confab's database (a persistent property of the file); synchronous=FULL
        # (SQLite's default) stays: every commit is on disk before the 202.
        con.execute("PRAGMA journal_mode=WAL")
        con.close()
        self.silo = db

    def command(self):
        return ["kamailio", "-f", os.path.join(HERE, "kamailio.cfg"), "-DD", "-E",
                "-x", "tlsf", "-X", "tlsf", "-m", "1024", "-M", "32", "-n", "1",
                "-A", f"BENCH_LISTEN=udp:{HOST}:{self.port}",
                "-A", f'BENCH_DB_URL="text://{os.path.join(self.work, "kamdb")}"',
                "-A", f"BENCH_MAX_ROWS={self.args.users + 1000}",
                "-A", f'BENCH_SILO_URL="sqlite://{self.silo}"',
                "-A", f'BENCH_SELF="sip:{HOST}:{self.port}"']


class Confab(fe.Confab):
    settle = 33.0  # Timer J (32 s on UDP) frees the MESSAGE/REGISTER server transactions

    def cpu(self):
        return fe.tree_schedstat_seconds(self.proc.pid)

    def config_text(self):
        with open(self.args.confab_config) as f:
            text = f.read()
        return text.replace(f"udp:{HOST}:15370", f"udp:{HOST}:{self.port}")


def store(args, server, run_dir, tag, count, rate, rcpt_start=0):
    """SIPp: `count` MESSAGEs to offline recipients (round robin over --recipients)."""
    csvp = os.path.join(run_dir, f"{tag}.csv")
    with open(csvp, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(count):
            f.write(f"u{(args.users - 1 - i % args.users):06d};"
                    f"u{rcpt_start + i % args.recipients:06d}\n")
    stat = os.path.join(run_dir, f"{tag}-stat.csv")
    err = os.path.join(run_dir, f"{tag}-errors.log")
    cmd = fe.sipp_cmd(args, server.port, os.path.join(HERE, "scenarios", "offline_uac.xml"),
                      args.sipp_port,
                      ["-inf", csvp, "-r", f"{rate:g}", "-rp", "1000", "-m", str(count),
                       "-trace_stat", "-stf", stat, "-fd", "1", "-trace_err", "-error_file", err,
                       "-timeout", str(int(count / rate + 120))])
    c0, g0, t0 = server.cpu(), fe.children_cpu(), time.time()
    p = fe.spawn(cmd, os.path.join(run_dir, f"{tag}.out"), run_dir)
    p.wait()
    t1 = time.time()
    c1 = server.cpu()
    gen = (fe.children_cpu() - g0) / max(t1 - t0, 1e-9)
    try:
        final, _ = fe.parse_stat(stat)
    except (OSError, ValueError) as e:
        raise fe.ServerError(f"SIPp gave no statistics ({e}): {fe.tail(os.path.join(run_dir, f'{tag}.out'), 4)}")
    succ, failed = int(final["SuccessfulCall(C)"]), int(final["FailedCall(C)"])
    retrans = int(final["Retransmissions(C)"])
    elapsed = fe.epoch(final["CurrentTime"]) - fe.epoch(final["StartTime"])
    first_err = ""
    if failed and os.path.exists(err):
        lines = [x for x in open(err, errors="replace").read().splitlines() if x.strip()]
        first_err = " | ".join(lines[:2])[:300]
    return dict(rate=rate, count=count, succ=succ, failed=failed, retrans=retrans,
                elapsed=elapsed, achieved=succ / max(elapsed, 1e-9), busy=(c1 - c0) / max(t1 - t0, 1e-9),
                gen=gen, err=first_err,
                clean=(failed == 0 and succ >= count and retrans <= succ * 0.001))


def store_run(args, server, rate, run_dir):
    os.makedirs(run_dir, exist_ok=True)
    server.start(run_dir)
    try:
        idle = fe.idle_cpu_rate(server, IDLE)
        c0, t0 = server.cpu(), time.time()
        r = store(args, server, run_dir, "store", int(rate * args.duration), rate)
        time.sleep(server.settle)
        c1, t1 = server.cpu(), time.time()
        r["us"] = ((c1 - c0) - idle * (t1 - t0)) * 1e6 / r["succ"] if r["succ"] else float("nan")
        return r
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------
# The registering UA (delivery)


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


class Registrar:
    """Registers users u000000.. (digest MD5) from a few sockets; answers MESSAGEs 200."""

    def __init__(self, args, port):
        self.args = args
        self.server = (HOST, port)
        self.sel = selectors.DefaultSelector()
        self.socks = []
        for _ in range(16):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            s.bind((HOST, 0))
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.socks.append(s)
        self.tag = "%08x" % int.from_bytes(os.urandom(4), "big")
        self.pending = {}     # call-id -> [t, msg, sock, user]
        self.reg_ok = self.reg_fail = self.reg_retrans = 0
        self.fail = None
        self.got = set()
        self.retrans = 0
        self.t_last = 0.0

    def close(self):
        for s in self.socks:
            self.sel.unregister(s)
            s.close()

    def register_msg(self, i, cseq, auth=""):
        u = f"u{i:06d}"
        sock = self.socks[i % len(self.socks)]
        port = sock.getsockname()[1]
        cid = f"r{i}-{self.tag}@bench"
        m = (f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
             f"Via: SIP/2.0/UDP {HOST}:{port};rport;branch=z9hG4bK-r{i}-{cseq}-{self.tag}\r\n"
             "Max-Forwards: 70\r\n"
             f"From: <sip:{u}@{DOMAIN}>;tag=rt{i}\r\n"
             f"To: <sip:{u}@{DOMAIN}>\r\n"
             f"Call-ID: {cid}\r\n"
             f"CSeq: {cseq} REGISTER\r\n"
             f"Contact: <sip:{u}@{HOST}:{port}>\r\n"
             "Expires: 3600\r\n" + auth + "Content-Length: 0\r\n\r\n")
        return cid.encode(), m.encode(), sock

    def send_register(self, i, cseq=1, auth=""):
        cid, m, sock = self.register_msg(i, cseq, auth)
        self.pending[cid] = [time.time(), m, sock, i]
        sock.sendto(m, self.server)

    def authorization(self, i, h):
        line = fe.header_value(h[b"www-authenticate"][0]).decode()
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', line))
        u = f"u{i:06d}"
        realm, nonce = params.get("realm", DOMAIN), params["nonce"]
        ha1 = md5(f"{u}:{realm}:{PASSWORD}")
        uri = f"sip:{DOMAIN}"
        ha2 = md5(f"REGISTER:{uri}")
        if "auth" in params.get("qop", "").split(","):
            cnonce, nc = "0a4f113b", "00000001"
            resp = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            resp = md5(f"{ha1}:{nonce}:{ha2}")
            extra = ""
        opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
        return (f'Authorization: Digest username="{u}", realm="{realm}", nonce="{nonce}", '
                f'uri="{uri}", response="{resp}", algorithm=MD5{extra}{opaque}\r\n')

    def poll(self, timeout):
        for key, _ in self.sel.select(timeout):
            sock = key.fileobj
            while True:
                try:
                    data, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                self.on_msg(sock, data, addr)

    def on_msg(self, sock, data, addr):
        first, h, body = fe.parse_sip(data)
        if first.startswith(b"MESSAGE "):
            out = [b"SIP/2.0 200 OK"] + h.get(b"via", []) + h.get(b"from", [])
            to = h.get(b"to", [b"To: <sip:x@x>"])[0]
            out.append(to if b"tag=" in to else to + b";tag=ua" + self.tag.encode())
            out += h.get(b"call-id", []) + h.get(b"cseq", [])
            out.append(b"Content-Length: 0")
            sock.sendto(b"\r\n".join(out) + b"\r\n\r\n", addr)
            key = (fe.header_value(h[b"call-id"][0]), fe.header_value(h[b"cseq"][0]))
            if key in self.got:
                self.retrans += 1
            else:
                self.got.add(key)
                self.t_last = time.time()
            return
        if first.startswith(b"SIP/2.0 "):
            code = int(first[8:11])
            cid = fe.header_value(h[b"call-id"][0])
            p = self.pending.get(cid)
            if p is None or code < 200:
                return
            del self.pending[cid]
            if code == 401 and b"www-authenticate" in h and b"Authorization" not in p[1]:
                self.send_register(p[3], 2, self.authorization(p[3], h))
            elif code < 300:
                self.reg_ok += 1
            else:
                self.reg_fail += 1
                self.fail = self.fail or first.decode(errors="replace")

    def register_all(self, n, expect, timeout):
        nxt = 0
        deadline = time.time() + timeout
        while time.time() < deadline:
            while nxt < n and len(self.pending) < self.args.window:
                self.send_register(nxt)
                nxt += 1
            self.poll(0.01)
            now = time.time()
            for v in self.pending.values():
                if now - v[0] > 0.5:
                    v[0] = now
                    self.reg_retrans += 1
                    v[2].sendto(v[1], self.server)
            if nxt >= n and not self.pending and len(self.got) >= expect:
                return True
        return False

    def drain(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            self.poll(0.05)


def deliver_run(args, server, run_dir):
    os.makedirs(run_dir, exist_ok=True)
    server.start(run_dir)
    ua = None
    res = None
    try:
        n = args.recipients * args.per_user
        s = store(args, server, run_dir, "fill", n, args.fill_rate)
        if s["succ"] < n * 0.99:
            raise fe.ServerError(f"storing {n} messages: {s['succ']} stored, {s['failed']} failed {s['err']}")
        # A few lost to SIPp's timeout (msilo's fsync stalls on a busy disk) are still stored
        # or not: deliver what the server has, and say so.
        fill_failed = s["failed"]
        time.sleep(SETTLE)
        if server.name == "kamailio":
            con = sqlite3.connect(server.silo)
            n = con.execute("SELECT count(*) FROM silo").fetchone()[0]
            con.close()
        ua = Registrar(args, server.port)
        idle = fe.idle_cpu_rate(server, IDLE)
        c0, t0 = server.cpu(), time.time()
        done = ua.register_all(args.recipients, n, args.deliver_timeout)
        t_last = ua.t_last
        ua.drain(server.settle)
        c1, t1 = server.cpu(), time.time()
        got = len(ua.got)
        res = dict(n=n, got=got, fill_failed=fill_failed, reg_ok=ua.reg_ok, reg_fail=ua.reg_fail, fail=ua.fail,
                    reg_retrans=ua.reg_retrans, retrans=ua.retrans,
                    rate=got / max(t_last - t0, 1e-9),
                    us=((c1 - c0) - idle * (t1 - t0)) * 1e6 / got if got else float("nan"),
                    clean=(done and got == n and ua.reg_fail == 0 and ua.retrans == 0))
        return res
    finally:
        if ua:
            ua.close()
        server.stop()
        if server.name == "kamailio" and res is not None:
            # msilo deletes delivered messages in its timer; count what it left behind.
            con = sqlite3.connect(server.silo)
            res["left"] = con.execute("SELECT count(*) FROM silo").fetchone()[0]
            con.close()


def summarize(what, data, names, key="us"):
    log(f"\n{what} (medians over rounds)")
    vals = {}
    for n in names:
        v = [r[key] for r in data[n] if r["clean"]]
        vals[n] = fe.median(v)
        log(f"  {n:8} {vals[n]:7.1f} us/message   per round {', '.join(f'{x:.1f}' for x in v)}")
    if "confab" in vals and "kamailio" in vals and vals["kamailio"] == vals["kamailio"]:
        log(f"  ratio Confab/Kamailio {vals['confab'] / vals['kamailio']:.2f}")
    return vals


def main():
    ap = argparse.ArgumentParser(prog="bench/im/run.sh (offline part)",
                                 description="Offline store-and-forward: Confab vs Kamailio msilo.")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--part", default="all", choices=("store", "deliver", "all"))
    ap.add_argument("--only", choices=("kamailio", "confab"))
    ap.add_argument("--users", type=int, default=10000, help="users provisioned (default 10000)")
    ap.add_argument("--recipients", type=int, default=1000, help="offline recipients (default 1000)")
    ap.add_argument("--store-rates", default="200,500,1000,2000",
                    help="offered MESSAGE rates; stepping stops at the first unclean one")
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per store step (default 6)")
    ap.add_argument("--per-user", type=int, default=5, help="deliver: messages per recipient (default 5)")
    ap.add_argument("--fill-rate", type=float, default=200.0,
                    help="deliver: storing rate (default 200/s: msilo on SQLite stores about 300/s here)")
    ap.add_argument("--window", type=int, default=100, help="deliver: outstanding REGISTERs (default 100)")
    ap.add_argument("--deliver-timeout", type=float, default=120.0)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--kam-port", type=int, default=15390)
    ap.add_argument("--confab-port", type=int, default=15370)
    ap.add_argument("--sipp-port", type=int, default=15381)
    ap.add_argument("--recv-timeout-ms", type=int, default=8000)
    ap.add_argument("--start-timeout", type=float, default=60.0)
    ap.add_argument("--kam-sql-dir", default="/usr/share/kamailio/db_sqlite",
                    help="Kamailio's db_sqlite schema files (standard-create.sql, msilo-create.sql)")
    ap.add_argument("--confab-bin")
    ap.add_argument("--confab-config", default=os.path.join(HERE, "confab.toml"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.store_rates = [float(x) for x in args.store_rates.split(",") if x]
    if args.only != "kamailio" and not args.confab_bin:
        ap.error("--confab-bin is required unless --only kamailio (run.sh passes it)")
    if args.recipients > args.users:
        ap.error("--recipients must not exceed --users")
    parts = ("store", "deliver") if args.part == "all" else (args.part,)

    work = tempfile.mkdtemp(prefix="confab-bench-im-")
    log(f"IM offline benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}  work folder {work}")
    la = fe.loadavg()
    log(f"loadavg {la}  (server on CPU {args.server_cpu}, generators on CPU {args.load_cpu})")
    if float(la.split()[0]) > 1.0:
        log("WARNING: the machine is busy (loadavg > 1): figures are indicative only")
    fe.make_users(work, args.users)
    servers = []
    status = 0
    try:
        if args.only != "kamailio":
            c = Confab(args, work, args.confab_bin)
            c.provision()
            servers.append(c)
        if args.only != "confab":
            servers.append(Kamailio(args, work))
        names = [s.name for s in servers]
        if "store" in parts:
            log(f"\n== Store: MESSAGE to an offline user, 202 Accepted ({args.recipients} recipients, "
                f"{args.duration:g} s per step, rates {args.store_rates})")
            per = {n: [] for n in names}
            for rnd in range(1, args.rounds + 1):
                order = servers if rnd % 2 else list(reversed(servers))
                res = {}
                for srv in order:
                    res[srv.name] = []
                    for rate in args.store_rates:
                        r = store_run(args, srv, rate, os.path.join(work, f"store-{rnd}-{srv.name}-{rate:g}"))
                        res[srv.name].append(r)
                        log(f"  round {rnd} {srv.name:8} offered {rate:>5.0f}/s  achieved {r['achieved']:>6.0f}/s  "
                            f"ok {r['succ']:>6}  failed {r['failed']}  retrans {r['retrans']}  "
                            f"server {r['busy'] * 100:3.0f}% of a core, SIPp {r['gen'] * 100:3.0f}%  "
                            f"{r['us']:6.1f} us/message  {'clean' if r['clean'] else 'NOT CLEAN'}"
                            + (f"  ({r['err']})" if r["err"] else ""))
                        if not r["clean"]:
                            break
                common = set.intersection(*[{r["rate"] for r in res[n] if r["clean"]} for n in names])
                if common:
                    top = max(common)
                    for n in names:
                        per[n].append(next(r for r in res[n] if r["rate"] == top))
                for n in names:
                    cr = [r["rate"] for r in res[n] if r["clean"]]
                    log(f"  round {rnd} {n}: clean store rate {max(cr) if cr else 0:.0f}/s")
            summarize("Store: CPU per stored message at the highest rate both ran clean", per, names)
        if "deliver" in parts:
            log(f"\n== Delivery on REGISTER: {args.recipients} users x {args.per_user} stored messages")
            per = {n: [] for n in names}
            for rnd in range(1, args.rounds + 1):
                order = servers if rnd % 2 else list(reversed(servers))
                for srv in order:
                    try:
                        r = deliver_run(args, srv, os.path.join(work, f"deliver-{rnd}-{srv.name}"))
                    except fe.ServerError as e:
                        log(f"  round {rnd} {srv.name}: {e}")
                        status = 1
                        continue
                    per[srv.name].append(r)
                    log(f"  round {rnd} {srv.name:8} {r['got']}/{r['n']} delivered (stored; {r['fill_failed']} "
                        "MESSAGEs timed out at SIPp while filling),"
                        f" REGISTER ok {r['reg_ok']} "
                        f"failed {r['reg_fail']}{' (' + r['fail'] + ')' if r['fail'] else ''}, "
                        f"MESSAGE retrans {r['retrans']}: {r['rate']:.0f} messages/s, {r['us']:.1f} us/message "
                        f"{'clean' if r['clean'] else 'NOT CLEAN'}")
                    if r.get("left"):
                        log(f"      WARNING: {r['left']} delivered messages still in msilo's table after the run "
                            "(its timer's DELETE failed: see kamailio.log, 'database is locked'); they would "
                            "be sent again at the next REGISTER")
            summarize("Delivery: server CPU per delivered message (REGISTERs included)", per, names)
            for n in names:
                log(f"  {n:8} delivery rate {fe.median([r['rate'] for r in per[n] if r['clean']]):.0f} messages/s")
    except fe.ServerError as e:
        log(f"error: {e}")
        status = 1
    finally:
        log(f"\nloadavg at the end {fe.loadavg()}")
        if args.keep or status:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, fe.on_signal)
    signal.signal(signal.SIGHUP, fe.on_signal)
    try:
        sys.exit(main())
    finally:
        fe.cleanup()
