//! Ring 2 for the rule engine in the pipeline: iptables-restore rules and
//! connection tracking deciding what crosses, frames compared byte for
//! byte, rule counters read back exactly.

use std::net::Ipv4Addr;

use packet::icmpv4::{msg, Icmpv4Packet, Icmpv4Repr};
use packet::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use packet::tcp::{TcpFlags, TcpPacket};
use packet::{MacAddr, Parsed};
use vswitch::netfilter::{Counters, Table};
use vswitch::{DropReason, Verdict};
use vswitch_tests::frames::{ether, mac, ping, tcp, udp, Seg};
use vswitch_tests::harness::Harness;

const A: &str = "02:42:0a:0a:00:02";
const B: &str = "02:42:0a:0a:00:03";
const X: &str = "02:42:0a:14:00:02";

/// a and b on "front", x on "back", with `rules` as `[rules]`.
fn topo(rules: &str) -> String {
    format!(
        r#"
[switch]
name = "t"
conntrack_max = 4

[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[network]]
name = "back"
subnet = "10.20.0.0/24"

[[port]]
name = "a"
network = "front"
ip = "10.10.0.2"

[[port]]
name = "b"
network = "front"
ip = "10.10.0.3"

[[port]]
name = "x"
network = "back"
ip = "10.20.0.2"

[rules]
text = """
{rules}"""
"#
    )
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn a(port: u16) -> (MacAddr, Ipv4Addr, u16) {
    (mac(A), ip("10.10.0.2"), port)
}

fn b(port: u16) -> (MacAddr, Ipv4Addr, u16) {
    (mac(B), ip("10.10.0.3"), port)
}

fn counters(h: &Harness, table: Table, chain: &str, rule: usize) -> (u64, u64) {
    let c: Counters = h
        .switch
        .firewall()
        .rules()
        .rule_counters(table, chain, rule)
        .unwrap_or_else(|| panic!("no rule {chain} #{rule}"));
    (c.packets, c.bytes)
}

fn policy(h: &Harness, table: Table, chain: &str) -> (u64, u64) {
    let c = h
        .switch
        .firewall()
        .rules()
        .chain_counters(table, chain)
        .unwrap();
    (c.packets, c.bytes)
}

/// The IPv4 header and what follows it in an emitted frame.
fn ipv4_of(frame: &[u8]) -> Ipv4Packet<&[u8]> {
    let p = Parsed::parse(frame).expect("emitted frame parses");
    let ip = Ipv4Packet::new_checked(&frame[p.l3_offset..]).expect("IPv4");
    assert!(ip.verify_checksum(), "IP checksum");
    ip
}

const OWN_FORWARD: &str = "*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i a -o b -p tcp -m tcp --dport 5432 -j ACCEPT
-A FORWARD -i a -o b -p tcp -m tcp --dport 5433 -j REJECT --reject-with tcp-reset
-A FORWARD -i a -o b -p udp -m udp --dport 5353 -j REJECT
-A FORWARD -i a -o b -p udp -m udp --dport 1000:2000 -j ACCEPT
COMMIT
";

/// The SYN of a handshake, 40 bytes of IP.
fn syn(dport: u16) -> Vec<u8> {
    tcp(a(40000), b(dport), Seg::syn(100), b"")
}

fn handshake(h: &mut Harness) {
    let s = h.send("a", &syn(5432));
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    let r = h.send("b", &tcp(b(5432), a(40000), Seg::syn_ack(900, 101), b""));
    assert_eq!(r.verdict, Verdict::Forwarded(1), "SYN/ACK by ESTABLISHED");
    let s = h.send("a", &tcp(a(40000), b(5432), Seg::ack(101, 901), b""));
    assert_eq!(s.verdict, Verdict::Forwarded(1));
}

#[test]
fn allowed_port_passes_and_replies_return_as_established() {
    let mut h = Harness::new("fw_allowed", &topo(OWN_FORWARD));
    let f = syn(5432);
    let s = h.send("a", &f);
    assert_eq!(s.ports(), ["b"]);
    assert_eq!(s.frames[0].1, f, "forwarded frame changed");
    h.send("b", &tcp(b(5432), a(40000), Seg::syn_ack(900, 101), b""));
    h.send("a", &tcp(a(40000), b(5432), Seg::ack(101, 901), b""));
    assert_eq!(counters(&h, Table::Filter, "FORWARD", 2), (1, 40));
    assert_eq!(counters(&h, Table::Filter, "FORWARD", 1), (2, 80));

    // Other ports, and b starting a connection of its own, meet the policy.
    let s = h.send("a", &syn(80));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    assert!(s.frames.is_empty());
    let s = h.send("b", &tcp(b(5000), a(22), Seg::syn(1), b""));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    assert_eq!(policy(&h, Table::Filter, "FORWARD"), (2, 80));
    assert_eq!(h.stats("a").drops(DropReason::Filtered), 1);
    assert_eq!(h.stats("b").drops(DropReason::Filtered), 1);
    // Only the accepted connection is tracked.
    assert_eq!(h.switch.firewall().conntrack().len(), 1);
}

#[test]
fn reject_with_tcp_reset_answers_in_the_servers_name() {
    let mut h = Harness::new("fw_reset", &topo(OWN_FORWARD));
    let s = h.send("a", &syn(5433));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Rejected));
    assert_eq!(s.ports(), ["a"]);
    let rst = &s.frames[0].1;
    let p = Parsed::parse(rst).unwrap();
    assert_eq!((p.src, p.dst), (mac(B), mac(A)));
    let ipv4 = ipv4_of(rst);
    assert_eq!(
        (ipv4.src_addr(), ipv4.dst_addr()),
        (ip("10.10.0.3"), ip("10.10.0.2"))
    );
    let t = TcpPacket::new_checked(ipv4.payload()).unwrap();
    assert!(t.verify_checksum_v4(ipv4.src_addr(), ipv4.dst_addr()));
    assert_eq!((t.src_port(), t.dst_port()), (5433, 40000));
    assert_eq!(t.flags(), TcpFlags(TcpFlags::RST.0 | TcpFlags::ACK.0));
    assert_eq!((t.seq_number(), t.ack_number()), (0, 101));
    assert_eq!(counters(&h, Table::Filter, "FORWARD", 3), (1, 40));
    assert_eq!(h.switch.firewall().conntrack().len(), 0);
}

