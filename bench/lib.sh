# shellcheck shell=bash
# bench/lib.sh: helpers shared by bench/repair and bench/daemon. Not a script: source it.
#
#   BENCH=name                      # set before sourcing: used in messages and the temp dir name
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Gives: now / secs / elapsed / log / die / median, require_tools, bench_workdir (WORK, PIDS
# and the EXIT trap that kills every started process by PID and removes WORK unless KEEP=1),
# stop_pid, bench_build, free_ports, kms_addr_free, start_responders, named_user_opt,
# wait_soa, bind_stats.
#
# Globals it uses: BENCH, KEEP, NO_BUILD, REPO, KMSDNS, RESPONDER (set by bench_paths).

now() { echo "${EPOCHREALTIME/,/.}"; }
T_START=$(now)
elapsed() { echo "$(now) - $T_START" | bc -l; }
secs() { echo "$2 - $1" | bc -l; }   # secs START END
log() { printf '[%6.2fs] %s\n' "$(elapsed)" "$*" >&2; }
die() { echo "bench/$BENCH: FAILED: $*" >&2; exit 1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

bench_paths() {
  REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  KMSDNS=$REPO/target/release/kmsdns
  RESPONDER=$REPO/target/release/examples/kms_responder
}
bench_paths

# require_tools HINT TOOL...: dies naming the first missing tool and how to install it.
require_tools() {
  local hint=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing ($hint)"
  done
}

# ---------------------------------------------------------------- work dir, PIDs, cleanup
# Every process the benchmark starts goes in PIDS; the EXIT trap stops them by PID (TERM, up to
# 5 s, then KILL), and removes WORK unless KEEP=1.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/kmsdns-bench-$BENCH.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "bench/$BENCH: work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}

# stop_pid PID: stops one process this benchmark started (TERM, up to 5 s, then KILL), reaps
# it and drops it from PIDS, so that the EXIT trap never signals a PID that may be reused.
stop_pid() {
  local pid=$1 p keep=()
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# ---------------------------------------------------------------- build
bench_build() {
  if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "cargo build --release --example kms_responder --bin kmsdns"
    (cd "$REPO" && cargo build --release --example kms_responder --bin kmsdns) >"$WORK/build.log" 2>&1 \
      || { tail -40 "$WORK/build.log" >&2; die "cargo build failed"; }
  fi
  [[ -x $KMSDNS && -x $RESPONDER ]] || die "missing $KMSDNS or $RESPONDER"
}

# ---------------------------------------------------------------- ports
# free_ports N: N ports free on 127.0.0.1 for both UDP and TCP, below the ephemeral range so
# that no client socket (kmsdns, dig, nsupdate) can take one between the check and named.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
lo, hi = 20000, 32000
try:
    eph = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    hi = min(hi, eph - 1)
except OSError:
    pass
def free(p):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True
cands = list(range(lo, hi))
random.shuffle(cands)
got = []
for p in cands:
    if free(p):
        got.append(p)
    if len(got) == n:
        break
if len(got) < n:
    sys.exit(1)
print(*got)
EOF
}

# kms_addr_free IP PORT: true if a KMS stand-in can listen there. SO_REUSEADDR as Rust's
# TcpListener sets it: TIME_WAIT left by a previous run is no conflict.
kms_addr_free() {
  python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2])))" "$1" "$2" 2>/dev/null
}

# nothing_listens IP PORT: true if a TCP connect there is refused (a dead KMS host).
nothing_listens() {
  python3 - "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except ConnectionRefusedError:
    sys.exit(0)
except OSError:
    sys.exit(1)
sys.exit(1)
EOF
}

# ---------------------------------------------------------------- KMS stand-ins
# start_responders ADDR:PORT...: starts examples/kms_responder and waits for its "ready".
start_responders() {
  "$RESPONDER" "$@" >"$WORK/responder.out" 2>"$WORK/responder.err" &
  PIDS+=($!)
  for _ in $(seq 100); do
    grep -qx ready "$WORK/responder.out" 2>/dev/null && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$WORK/responder.err" >&2; die "kms_responder exited"; }
    sleep 0.05
  done
  grep -qx ready "$WORK/responder.out" || die "kms_responder did not print ready"
}

# ---------------------------------------------------------------- BIND
# named_user_opt DIR: as root, chowns DIR to bind and sets USER_OPT=(-u bind); else USER_OPT=().
named_user_opt() {
  USER_OPT=()
  if [[ $(id -u) == 0 ]]; then
    chmod 755 "$1"
    chown -R bind:bind "$1" 2>/dev/null && USER_OPT=(-u bind)
  fi
  return 0
}

# wait_soa PORT PID NAME [TENTHS]: waits until the server on PORT answers SOA for NAME, or
# dies (with the server's logs, DIR given in LOGDIR) if PID exits or TENTHS/10 s pass.
wait_soa() {
  local port=$1 pid=$2 name=$3 tries=${4:-600}
  for _ in $(seq "$tries"); do
    if [[ -n $(dig +time=1 +tries=1 +norecurse +short -p "$port" @127.0.0.1 "$name" SOA 2>/dev/null) ]]; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n ${LOGDIR:-} ]] && cat "$LOGDIR/stderr.log" "$LOGDIR/named.log" >&2 2>/dev/null
  die "named (port $port) did not answer SOA for $name"
}

# bind_stats PORT KEY...: values from BIND's statistics channel (/json/v1/server) on PORT, one
# per KEY, space-separated. A KEY is "section.name", e.g. nsstats.Requestv4, opcodes.UPDATE;
# a counter BIND has not created yet (never incremented) reads 0.
bind_stats() {
  local port=$1
  shift
  curl -fsS "http://127.0.0.1:$port/json/v1/server" | python3 -c '
import json, sys
d = json.load(sys.stdin)
out = []
for k in sys.argv[1:]:
    sec, name = k.split(".", 1)
    out.append(str(d.get(sec, {}).get(name, 0)))
print(" ".join(out))
' "$@" || die "cannot read the statistics channel on port $port"
}
