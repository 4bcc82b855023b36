#!/bin/bash
# Reproduces the datapath comparison in BENCHMARKS.md on this machine:
# two network namespaces joined by
#   linux   - the kernel bridge and veth pairs (the reference)
#   ovs     - Open vSwitch's userspace (netdev) datapath, tap ports, userspace TSO
#             (skipped when openvswitch-switch is not installed)
#   vswitch - `vswitch run` with two tap ports on one bridge network
#   vswitch-bp - the same with `busy_poll_us` (BUSY_POLL_US, default 10000):
#             the datapath polls instead of sleeping while frames keep coming
#   vswitch-mq - the same with `threads` (THREADS, default 2) datapath threads
#             and multi-queue TAPs; give it several flows with P
#   vswitch-af - the second namespace behind a veth pair whose host end is an
#             `afpacket` port: the path of a LAN segment or an uplink
#   vswitch-vx - the second namespace is a Linux VTEP across a veth underlay,
#             reached through a `vxlan` port: the overlay path
#   vswitch-mv - the first namespace a macvlan endpoint whose parent is the
#             host end of the second namespace's veth pair: the parent's path
#   floor   - vswitch's example `tap_floor`: two TAPs opened as vswitch opens
#             them and one thread copying frames between them, no pipeline,
#             pinned to the first CPU as vswitch's datapath is: the least any
#             switch with TAP ports does (built unless FLOOR names a binary)
#   floor-bp - the same, polling without sleeping: the floor under vswitch-bp
# and measures, for each, single-stream TCP (iperf3), delivered 64-byte UDP
# frames per second (iperf3 -l 18) and the ping round trip. Then it prints
# vswitch's ratios against the others, which are what the targets are set in:
# all systems are measured in one run because the machine is shared.
#
#   sudo scripts/bench.sh                 # all three, 5 s per test
#   sudo T=10 RULES=1000 scripts/bench.sh vswitch
#   sudo scripts/bench.sh linux vswitch vswitch-bp
#   sudo P=4 scripts/bench.sh linux vswitch vswitch-mq
#   sudo scripts/bench.sh linux floor vswitch
#
# Needs root, iproute2, iperf3, iputils-ping, python3 (for iperf3's JSON), taskset;
# builds target/release/vswitch first unless VSWITCH names a binary.
# Env: T seconds per test (5); RULES extra non-matching FORWARD rules after an
# ESTABLISHED accept in vswitch's ruleset (0); VSWITCH binary; OUT file that
# the table is appended to; BUSY_POLL_US for vswitch-bp (10000); THREADS for
# vswitch-mq (2); P parallel iperf3 streams for TCP and UDP (1); REVERSE=1
# sends from the second namespace to the first (iperf3 -R).
set -u
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench.sh: needs root (network namespaces)" >&2; exit 2; }
for tool in ip iperf3 ping python3 taskset; do
  command -v $tool >/dev/null || { echo "bench.sh: $tool is not installed" >&2; exit 2; }
done
T=${T:-5}; RULES=${RULES:-0}; P=${P:-1}
DIR=; [ -n "${REVERSE:-}" ] && DIR=-R
if [ -z "${VSWITCH:-}" ]; then
  cargo build --release --quiet || exit 2
  VSWITCH=target/release/vswitch
fi
SYSTEMS=${*:-linux ovs vswitch}
W=$(mktemp -d /tmp/vswitch-bench.XXXX)
trap 'rm -rf $W' EXIT
A=vsbA; B=vsbB; IPA=10.98.0.2; IPB=10.98.0.3
UNDERLAY_HOST=198.18.98.1; UNDERLAY_B=198.18.98.2

reset_netns() { ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; true; }

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }

# One row: system, TCP Gbps, UDP 64-byte kpps delivered, mean RTT in µs.
measure() {
  local label=$1 rtt tcp udp
  if ! ip netns exec $A ping -c 3 -W 1 $IPB >/dev/null 2>&1; then
    echo "$label: no connectivity" >&2; echo "$label - - -" >>$W/rows; return
  fi
  rtt=$(ip netns exec $A ping -c 300 -i 0.005 -q $IPB | awk -F/ '/rtt/{print $5*1000}')
  ip netns exec $B iperf3 -s -D -1 -I $W/tcp.pid >/dev/null; sleep 0.5
  tcp=$(ip netns exec $A iperf3 -c $IPB $DIR -P $P -t $T -J |
    json 'round(d["end"]["sum_received"]["bits_per_second"]/1e9, 2)')
  ip netns exec $B iperf3 -s -D -1 -I $W/udp.pid >/dev/null; sleep 0.5
  udp=$(ip netns exec $A iperf3 -c $IPB $DIR -P $P -u -l 18 -b 0 -t $T -J |
    json 'round(d["end"]["sum"]["packets"] * (1 - d["end"]["sum"]["lost_percent"] / 100) / d["end"]["sum"]["seconds"] / 1e3, 1)')
  echo "$label ${tcp:--} ${udp:--} ${rtt:--}" >>$W/rows
}

