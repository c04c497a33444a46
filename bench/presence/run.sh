#!/usr/bin/env bash
# Presence benchmark: Confab vs Kamailio 5.6's presence modules (in memory, -x tlsf).
#
#   bench/presence/run.sh        # all parts, 3 rounds
#   bench/presence/run.sh --part publish|fanout|memory [--rounds N] [--only confab|kamailio]
#   bench/presence/run.sh --help                                  # every option
#
# Figures (bench/README.md explains them): PUBLISH rate and CPU per PUBLISH; CPU per
# SUBSCRIBE; NOTIFY fan-out to 1,000 and 10,000 watchers of one presentity (time to the last
# NOTIFY, CPU per NOTIFY); memory per subscription with 100,000 subscriptions.
# It builds Confab in release mode (skipped with --only kamailio), raises the UDP buffer
# limits, and runs bench.py pinned to CPU 1 (the load generators: SIPp and the Python
# watchers) while each server runs pinned to CPU 0. Servers alternate in each round.
# Needs: kamailio with kamailio-presence-modules (Debian), sipp, util-linux (taskset),
# python3, cargo, 2 CPUs; root for the sysctl (else a warning). About 15 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

for t in kamailio kamcmd sipp taskset python3; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y kamailio kamailio-presence-modules sipp util-linux python3" >&2; exit 1; }
done
if ! ls /usr/lib/*/kamailio/modules/presence.so /usr/lib/kamailio/modules/presence.so >/dev/null 2>&1 \
   && [ -z "$(find /usr/lib /usr/local/lib -path '*kamailio/modules/presence.so' 2>/dev/null | head -1)" ]; then
  echo "missing Kamailio's presence module (presence.so): apt-get install -y kamailio-presence-modules" >&2; exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "needs 2 CPUs (server on CPU 0, load generators on CPU 1)" >&2; exit 1
fi

args=("$@")
only=""
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --only) only="${args[$((i + 1))]:-}" ;;
    --only=*) only="${args[$i]#--only=}" ;;
    -h|--help) exec python3 bench/presence/bench.py --help ;;
  esac
done

extra=()
if [ "$only" != "kamailio" ]; then
  command -v cargo >/dev/null || { echo "missing cargo (or pass --only kamailio)" >&2; exit 1; }
  TGT=${CARGO_TARGET_DIR:-target}
  echo "building confab (release) in $TGT ..."
  cargo build -q --release -p confab
  extra=(--confab-bin "$(realpath "$TGT/release/confab")")
fi

ulimit -n 65536 2>/dev/null || true
for k in net.core.rmem_max net.core.wmem_max; do
  if [ "$(sysctl -n $k)" -lt 67108864 ]; then
    sysctl -qw $k=67108864 || echo "warning: cannot raise $k (not root?): expect receive-buffer drops" >&2
  fi
done

exec taskset -c 1 python3 bench/presence/bench.py "${extra[@]}" "$@"