#[test]
fn reject_answers_udp_with_port_unreachable_from_the_gateway() {
    let mut h = Harness::new("fw_unreach", &topo(OWN_FORWARD));
    let f = udp(a(40000), b(5353), b"query");
    let s = h.send("a", &f);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Rejected));
    assert_eq!(s.ports(), ["a"]);
    let p = Parsed::parse(&s.frames[0].1).unwrap();
    assert_eq!(p.dst, mac(A));
    assert_eq!(p.src, MacAddr::from_ipv4(ip("10.10.0.1")));
    let ipv4 = ipv4_of(&s.frames[0].1);
    assert_eq!(ipv4.src_addr(), ip("10.10.0.1"));
    let icmp = Icmpv4Packet::new_checked(ipv4.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!((icmp.msg_type(), icmp.code()), (msg::DST_UNREACHABLE, 3));
    assert_eq!(icmp.data(), &f[14..], "quotes the datagram");
    assert_eq!(counters(&h, Table::Filter, "FORWARD", 4), (1, 33));
}

#[test]
fn icmp_errors_about_tracked_flows_are_related() {
    let mut h = Harness::new("fw_related", &topo(OWN_FORWARD));
    let dgram = udp(a(40000), b(1500), b"hi");
    assert_eq!(h.send("a", &dgram).verdict, Verdict::Forwarded(1));
    let error = |quoted: &[u8]| {
        let icmp = Icmpv4Repr::DstUnreachable {
            code: 3,
            invoking: &quoted[14..],
        };
        let mut i = vec![0; icmp.buffer_len()];
        icmp.emit(&mut i);
        let mut ipb = vec![0; 20 + i.len()];
        Ipv4Repr {
            src: ip("10.10.0.3"),
            dst: ip("10.10.0.2"),
            protocol: protocol::ICMP,
            ttl: 64,
            payload_len: i.len(),
            ident: 7,
            dont_frag: false,
            dscp_ecn: 0,
        }
        .emit(&mut ipb[..20]);
        ipb[20..].copy_from_slice(&i);
        ether(mac(A), mac(B), 0x0800, &ipb)
    };
    let s = h.send("b", &error(&dgram));
    assert_eq!(s.verdict, Verdict::Forwarded(1), "RELATED passes");
    // An error about a flow nobody tracks is INVALID: the policy drops it.
    let stranger = udp(a(40001), b(1501), b"hi");
    let s = h.send("b", &error(&stranger));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    assert_eq!(counters(&h, Table::Filter, "FORWARD", 1).0, 1);
}

