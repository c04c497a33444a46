#!/usr/bin/env python3
"""Front End benchmark: the same SIPp load against Confab and Kamailio (issue 7).

Run it through run.sh (which builds Confab and raises the UDP buffer limits); see
bench/README.md for what it measures and how to read the output. Standard library only.

Modes:
  perf      REGISTER with MD5 digest, MESSAGE relay, INVITE-to-BYE calls: server CPU
            microseconds per successful operation, clean rate, Confab/Kamailio ratio,
            alternating the servers, --rounds rounds, medians.
  overload  server capped (cgroup CPU quota if writable, else taskset alone) and offered
            twice its clean rate under the cap: goodput as % of the clean rate.
  memory    RSS per registration (Confab) next to Kamailio's core.shmmem growth.
"""

import argparse
import csv
import hashlib
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCEN = os.path.join(HERE, "scenarios")
DOMAIN = "example.com"
UAS_USER = "uas"
PASSWORD = "secret"
HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")

# Anchors measured on this machine kind (shared/research/performance.md, issue 7): Kamailio
# 5.6.3, server CPU microseconds per successful operation.
ANCHOR_TLSF = {"register": 25.0}
ANCHOR_DEFAULT_ALLOC = {"register": 60.0, "message": 84.0, "call": 340.0}
GOAL_RATIO = 0.6

SCENARIOS = ("register", "message", "call")
OP_NAME = {
    "register": "authenticated REGISTER (401 + 200)",
    "message": "relayed MESSAGE",
    "call": "INVITE-to-BYE call",
}
# SIPp caller scenario per scenario name, where it is not `{scenario}_uac.xml`. "pending" is
# the memory mode's calls held open by pending_uas.xml.
UAC_FILE = {"register": "register.xml", "pending": "call_uac.xml"}
# Offered rates (operations/s over all UAC instances) stepped up in perf mode until a run is
# not clean or the generators cannot keep up. Calls cost the generators ~6 messages each.
DEFAULT_RATES = {
    "register": [2000, 4000, 8000, 11000, 14000, 17000, 20000],
    "message": [2000, 4000, 8000, 11000, 14000, 17000, 20000],
    "call": [250, 500, 1000, 2000, 3000, 4000, 5000],
}


# Every process group we start (servers, SIPp), stopped on exit whatever happens.
STARTED = []


def spawn(cmd, out_path, cwd, stdin=subprocess.DEVNULL):
    """Starts `cmd` in its own process group, output to `out_path`; remembered for cleanup."""
    with open(out_path, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, stdin=stdin,
                             start_new_session=True)
    STARTED.append(p)
    return p


def cleanup():
    for p in STARTED:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def on_signal(signum, _frame):
    raise SystemExit(f"stopped by signal {signum}")


