#!/usr/bin/env bash
# Soak: mixed traffic through one switch for a while, then the figures that
# tell whether it keeps well: RSS growth after warm-up and whether any
# established connection was lost.
#
#   sudo scripts/soak.sh [SECONDS]      (default 600; needs root, iperf3)
#
# Three containers on one network, rules with conntrack. For SECONDS:
#   - two long TCP streams from b to a (iperf3 -P 2): the established
#     connections that must survive everything;
#   - a UDP stream from c to a at 20 Mbit/s;
#   - new TCP connections from c to a, about ten a second;
#   - `vswitch reload` every 30 s, alternating two rule sets.
# Every 5 s it samples the RSS of the datapath process and the number of
# tracked connections. Warm-up (180 s) outlasts the timeouts of closed
# connections (TIME_WAIT is 120 s) and the first reloads, each of which
# builds a pipeline beside the running one and so raises the allocator's
# high-water mark once: the baseline is taken at the steady size. Not part
# of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-600}"
name=soak
warmup=$(( secs / 2 < 180 ? secs / 2 : 180 ))
dir=$(mktemp -d /tmp/vswitch-soak.XXXXXX)
bin="${VSWITCH:-}"
if [ -z "$bin" ]; then
  cargo build --release -q -p vswitch-cli
  bin="${CARGO_TARGET_DIR:-target}/release/vswitch"
fi
for tool in iperf3 ip; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is needed" >&2; exit 2; }
done

topo() {
  cat <<EOF
[switch]
name = "$name"

[[network]]
name = "front"
subnet = "10.64.0.0/24"

[[port]]
name = "a"
network = "front"
netns = "soak-a"
ip = "10.64.0.2"

[[port]]
name = "b"
network = "front"
netns = "soak-b"
ip = "10.64.0.3"

[[port]]
name = "c"
network = "front"
netns = "soak-c"
ip = "10.64.0.4"

[rules]
text = """
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
$1
-A FORWARD -o a -p tcp -m multiport --dports 5201:5203 -j ACCEPT
-A FORWARD -o a -p udp --dport 5202 -j ACCEPT
-A FORWARD -o a -p icmp -j ACCEPT
-A FORWARD -o a -j DROP
COMMIT
"""
EOF
}
topo "" > "$dir/topo.toml"
topo "-A FORWARD -o a -p tcp --dport 23 -j REJECT --reject-with tcp-reset" > "$dir/topo2.toml"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in soak-a soak-b soak-c; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

"$bin" run --config "$dir/topo.toml" > "$dir/run.out" 2> "$dir/run.err" &
switch=$!
pids+=("$switch")
for _ in $(seq 100); do grep -q '^ready' "$dir/run.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$dir/run.out" || { echo "soak: the switch did not start:" >&2; cat "$dir/run.err" >&2; exit 1; }
datapath=$(cut -d' ' -f1 "/proc/$switch/task/$switch/children")

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
for port in 5201 5202 5203; do
  in_ns soak-a iperf3 -s -p "$port" > /dev/null 2>&1 &
  pids+=("$!")
done
sleep 1

# The established connections: their iperf3 fails if either is lost.
in_ns soak-b iperf3 -c 10.64.0.2 -p 5201 -P 2 -t "$secs" -i 0 > "$dir/tcp.log" 2>&1 &
tcp=$!
in_ns soak-c iperf3 -c 10.64.0.2 -p 5202 -u -b 20M -t "$secs" -i 0 > "$dir/udp.log" 2>&1 &
udp=$!

# New connections: a handshake each, answered by the busy server and closed.
(
  end=$(( $(date +%s) + secs ))
  ok=0 failed=0
  while [ "$(date +%s)" -lt "$end" ]; do
    if in_ns soak-c timeout 2 bash -c 'exec 3<>/dev/tcp/10.64.0.2/5203' 2>/dev/null; then
      ok=$((ok + 1))
    else
      failed=$((failed + 1))
    fi
    sleep 0.1
  done
  echo "$ok $failed" > "$dir/connects"
) &
connects=$!

# Reloads every 30 s and RSS samples every 5 s.
start=$(date +%s)
reloads=0 reload_failures=0 next_reload=30
: > "$dir/rss"
while kill -0 "$tcp" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$datapath/status" 2>/dev/null || echo 0)
  tracked=$("$bin" conntrack --name "$name" 2>/dev/null | grep -c . || true)
  echo "$now $rss $tracked" >> "$dir/rss"
  if [ "$now" -ge "$next_reload" ]; then
    file="$dir/topo.toml"; [ $(( reloads % 2 )) -eq 0 ] && file="$dir/topo2.toml"
    "$bin" reload --config "$file" --name "$name" > /dev/null 2>&1 || reload_failures=$((reload_failures + 1))
    reloads=$((reloads + 1))
    next_reload=$(( next_reload + 30 ))
  fi
  sleep 5
done

tcp_ok=0; wait "$tcp" || tcp_ok=$?
udp_ok=0; wait "$udp" || udp_ok=$?
wait "$connects" || true
read -r connects_ok connects_failed < "$dir/connects"

read -r base base_tracked < <(awk -v w="$warmup" '$1 >= w { print $2, $3; exit }' "$dir/rss")
read -r last last_tracked < <(tail -1 "$dir/rss" | cut -d' ' -f2,3)
peak=$(sort -k2 -n "$dir/rss" | tail -1 | cut -d' ' -f2)
growth=$(awk -v b="${base:-0}" -v l="${last:-0}" 'BEGIN { if (b > 0) printf "%.1f", (l - b) * 100 / b; else print "n/a" }')

echo "soak: ${secs} s of traffic, warm-up ${warmup} s"
echo "datapath RSS: ${base:-?} KiB after warm-up, ${last:-?} KiB at the end (growth ${growth}%), peak ${peak:-?} KiB"
echo "tracked connections: ${base_tracked:-?} after warm-up, ${last_tracked:-?} at the end"
echo "samples (seconds, RSS KiB, tracked connections): $dir/rss"
echo "reloads: ${reloads} (${reload_failures} refused)"
echo "new connections: ${connects_ok} completed, ${connects_failed} failed"
grep -E 'sender|receiver' "$dir/tcp.log" | tail -2 | sed 's/^/tcp: /' || true
grep -E 'receiver' "$dir/udp.log" | tail -1 | sed 's/^/udp: /' || true
if [ "$tcp_ok" -eq 0 ]; then
  echo "established connections lost: none"
else
  echo "established connections lost: yes (iperf3 exit $tcp_ok; see $dir/tcp.log)"
fi
[ "$udp_ok" -eq 0 ] || echo "udp stream failed (iperf3 exit $udp_ok)"
kill -TERM "$switch"
wait "$switch" && echo "switch stopped cleanly" || echo "switch exited with $?"
[ "$tcp_ok" -eq 0 ]