#[test]
fn established_flows_skip_the_rules_but_count_exactly() {
    let mut h = Harness::new("fw_cache", &topo(OWN_FORWARD));
    handshake(&mut h);
    let data = tcp(a(40000), b(5432), Seg::ack(101, 901), &[7; 100]);
    for _ in 0..50 {
        let s = h.send("a", &data);
        assert_eq!(s.verdict, Verdict::Forwarded(1));
        assert_eq!(s.frames[0].1, data);
    }
    // SYN/ACK, ACK, then 50 segments of 140 bytes.
    assert_eq!(
        counters(&h, Table::Filter, "FORWARD", 1),
        (52, 40 + 40 + 50 * 140)
    );

    // New rules are a new generation: cached verdicts no longer hold.
    let strict =
        topo("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dport 5432 -j DROP\nCOMMIT\n");
    let cfg = vswitch::config::parse(&strict, std::path::Path::new("strict.toml")).unwrap();
    let strict = vswitch::firewall::load_rules(&cfg).unwrap();
    h.switch.firewall_mut().set_rules(strict);
    let s = h.send("a", &data);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    assert_eq!(counters(&h, Table::Filter, "FORWARD", 1), (1, 140));
}

#[test]
fn invalid_packets_meet_an_invalid_rule_before_the_generated_ones() {
    let rules = "*filter\n-A FORWARD -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n";
    let mut h = Harness::new("fw_invalid", &topo(rules));
    // A stray ACK belongs to no connection.
    let s = h.send("a", &tcp(a(40000), b(80), Seg::ack(5, 5), b""));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    assert_eq!(counters(&h, Table::Filter, "FORWARD", 1), (1, 40));
    // FORWARD was not declared, so the generated rules follow: front talks
    // within itself.
    assert_eq!(h.send("a", &syn(80)).verdict, Verdict::Forwarded(1));
    let saved = h.switch.firewall().rules().save(Some(Table::Filter));
    let forward: Vec<&str> = saved
        .lines()
        .filter(|l| l.starts_with("-A FORWARD"))
        .collect();
    assert_eq!(
        forward[0],
        "-A FORWARD -m conntrack --ctstate INVALID -j DROP"
    );
    assert_eq!(forward[1], "-A FORWARD -j VSWITCH-USER");
}

#[test]
fn networks_route_when_the_user_chain_allows() {
    let rules = "*filter
:VSWITCH-USER - [0:0]
-A VSWITCH-USER -i front -o back -j ACCEPT
-A VSWITCH-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
";
    let mut h = Harness::new("fw_route", &topo(rules));
    let gw = MacAddr::from_ipv4(ip("10.10.0.1"));
    let f = ping(
        (mac(A), ip("10.10.0.2")),
        (gw, ip("10.20.0.2")),
        9,
        1,
        b"abc",
    );
    let s = h.send("a", &f);
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    assert_eq!(s.ports(), ["x"]);
    assert_eq!(ipv4_of(&s.frames[0].1).ttl(), 63);
    // Isolation runs before the generated ESTABLISHED accept, as Docker's
    // does, so the reply returns by the user chain's own ESTABLISHED rule.
    let back_gw = MacAddr::from_ipv4(ip("10.20.0.1"));
    let reply = {
        let icmp = Icmpv4Repr::EchoReply {
            ident: 9,
            seq_no: 1,
            data: b"abc",
        };
        let mut i = vec![0; icmp.buffer_len()];
        icmp.emit(&mut i);
        let mut ipb = vec![0; 20 + i.len()];
        Ipv4Repr {
            src: ip("10.20.0.2"),
            dst: ip("10.10.0.2"),
            protocol: protocol::ICMP,
            ttl: 64,
            payload_len: i.len(),
            ident: 3,
            dont_frag: false,
            dscp_ecn: 0,
        }
        .emit(&mut ipb[..20]);
        ipb[20..].copy_from_slice(&i);
        ether(back_gw, mac(X), 0x0800, &ipb)
    };
    let s = h.send("x", &reply);
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    assert_eq!(s.ports(), ["a"]);
    // x starting something of its own is isolated by the generated chains.
    let f = ping(
        (mac(X), ip("10.20.0.2")),
        (back_gw, ip("10.10.0.2")),
        10,
        1,
        b"",
    );
    let s = h.send("x", &f);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    assert_eq!(counters(&h, Table::Filter, "VSWITCH-USER", 1), (1, 31));
    assert_eq!(counters(&h, Table::Filter, "VSWITCH-USER", 2), (1, 31));
}

