#!/usr/bin/env bash
# DHCPv4 throughput: crowbar-dhcpd vs dnsmasq vs Kea under perfdhcp, same namespaces, same run.
#
#   sudo benches/dhcp-compare.sh                 # defaults below
#   RATES="1000 4000 8000" SECS=20 CLIENTS=60000 sudo -E benches/dhcp-compare.sh
#
# Needs root, perfdhcp (package kea-admin), kea-dhcp4 (kea-dhcp4-server), dnsmasq
# (dnsmasq-base) and a release build of the crowbar-dhcpd example (built here).
# Topology: namespace cbbench-srv (veth cbbs, 10.77.0.1/16, the server under test) and
# cbbench-cli (veth cbbc, 10.77.0.2/16, perfdhcp acting as a relay with giaddr 10.77.0.2).
# Pool 10.77.1.1-10.77.255.254 (65,534 addresses), lease persistence on for all three:
# crowbar-dhcpd SQLite (WAL, batched), dnsmasq its lease file, Kea memfile (persist, no LFC).
# perfdhcp leaves the broadcast flag clear (-B would set it) and, as a relay, sets giaddr: every
# reply goes to the relay, so crowbar-dhcpd writes no neighbour entries here (that path is for
# clients on the link without an address; see tests/pxe_netns.rs).
# Every server starts fresh with an empty lease store for each run. Prints one table row per
# (server, offered rate): achieved 4-way exchanges/s and the drop ratios of both halves.
# Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-"1000 2000 4000 8000 16000"}
SECS=${SECS:-20}
CLIENTS=${CLIENTS:-60000}
SERVERS=${SERVERS:-"crowbar dnsmasq kea"}
SRV=cbbench-srv
CLI=cbbench-cli
WORK=$(mktemp -d /tmp/cbbench.XXXXXX)
PID=""

cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)"; exit 1; }
for t in perfdhcp kea-dhcp4 dnsmasq; do
    command -v "$t" >/dev/null || { echo "$t is not installed"; exit 1; }
done

CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target} cargo build -q --release -p crowbar --example crowbar-dhcpd
DHCPD=${CARGO_TARGET_DIR:-target}/release/examples/crowbar-dhcpd

ip netns add "$SRV"
ip netns add "$CLI"
ip link add cbbs type veth peer name cbbc
ip link set cbbs netns "$SRV"
ip link set cbbc netns "$CLI"
ip -n "$SRV" addr add 10.77.0.1/16 dev cbbs
ip -n "$CLI" addr add 10.77.0.2/16 dev cbbc
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set cbbs up
ip -n "$CLI" link set cbbc up

write_configs() {
    rm -rf "$WORK/run"
    mkdir -p "$WORK/run"
    cat > "$WORK/run/crowbar.toml" <<CFG
lease_db = "$WORK/run/leases.sqlite"
[[interface]]
name = "cbbs"
address = "10.77.0.1"
[[subnet]]
cidr = "10.77.0.0/16"
server_ip = "10.77.0.1"
pool = { start = "10.77.1.1", end = "10.77.255.254" }
pool_lease_secs = 3600
CFG
    cat > "$WORK/run/dnsmasq.conf" <<CFG
port=0
interface=cbbs
bind-interfaces
dhcp-range=10.77.1.1,10.77.255.254,255.255.0.0,1h
dhcp-lease-max=100000
dhcp-leasefile=$WORK/run/dnsmasq.leases
dhcp-authoritative
no-ping
quiet-dhcp
CFG
    cat > "$WORK/run/kea.json" <<CFG
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ "cbbs" ], "dhcp-socket-type": "udp" },
    "lease-database": { "type": "memfile", "persist": true, "lfc-interval": 0,
                        "name": "$WORK/run/kea-leases.csv" },
    "valid-lifetime": 3600,
    "subnet4": [ { "id": 1, "subnet": "10.77.0.0/16",
                   "pools": [ { "pool": "10.77.1.1 - 10.77.255.254" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "severity": "WARN",
                   "output_options": [ { "output": "$WORK/run/kea.log" } ] } ]
} }
CFG
}

start() {
    case "$1" in
        crowbar) ip netns exec "$SRV" "$DHCPD" --config "$WORK/run/crowbar.toml" --log warn \
                     2> "$WORK/run/crowbar.log" & ;;
        dnsmasq) ip netns exec "$SRV" dnsmasq -k --conf-file="$WORK/run/dnsmasq.conf" --user=root \
                     --pid-file="$WORK/run/dnsmasq.pid" --log-facility="$WORK/run/dnsmasq.log" & ;;
        kea)     KEA_PIDFILE_DIR=$WORK/run KEA_LOCKFILE_DIR=$WORK/run \
                     ip netns exec "$SRV" kea-dhcp4 -c "$WORK/run/kea.json" > "$WORK/run/kea.out" 2>&1 & ;;
    esac
    PID=$!
    # Wait until the server answers (one exchange), bounded.
    for _ in $(seq 1 100); do
        if ip netns exec "$CLI" perfdhcp -4 -l 10.77.0.2 -r 1 -n 1 -R 1 -W 1000 10.77.0.1 \
               >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    echo "$1 did not answer" >&2
    return 1
}

stop() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}

printf '| server | offered /s | achieved DORA/s | DO drops | RA drops |\n'
printf '| --- | --- | --- | --- | --- |\n'
for rate in $RATES; do
    for server in $SERVERS; do
        write_configs
        if ! start "$server"; then
            stop
            printf '| %s | %s | no answer | - | - |\n' "$server" "$rate"
            continue
        fi
        out=$(ip netns exec "$CLI" perfdhcp -4 -l 10.77.0.2 -r "$rate" -p "$SECS" -R "$CLIENTS" \
                  10.77.0.1 2>&1 || true)
        echo "$out" > "$WORK/perfdhcp-$server-$rate.txt"
        achieved=$(echo "$out" | awk '/^Rate:/ {print $2; exit}')
        drops=$(echo "$out" | awk '/drops ratio:/ {printf "%s %s%s", sep, $3, $4; sep=" /"}')
        do_drop=$(echo "$drops" | awk -F/ '{gsub(/ /,"",$1); print $1}')
        ra_drop=$(echo "$drops" | awk -F/ '{gsub(/ /,"",$2); print $2}')
        if [ "$server" = crowbar ] && command -v sqlite3 >/dev/null; then
            stop
            dup=$(sqlite3 "$WORK/run/leases.sqlite" \
                  "select count(mac) - count(distinct mac) from dhcp_leases where state != 'probation'")
            [ "$dup" = 0 ] || echo "!! crowbar: $dup MACs hold more than one address" >&2
        fi
        stop
        printf '| %s | %s | %s | %s | %s |\n' "$server" "$rate" "${achieved:-?}" "${do_drop:-?}" "${ra_drop:-?}"
    done
done
