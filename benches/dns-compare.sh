#!/usr/bin/env bash
# Side-by-side DNS load test: crowbar-dnsd, NSD and hickory-server's own in-memory store, on the
# same zones (1,000 and 20,000 hosts), in one run. Not run in CI.
#
#   benches/dns-compare.sh [SECONDS_PER_RUN]        (default 10)
#
# Needs: dnsperf, nsd, python3, taskset (Debian: dnsperf nsd python3 util-linux).
# Each server is pinned to CPU 0 and dnsperf to CPU 1, everything on 127.0.0.1 high ports,
# as in shared/reference/dns.md section 3. Every server is stopped by PID after its runs.
set -euo pipefail
LEN=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
for tool in dnsperf nsd python3 taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
[ -n "${SKIP_BUILD:-}" ] || (cd "$ROOT" && cargo build -q --release -p crowbar --example crowbar-dnsd --example dns-hickory-inmemory)
BIN=$CARGO_TARGET_DIR/release/examples
WORK=$(mktemp -d /tmp/dns-compare.XXXXXX)
PIDS=()
# On a shared machine, raise the servers and dnsperf above background builds (as root).
NICE=""
[ "$(id -u)" = 0 ] && NICE="nice -n -10"
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# hosts file, crowbar config and query files for N hosts, same layout as the reference:
# nodeNNNNN A 198.18.x.y, every even host also AAAA 2001:db8:100::i; reverse zones
# 198.18.0.0/16 and 2001:db8::/32.
gen() {
    python3 - "$1" "$2" <<'PY'
import os, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
random.seed(42)
hosts = ["198.18.0.1 ns1.prov.test", "2001:db8::1 ns1.prov.test"]
mixed, pos, neg = [], [], []
for i in range(n):
    name = "node%05d.prov.test" % i
    v4 = "198.18.%d.%d" % (1 + i // 250, 1 + i % 250)
    hosts.append("%s %s" % (v4, name))
    a, b, c, d = v4.split(".")
    ptr4 = "%s.%s.%s.%s.in-addr.arpa" % (d, c, b, a)
    mixed += ["%s A" % name, "%s AAAA" % name, "%s PTR" % ptr4]
    pos += ["%s A" % name, "%s PTR" % ptr4]
    if i % 2 == 0:
        v6 = "2001:db8:100::%x" % (i + 1)
        hosts.append("%s %s" % (v6, name))
        nib = "%032x" % int.from_bytes(__import__("ipaddress").IPv6Address(v6).packed, "big")
        ptr6 = ".".join(reversed(nib)) + ".ip6.arpa"
        mixed.append("%s PTR" % ptr6)
        pos.append("%s PTR" % ptr6)
    else:
        neg.append("%s AAAA" % name)
    if i % 10 == 0:
        mixed.append("nohost%05d.prov.test A" % i)
        neg.append("nohost%05d.prov.test A" % i)
        neg.append("%s.%s.%s.%s.in-addr.arpa PTR" % (d, c, str(int(b) + 100), a))
for name, qs in (("mixed", mixed), ("pos", pos), ("neg", neg)):
    random.shuffle(qs)
    open(os.path.join(out, name + ".txt"), "w").write("\n".join(qs) + "\n")
open(os.path.join(out, "hosts"), "w").write("\n".join(hosts) + "\n")
PY
    cat > "$2/dns.toml" <<TOML
admin_fqdn = "ns1.prov.test"
hosts_file = "hosts"
listen = ["127.0.0.1:5310"]
reverse_zones = ["198.18.0.0/16", "2001:db8::/32"]
serial = 1
TOML
}

wait_ready() { # port
    for _ in $(seq 100); do
        if dig +tries=1 +time=1 @127.0.0.1 -p "$1" prov.test SOA >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "server on port $1 did not come up" >&2; return 1
}

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

perf() { # port file -> "qps lost"
    $NICE taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$LEN" -c 10 -T 1 -q 200 -t 2 2>&1 |
        awk '/Queries per second/ {q=$4} /Queries lost/ {l=$3} END {printf "%d %s\n", q, l}'
}

start_crowbar() { # dir
    $NICE taskset -c 0 "$BIN/crowbar-dnsd" -c "$1/dns.toml" >"$1/crowbar.log" 2>&1 &
    PID=$!; PIDS+=("$PID"); wait_ready 5310; PORT=5310
}
start_nsd() { # dir
    mkdir -p "$1/nsd"
    "$BIN/crowbar-dnsd" -c "$1/dns.toml" --write-zones "$1/nsd" >/dev/null
    {
        printf 'server:\n  ip-address: 127.0.0.1@5311\n  server-count: 1\n  username: ""\n'
        printf '  zonesdir: "%s"\n  database: ""\n  pidfile: "%s/nsd.pid"\n' "$1/nsd" "$1/nsd"
        printf '  xfrdfile: "%s/xfrd.state"\n  zonelistfile: "%s/zone.list"\n' "$1/nsd" "$1/nsd"
        printf '  logfile: "%s/nsd.log"\n  hide-version: yes\n' "$1/nsd"
        printf '  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\nremote-control:\n  control-enable: no\n'
        for z in "$1"/nsd/*.zone; do
            o=$(basename "$z" .zone)
            printf 'zone:\n  name: "%s"\n  zonefile: "%s"\n' "$o" "$(basename "$z")"
        done
    } >"$1/nsd/nsd.conf"
    $NICE taskset -c 0 nsd -d -c "$1/nsd/nsd.conf" >"$1/nsd/stdout" 2>&1 &
    PID=$!; PIDS+=("$PID"); wait_ready 5311; PORT=5311
}
start_hickory() { # dir
    $NICE taskset -c 0 "$BIN/dns-hickory-inmemory" --hosts "$1/hosts" --admin-fqdn ns1.prov.test \
        --reverse 198.18.0.0/16 --reverse 2001:db8::/32 --listen 127.0.0.1:5312 >"$1/hickory.log" 2>&1 &
    PID=$!; PIDS+=("$PID"); wait_ready 5312; PORT=5312
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

echo "dnsperf -l $LEN -c 10 -T 1 -q 200 -t 2; server on CPU 0, dnsperf on CPU 1; qps (lost)"
printf '| server | 1k mixed | 1k positive | 1k negative | 20k mixed | 20k positive | 20k negative | RSS 20k (MB) |\n'
printf '|---|---|---|---|---|---|---|---|\n'
gen 1000 "$WORK/1k"
gen 20000 "$WORK/20k"
for server in crowbar nsd hickory; do
    row="| $server"
    for size in 1k 20k; do
        "start_$server" "$WORK/$size"
        for set in mixed pos neg; do
            read -r qps lost < <(perf "$PORT" "$WORK/$size/$set.txt")
            row="$row | $qps ($lost)"
        done
        [ "$size" = 20k ] && rss=$(rss_mb "$PID")
        stop
    done
    echo "$row | $rss |"
done