def log(*a):
    print(*a, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------------------------------
# Processes: CPU of a process tree, RSS, port readiness


def proc_table():
    """pid -> (ppid, utime+stime ticks) for every process."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        r = s.rsplit(")", 1)[1].split()
        out[int(p)] = (int(r[1]), int(r[11]) + int(r[12]))
    return out


def tree_pids(root, table=None):
    table = table or proc_table()
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    seen, stack = [], [root]
    while stack:
        x = stack.pop()
        if x in table:
            seen.append(x)
        stack.extend(kids.get(x, []))
    return seen


def tree_cpu_seconds(root):
    """utime+stime of `root` and all its descendants (threads are included in each
    process's own figures), in seconds."""
    table = proc_table()
    return sum(table[p][1] for p in tree_pids(root, table)) / TICK


def tree_schedstat_seconds(root):
    """On-CPU seconds of `root`'s process tree, every thread, from
    /proc/PID/task/TID/schedstat (nanoseconds; /proc/PID/stat counts 10 ms ticks, too coarse
    for a short window such as a 1,000-NOTIFY fan-out). Threads that ended are not counted:
    Confab's runtime and SQLite threads live as long as the process, Kamailio's processes
    are single-threaded. Used by bench/presence and bench/im."""
    total = 0
    for pid in tree_pids(root):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e9


def idle_cpu_rate(server, seconds):
    """The server's CPU seconds per second while no load runs (subtracted from a run)."""
    c0, t0 = server.cpu(), time.time()
    time.sleep(seconds)
    return (server.cpu() - c0) / (time.time() - t0)


SIP_COMPACT = {b"v": b"via", b"f": b"from", b"t": b"to", b"i": b"call-id", b"l": b"content-length",
               b"c": b"content-type", b"o": b"event", b"m": b"contact"}


def parse_sip(msg):
    """(start line, {lowercase long header name: [whole header lines]}, body) of one SIP
    message in bytes (the harnesses' own UAs read what the servers send them)."""
    head, _, body = msg.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    h = {}
    for ln in lines[1:]:
        i = ln.find(b":")
        if i > 0:
            k = ln[:i].strip().lower()
            h.setdefault(SIP_COMPACT.get(k, k), []).append(ln)
    return lines[0], h, body


def header_value(line):
    return line.split(b":", 1)[1].strip()


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def udp_bound(port):
    want = f":{port:04X}"
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    local = line.split()[1]
                    if local.endswith(want):
                        return True
        except OSError:
            pass
    return False


def udp_socket_drops(port):
    """Datagrams the kernel dropped on the sockets bound to `port` (receive buffer full)."""
    want = f":{port:04X}"
    total = 0
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1].endswith(want):
                        total += int(cols[-1])
        except OSError:
            pass
    return total


def udp_rcvbuf_errors():
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    d = dict(zip(rows[0][1:], rows[1][1:]))
    return int(d.get("RcvbufErrors", 0))


LOAD_CPU_NOTE = "(the load CPU)"


def children_cpu():
    """utime + stime of this process's reaped children (the SIPp generators)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).rstrip()
    except OSError:
        return "(no output)"


def stop_tree(proc, sig=signal.SIGTERM, grace=8.0):
    """Stops a process we started with start_new_session=True, and everything it forked:
    the whole process group it leads (children forked at any time stay in it), SIGTERM
    first, SIGKILL after `grace` seconds."""
    pgid = proc.pid

    def group_alive():
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open(f"/proc/{p}/stat") as f:
                        r = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(r[2]) == pgid and r[0] != "Z":
                    return True
        return False

    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    deadline = time.time() + grace
    while time.time() < deadline:
        proc.poll()
        if not group_alive():
            break
        time.sleep(0.05)
    else:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


# ---------------------------------------------------------------------------------------
# CPU cap for the overload mode


class CpuCap:
    """A cgroup with a CPU quota the server is started in (cgroup v2 cpu.max, or v1
    cpu.cfs_quota_us), or nothing if neither is writable (then taskset alone caps the
    server to one CPU)."""

    def __init__(self, percent, work):
        self.percent = percent
        self.path = None
        self.kind = "taskset only (one CPU)"
        if not percent:
            return
        period = 10000  # 10 ms: short periods keep the throttling smooth
        quota = max(1000, int(period * percent / 100))
        name = f"confab-bench-{os.getpid()}"
        candidates = []
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            candidates.append(("v2", "/sys/fs/cgroup"))
        if os.path.isdir("/sys/fs/cgroup/cpu") and os.path.exists(
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
        ):
            candidates.append(("v1", "/sys/fs/cgroup/cpu"))
        for kind, base in candidates:
            path = os.path.join(base, name)
            try:
                os.mkdir(path)
                if kind == "v2":
                    with open(os.path.join(path, "cpu.max"), "w") as f:
                        f.write(f"{quota} {period}")
                else:
                    with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
                        f.write(str(period))
                    with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
                        f.write(str(quota))
                self.path = path
                self.kind = f"cgroup {kind} quota {quota}/{period} us ({percent}% of one CPU) + taskset"
                return
            except OSError as e:
                try:
                    os.rmdir(path)
                except OSError:
                    pass
                self.kind = f"taskset only (one CPU): cgroup {kind} not writable: {e}"

    def prefix(self):
        """A shell prefix that moves the process into the cgroup before exec."""
        if not self.path:
            return []
        procs = os.path.join(self.path, "cgroup.procs")
        return ["sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh"]

    def remove(self):
        if self.path:
            for _ in range(50):
                try:
                    os.rmdir(self.path)
                    break
                except OSError:
                    time.sleep(0.1)
            self.path = None


# ---------------------------------------------------------------------------------------
# Users


def make_users(work, n):
    """users.csv (SIPp, SEQUENTIAL), confab-users.csv (confab user import) and the
    Kamailio db_text table of HA1s."""
    names = [f"u{i:06d}" for i in range(n)]
    with open(os.path.join(work, "confab-users.csv"), "w") as f:
        f.write("address,password,display name,phone\n")
        for u in names + [UAS_USER]:
            f.write(f"{u}@{DOMAIN},{PASSWORD},,\n")
    kamdb = os.path.join(work, "kamdb")
    os.makedirs(kamdb, exist_ok=True)
    with open(os.path.join(kamdb, "ha1"), "w") as f:
        f.write("key_name(str) key_type(int) value_type(int) key_value(str) expires(int)\n")
        for u in names + [UAS_USER]:
            ha1 = hashlib.md5(f"{u}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
            f.write(f"{u}:0:0:{ha1}:0\n")
    with open(os.path.join(work, "uas.csv"), "w") as f:
        f.write(f"SEQUENTIAL\n{UAS_USER};[authentication username={UAS_USER} password={PASSWORD}]\n")
    return names


def write_slice(path, cred, n_users, start, count):
    """A SIPp CSV of `count` users from index `start` (wrapping); cred(i) = (name, password)."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(start, start + count):
            u, pw = cred(i % n_users)
            f.write(f"{u};[authentication username={u} password={pw}]\n")


# ---------------------------------------------------------------------------------------
# Servers


class ServerError(Exception):
    """The server could not be started or did not do what the scenario needs."""


class Server:
    name = "?"
    port = 0
    uas_user = UAS_USER

    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.proc = None
        self.run_dir = None

    def command(self):
        raise NotImplementedError

    def cred(self, i):
        """User i's SIP user name and password (the users run.sh provisions)."""
        return f"u{i:06d}", PASSWORD

    def uas_csv(self):
        return os.path.join(self.work, "uas.csv")

    def discover_port(self, deadline):
        """The port is known before the start (a fixed bench port)."""

    def prepare_run(self, run_dir):
        pass

    def start(self, run_dir, cap=None):
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.prepare_run(run_dir)
        if self.port and udp_bound(self.port):
            raise ServerError(f"UDP {HOST}:{self.port} is already in use by another process")
        cmd = (cap.prefix() if cap else []) + ["taskset", "-c", str(self.args.server_cpu)] + self.command()
        self.proc = spawn(cmd, os.path.join(run_dir, f"{self.name}.log"), run_dir,
                          stdin=subprocess.PIPE)
        t_start = time.time()
        deadline = t_start + self.args.start_timeout
        self.discover_port(deadline)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"exited with status {self.proc.returncode} at start; its log:\n"
                    + tail(os.path.join(run_dir, f"{self.name}.log"), 12))
            if udp_bound(self.port):
                self.startup_s = time.time() - t_start
                self.wait_quiet(deadline)
                return
            time.sleep(0.05)
        log_tail = tail(os.path.join(run_dir, f"{self.name}.log"), 12)
        self.stop()
        raise ServerError(
            f"UDP {HOST}:{self.port} not bound {self.args.start_timeout:.0f} s after start "
            f"(is the SIP front end wired into this build?); its log:\n{log_tail}")

    def cpu(self):
        return tree_cpu_seconds(self.proc.pid)

    def wait_quiet(self, deadline):
        """Waits until the server is idle (under 2% of a CPU over 3 x 0.2 s): a server
        still initialising (Kamailio's children run their module init after the socket is
        bound; that cost about 0.5 s of CPU) would charge its start to the first run."""
        quiet = 0
        c = self.cpu()
        while time.time() < deadline and quiet < 3:
            time.sleep(0.2)
            c2 = self.cpu()
            quiet = quiet + 1 if c2 - c < 0.004 else 0
            c = c2

    def stop(self):
        if self.proc:
            stop_tree(self.proc)
            self.proc = None


