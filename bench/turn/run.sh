#!/usr/bin/env bash
# TURN relay benchmark: the same turnutils_uclient load against coturn and Confab.
#
#   bench/turn/run.sh [CLIENTS...]       (default: 20 30 40 clients)
#
# Each client sends N=${N:-3000} packets of 172 bytes (a G.711 20 ms RTP packet) every 5 ms
# (200 pps) through a channel to turnutils_peer, which echoes them. The server is pinned to
# CPU 0 and the load generator and peer to CPU 1 (taskset); on this 2-CPU box the
# single-threaded load generator saturates its CPU at about 40 clients (8k pps each way),
# which is why the default steps stop there. Server CPU time is read from /proc/PID/stat
# (utime+stime). Each step runs twice, with N0=${N0:-500} and N packets per client; the CPU
# difference divided by the difference in relayed packets (both directions) is the marginal
# cost of relaying, free of allocation setup and idle time. Loss is from the N run.
# Caveat: on loopback, the kernel charges delivery to the receiving socket to the sender,
# so both servers pay for their peers' receive path and not for their own. Needs: coturn (Debian package
# `coturn`: turnserver, turnutils_uclient, turnutils_peer), util-linux (taskset), cargo.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=("$@")
[ $# -eq 0 ] && STEPS=(20 30 40)
N=${N:-3000}
N0=${N0:-500}
for t in turnserver turnutils_uclient turnutils_peer taskset; do
  command -v $t >/dev/null || { echo "missing $t: apt-get install -y coturn util-linux" >&2; exit 1; }
done
TGT=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p confab-turn --example turn-server
CONFAB_BIN="$TGT/release/examples/turn-server"
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

taskset -c 1 turnutils_peer -L 127.0.0.2 -p 3580 >/dev/null 2>&1 &
sleep 0.3

# One uclient run against port $1 with $2 clients and $3 packets each; prints
# "cpu_ticks sent recv rtt" (server CPU ticks consumed during the run).
load() {
  local port=$1 m=$2 n=$3 pid=$4 before after out
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 turnutils_uclient -m "$m" -n "$n" -z 5 -l 172 -c -X -u bench -w bench \
        -e 127.0.0.2 -r 3580 -p "$port" 127.0.0.1 2>&1 || true)
  after=$(cpu_ticks "$pid")
  echo "$((after - before)) $(grep -o 'tot_send_msgs=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2) \
$(grep -o 'tot_recv_msgs=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2) \
$(grep -o 'Average round trip delay [0-9.]*' <<<"$out" | tail -1 | awk '{print $5}')"
}

run_server() { # name port cmd...
  local name=$1 port=$2; shift 2
  taskset -c 0 "$@" >"$WORK/$name.out" 2>&1 &
  local pid=$!
  sleep 1
  for m in "${STEPS[@]}"; do
    # Two runs that differ only in packets per client: the difference in server CPU is
    # the cost of relaying, without allocation setup, teardown and idle time.
    local small big
    small=$(load "$port" "$m" "$N0" "$pid")
    big=$(load "$port" "$m" "$N" "$pid")
    python3 - "$name" "$m" $small $big "$TICK" <<'PY' | tee -a "$WORK/results"
import sys
name, m = sys.argv[1:3]
t0, s0, r0, _, t1, s1, r1, rtt, tick = sys.argv[3:]
t0, s0, r0, t1, s1, r1, tick = map(int, (t0, s0 or 0, r0 or 0, t1, s1 or 0, r1 or 0, tick))
relayed = (s1 + r1) - (s0 + r0)
cpu = (t1 - t0) / tick
us = cpu * 1e6 / relayed if relayed > 0 else float('nan')
loss = 100.0 * (s1 - r1) / s1 if s1 else float('nan')
print(f"{name:7s} clients={m:4s} pps_each_way={int(m)*200:6d} sent={s1:8d} recv={r1:8d} loss={loss:6.2f}% "
      f"rtt={rtt}ms marginal_cpu={cpu:6.2f}s per_{relayed}_relayed cpu_per_packet={us:5.2f}us")
PY
  done
  # SIGINT stops Confab cleanly; coturn may ignore it: give it 3 s, then SIGKILL.
  kill -INT $pid 2>/dev/null || true
  for _ in $(seq 30); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -KILL $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}

run_server coturn 3578 turnserver -c bench/turn/coturn.conf --log-file="$WORK/turn.log"
run_server confab 3579 "$CONFAB_BIN" bench/turn/confab.toml

python3 - "$WORK/results" <<'PY'
import sys, re
rows = [l for l in open(sys.argv[1])]
def get(name, m):
    for l in rows:
        if l.startswith(name) and f"clients={m:4s}" in l:
            return float(re.search(r"cpu_per_packet=\s*([0-9.na]+)us", l).group(1))
ms = sorted({re.search(r"clients=\s*(\d+)", l).group(1) for l in rows}, key=int)
print("\nratio Confab/coturn CPU per relayed packet (goal <= 0.5):")
for m in ms:
    c, f = get("coturn", m), get("confab", m)
    if c and f:
        print(f"  clients={m:>4}: coturn {c:.2f}us  confab {f:.2f}us  ratio {f/c:.2f}")
PY