run_linux() {
  reset_netns; ip link del vsbbr0 2>/dev/null
  ip netns add $A; ip netns add $B
  ip link add vsbbr0 type bridge; ip link set vsbbr0 up
  for n in $A $B; do
    ip link del v$n 2>/dev/null # left by a vswitch-af/-vx/-mv run, if the kernel has not got to it
    ip link add v$n type veth peer name eth0 netns $n
    ip link set v$n master vsbbr0 up
    ip -n $n link set lo up; ip -n $n link set eth0 up
  done
  ip -n $A addr add $IPA/24 dev eth0; ip -n $B addr add $IPB/24 dev eth0
  measure linux
  reset_netns; ip link del vsbbr0
}

# Moves the host's TAPs t$A and t$B into their namespaces as eth0, addressed.
taps_into_netns() {
  for n in $A $B; do
    ip link set t$n netns $n; ip -n $n link set t$n name eth0
    ip -n $n link set lo up; ip -n $n link set eth0 up
  done
  ip -n $A addr add $IPA/24 dev eth0; ip -n $B addr add $IPB/24 dev eth0
}

run_ovs() {
  command -v ovs-vswitchd >/dev/null || { echo "ovs: openvswitch-switch not installed, skipped" >&2; return; }
  reset_netns
  local D=$W/ovs; mkdir -p $D
  export OVS_RUNDIR=$D OVS_LOGDIR=$D OVS_DBDIR=$D
  ovsdb-tool create $D/conf.db /usr/share/openvswitch/vswitch.ovsschema
  ovsdb-server $D/conf.db --remote=punix:$D/db.sock --pidfile=$D/db.pid --detach --log-file=$D/db.log 2>/dev/null
  local V="ovs-vsctl --db=unix:$D/db.sock"
  $V --no-wait init 2>/dev/null
  $V --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
  ovs-vswitchd unix:$D/db.sock --pidfile=$D/vswitchd.pid --detach --log-file=$D/vswitchd.log 2>/dev/null
  $V add-br vsbobr -- set bridge vsbobr datapath_type=netdev
  ip netns add $A; ip netns add $B
  for n in $A $B; do
    $V add-port vsbobr t$n -- set Interface t$n type=tap; sleep 0.3
  done
  taps_into_netns; sleep 1
  measure ovs
  reset_netns; kill $(cat $D/vswitchd.pid) $(cat $D/db.pid) 2>/dev/null; sleep 0.5
}

vswitch_topology() { # $1: busy_poll_us, $2: threads, $3: kind of B's port (tap, afpacket, vxlan, macvlan)
  local driver='driver = "bridge"'
  [ "$3" = macvlan ] && driver=$(printf 'driver = "macvlan"\nparent = "v%s"' $B)
  cat <<EOF
[switch]
name = "bench"
busy_poll_us = $1
threads = $2

[[network]]
name = "n"
$driver
subnet = "10.98.0.0/24"
gateway = "10.98.0.1"
EOF
  printf '\n[[port]]\nname = "%s"\nnetwork = "n"\nkind = "tap"\nnetns = "%s"\nip = "%s"\n' $A $A $IPA
  if [ "$3" = afpacket ]; then
    printf '\n[[port]]\nname = "%s"\nnetwork = "n"\nkind = "afpacket"\ninterface = "v%s"\n' $B $B
  elif [ "$3" = macvlan ]; then
    : # B is on the parent's segment
  elif [ "$3" = vxlan ]; then
    printf '\n[[port]]\nname = "%s"\nnetwork = "n"\nkind = "vxlan"\nvni = 42\nremote = "%s"\nlocal = "%s"\n' \
      $B $UNDERLAY_B $UNDERLAY_HOST
  else
    printf '\n[[port]]\nname = "%s"\nnetwork = "n"\nkind = "tap"\nnetns = "%s"\nip = "%s"\n' $B $B $IPB
  fi
  printf '\n[rules]\ntext = """\n*filter\n:FORWARD ACCEPT [0:0]\n'
  if [ "$RULES" -gt 0 ]; then
    echo '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'
    for i in $(seq 1 "$RULES"); do
      echo "-A FORWARD -s 172.16.$((i / 250)).$((i % 250 + 1)) -p tcp --dport $((1000 + i % 60000)) -j DROP"
    done
  fi
  printf 'COMMIT\n"""\n'
}

