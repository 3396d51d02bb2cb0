#!/usr/bin/env bash
# Three plugvisor hosts on this machine behind haproxy (dist/haproxy/plugvisor.cfg): the
# scale-out shape of docs/operations.md#several-hosts, to try by hand and for the tests.
#
#   scripts/hosts-lab.sh STATE_DIR MANIFEST [MANIFEST2 MANIFEST3]
#
# Host N runs `plugvisor start MANIFEST_N --http 10.77.N.2:8080` in a network namespace of its
# own, joined by a veth pair to the balancer's namespace (10.77.N.1); one MANIFEST serves all
# three. Serves until SIGTERM or Ctrl-C, then stops what it started. In STATE_DIR:
#   lb.sock          the balancer's HTTP frontend: curl --unix-socket STATE_DIR/lb.sock http://lb/healthz
#   haproxy.sock     haproxy's stats socket (`show stat`)
#   hN/control.sock  host N's control socket: plugvisor status --control STATE_DIR/h1/control.sock
#   hN/pid, hN/log   host N's supervisor pid and log
#   ready            written once the balancer answers and every host answers /healthz
# As root the namespaces are made directly. As an ordinary user they are made in a user
# namespace of the lab's own, and each supervisor is mapped back to that user, so it sees who
# it really is and takes the unprivileged sandbox path, as it would on a machine of its own.
# PLUGVISOR (default .build/debug/plugvisor) names the binary.
set -euo pipefail

[ $# -eq 2 ] || [ $# -eq 4 ] || {
    echo "usage: scripts/hosts-lab.sh STATE_DIR MANIFEST [MANIFEST2 MANIFEST3]" >&2
    exit 2
}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
state=$(cd "$1" && pwd)
shift
manifests=("$@")
[ ${#manifests[@]} -eq 3 ] || manifests=("$1" "$1" "$1")
for manifest in "${manifests[@]}"; do
    [ -f "$manifest" ] || { echo "hosts-lab: $manifest: no such manifest" >&2; exit 2; }
done
plugvisor=${PLUGVISOR:-$root/.build/debug/plugvisor}
[ -x "$plugvisor" ] || { echo "hosts-lab: $plugvisor is not built (swift build)" >&2; exit 2; }
for tool in haproxy ip unshare nsenter curl; do
    command -v "$tool" >/dev/null || { echo "hosts-lab: $tool is missing (scripts/bootstrap.sh)" >&2; exit 2; }
done

if [ -z "${PLUGVISOR_LAB_UID:-}" ]; then
    # The balancer's namespace; --kill-child takes the lab down if this process goes.
    export PLUGVISOR_LAB_UID=$(id -u) PLUGVISOR_LAB_GID=$(id -g) PLUGVISOR=$plugvisor
    user=()
    [ "$PLUGVISOR_LAB_UID" -eq 0 ] || user=(--user --map-root-user)
    exec unshare "${user[@]}" --net --fork --kill-child -- "$0" "$state" "${manifests[@]}"
fi

trap 'trap - EXIT; rm -f "$state/ready"; kill $(jobs -p) 2>/dev/null; wait' EXIT
trap 'exit 0' TERM INT
ip link set lo up
rm -f "$state/ready"
own_netns=$(readlink /proc/self/ns/net)
as_user=()
[ "$PLUGVISOR_LAB_UID" -eq 0 ] ||
    as_user=(unshare --user --map-user="$PLUGVISOR_LAB_UID" --map-group="$PLUGVISOR_LAB_GID" --)

for n in 1 2 3; do
    dir=$state/h$n
    mkdir -p "$dir"
    rm -f "$dir/control.sock"
    # A process that holds host N's namespace, so the host keeps its address (and a dead
    # supervisor is a refused connection, as on a real machine).
    unshare --net sleep infinity &
    holder=$!
    for _ in $(seq 500); do
        [ "$(readlink "/proc/$holder/ns/net" 2>/dev/null)" = "$own_netns" ] || break
        sleep 0.01
    done
    netns=/proc/$holder/ns/net
    ip link add "h$n" type veth peer name eth0 netns "$holder"
    ip addr add "10.77.$n.1/24" dev "h$n"
    ip link set "h$n" up
    nsenter --net="$netns" sh -c "ip link set lo up && ip addr add 10.77.$n.2/24 dev eth0 && ip link set eth0 up"
    # nsenter and unshare exec the supervisor, so $! is its pid.
    nsenter --net="$netns" -- "${as_user[@]}" "$PLUGVISOR" start "${manifests[$((n - 1))]}" \
        --control "$dir/control.sock" --http "10.77.$n.2:8080" 2>"$dir/log" &
    echo $! >"$dir/pid"
done

for n in 1 2 3; do
    for attempt in $(seq 300); do
        curl -sf --max-time 1 -o /dev/null "http://10.77.$n.2:8080/healthz" && break
        kill -0 "$(cat "$state/h$n/pid")" 2>/dev/null && [ "$attempt" -lt 300 ] || {
            echo "hosts-lab: host $n did not come up:" >&2
            cat "$state/h$n/log" >&2
            exit 1
        }
        sleep 0.1
    done
done

export PLUGVISOR_LB_BIND=$state/lb.sock PLUGVISOR_LB_STATS=$state/haproxy.sock
export PLUGVISOR_HOST1=10.77.1.2:8080 PLUGVISOR_HOST2=10.77.2.2:8080 PLUGVISOR_HOST3=10.77.3.2:8080
rm -f "$PLUGVISOR_LB_BIND" "$PLUGVISOR_LB_STATS"
haproxy -db -f "$root/dist/haproxy/plugvisor.cfg" >"$state/haproxy.log" 2>&1 &
for attempt in $(seq 100); do
    curl -sf --max-time 1 -o /dev/null --unix-socket "$PLUGVISOR_LB_BIND" http://lb/healthz && break
    [ "$attempt" -lt 100 ] || { echo "hosts-lab: haproxy did not answer:" >&2; cat "$state/haproxy.log" >&2; exit 1; }
    sleep 0.1
done
echo "hosts-lab: three hosts behind $PLUGVISOR_LB_BIND (haproxy stats: $PLUGVISOR_LB_STATS)" >&2
touch "$state/ready"
wait
