#!/usr/bin/env bash
# Front End benchmark: the same SIPp load against Confab and Kamailio 5.6 (-x tlsf).
#
#   bench/frontend/run.sh [--rounds N] [--scenario register|message|call|all]
#                         [--mode perf|overload|memory|all] [--only kamailio|confab] [--keep]
#                         [--rates register=4000,8000 ...] [--duration S] [--users N] ...
#
# `bench/frontend/run.sh --help` lists every option; bench/README.md explains the output.
# It builds Confab in release mode (skipped with --only kamailio), raises the UDP buffer
# limits (net.core.rmem_max/wmem_max to 64 MiB, as the anchor measurements did), then runs
# bench.py: users generated and provisioned into both servers, the server pinned to CPU 0
# and the SIPp generators to CPU 1, the servers alternated in each round, medians printed.
# Needs: kamailio (Debian package, with kamailio-extra-modules not required), sipp,
# util-linux (taskset), python3, cargo; root for the sysctl and the optional CPU cgroup.
set -euo pipefail
cd "$(dirname "$0")/../.."

for t in kamailio kamcmd sipp taskset python3; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y kamailio sipp util-linux python3" >&2; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
  echo "needs 2 CPUs (server on CPU 0, load generators on CPU 1)" >&2; exit 1
fi

args=("$@")
only=""
example=""
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --only) only="${args[$((i + 1))]:-}" ;;
    --only=*) only="${args[$i]#--only=}" ;;
    --confab-example) example=1 ;;
    -h|--help) exec python3 bench/frontend/bench.py --help ;;
  esac
done

extra=()
if [ "$only" != "kamailio" ]; then
  TGT=${CARGO_TARGET_DIR:-target}
  if [ -n "$example" ]; then
    # Interim Confab side until `confab serve` runs the SIP front end (bench/README.md).
    echo "building confab-frontend's serve_users example (release) in $TGT ..."
    cargo build -q --release -p confab-frontend --features testing --example serve_users
    extra=(--confab-example-bin "$(realpath "$TGT/release/examples/serve_users")")
  else
    echo "building confab (release) in $TGT ..."
    cargo build -q --release -p confab
    extra=(--confab-bin "$(realpath "$TGT/release/confab")")
  fi
fi

# SIPp wants more open files than calls it may hold open (-l); best effort.
ulimit -n 262144 2>/dev/null || true
# Both servers ask for 8 MiB socket buffers; the kernel caps them at these limits.
for k in net.core.rmem_max net.core.wmem_max; do
  if [ "$(sysctl -n $k)" -lt 67108864 ]; then
    sysctl -qw $k=67108864 || echo "warning: cannot raise $k (not root?): expect receive-buffer drops" >&2
  fi
done

exec python3 bench/frontend/bench.py "${extra[@]}" "$@"