run_vswitch() { # $1: label, $2: busy_poll_us, $3: threads, $4: kind of B's port
  local label=${1:-vswitch} kind=${4:-tap}
  reset_netns
  if [ "$kind" != tap ]; then # B behind a veth pair, v$B its host end
    ip link del v$B 2>/dev/null # a deleted namespace's veth goes only when the kernel gets to it
    ip netns add $B; ip link add v$B type veth peer name eth0 netns $B; ip link set v$B up
    ip -n $B link set lo up; ip -n $B link set eth0 up
  fi
  case $kind in
    afpacket|macvlan) ip -n $B addr add $IPB/24 dev eth0 ;;
    vxlan)
      ip addr add $UNDERLAY_HOST/24 dev v$B; ip -n $B addr add $UNDERLAY_B/24 dev eth0
      # A veth leaves checksums to offload, which a UDP socket cannot tell; a wire would not.
      ip netns exec $B ethtool -K eth0 tx off >/dev/null
      ip -n $B link add vx0 type vxlan id 42 remote $UNDERLAY_HOST local $UNDERLAY_B dstport 4789 dev eth0
      ip -n $B addr add $IPB/24 dev vx0; ip -n $B link set vx0 up ;;
  esac
  vswitch_topology "${2:-0}" "${3:-1}" "$kind" >$W/topo.toml
  "$VSWITCH" run --config $W/topo.toml >$W/vswitch.out 2>$W/vswitch.err &
  local pid=$!
  for _ in $(seq 1 100); do grep -q '^ready' $W/vswitch.out 2>/dev/null && break; sleep 0.1; done
  if grep -q '^ready' $W/vswitch.out; then
    measure "$label"
  else
    echo "vswitch: never printed ready:" >&2; tail -5 $W/vswitch.err >&2
  fi
  kill -TERM $pid 2>/dev/null; wait $pid; reset_netns
}

# The first CPU this shell may use, where vswitch pins its first datapath thread.
first_cpu() { taskset -cp $$ | sed 's/.*: *//; s/[-,].*//'; }

run_floor() { # $1: label, $2: the forwarder's flags
  local label=${1:-floor}
  reset_netns
  if [ -z "${FLOOR:-}" ]; then
    cargo build --release --quiet -p vswitch --example tap_floor || return
    FLOOR=target/release/examples/tap_floor
  fi
  ip netns add $A; ip netns add $B
  taskset -c "$(first_cpu)" "$FLOOR" t$A t$B ${2:-} >$W/floor.out 2>$W/floor.err &
  local pid=$!
  for _ in $(seq 1 50); do grep -q '^ready' $W/floor.out 2>/dev/null && break; sleep 0.1; done
  taps_into_netns
  measure "$label"
  kill -TERM $pid 2>/dev/null; wait $pid; reset_netns
}

run_floor-bp() { run_floor floor-bp --busy; }
run_vswitch-bp() { run_vswitch vswitch-bp "${BUSY_POLL_US:-10000}"; }
run_vswitch-mq() { run_vswitch vswitch-mq 0 "${THREADS:-2}"; }
run_vswitch-af() { run_vswitch vswitch-af 0 1 afpacket; }
run_vswitch-vx() { run_vswitch vswitch-vx 0 1 vxlan; }
run_vswitch-mv() { run_vswitch vswitch-mv 0 1 macvlan; }

for s in $SYSTEMS; do
  case $s in linux|ovs|floor|floor-bp|vswitch|vswitch-bp|vswitch-mq|vswitch-af|vswitch-vx|vswitch-mv) run_$s ;; *) echo "bench.sh: unknown system $s" >&2; exit 2 ;; esac
done

{
  printf '%-8s %9s %11s %8s\n' system tcp_gbps udp64_kpps rtt_us
  while read -r name tcp udp rtt; do printf '%-8s %9s %11s %8s\n' "$name" "$tcp" "$udp" "$rtt"; done <$W/rows
  # each vswitch row against each other system measured in this run.
  awk '{v[$1]=$0} END {
    for (m in v) if (m ~ /^vswitch/) for (o in v) if (o !~ /^vswitch/) {
      split(v[m], s, " "); split(v[o], x, " ")
      r = m "/" o
      tcp = (x[2] > 0 && s[2] > 0) ? sprintf("%.2f", s[2] / x[2]) : "-"
      udp = (x[3] > 0 && s[3] > 0) ? sprintf("%.2f", s[3] / x[3]) : "-"
      rtt = (x[4] > 0 && s[4] > 0) ? sprintf("%.2f", s[4] / x[4]) : "-"
      printf "%-16s tcp %s  udp64 %s  rtt %s\n", r, tcp, udp, rtt
    }
  }' $W/rows
} | tee -a "${OUT:-/dev/null}"