#[test]
fn mangle_rewrites_ttl_and_dscp_with_valid_checksums() {
    let rules = "*mangle
-A FORWARD -p udp -j TTL --ttl-set 9
-A FORWARD -p udp -j DSCP --set-dscp-class EF
COMMIT
";
    let mut h = Harness::new("fw_mangle", &topo(rules));
    let s = h.send("a", &udp(a(1), b(2), b"x"));
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    let out = ipv4_of(&s.frames[0].1);
    assert_eq!((out.ttl(), out.dscp_ecn()), (9, 0xb8));
}

#[test]
fn input_and_output_chains_guard_the_gateway() {
    let gw = MacAddr::from_ipv4(ip("10.10.0.1"));
    let echo = ping((mac(A), ip("10.10.0.2")), (gw, ip("10.10.0.1")), 1, 1, b"");
    let mut h = Harness::new(
        "fw_input",
        &topo("*filter\n-A INPUT -p icmp -j DROP\nCOMMIT\n"),
    );
    let s = h.send("a", &echo);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    assert!(s.frames.is_empty());

    let rules = "*filter\n-A OUTPUT -p icmp -m icmp --icmp-type echo-reply -j DROP\nCOMMIT\n";
    let mut h = Harness::new("fw_output", &topo(rules));
    let s = h.send("a", &echo);
    assert_eq!(s.verdict, Verdict::Local);
    assert!(s.frames.is_empty(), "the reply was dropped in OUTPUT");
    assert_eq!(counters(&h, Table::Filter, "OUTPUT", 1), (1, 28));
}

#[test]
fn notrack_leaves_packets_untracked() {
    let rules = "*raw
-A PREROUTING -p udp -m udp --dport 9 -j NOTRACK
COMMIT
*filter
-A FORWARD -m conntrack --ctstate UNTRACKED -p udp --dport 10 -j DROP
COMMIT
";
    let mut h = Harness::new("fw_notrack", &topo(rules));
    assert_eq!(
        h.send("a", &udp(a(1), b(9), b"")).verdict,
        Verdict::Forwarded(1)
    );
    assert_eq!(h.switch.firewall().conntrack().len(), 0);
    assert_eq!(
        h.send("a", &udp(a(1), b(10), b"")).verdict,
        Verdict::Forwarded(1)
    );
    assert_eq!(h.switch.firewall().conntrack().len(), 1);
}

#[test]
fn a_full_table_evicts_unassured_and_refuses_when_all_are_assured() {
    let mut h = Harness::new("fw_full", &topo(OWN_FORWARD));
    // Four one-way UDP flows fill the table; a fifth evicts one of them.
    for port in 1000..1005 {
        assert_eq!(
            h.send("a", &udp(a(port), b(1500), b"")).verdict,
            Verdict::Forwarded(1)
        );
    }
    assert_eq!(h.switch.firewall().conntrack().len(), 4);
    // Four assured TCP connections leave nothing to evict.
    let mut h = Harness::new("fw_full_assured", &topo(OWN_FORWARD));
    for sport in 40000..40004 {
        h.send("a", &tcp(a(sport), b(5432), Seg::syn(100), b""));
        h.send("b", &tcp(b(5432), a(sport), Seg::syn_ack(900, 101), b""));
        h.send("a", &tcp(a(sport), b(5432), Seg::ack(101, 901), b""));
        h.send("b", &tcp(b(5432), a(sport), Seg::ack(901, 101), &[1]));
    }
    let s = h.send("a", &tcp(a(41000), b(5432), Seg::syn(1), b""));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::ConntrackFull));
    assert!(s.frames.is_empty());
    // The established ones keep flowing.
    let s = h.send("a", &tcp(a(40000), b(5432), Seg::ack(101, 902), &[1]));
    assert_eq!(s.verdict, Verdict::Forwarded(1));
}

