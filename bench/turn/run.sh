#!/usr/bin/env bash
# TURN relay benchmark: the same turnutils_uclient load against coturn and Confab.
#
#   bench/turn/run.sh [CLIENTS...]       (default: 100 200 400 clients)
#
# Each client sends N=${N:-3000} packets of 172 bytes (a G.711 20 ms RTP packet) every 5 ms
# (200 pps) through a channel to turnutils_peer, which echoes them. The server is pinned to
# CPU 0 and the load generator and peer to CPU 1 (taskset). Server CPU time is read from
# /proc/PID/stat (utime+stime) before and after each step. "Relayed" counts both directions
# (packets sent to the peer plus packets echoed back). Needs: coturn (Debian package
# `coturn`: turnserver, turnutils_uclient, turnutils_peer), util-linux (taskset), cargo.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=("${@:-100 200 400}")
[ $# -eq 0 ] && STEPS=(100 200 400)
N=${N:-3000}
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

run_server() { # name port cmd...
  local name=$1 port=$2; shift 2
  taskset -c 0 "$@" >"$WORK/$name.out" 2>&1 &
  local pid=$!
  sleep 1
  for m in "${STEPS[@]}"; do
    local before after out
    before=$(cpu_ticks $pid)
    local t0=$(date +%s.%N)
    out=$(taskset -c 1 turnutils_uclient -m "$m" -n "$N" -z 5 -l 172 -c -X -u bench -w bench \
          -e 127.0.0.2 -r 3580 -p "$port" 127.0.0.1 2>&1 || true)
    local t1=$(date +%s.%N)
    after=$(cpu_ticks $pid)
    local sent recv lost rtt
    sent=$(grep -o 'tot_send_msgs=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2)
    recv=$(grep -o 'tot_recv_msgs=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2)
    lost=$(grep -o 'Total lost packets [0-9]*' <<<"$out" | tail -1 | awk '{print $4}')
    rtt=$(grep -o 'Average round trip delay [0-9.]*' <<<"$out" | tail -1 | awk '{print $5}')
    python3 - "$name" "$m" "${sent:-0}" "${recv:-0}" "${lost:-0}" "${rtt:-0}" "$before" "$after" "$TICK" "$t0" "$t1" <<'PY' | tee -a "$WORK/results"
import sys
name, m, sent, recv, lost, rtt, b, a, tick, t0, t1 = sys.argv[1:]
sent, recv, lost = int(sent), int(recv), int(lost)
cpu_s = (int(a) - int(b)) / int(tick)
relayed = sent + recv
us = cpu_s * 1e6 / relayed if relayed else float('nan')
loss = 100.0 * (sent - recv) / sent if sent else float('nan')
print(f"{name:7s} clients={m:4s} sent={sent:8d} recv={recv:8d} loss={loss:6.2f}% rtt={rtt}ms "
      f"server_cpu={cpu_s:6.2f}s relayed={relayed:8d} cpu_per_packet={us:5.2f}us wall={float(t1)-float(t0):5.1f}s")
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