class Kamailio(Server):
    name = "kamailio"

    def __init__(self, args, work, with_ctl=False):
        super().__init__(args, work)
        self.port = args.kam_port
        self.with_ctl = with_ctl
        self.streams = None
        self.ctl = os.path.join(work, "kamctl.sock")

    def command(self):
        cmd = ["kamailio", "-f", os.path.join(HERE, "kamailio.cfg"), "-DD", "-E",
               "-x", "tlsf", "-X", "tlsf", "-m", "1024",
               # private memory: db_text's startup load of the HA1 table grows with the users
               "-M", str(max(32, self.args.users // 4000)),
               "-n", str(self.args.kam_children),
               "-A", f"BENCH_LISTEN=udp:{HOST}:{self.port}",
               "-A", f'BENCH_DB_URL="text://{os.path.join(self.work, "kamdb")}"',
               "-A", f"BENCH_MAX_ROWS={self.args.users + 1000}"]
        if self.with_ctl:
            cmd += ["-A", "WITH_CTL", "-A", f'BENCH_CTL="unix:{self.ctl}"']
        if self.streams:
            cmd += ["-A", "WITH_STREAMS",
                    "-A", f"BENCH_TCP_LISTEN=tcp:{HOST}:{self.port}",
                    "-A", f"BENCH_TLS_LISTEN=tls:{HOST}:{self.port + 1}",
                    "-A", f"BENCH_MAX_CONNS={self.args.mem_conns + 1000}",
                    "-A", f'BENCH_TLS_CERT="{self.streams}/cert.pem"',
                    "-A", f'BENCH_TLS_KEY="{self.streams}/key.pem"']
        return cmd

    def enable_streams(self):
        """Memory mode: TCP on the UDP port and TLS on the next one, with a throw-away
        self-signed P-256 certificate (Confab's `confab init` makes the same kind)."""
        d = os.path.join(self.work, "kam-tls")
        os.makedirs(d, exist_ok=True)
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/key.pem",
                            "-out", f"{d}/cert.pem", "-days", "2", "-subj", f"/CN={HOST}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ServerError(f"openssl could not make Kamailio's test certificate: {r.stderr.strip()}")
        self.streams = d

    def stream_port(self, transport):
        return self.port + (1 if transport == "tls" else 0)

    def shmmem(self):
        out = subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", "core.shmmem"],
                             capture_output=True, text=True, timeout=10).stdout
        return {k: int(v) for k, v in re.findall(r"(\w+):\s*(\d+)", out)}


class Confab(Server):
    name = "confab"

    def __init__(self, args, work, binary):
        super().__init__(args, work)
        self.port = args.confab_port
        self.binary = binary
        self.template = os.path.join(work, "confab-template")
        self.streams = False

    def config_text(self):
        with open(self.args.confab_config) as f:
            text = f.read()
        return text.replace(f"udp:{HOST}:15070", f"udp:{HOST}:{self.port}")

    def provision(self):
        """confab init + confab user import into a template folder copied for each run."""
        t = self.template
        shutil.rmtree(t, ignore_errors=True)
        r = subprocess.run([self.binary, "init", "--dir", t, "--domain", DOMAIN,
                            "--listen", f"udp:{HOST}:{self.port}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ServerError(f"`confab init` failed: {r.stderr.strip() or r.stdout.strip()}")
        with open(os.path.join(t, "confab.toml"), "w") as f:
            f.write(self.config_text())
        cfg = os.path.join(t, "confab.toml")
        t0 = time.time()
        r = subprocess.run([self.binary, "--config", cfg, "user", "import",
                            os.path.join(self.work, "confab-users.csv")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ServerError(
                f"`confab user import` failed: {(r.stderr.strip() or r.stdout.strip())[-2000:]}")
        log(f"  confab: imported users in {time.time() - t0:.1f} s: {r.stdout.strip().splitlines()[-1:]}")
        r = subprocess.run([self.binary, "--config", cfg, "serve", "--check"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ServerError(
                f"`confab serve --check` rejects the bench configuration:\n"
                f"{(r.stderr.strip() or r.stdout.strip())[-2000:]}")

    def prepare_run(self, run_dir):
        # A fresh copy of the provisioned database: every run starts with no bindings.
        # (Also the certificates `confab init` made: the [tls] defaults name them.)
        shutil.copytree(self.template, run_dir, dirs_exist_ok=True)
        if self.streams:
            # Memory mode: TCP on the UDP port and TLS on the next one (the certificates of
            # `confab init`), as Kamailio.enable_streams.
            cfg = os.path.join(run_dir, "confab.toml")
            with open(cfg) as f:
                text = f.read()
            udp = f'"udp:{HOST}:{self.port}"'
            assert udp in text, f"no {udp} listener in {cfg}"
            text = text.replace(udp, f'{udp}, "tcp:{HOST}:{self.port}", "tls:{HOST}:{self.port + 1}"', 1)
            with open(cfg, "w") as f:
                f.write(text)

    def enable_streams(self):
        self.streams = True

    def stream_port(self, transport):
        return self.port + (1 if transport == "tls" else 0)

    def command(self):
        wrap = self.args.confab_wrap.split() if self.args.confab_wrap else []
        return wrap + [self.binary, "--config", os.path.join(self.run_dir, "confab.toml"), "serve"]

    def rss_kb(self):
        return status_kb(self.proc.pid, "VmRSS")


class ConfabExample(Server):
    """Interim stand-in while `confab serve` has no SIP front end: confab-frontend's
    `serve_users` example (the Front End runtime with the SQLite store in a temporary folder
    and N generated users `userI@example.com` / `userI-pw`, MD5 only), on a port it picks
    and prints as `udp=ADDR`. Same registrar, proxy and store code, no config file."""

    name = "confab"

    def __init__(self, args, work, binary):
        super().__init__(args, work)
        self.binary = binary
        self.uas_user = f"user{args.users}"

    def provision(self):
        with open(os.path.join(self.work, "uas-example.csv"), "w") as f:
            u, pw = self.cred(self.args.users)
            f.write(f"SEQUENTIAL\n{u};[authentication username={u} password={pw}]\n")

    def cred(self, i):
        return f"user{i}", f"user{i}-pw"

    def uas_csv(self):
        return os.path.join(self.work, "uas-example.csv")

    def command(self):
        return [self.binary, str(self.args.users + 1), "MD5"]

    def discover_port(self, deadline):
        self.port = 0
        logf = os.path.join(self.run_dir, f"{self.name}.log")
        while time.time() < deadline and self.proc.poll() is None:
            m = re.search(r"udp=[^\s:]+:(\d+)", open(logf, errors="replace").read())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.05)

    def rss_kb(self):
        return status_kb(self.proc.pid, "VmRSS")


# ---------------------------------------------------------------------------------------
# SIPp


def sipp_cmd(args, remote_port, scenario_file, port, extra):
    """A SIPp command pinned to the load CPU; remote_port None for a UAS."""
    remote = [f"{HOST}:{remote_port}"] if remote_port else []
    return ["taskset", "-c", str(args.load_cpu), "sipp"] + remote + ["-sf", scenario_file,
            "-i", HOST, "-p", str(port), "-nostdin",
            "-key", "domain", DOMAIN,
            # Digest uri = the Request-URI (RFC 3261 22.4); SIPp's default is remote IP:port,
            # which Confab refuses (400) and Kamailio does not check.
            "-auth_uri", DOMAIN,
            # No generator-side throttling: SIPp's default cap on open calls would turn the
            # overload test into a closed loop.
            "-l", "200000",
            # A call that gets no answer fails after this long (the overload runs end).
            "-recv_timeout", str(args.recv_timeout_ms),
            # 8 MiB socket buffers like the servers' (SIPp's default is 64 KiB): a generator
            # that loses a response retransmits and the run counts as unclean.
            "-buff_size", "8388608",
            # A loaded box trips SIPp's watchdog; it must not end the test.
            "-watchdog_minor_maxtriggers", "1000000", "-watchdog_major_maxtriggers", "1000000",
            ] + extra


def parse_stat(path):
    """SIPp -trace_stat CSV: (final cumulative row, periodic rows) as dicts."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    head = rows[0]
    data = [dict(zip(head, r)) for r in rows[1:] if len(r) >= len(head) - 1]
    if not data:
        raise ValueError(f"{path}: no data rows")
    return data[-1], data


def epoch(field):
    # "2026-11-21\t23:25:53.046733\t1795303553.046733"
    return float(field.split("\t")[-1])


def summarize_messages(path, limit=6):
    """What SIPp sent and saw, from a -trace_msg file: first lines of each message."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return "no message trace"
    out = []
    for block in re.split(r"-{20,}[^\n]*\n", text):
        lines = [x for x in block.splitlines() if x.strip()]
        if len(lines) < 2:
            continue
        what = "sent" if "sent" in lines[0] else "received"
        out.append(f"{what} `{lines[1].strip()}`")
    if not out:
        return "nothing sent or received"
    return "; ".join(out[:limit]) + (" ..." if len(out) > limit else "")


class Load:
    """One measured run of a scenario against a started server."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def clean(self):
        return (self.failed == 0 and self.succ >= self.expected
                and self.retrans <= self.succ * 0.001)

    @property
    def cpu_per_op_us(self):
        return self.cpu * 1e6 / self.succ if self.succ else float("nan")

    @property
    def achieved(self):
        return self.succ / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def saturated(self):
        """The server used at least 90% of the CPU it may use (one CPU, or the cap)."""
        return self.busy >= 0.9 * self.cpu_share

    @property
    def gen_limited(self):
        """The load fell more than 15% short of the offer (whoever was the limit)."""
        return self.achieved < 0.85 * self.rate

    def shortfall_reason(self):
        if self.saturated:
            return "server saturated"
        if getattr(self, "gen_busy", 1.0) >= 0.85:
            return f"generator limit: SIPp UACs at {self.gen_busy * 100:.0f}% of CPU {LOAD_CPU_NOTE}"
        # Neither side's CPU is full: the server answers too late (queueing, storage
        # latency, scheduling of its threads on a shared CPU); SIPp then retransmits.
        return (f"server latency-bound: server {self.busy * 100:.0f}% of its CPU, "
                f"SIPp UACs {getattr(self, 'gen_busy', float('nan')) * 100:.0f}%")

    def line(self):
        flag = "clean" if self.clean else "NOT CLEAN"
        extra = ""
        if self.gen_limited:
            extra = f" (below offered: {self.shortfall_reason()})"
        return (f"offered {self.rate:>6.0f}/s  achieved {self.achieved:>7.0f}/s  ok {self.succ:>7}  "
                f"failed {self.failed:>5}  retrans {self.retrans:>6}  "
                f"drops {self.server_drops:>5} server/{self.drops:>5} all  "
                f"server CPU {self.cpu:6.2f} s ({self.busy * 100:3.0f}% of a core)  "
                f"{self.cpu_per_op_us:7.1f} us/op  {flag}{extra}")


class Bench:
    def __init__(self, args, work, names):
        self.args = args
        self.work = work
        self.names = names
        self.user_cursor = 0

    def users_for(self, count):
        """A slice of users not used since the server started (wraps around)."""
        start = self.user_cursor
        self.user_cursor = (self.user_cursor + count) % len(self.names)
        return start

    def register_uas(self, server, run_dir):
        stat = os.path.join(run_dir, "uas-register.csv")
        msgs = os.path.join(run_dir, "uas-register.msg")
        cmd = sipp_cmd(self.args, server.port, os.path.join(SCEN, "register.xml"), self.args.uas_port + 1,
                       ["-inf", server.uas_csv(),
                        "-key", "contact", f"{HOST}:{self.args.uas_port}",
                        "-m", "1", "-trace_stat", "-stf", stat, "-trace_msg", "-message_file", msgs])
        p = spawn(cmd, os.path.join(run_dir, "uas-register.out"), run_dir)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop_tree(p, signal.SIGKILL)
        try:
            final, _ = parse_stat(stat)
            ok = int(final["SuccessfulCall(C)"]) == 1
        except (OSError, ValueError, KeyError):
            ok = False
        if not ok:
            raise ServerError(f"REGISTER of the UAS ({server.uas_user}@{DOMAIN} -> {HOST}:{self.args.uas_port}) "
                              f"failed: SIPp {summarize_messages(msgs)}")

    def start_uas(self, scenario, run_dir, extra=()):
        f = os.path.join(SCEN, f"{scenario}_uas.xml")
        cmd = sipp_cmd(self.args, None, f, self.args.uas_port,
                       ["-trace_err", "-error_file", os.path.join(run_dir, "uas-errors.log")] + list(extra))
        p = spawn(cmd, os.path.join(run_dir, "uas.out"), run_dir)
        time.sleep(0.3)
        if p.poll() is not None:
            raise ServerError(f"SIPp UAS exited at start: {tail(os.path.join(run_dir, 'uas.out'))}")
        return p

    def run(self, server, scenario, rate, duration, run_dir, cap=None, trace=False, idle_s=0.0):
        """Starts `server`, runs `scenario` at `rate` for `duration` seconds, stops it. With
        idle_s, also measures the server's CPU while idle for that long after the load."""
        os.makedirs(run_dir, exist_ok=True)
        server.start(run_dir, cap)
        uas = None
        try:
            if scenario != "register":
                uas = self.start_uas(scenario, run_dir)
                self.register_uas(server, run_dir)
            r = self.load(server, scenario, rate, duration, run_dir, trace)
            r.cpu_share = cap.percent / 100 if cap and cap.path else 1.0
            r.idle = float("nan")
            if idle_s:
                time.sleep(1.0)
                c0 = server.cpu()
                time.sleep(idle_s)
                r.idle = (server.cpu() - c0) / idle_s
            return r
        finally:
            if uas:
                stop_tree(uas, signal.SIGKILL)
            server.stop()

    def load(self, server, scenario, rate, duration, run_dir, trace=False):
        n_inst = self.args.instances
        per_rate = rate / n_inst
        per_calls = max(1, int(round(per_rate * duration)))
        procs = []
        for i in range(n_inst):
            port = self.args.uac_port + i
            users = os.path.join(run_dir, f"users{i}.csv")
            write_slice(users, server.cred, len(self.names), self.users_for(per_calls), per_calls)
            extra = ["-inf", users, "-r", f"{per_rate:g}", "-rp", "1000", "-m", str(per_calls),
                     "-trace_stat", "-stf", os.path.join(run_dir, f"stat{i}.csv"), "-fd", "1",
                     "-trace_err", "-error_file", os.path.join(run_dir, f"errors{i}.log"),
                     "-timeout", str(int(duration + 120))]
            if scenario == "register":
                extra += ["-key", "contact", f"{HOST}:{port}"]
            else:
                extra += ["-s", server.uas_user]
            if trace:
                extra += ["-trace_msg", "-message_file", os.path.join(run_dir, f"msg{i}.log")]
            f = os.path.join(SCEN, UAC_FILE.get(scenario, f"{scenario}_uac.xml"))
            cmd = sipp_cmd(self.args, server.port, f, port, extra)
            procs.append((i, cmd))
        drops0 = udp_rcvbuf_errors()
        sdrops0 = udp_socket_drops(server.port)
        c0 = server.cpu()
        g0 = children_cpu()
        t0 = time.time()
        running = [spawn(cmd, os.path.join(run_dir, f"sipp{i}.out"), run_dir) for i, cmd in procs]
        for p in running:
            p.wait()
        t1 = time.time()
        c1 = server.cpu()
        # CPU of the SIPp UACs just reaped (the UAS, if any, is still running: not counted).
        gen_cpu = children_cpu() - g0
        drops = udp_rcvbuf_errors() - drops0
        server_drops = udp_socket_drops(server.port) - sdrops0
        succ = failed = retrans = 0
        elapsed = 0.0
        periodic = []
        errors = []
        for i, _ in procs:
            try:
                final, rows = parse_stat(os.path.join(run_dir, f"stat{i}.csv"))
            except (OSError, ValueError) as e:
                errors.append(f"instance {i}: no statistics ({e}); {tail(os.path.join(run_dir, f'sipp{i}.out'), 3)}")
                continue
            succ += int(final["SuccessfulCall(C)"])
            failed += int(final["FailedCall(C)"])
            retrans += int(final["Retransmissions(C)"])
            elapsed = max(elapsed, epoch(final["CurrentTime"]) - epoch(final["StartTime"]))
            periodic.append(rows)
        if elapsed <= 0:
            elapsed = t1 - t0
        return Load(scenario=scenario, rate=rate, expected=per_calls * n_inst, succ=succ,
                    failed=failed, retrans=retrans, cpu=c1 - c0, elapsed=elapsed, wall=t1 - t0,
                    busy=(c1 - c0) / max(elapsed, 1e-9), drops=drops, server_drops=server_drops,
                    gen_busy=gen_cpu / max(t1 - t0, 1e-9),
                    periodic=periodic,
                    errors=errors, run_dir=run_dir, duration=duration, cpu_share=1.0)

    def describe_failure(self, r):
        """What SIPp saw, for a run with failures."""
        parts = list(r.errors)
        for i in range(self.args.instances):
            p = os.path.join(r.run_dir, f"msg{i}.log")
            if os.path.exists(p):
                parts.append(f"SIPp {summarize_messages(p)}")
                break
        for i in range(self.args.instances):
            p = os.path.join(r.run_dir, f"errors{i}.log")
            if os.path.exists(p) and os.path.getsize(p):
                lines = [x for x in open(p, errors="replace").read().splitlines() if x.strip()]
                if lines:
                    parts.append("SIPp error log: " + " | ".join(lines[:3])[:600])
                break
        if not parts:
            parts.append(f"{r.succ} ok, {r.failed} failed, {r.retrans} retransmissions")
        return "; ".join(parts)

    def smoke(self, server, scenario):
        """Ten operations with message traces: does the server do the scenario at all?"""
        run_dir = os.path.join(self.work, f"smoke-{server.name}-{scenario}")
        try:
            r = self.run(server, scenario, 20, 0.5, run_dir, trace=True, idle_s=3.0)
        except ServerError as e:
            return False, f"{server.name}: {scenario.upper()} failed: {e}"
        if r.succ == 0 or r.failed:
            return False, f"{server.name}: {scenario.upper()} failed: {self.describe_failure(r)}"
        return True, (f"{server.name}: {scenario} smoke test ok ({r.succ} operations); "
                      f"started in {server.startup_s:.1f} s; idle CPU afterwards {r.idle * 100:.1f}% of a core")


# ---------------------------------------------------------------------------------------
# Modes


def median(xs):
    xs = [x for x in xs if x == x]  # drop NaN
    return statistics.median(xs) if xs else float("nan")


def anchor_note(scenario, kam_us):
    notes = []
    if scenario in ANCHOR_TLSF:
        a = ANCHOR_TLSF[scenario]
        notes.append(f"anchor Kamailio -x tlsf ~{a:.0f} us")
        if kam_us == kam_us and not (0.5 * a <= kam_us <= 1.6 * a):
            notes.append(f"WARNING: Kamailio measured {kam_us:.1f} us, far from its anchor {a:.0f} us "
                         "(loaded machine, or a harness problem)")
    a = ANCHOR_DEFAULT_ALLOC[scenario]
    notes.append(f"anchor default allocator {a:.0f} us")
    if scenario not in ANCHOR_TLSF and kam_us == kam_us and not (0.15 * a <= kam_us <= 1.2 * a):
        notes.append(f"WARNING: Kamailio measured {kam_us:.1f} us; expected below its default-allocator "
                     f"anchor {a:.0f} us with -x tlsf, and not far below (loaded machine, or a harness problem)")
    return notes


def step_rates(bench, server, scenario, rates, duration, tag, cap=None):
    """Runs the rates in order until one is not clean or the load falls short of the offer;
    returns the list of Loads."""
    out = []
    for rate in rates:
        run_dir = os.path.join(bench.work, f"{tag}-{server.name}-{scenario}-{rate:g}")
        r = bench.run(server, scenario, rate, duration, run_dir, cap=cap)
        log(f"    {server.name:8s} {scenario:8s} {r.line()}")
        if r.succ == 0:
            log(f"      {server.name}: {scenario.upper()} failed: {bench.describe_failure(r)}")
        out.append(r)
        if not r.clean or r.gen_limited:
            break
    return out


def clean_rate(loads):
    clean = [r for r in loads if r.clean]
    if not clean:
        return float("nan"), ""
    best = max(clean, key=lambda r: r.rate)
    if best.gen_limited:
        return best.achieved, best.shortfall_reason()
    top = loads[-1]
    if top.clean and top is best:
        return best.rate, "top of the steps"
    return best.rate, ""


def mode_perf(args, bench, servers, scenarios):
    results = {s: {srv.name: [] for srv in servers} for s in scenarios}  # per round: loads
    for rnd in range(1, args.rounds + 1):
        order = servers if rnd % 2 == 1 else list(reversed(servers))
        log(f"\n-- round {rnd}/{args.rounds}  (loadavg {loadavg()})  order: {' then '.join(s.name for s in order)}")
        for scenario in scenarios:
            for srv in order:
                if srv.name in bench.broken.get(scenario, {}):
                    continue
                try:
                    loads = step_rates(bench, srv, scenario, args.rates[scenario], args.duration, f"r{rnd}")
                except ServerError as e:
                    msg = f"{srv.name}: {scenario.upper()} failed: {e}"
                    log("    " + msg)
                    bench.broken.setdefault(scenario, {})[srv.name] = msg
                    continue
                results[scenario][srv.name].append(loads)

    log(f"\n== Front End benchmark: medians over {args.rounds} rounds  (loadavg now {loadavg()}) ==")
    log("CPU us/op: server CPU (utime+stime, whole process tree) per successful operation, at the")
    log("highest offered rate both servers ran clean in that round; clean rate: highest offered rate")
    log("with 0 failures and <0.1% retransmissions (or what was achieved when the load fell short).")
    for scenario in scenarios:
        log(f"\n{scenario.upper()}: per {OP_NAME[scenario]}")
        per = results[scenario]
        cpu_at = {srv.name: [] for srv in servers}
        common_rates = []
        ratios = []
        n_rounds = max((len(v) for v in per.values()), default=0)
        for i in range(n_rounds):
            by_server = {name: loads[i] for name, loads in per.items() if len(loads) > i}
            clean_sets = [{r.rate for r in loads if r.clean} for loads in by_server.values()]
            common = max(set.intersection(*clean_sets)) if clean_sets and set.intersection(*clean_sets) else None
            if common is None:
                continue
            common_rates.append(common)
            vals = {}
            for name, loads in by_server.items():
                r = next(r for r in loads if r.rate == common)
                cpu_at[name].append(r.cpu_per_op_us)
                vals[name] = r.cpu_per_op_us
            if "confab" in vals and "kamailio" in vals:
                ratios.append(vals["confab"] / vals["kamailio"])
        for srv in servers:
            name = srv.name
            if name in bench.broken.get(scenario, {}):
                log(f"  {bench.broken[scenario][name]}")
                continue
            rates = [clean_rate(loads) for loads in per[name]]
            cr = median([x for x, _ in rates])
            why = {w for _, w in rates if w}
            cpu = median(cpu_at[name])
            log(f"  {name:8s} CPU {cpu:7.1f} us/op   clean rate {cr:8.0f}/s"
                + (f" ({', '.join(sorted(why))})" if why else "")
                + f"   [{', '.join(f'{x:.1f}' for x in cpu_at[name])} us/op"
                + f" at {', '.join(str(int(c)) for c in common_rates)}/s]")
        if ratios:
            r = median(ratios)
            log(f"  ratio confab/kamailio {r:.2f} (goal <= {GOAL_RATIO}: {'met' if r <= GOAL_RATIO else 'MISSED'})"
                f"   [per round: {', '.join(f'{x:.2f}' for x in ratios)}]")
        if "kamailio" in per and cpu_at.get("kamailio"):
            for note in anchor_note(scenario, median(cpu_at["kamailio"])):
                log(f"  {note}")


def goodput(r, skip_s=1.0):
    """Successful operations per second while the generators were offering load: per SIPp
    instance, periodic success counts from skip_s after the start to the end of the offer,
    summed over instances."""
    total = 0.0
    for rows in r.periodic:
        start = epoch(rows[0]["StartTime"])
        window_end = start + r.duration
        ok, t_first, t_last = 0, None, None
        prev_t = start
        for row in rows:
            t = epoch(row["CurrentTime"])
            if t - start > skip_s and t <= window_end + 0.5:
                ok += int(row["SuccessfulCall(P)"])
                t_first = prev_t if t_first is None else t_first
                t_last = t
            prev_t = t
        if t_first is not None and t_last > t_first:
            total += ok / (t_last - t_first)
    return total


def mode_overload(args, bench, servers, scenarios):
    log(f"\n== Overload: server capped, offered twice its clean rate under the cap ==")
    summary = {}
    for rnd in range(1, args.rounds + 1):
        order = servers if rnd % 2 == 1 else list(reversed(servers))
        log(f"\n-- overload round {rnd}/{args.rounds}  (loadavg {loadavg()})")
        for scenario in scenarios:
            for srv in order:
                if srv.name in bench.broken.get(scenario, {}):
                    continue
                cap = CpuCap(args.cap, bench.work)
                try:
                    if rnd == 1:
                        log(f"  cap: {cap.kind}")
                    rates, r = [], args.overload_start
                    while r <= args.overload_max:
                        rates.append(int(r))
                        r *= 1.25
                    loads = step_rates(bench, srv, scenario, rates, args.duration, f"o{rnd}", cap)
                    c, why = clean_rate(loads)
                    # The first step was not clean (calls cost far more than a MESSAGE):
                    # halve the rate until one is, then step up by x1.25 again from there,
                    # instead of giving up.
                    down = rates[0] / 2
                    while c != c and down >= 10:
                        loads = step_rates(bench, srv, scenario, [int(down)], args.duration, f"o{rnd}", cap)
                        c, why = clean_rate(loads)
                        if c == c:
                            up = [int(down * 1.25 ** k) for k in range(1, 4) if down * 1.25 ** k < 2 * down]
                            more = step_rates(bench, srv, scenario, up, args.duration, f"o{rnd}", cap) if up else []
                            c, why = clean_rate(loads + more)
                            loads = loads + more
                        down /= 2
                    if c != c:
                        log(f"    {srv.name}: no clean rate under the cap (down to {int(down * 2)}/s); lower --overload-start")
                        continue
                    if not loads[-1].clean:
                        pass
                    elif why == "generator limit" or loads[-1].rate >= rates[-1]:
                        log(f"    {srv.name}: the generators could not overload the capped server "
                            f"(clean up to {c:.0f}/s, {why or 'top of the steps'}); lower --cap")
                        continue
                    run_dir = os.path.join(bench.work, f"o{rnd}-{srv.name}-{scenario}-2x")
                    o = bench.run(srv, scenario, 2 * c, args.overload_duration, run_dir, cap=cap)
                    g = goodput(o)
                    log(f"    {srv.name:8s} {scenario:8s} 2x: {o.line()}")
                    log(f"    {srv.name:8s} {scenario:8s} clean rate under cap {c:.0f}/s, offered {2 * c:.0f}/s, "
                        f"goodput {g:.0f}/s = {100 * g / c:.0f}% of the clean rate")
                    summary.setdefault((scenario, srv.name), []).append((c, g))
                except ServerError as e:
                    log(f"    {srv.name}: {scenario.upper()} failed: {e}")
                finally:
                    cap.remove()
    log(f"\n== Overload summary (medians over rounds; goal: Confab goodput >= 90% of its clean rate;"
        f" Kamailio fell to ~25% in the anchor runs) ==")
    for scenario in scenarios:
        for srv in servers:
            v = summary.get((scenario, srv.name))
            if not v:
                continue
            c = median([x for x, _ in v])
            pct = median([100 * g / x for x, g in v])
            log(f"  {scenario:8s} {srv.name:8s} clean {c:6.0f}/s under the cap, goodput at 2x: {pct:4.0f}% of it"
                f"   [per round: {', '.join(f'{100 * g / x:.0f}%' for x, g in v)}]")


def mem_sample(srv):
    """The memory figures of a running server: Confab's RSS and PSS; Kamailio's shared-memory
    accounting (`core.shmmem` used and real_used) and the PSS of its process tree."""
    if isinstance(srv, Kamailio):
        m = srv.shmmem()
        # PSS summed over the process tree counts each shared page once, so it compares with
        # Confab's PSS.
        pss = sum(pss_kb(p) for p in tree_pids(srv.proc.pid)) * 1024
        return {"used": m.get("used", 0), "real_used": m.get("real_used", 0), "pss(tree)": pss}
    return {"rss": srv.rss_kb() * 1024, "pss": pss_kb(srv.proc.pid) * 1024}


def mem_server(args, bench, srv, streams=False):
    """A fresh server object for a memory part (Kamailio with its control socket)."""
    if isinstance(srv, Kamailio):
        srv = Kamailio(args, bench.work, with_ctl=True)
    elif streams:
        srv = Confab(args, bench.work, srv.binary)
    if streams:
        srv.enable_streams()
    return srv


def mem_bindings(args, bench, servers):
    n = args.mem_bindings
    if len(bench.names) < n:
        log(f"\n== Memory: needs --users >= {n} (have {len(bench.names)}); skipped ==")
        return
    log(f"\n== Memory per registration: {n} bindings (REGISTER with digest at {args.mem_rate:g}/s) ==")
    first = max(1, n // 10)
    for srv in servers:
        run_dir = os.path.join(bench.work, f"mem-{srv.name}")
        os.makedirs(run_dir, exist_ok=True)
        srv = mem_server(args, bench, srv)
        try:
            srv.start(run_dir)
        except ServerError as e:
            log(f"  {srv.name}: failed to start: {e}")
            continue
        try:
            # Past the start-up work (Confab preloads its user cache) and past jemalloc's
            # 10 s decay of the pages that work freed, so the baseline holds no freed memory
            # that the bindings would then reuse unseen.
            time.sleep(15.0)
            bench.user_cursor = 0
            s0 = mem_sample(srv)
            r1 = bench.load(srv, "register", args.mem_rate, first / args.mem_rate, run_dir)
            time.sleep(2.0)
            s1 = mem_sample(srv)
            r2 = bench.load(srv, "register", args.mem_rate, (n - first) / args.mem_rate, run_dir)
            time.sleep(2.0)
            s2 = mem_sample(srv)
            ok = r1.succ + r2.succ
            log(f"  {srv.name}: {ok} registrations ok, {r1.failed + r2.failed} failed")
            if ok < n:
                log(f"  {srv.name}: WARNING: only {ok} of {n} bindings made; per-binding figures use {ok}")
            for k in s0:
                log(f"  {srv.name:8s} {k:9s}: {s0[k] / 1048576:8.1f} MiB with none, {s1[k] / 1048576:8.1f} MiB "
                    f"with {r1.succ}, {s2[k] / 1048576:8.1f} MiB with {ok}:  "
                    f"{(s2[k] - s0[k]) / max(ok, 1):7.0f} bytes per binding "
                    f"(marginal over the last {r2.succ}: {(s2[k] - s1[k]) / max(r2.succ, 1):.0f})")
            if not isinstance(srv, Kamailio) and args.mem_settle > 0:
                log(f"  confab: waiting {args.mem_settle:.0f} s for the REGISTER transactions to expire (Timer J) ...")
                time.sleep(args.mem_settle)
                s3 = mem_sample(srv)
                for k in s0:
                    log(f"  {srv.name:8s} {k:9s}: {s3[k] / 1048576:8.1f} MiB after {args.mem_settle:.0f} s idle: "
                        f"{(s3[k] - s0[k]) / max(ok, 1):7.0f} bytes per binding")
            if isinstance(srv, Kamailio):
                log("  kamailio: `used` is Kamailio's own accounting of shared memory; anchor ~408 B used, "
                    "~1.14 KB real_used per binding with q_malloc (performance.md row 11)")
        except (ServerError, OSError, subprocess.SubprocessError) as e:
            log(f"  {srv.name}: memory mode failed: {e}")
        finally:
            srv.stop()
    log("  goal: Confab <= 600 bytes per binding (RSS), Kamailio ~1.1 KB (issue 7)")


def mem_transactions(args, bench, servers):
    """Memory per transaction: --mem-transactions INVITEs (call_uac.xml) to a UAS that
    answers 180 at once and 200 only after --mem-hold-s seconds (pending_uas.xml), so all of
    them are pending in the proxy at the reading: each holds one server and one client
    INVITE transaction (Kamailio: one tm cell with one branch)."""
    n = args.mem_transactions
    rate = args.mem_txn_rate
    load_s = n / rate
    hold_ms = int(args.mem_hold_s * 1000)
    if load_s + 3 > args.mem_hold_s:
        log(f"\n== Memory per transaction: --mem-hold-s {args.mem_hold_s:g} must exceed the load time "
            f"({load_s:.1f} s) + 3 s; skipped ==")
        return
    log(f"\n== Memory per transaction: {n} INVITEs pending at once ({rate:g}/s, the UAS holds each "
        f"{args.mem_hold_s:g} s after its 180) ==")
    saved = args.recv_timeout_ms
    # The caller waits for the 200 for the hold time.
    args.recv_timeout_ms = max(saved, hold_ms + 10000)
    try:
        for srv in servers:
            run_dir = os.path.join(bench.work, f"memtxn-{srv.name}")
            os.makedirs(run_dir, exist_ok=True)
            srv = mem_server(args, bench, srv)
            uas = None
            try:
                srv.start(run_dir)
                uas = bench.start_uas("pending", run_dir, ["-d", str(hold_ms)])
                bench.register_uas(srv, run_dir)
                time.sleep(1.0)
                s0 = mem_sample(srv)
                box = {}

                def run_load():
                    try:
                        box["r"] = bench.load(srv, "pending", rate, load_s, run_dir)
                    except Exception as e:  # reported below
                        box["e"] = e

                t = threading.Thread(target=run_load, daemon=True)
                t.start()
                time.sleep(load_s + 2.0)
                s1 = mem_sample(srv)
                t.join(timeout=args.mem_hold_s + 120)
                if "e" in box:
                    raise box["e"]
                r = box.get("r")
                if r is None:
                    log(f"  {srv.name}: the callers did not finish")
                    continue
                log(f"  {srv.name}: {r.succ} calls ok, {r.failed} failed, {r.retrans} retransmissions")
                if r.succ < n:
                    log(f"  {srv.name}: WARNING: only {r.succ} of {n} calls completed; the reading was "
                        f"taken with up to {n} pending")
                for k in s0:
                    log(f"  {srv.name:8s} {k:9s}: {s0[k] / 1048576:8.1f} MiB before, {s1[k] / 1048576:8.1f} MiB "
                        f"with {n} INVITEs pending: {(s1[k] - s0[k]) / n:7.0f} bytes per pending INVITE "
                        f"(server + client transaction)")
                if isinstance(srv, Kamailio):
                    log("  kamailio: `used` counts tm's cells (with the shared-memory copy of the request "
                        "and the relayed one) and their timers")
            except (ServerError, OSError, subprocess.SubprocessError) as e:
                log(f"  {srv.name}: memory mode (transactions) failed: {e}")
            finally:
                if uas:
                    stop_tree(uas, signal.SIGKILL)
                srv.stop()
    finally:
        args.recv_timeout_ms = saved


def open_stream(transport, port, i, ctx):
    """One TCP or TLS connection from 127.0.x.y (so no source holds more than 200), which
    sends a credential-less REGISTER and reads its 401: a connection in the state a real
    client's is in after its first request."""
    src = f"127.0.{1 + (i // 200) % 250}.{1 + i % 200}"
    s = socket.create_connection((HOST, port), timeout=20, source_address=(src, 0))
    if transport == "tls":
        s = ctx.wrap_socket(s)
    lport = s.getsockname()[1]
    user = f"u{i:06d}"
    t = transport.upper()
    msg = (f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
           f"Via: SIP/2.0/{t} {src}:{lport};branch=z9hG4bK-mem-{transport}-{i}\r\n"
           f"Max-Forwards: 70\r\n"
           f"From: <sip:{user}@{DOMAIN}>;tag=m{i}\r\n"
           f"To: <sip:{user}@{DOMAIN}>\r\n"
           f"Call-ID: mem-{transport}-{i}@bench\r\n"
           f"CSeq: 1 REGISTER\r\n"
           f"Contact: <sip:{user}@{src}:{lport};transport={transport}>\r\n"
           f"Expires: 3600\r\n"
           f"Content-Length: 0\r\n\r\n")
    s.sendall(msg.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError(f"{transport} connection {i} closed before the response")
        buf += chunk
    status = buf.split(b"\r\n", 1)[0].decode(errors="replace")
    if not status.startswith("SIP/2.0 401"):
        raise OSError(f"{transport} connection {i}: expected a 401 to the REGISTER, got `{status}`")
    return s


def mem_connections(args, bench, servers):
    """Memory per TCP and per TLS connection: --mem-conns connections, each having sent a
    REGISTER and received its 401, held open at the reading."""
    n = args.mem_conns
    log(f"\n== Memory per connection: {n} TCP, then {n} TLS connections held open (each sent one "
        f"REGISTER and got its 401) ==")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the servers' throw-away certificates
    for srv in servers:
        run_dir = os.path.join(bench.work, f"memconn-{srv.name}")
        os.makedirs(run_dir, exist_ok=True)
        try:
            srv = mem_server(args, bench, srv, streams=True)
            srv.start(run_dir)
        except ServerError as e:
            log(f"  {srv.name}: failed to start with TCP and TLS listeners: {e}")
            continue
        try:
            time.sleep(1.0)
            for transport in ("tcp", "tls"):
                socks = []
                s0 = mem_sample(srv)
                t0 = time.time()
                try:
                    for i in range(n):
                        socks.append(open_stream(transport, srv.stream_port(transport), i, ctx))
                    took = time.time() - t0
                    time.sleep(2.0)
                    s1 = mem_sample(srv)
                    for k in s0:
                        log(f"  {srv.name:8s} {transport} {k:9s}: {s0[k] / 1048576:8.1f} MiB before, "
                            f"{s1[k] / 1048576:8.1f} MiB with {n} open: {(s1[k] - s0[k]) / n:7.0f} bytes "
                            f"per connection (opened in {took:.1f} s)")
                except OSError as e:
                    log(f"  {srv.name}: {transport}: connection {len(socks)} failed: {e}")
                finally:
                    for s in socks:
                        try:
                            s.close()
                        except OSError:
                            pass
                time.sleep(3.0)
        except (ServerError, OSError, subprocess.SubprocessError) as e:
            log(f"  {srv.name}: memory mode (connections) failed: {e}")
        finally:
            srv.stop()


def mode_memory(args, bench, servers):
    parts = args.mem_parts.split(",")
    if "bindings" in parts:
        mem_bindings(args, bench, servers)
    if "transactions" in parts:
        mem_transactions(args, bench, servers)
    if "connections" in parts:
        mem_connections(args, bench, servers)


# ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        prog="bench/frontend/run.sh",
        description="Front End benchmark: Confab vs Kamailio under the same SIPp load.")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, alternating the servers (default 3)")
    ap.add_argument("--scenario", default="all", choices=SCENARIOS + ("all",))
    ap.add_argument("--mode", default="perf", choices=("perf", "overload", "memory", "all"),
                    help="perf (default), overload, memory, or all three")
    ap.add_argument("--only", choices=("kamailio", "confab"), help="run one server only")
    ap.add_argument("--users", type=int, default=100000, help="users provisioned (default 100000)")
    ap.add_argument("--duration", type=float, default=6.0, help="seconds of load per step (default 6)")
    ap.add_argument("--rates", action="append", default=[], metavar="SCENARIO=R1,R2,...",
                    help="offered rates per step, e.g. register=4000,8000 (repeatable)")
    ap.add_argument("--instances", type=int, default=2, help="SIPp UAC instances (default 2)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--kam-children", type=int, default=1, help="Kamailio UDP workers (default 1)")
    ap.add_argument("--kam-port", type=int, default=15060)
    ap.add_argument("--confab-port", type=int, default=15070)
    ap.add_argument("--uas-port", type=int, default=15170)
    ap.add_argument("--uac-port", type=int, default=15081)
    ap.add_argument("--confab-bin", help="confab binary (run.sh passes the release build)")
    ap.add_argument("--confab-example", action="store_true",
                    help="interim: run confab-frontend's serve_users example as the Confab side "
                         "instead of `confab serve` (see bench/README.md)")
    ap.add_argument("--confab-example-bin", help="its binary (run.sh builds and passes it)")
    ap.add_argument("--confab-wrap", metavar="CMD",
                    help="run `confab serve` under this command, e.g. 'heaptrack -o /tmp/confab' "
                         "(a profile; the memory figures are then the wrapper's, not to be quoted)")
    ap.add_argument("--confab-config", default=os.path.join(HERE, "confab.toml"),
                    help="Confab configuration template (default bench/frontend/confab.toml)")
    ap.add_argument("--cap", type=float, default=25.0,
                    help="overload mode: CPU quota in %% of one CPU (default 25; 0 = taskset only)")
    ap.add_argument("--overload-start", type=float, default=500.0)
    ap.add_argument("--overload-max", type=float, default=16000.0)
    ap.add_argument("--overload-duration", type=float, default=10.0)
    ap.add_argument("--mem-bindings", type=int, default=100000)
    ap.add_argument("--mem-rate", type=float, default=1500.0,
                    help="memory mode: REGISTERs per second (default 1500: below both servers' clean rate on a busy 2-vCPU box)")
    ap.add_argument("--mem-settle", type=float, default=40.0,
                    help="memory mode: seconds to wait before Confab's second RSS reading (default 40)")
    ap.add_argument("--mem-parts", default="bindings,transactions,connections",
                    help="memory mode: which parts, comma-separated (default all three)")
    ap.add_argument("--mem-transactions", type=int, default=1500,
                    help="memory mode: INVITEs held pending at once (default 1500: below Confab's "
                         "frontend.max_pending_per_worker, 2000, beyond which it answers 503)")
    ap.add_argument("--mem-txn-rate", type=float, default=500.0,
                    help="memory mode: INVITEs per second while filling (default 500)")
    ap.add_argument("--mem-hold-s", type=float, default=20.0,
                    help="memory mode: seconds the UAS holds each INVITE before its 200 (default 20)")
    ap.add_argument("--mem-conns", type=int, default=2000,
                    help="memory mode: TCP and TLS connections held open (default 2000 each)")
    ap.add_argument("--recv-timeout-ms", type=int, default=8000)
    ap.add_argument("--start-timeout", type=float, default=60.0,
                    help="seconds a server may take to bind its port (default 60)")
    ap.add_argument("--no-smoke", action="store_true", help="skip the 10-operation check per scenario")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, SIPp statistics)")
    args = ap.parse_args()

    rates = dict(DEFAULT_RATES)
    for spec in args.rates:
        try:
            k, v = spec.split("=", 1)
            if k not in SCENARIOS:
                raise ValueError
            rates[k] = [float(x) for x in v.split(",") if x]
        except ValueError:
            ap.error(f"--rates {spec}: expected SCENARIO=R1,R2,... with SCENARIO one of {', '.join(SCENARIOS)}")
    args.rates = rates
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    modes = ("perf", "overload", "memory") if args.mode == "all" else (args.mode,)
    if args.only != "kamailio" and not (args.confab_example_bin if args.confab_example else args.confab_bin):
        ap.error("--confab-bin (or --confab-example-bin) is required unless --only kamailio (run.sh passes it)")

    work = tempfile.mkdtemp(prefix="confab-bench-")
    log(f"Front End benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}  work folder {work}")
    la = loadavg()
    log(f"loadavg {la}  (CPUs: {os.cpu_count()}; server on CPU {args.server_cpu}, SIPp on CPU {args.load_cpu})")
    if float(la.split()[0]) > 1.0:
        log("WARNING: the machine is busy (loadavg > 1): figures are indicative only; re-run on a quiet machine")
    kv = subprocess.run(["kamailio", "-v"], capture_output=True, text=True).stdout.splitlines()
    sv = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout.strip().splitlines()
    log(f"{kv[0] if kv else 'kamailio ?'}; {sv[-1].strip() if sv else 'sipp ?'}; "
        f"rmem_max {open('/proc/sys/net/core/rmem_max').read().strip()}")
    names = make_users(work, args.users)
    log(f"users: {len(names)} (+ {UAS_USER}), password `{PASSWORD}`, domain {DOMAIN}")

    servers = []
    bench = Bench(args, work, names)
    bench.broken = {}
    status = 0
    try:
        if args.only != "confab":
            servers.append(Kamailio(args, work))
        if args.only != "kamailio":
            if args.confab_example:
                c = ConfabExample(args, work, args.confab_example_bin)
            else:
                c = Confab(args, work, args.confab_bin)
            try:
                c.provision()
                servers.append(c)
            except ServerError as e:
                log(f"confab: provisioning failed: {e}")
                status = 1
                if args.only == "confab":
                    return status
        if servers and servers[0].name != "confab" and len(servers) == 2:
            servers = [servers[1], servers[0]]  # round 1: Confab first, round 2: Kamailio first, ...
        if not args.no_smoke:
            for scenario in scenarios:
                for srv in servers:
                    ok, msg = bench.smoke(srv, scenario)
                    log(msg)
                    if not ok:
                        bench.broken.setdefault(scenario, {})[srv.name] = msg
                        status = 1
        if "perf" in modes:
            mode_perf(args, bench, servers, scenarios)
        if "overload" in modes:
            mode_overload(args, bench, servers, [s for s in scenarios])
        if "memory" in modes:
            mode_memory(args, bench, servers)
    finally:
        log(f"\nloadavg at the end {loadavg()}")
        if args.keep or status:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        sys.exit(main())
    finally:
        cleanup()