#[test]
fn rule_errors_name_the_line_in_topo_toml() {
    let text = topo("*filter\n-A FORWARD -p tcp --dprt 5 -j ACCEPT\nCOMMIT\n");
    let cfg = vswitch::config::parse(&text, std::path::Path::new("topo.toml")).unwrap();
    let err = match vswitch::Switch::new(&cfg) {
        Ok(_) => panic!("bad rule accepted"),
        Err(e) => e.to_string(),
    };
    let line = text
        .lines()
        .position(|l| l.contains("--dprt"))
        .map(|i| i + 1)
        .unwrap();
    assert!(err.starts_with(&format!("topo.toml:{line}:")), "{err}");
    assert!(err.contains("--dprt"), "{err}");
}

#[test]
fn ipv6_and_arp_pass_untouched_by_ipv4_rules() {
    let rules = "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n";
    let mut h = Harness::new("fw_v6", &topo(rules));
    // A bare IPv6 header: no next header, no payload.
    let mut v6 = vec![0u8; 40];
    v6[0] = 0x60;
    v6[6] = 59;
    v6[7] = 64;
    let s = h.send("a", &ether(mac(B), mac(A), 0x86dd, &v6));
    assert_eq!(s.verdict, Verdict::Forwarded(1));
}

/// `iptables-save -t filter` of a Docker host with the default bridge, a
/// container publishing port 80 and a DOCKER-USER rule guarding redis.
const DOCKER_FILTER: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -p tcp -m tcp --dport 6379 -j DROP
-A DOCKER-USER -j RETURN
COMMIT
";

#[test]
fn a_docker_hosts_rules_behave_as_docker_intends() {
    let topo = format!(
        r#"
[[network]]
name = "docker0"
subnet = "172.17.0.0/16"

[[network]]
name = "other"
subnet = "172.18.0.0/16"

[[port]]
name = "web"
network = "docker0"
ip = "172.17.0.2"

[[port]]
name = "cache"
network = "docker0"
ip = "172.17.0.3"

[[port]]
name = "outsider"
network = "other"
ip = "172.18.0.2"

[rules]
text = """
{DOCKER_FILTER}"""
"#
    );
    let mut h = Harness::new("fw_docker", &topo);
    let ep = |s: &str, port: u16| (MacAddr::from_ipv4(ip(s)), ip(s), port);
    // Containers on docker0 talk freely, except to what DOCKER-USER drops.
    let f = tcp(
        ep("172.17.0.3", 40000),
        ep("172.17.0.2", 8000),
        Seg::syn(1),
        b"",
    );
    assert_eq!(h.send("cache", &f).verdict, Verdict::Forwarded(1));
    let f = tcp(
        ep("172.17.0.2", 40000),
        ep("172.17.0.3", 6379),
        Seg::syn(1),
        b"",
    );
    assert_eq!(
        h.send("web", &f).verdict,
        Verdict::Dropped(DropReason::Filtered)
    );
    // From another network, only the published port gets in.
    let gw = MacAddr::from_ipv4(ip("172.18.0.1"));
    let to_web = |port| {
        tcp(
            ep("172.18.0.2", 40000),
            (gw, ip("172.17.0.2"), port),
            Seg::syn(1),
            b"",
        )
    };
    let s = h.send("outsider", &to_web(80));
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    assert_eq!(s.ports(), ["web"]);
    assert_eq!(
        h.send("outsider", &to_web(81)).verdict,
        Verdict::Dropped(DropReason::Filtered)
    );
    // The saved text is what was given, beside the generated chains that
    // the user's FORWARD no longer jumps to.
    let saved = h.switch.firewall().rules().save(Some(Table::Filter));
    let ours: Vec<&str> = saved.lines().filter(|l| !l.contains("VSWITCH")).collect();
    let given = DOCKER_FILTER.replace(":FORWARD DROP [0:0]", ":FORWARD DROP [1:40]");
    assert_eq!(ours, given.lines().collect::<Vec<_>>());
}
