#!/usr/bin/env bash
# IM benchmark: Confab vs Kamailio 5.6 (-x tlsf): MESSAGE relay, offline store-and-forward.
#
#   bench/im/run.sh              # everything, 3 rounds
#   bench/im/run.sh --part relay|offline [--rounds N] [--only confab|kamailio]
#   bench/im/run.sh --relay-args "--rates message=2000,4000" --offline-args "--store-rates 500,1000"
#   bench/im/run.sh --help
#
# relay:   bench/frontend/bench.py's `message` scenario (SIPp UAC -> server -> SIPp UAS
#          registered as uas@example.com) with bench/im/confab.toml (senders of another
#          domain are not challenged, as in Kamailio's configuration): CPU per relayed
#          MESSAGE and clean rate, see bench/frontend for the method.
# offline: bench/im/offline.py: MESSAGEs to registered-nobody users stored durably and
#          answered 202 (Kamailio: msilo on SQLite), then delivered when the users REGISTER.
# The server runs pinned to CPU 0, the generators (SIPp, the Python UA) to CPU 1.
# Needs: kamailio (Debian; msilo is in the main package) with kamailio-sqlite-modules, sipp,
# util-linux (taskset), python3 (with its sqlite3 module), cargo, 2 CPUs; root for the sysctl.
set -euo pipefail
cd "$(dirname "$0")/../.."

for t in kamailio kamcmd sipp taskset python3; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y kamailio kamailio-sqlite-modules sipp util-linux python3" >&2; exit 1; }
done
for m in msilo db_sqlite; do
  if [ -z "$(find /usr/lib /usr/local/lib -path "*kamailio/modules/$m.so" 2>/dev/null | head -1)" ]; then
    echo "missing Kamailio's $m module ($m.so): apt-get install -y kamailio kamailio-sqlite-modules" >&2; exit 1
  fi
done
python3 -c 'import sqlite3' 2>/dev/null || { echo "missing python3's sqlite3 module" >&2; exit 1; }
if [ "$(nproc)" -lt 2 ]; then
  echo "needs 2 CPUs (server on CPU 0, load generators on CPU 1)" >&2; exit 1
fi

part=all rounds=3 only="" relay_args="" offline_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --part) part=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --relay-args) relay_args=$2; shift 2 ;;
    --offline-args) offline_args=$2; shift 2 ;;
    -h|--help)
      sed -n '2,19p' "$0"
      echo; echo "relay options (--relay-args):"; python3 bench/frontend/bench.py --help | sed -n '/^options/,$p'
      echo; echo "offline options (--offline-args):"; python3 bench/im/offline.py --help | sed -n '/^options/,$p'
      exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$part" in relay|offline|all) ;; *) echo "--part relay|offline|all" >&2; exit 2 ;; esac

common=(--rounds "$rounds")
[ -n "$only" ] && common+=(--only "$only")
if [ "$only" != "kamailio" ]; then
  command -v cargo >/dev/null || { echo "missing cargo (or pass --only kamailio)" >&2; exit 1; }
  TGT=${CARGO_TARGET_DIR:-target}
  echo "building confab (release) in $TGT ..."
  cargo build -q --release -p confab
  common+=(--confab-bin "$(realpath "$TGT/release/confab")" --confab-config bench/im/confab.toml)
fi

ulimit -n 65536 2>/dev/null || true
for k in net.core.rmem_max net.core.wmem_max; do
  if [ "$(sysctl -n $k)" -lt 67108864 ]; then
    sysctl -qw $k=67108864 || echo "warning: cannot raise $k (not root?): expect receive-buffer drops" >&2
  fi
done

status=0
if [ "$part" != "offline" ]; then
  echo "== MESSAGE relay (bench/frontend/bench.py --scenario message)"
  # shellcheck disable=SC2086
  python3 bench/frontend/bench.py --scenario message --mode perf --users 10000 \
    --confab-port 15370 --kam-port 15360 --uas-port 15470 --uac-port 15481 \
    "${common[@]}" $relay_args || status=$?
fi
if [ "$part" != "relay" ]; then
  # shellcheck disable=SC2086
  taskset -c 1 python3 bench/im/offline.py "${common[@]}" $offline_args || status=$?
fi
exit $status
