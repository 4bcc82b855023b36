//! The engine's behaviour, in memory: parsing and its errors, every match
//! and target, chain semantics with exact counters, printers, layering.

use std::net::Ipv4Addr;

use packet::MacAddr;

use super::*;
use crate::time::Timestamp;

pub(super) fn ifaces() -> Interfaces {
    Interfaces {
        ports: vec!["web".into(), "db".into(), "uplink".into(), "veth0".into()],
        networks: vec!["front".into(), "docker0".into()],
    }
}

pub(super) const WEB: Option<Iface> = Some(Iface {
    port: 0,
    network: 0,
});
pub(super) const DB: Option<Iface> = Some(Iface {
    port: 1,
    network: 0,
});
pub(super) const UPLINK: Option<Iface> = Some(Iface {
    port: 2,
    network: Iface::NO_NETWORK,
});
pub(super) const VETH0: Option<Iface> = Some(Iface {
    port: 3,
    network: 1,
});

pub(super) fn parse(text: &str) -> Result<Ruleset, RuleErrors> {
    Ruleset::parse(text, &Origin::new("rules.v4"), &ifaces())
}

pub(super) fn load(text: &str) -> Ruleset {
    parse(text).unwrap_or_else(|e| panic!("{e}\n--- in ---\n{text}"))
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Errors for one rule line in FORWARD (line 3 of the text).
fn rule_err(opts: &str) -> String {
    err(&format!(
        "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD {opts}\nCOMMIT\n"
    ))
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub(super) fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> PacketInfo {
    PacketInfo {
        src: ip(src),
        dst: ip(dst),
        protocol: 6,
        len: 60,
        l4: L4Info::Tcp {
            sport,
            dport,
            flags,
        },
        ..PacketInfo::default()
    }
}

pub(super) fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> PacketInfo {
    PacketInfo {
        src: ip(src),
        dst: ip(dst),
        protocol: 17,
        len: 40,
        l4: L4Info::Udp { sport, dport },
        ..PacketInfo::default()
    }
}

fn icmp(kind: u8, code: u8) -> PacketInfo {
    PacketInfo {
        src: ip("10.0.0.2"),
        dst: ip("10.0.0.3"),
        protocol: 1,
        len: 84,
        l4: L4Info::Icmp { kind, code },
        ..PacketInfo::default()
    }
}

pub(super) fn run(rs: &mut Ruleset, table: Table, hook: Hook, pkt: &PacketInfo) -> Outcome {
    rs.evaluate(
        table,
        hook,
        pkt,
        &mut Meta::default(),
        Timestamp::ZERO,
        &mut NoTrace,
    )
}

/// Whether a FORWARD rule made of `opts` matches `pkt`.
fn hits(opts: &str, pkt: &PacketInfo) -> bool {
    let mut rs = load(&format!(
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD {opts} -j ACCEPT\nCOMMIT\n"
    ));
    run(&mut rs, Table::Filter, Hook::Forward, pkt) == Outcome::Accept
}

fn hits_meta(opts: &str, pkt: &PacketInfo, meta: Meta) -> bool {
    let mut rs = load(&format!(
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD {opts} -j ACCEPT\nCOMMIT\n"
    ));
    let mut m = meta;
    rs.evaluate(
        Table::Filter,
        Hook::Forward,
        pkt,
        &mut m,
        Timestamp::ZERO,
        &mut NoTrace,
    ) == Outcome::Accept
}

/// Runs a mangle FORWARD target and returns what it did to Meta.
fn mangle(target: &str, pkt: &PacketInfo, meta: Meta) -> Meta {
    let mut rs = load(&format!("*mangle\n-A FORWARD {target}\nCOMMIT\n"));
    let mut m = meta;
    assert_eq!(
        rs.evaluate(
            Table::Mangle,
            Hook::Forward,
            pkt,
            &mut m,
            Timestamp::ZERO,
            &mut NoTrace
        ),
        Outcome::Accept
    );
    m
}

/// parse -> save -> parse gives the same ruleset, and save is a fixpoint.
fn round_trip(text: &str) -> String {
    let a = load(text);
    let saved = a.save_with_counters(None);
    let b = load(&saved);
    assert_eq!(a, b, "round trip changed the rules:\n{saved}");
    assert_eq!(b.save_with_counters(None), saved);
    a.save(None)
}

#[test]
fn empty_ruleset_accepts_everything() {
    assert_eq!(
        Ruleset::default().save(Some(Table::Raw)),
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    );
    let mut rs = Ruleset::default();
    for t in Table::ALL {
        for h in Hook::ALL {
            assert!(rs.is_empty(t, h));
            assert_eq!(
                run(&mut rs, t, h, &tcp("1.1.1.1", 1, "2.2.2.2", 2, 0)),
                Outcome::Accept
            );
        }
    }
    assert_eq!(rs.save(None), "");
}

#[test]
fn builtin_chains_per_table() {
    let rs = load("*raw\nCOMMIT\n*mangle\nCOMMIT\n*nat\nCOMMIT\n*filter\nCOMMIT\n");
    assert_eq!(
        rs.rules_spec(Table::Mangle),
        "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n"
    );
    assert_eq!(
        rs.rules_spec(Table::Nat),
        "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n"
    );
    assert_eq!(
        rs.rules_spec(Table::Raw),
        "-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n"
    );
    assert_eq!(
        rs.rules_spec(Table::Filter),
        "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
    );
    assert!(err("*filter\n-A PREROUTING -j ACCEPT\nCOMMIT\n")
        .contains("no chain \"PREROUTING\" in table filter"));
}

#[test]
fn the_issue_example_accepts_web_to_db_only() {
    let text = "*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i web -o db -p tcp --dport 5432 -j ACCEPT
-A FORWARD -o db -j DROP
COMMIT
";
    let mut rs = load(text);
    let mut p = tcp("10.10.0.2", 40000, "10.10.0.3", 5432, tcp_flags::SYN);
    p.iif = WEB;
    p.oif = DB;
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &p),
        Outcome::Accept
    );
    p.l4 = L4Info::Tcp {
        sport: 40000,
        dport: 22,
        flags: 0,
    };
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &p),
        Outcome::Drop
    );
    p.oif = WEB;
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &p),
        Outcome::Accept
    );
    assert_eq!(
        rs.rule_counters(Table::Filter, "FORWARD", 1),
        Some(Counters {
            packets: 1,
            bytes: 60
        })
    );
    assert_eq!(
        rs.rule_counters(Table::Filter, "FORWARD", 2),
        Some(Counters {
            packets: 1,
            bytes: 60
        })
    );
    assert_eq!(
        rs.chain_counters(Table::Filter, "FORWARD"),
        Some(Counters {
            packets: 1,
            bytes: 60
        })
    );
    assert_eq!(
        rs.save(Some(Table::Filter)),
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [1:60]\n:OUTPUT ACCEPT [0:0]\n\
         -A FORWARD -i web -o db -p tcp -m tcp --dport 5432 -j ACCEPT\n-A FORWARD -o db -j DROP\nCOMMIT\n"
    );
}

#[test]
fn canonical_order_and_spelling() {
    let rs = load(
        "*filter\n-A FORWARD -p tcp -o db --dport 5432 -i web -s 10.1.2.3/8 -j ACCEPT\nCOMMIT\n",
    );
    assert_eq!(
        rs.rules_spec(Table::Filter).lines().last().unwrap(),
        "-A FORWARD -s 10.0.0.0/8 -i web -o db -p tcp -m tcp --dport 5432 -j ACCEPT"
    );
    let rs = load("*filter\n-A INPUT ! --source 1.2.3.4 --protocol 17 -m udp ! --sport 1:1023 -j DROP\nCOMMIT\n");
    assert_eq!(
        rs.rules_spec(Table::Filter).lines().last().unwrap(),
        "-A INPUT ! -s 1.2.3.4/32 -p udp -m udp ! --sport 1:1023 -j DROP"
    );
}

#[test]
fn file_syntax() {
    let text = "# comment line
*filter

:INPUT DROP [3:180]
:OUTPUT - [0:0]
:MY-CHAIN - [7:99]
-N OTHER
[5:300] -A INPUT -m comment --comment 'single quoted' -j MY-CHAIN # trailing
-A MY-CHAIN -m comment --comment \"double \\\"quoted\\\"\" -j RETURN
-I INPUT -p icmp -j ACCEPT
-I INPUT 2 -p udp -j ACCEPT
-P FORWARD DROP
COMMIT
";
    let rs = load(text);
    assert_eq!(
        rs.save_with_counters(None),
        "*filter
:INPUT DROP [3:180]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:MY-CHAIN - [7:99]
:OTHER - [0:0]
[0:0] -A INPUT -p icmp -j ACCEPT
[0:0] -A INPUT -p udp -j ACCEPT
[5:300] -A INPUT -m comment --comment \"single quoted\" -j MY-CHAIN
[0:0] -A MY-CHAIN -m comment --comment \"double \\\"quoted\\\"\" -j RETURN
COMMIT
"
    );
    round_trip(text);
}

#[test]
fn edit_commands() {
    let rs = load(
        "*filter
-A INPUT -p tcp -j ACCEPT
-A INPUT -p udp -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-D INPUT 1
-D INPUT -p icmp -j ACCEPT
-R INPUT 1 -p gre -j DROP
-N GONE
-X GONE
-N EMPTY
-A EMPTY -j RETURN
-F EMPTY
-X EMPTY
-A FORWARD -j DROP
-F FORWARD
COMMIT
",
    );
    assert_eq!(
        rs.rules_spec(Table::Filter),
        "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-A INPUT -p gre -j DROP\n"
    );
    let e = err("*filter\n-N X\n-A INPUT -j X\n-X X\nCOMMIT\n");
    assert!(
        e.contains("rules.v4:4:4: chain X is still used by a rule in INPUT"),
        "{e}"
    );
    let e = err("*filter\n-N X\n-A X -j ACCEPT\n-X X\nCOMMIT\n");
    assert!(e.contains("rules.v4:4:4: chain X is not empty"), "{e}");
    assert!(err("*filter\n-D INPUT -p tcp -j ACCEPT\nCOMMIT\n").contains("no such rule"));
    assert!(err("*filter\n-I INPUT 3 -j ACCEPT\nCOMMIT\n").contains("out of range"));
    assert!(err("*filter\n-P MYC DROP\nCOMMIT\n").contains("no chain"));
    assert!(err("*filter\n-N MYC\n-P MYC DROP\nCOMMIT\n")
        .contains("only built-in chains have a policy"));
    assert!(err("*filter\n-X INPUT\nCOMMIT\n").contains("built in"));
    assert!(err("*filter\n-N X\n-N X\nCOMMIT\n").contains("already exists"));
}

#[test]
fn table_sections_must_commit() {
    let e = err("*filter\n-A INPUT -j ACCEPT\n");
    assert_eq!(e, "rules.v4:1:1: table filter has no COMMIT");
    let e = err("*filter\n*nat\nCOMMIT\n");
    assert!(
        e.contains("rules.v4:2:1: *nat before COMMIT of table filter (line 1)"),
        "{e}"
    );
    assert!(err("COMMIT\n").contains("COMMIT outside a table"));
    assert!(err("-A INPUT -j ACCEPT\n").contains("outside a table"));
    assert!(err("*filter\nCOMMIT\n*filter\nCOMMIT\n").contains("table filter given twice"));
    assert!(err("*fliter\nCOMMIT\n").contains("unknown table \"fliter\""));
}

#[test]
fn errors_name_file_line_column_and_token() {
    let origin = Origin::with_line_offset("topo.toml", 10);
    let text = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p tcp --dprt 80 -j ACCEPT\n-A FORWARD -j ACCEPTT\nCOMMIT\n";
    let e = Ruleset::parse(text, &origin, &ifaces())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "topo.toml:13:19: unknown option \"--dprt\" (did you mean --dport?)\n\
         topo.toml:14:15: unknown target or chain \"ACCEPTT\" (did you mean ACCEPT?)"
    );
    assert_eq!(
        rule_err("-m foo -j ACCEPT"),
        "rules.v4:3:15: unknown match \"foo\""
    );
    assert_eq!(
        rule_err("-m tpc --dport 1"),
        "rules.v4:3:15: unknown match \"tpc\" (did you mean tcp?)"
    );
    assert_eq!(
        rule_err("--dport 80 -j ACCEPT"),
        "rules.v4:3:12: unknown option \"--dport\" (ports need -p tcp or -p udp first)"
    );
    assert_eq!(
        rule_err("-p tcp --dport ! 80 -j ACCEPT"),
        "rules.v4:3:27: \"--dport ! ...\" is the old placement of '!'; write \"! --dport ...\""
    );
    assert_eq!(rule_err("-s 10.0.0.300 -j ACCEPT"), "rules.v4:3:15: bad address \"10.0.0.300\": expected an IPv4 address or CIDR like 10.0.0.0/8 (host names are not resolved)");
    assert_eq!(rule_err("-i wbe -j ACCEPT"), "rules.v4:3:15: unknown interface \"wbe\": no port or network has that name (did you mean web?)");
    assert_eq!(rule_err("-p tcp --dport 70000 -j ACCEPT"), "rules.v4:3:27: bad port \"70000\": expected a number 0-65535 (service names are not looked up)");
    assert_eq!(rule_err("-j"), "rules.v4:3:12: option -j needs a value");
    assert_eq!(
        rule_err("-p tcp -j ACCEPT extra"),
        "rules.v4:3:29: unexpected \"extra\": expected an option"
    );
    assert_eq!(
        rule_err("-s 1.2.3.4 -s 1.2.3.5"),
        "rules.v4:3:23: -s given twice"
    );
    assert_eq!(
        rule_err("! -j ACCEPT"),
        "rules.v4:3:14: -j cannot be negated with '!'"
    );
    assert_eq!(
        rule_err("-p tcp !"),
        "rules.v4:3:19: '!' at the end of the rule negates nothing"
    );
    assert_eq!(
        rule_err("-m comment --comment \"open"),
        "rules.v4:3:33: unterminated quote"
    );
    assert_eq!(
        rule_err("-m tcp --dport 1"),
        "rules.v4:3:15: -m tcp needs -p tcp"
    );
    assert_eq!(
        rule_err("-m mac"),
        "rules.v4:3:15: -m mac needs --mac-source"
    );
    assert_eq!(rule_err("-p all ! -p tcp"), "rules.v4:3:21: -p given twice");
    assert_eq!(
        rule_err("! -p all"),
        "rules.v4:3:17: ! -p all would never match"
    );
    assert_eq!(
        rule_err("-m multiport -p tcp --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"),
        "rules.v4:3:41: too many ports: multiport takes at most 15 (a range counts as two)"
    );
    assert_eq!(
        rule_err("-j LOG --log-level loud"),
        "rules.v4:3:31: bad --log-level \"loud\": 0-7 or a name like warning, info, debug"
    );
    assert_eq!(
        rule_err("-t nat"),
        "rules.v4:3:12: -t is not used in restore text: start a section with *table"
    );
    // Several errors are all reported, in order.
    let e = err("*filter\n-A INPUT -x\n-A NOPE -j ACCEPT\n:X DROP [0:0]\nbogus\nCOMMIT\n");
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(
        lines,
        [
            "rules.v4:2:10: unknown option \"-x\"",
            "rules.v4:3:4: no chain \"NOPE\" in table filter (declare it with :NOPE - [0:0])",
            "rules.v4:4:4: user chain X has no policy: write :X - [0:0]",
            "rules.v4:5:1: unexpected \"bogus\": expected *table, :CHAIN, a command like -A, COMMIT or a # comment",
        ]
    );
}

#[test]
fn chain_names_and_declarations() {
    assert!(err("*filter\n:ACCEPT - [0:0]\nCOMMIT\n").contains("clashes with a target"));
    assert!(err("*filter\n:-X - [0:0]\nCOMMIT\n").contains("bad chain name"));
    assert!(err("*filter\n:INPUT REJECT [0:0]\nCOMMIT\n").contains("bad policy \"REJECT\""));
    assert!(err("*filter\n:INPUT ACCEPT [x:0]\nCOMMIT\n").contains("bad counters"));
    assert!(
        err("*filter\n:INPUT ACCEPT [0:0]\n:INPUT DROP [0:0]\nCOMMIT\n").contains("declared twice")
    );
    assert!(
        err(&format!("*filter\n:{} - [0:0]\nCOMMIT\n", "X".repeat(29)))
            .contains("1 to 28 characters")
    );
    assert!(
        err("*filter\n-A INPUT -j INPUT\nCOMMIT\n").contains("cannot jump to built-in chain INPUT")
    );
    assert!(err("*filter\n-A INPUT -g ACCEPT\nCOMMIT\n").contains("-g needs a user chain"));
    // A chain may be named before its declaration; it resolves at COMMIT.
    load("*filter\n-A INPUT -j LATER\n:LATER - [0:0]\nCOMMIT\n");
}

#[test]
fn addresses_and_protocols() {
    let p = tcp("10.1.2.3", 1000, "192.168.1.1", 80, 0);
    assert!(hits("-s 10.0.0.0/8", &p));
    assert!(hits("-s 10.1.2.3", &p));
    assert!(hits("-s 10.1.0.0/255.255.0.0", &p));
    assert!(!hits("-s 11.0.0.0/8", &p));
    assert!(hits("! -s 11.0.0.0/8", &p));
    assert!(!hits("! -s 10.0.0.0/8", &p));
    assert!(hits("-d 192.168.1.0/24", &p) && !hits("-d 192.168.2.0/24", &p));
    assert!(hits("! -d 192.168.2.0/24", &p));
    assert!(hits("-s 0.0.0.0/0", &p) && !hits("! -s 0.0.0.0/0", &p));
    assert!(hits("-p tcp", &p) && hits("-p 6", &p) && hits("-p TCP", &p) && hits("-p all", &p));
    assert!(!hits("-p udp", &p) && hits("! -p udp", &p) && !hits("! -p tcp", &p));
    for (name, num) in [
        ("sctp", 132),
        ("gre", 47),
        ("esp", 50),
        ("ah", 51),
        ("ipv6-icmp", 58),
        ("icmpv6", 58),
        ("igmp", 2),
    ] {
        let q = PacketInfo {
            protocol: num,
            ..PacketInfo::default()
        };
        assert!(hits(&format!("-p {name}"), &q), "{name}");
        assert!(!hits(&format!("-p {name}"), &p), "{name}");
    }
    let frag = PacketInfo {
        fragment: true,
        ..p
    };
    assert!(hits("-f", &frag) && !hits("-f", &p) && hits("! -f", &p));
    assert!(rule_err("-s ::1").contains("IPv6 addresses are not filtered by this engine"));
}

#[test]
fn interfaces_by_port_network_and_wildcard() {
    let mut p = tcp("10.0.0.2", 1, "10.0.0.3", 2, 0);
    p.iif = WEB;
    p.oif = VETH0;
    assert!(hits("-i web", &p) && !hits("-i db", &p) && hits("! -i db", &p));
    assert!(
        hits("-i front", &p),
        "a port's network matches like a bridge device"
    );
    assert!(hits("-o docker0", &p) && !hits("-o front", &p) && hits("! -o front", &p));
    assert!(hits("-o veth+", &p) && !hits("-i veth+", &p) && hits("-i +", &p));
    assert!(hits("-i we+", &p) && hits("-o dock+", &p));
    p.iif = UPLINK;
    assert!(hits("-i uplink", &p) && !hits("-i front", &p) && hits("! -i front", &p));
    p.iif = None;
    assert!(!hits("-i web", &p) && hits("! -i web", &p) && hits("-i +", &p));
}

#[test]
fn tcp_udp_ports_and_flags() {
    let syn = tcp("1.1.1.1", 40000, "2.2.2.2", 443, tcp_flags::SYN);
    let ack = tcp("1.1.1.1", 40000, "2.2.2.2", 443, tcp_flags::ACK);
    assert!(hits("-p tcp --dport 443", &syn) && !hits("-p tcp --dport 80", &syn));
    assert!(hits("-p tcp -m tcp --dport 400:500", &syn) && hits("-p tcp --dport 443:", &syn));
    assert!(hits("-p tcp ! --dport 80", &syn) && !hits("-p tcp ! --dport 443", &syn));
    assert!(hits("-p tcp --sport 40000 --destination-port 443", &syn));
    assert!(hits("-p tcp --sport :40000", &syn) && !hits("-p tcp --sport :39999", &syn));
    assert!(hits("-p tcp --syn", &syn) && !hits("-p tcp --syn", &ack));
    assert!(hits("-p tcp ! --syn", &ack) && !hits("-p tcp ! --syn", &syn));
    assert!(
        hits("-p tcp --tcp-flags SYN,ACK SYN", &syn)
            && !hits("-p tcp --tcp-flags SYN,ACK SYN", &ack)
    );
    assert!(
        hits("-p tcp --tcp-flags ALL ACK", &ack) && hits("-p tcp ! --tcp-flags ALL NONE", &ack)
    );
    assert!(!hits("-p udp --dport 443", &syn));
    let u = udp("1.1.1.1", 5353, "2.2.2.2", 53);
    assert!(
        hits("-p udp --dport 53", &u)
            && hits("-p udp -m udp --sport 5353", &u)
            && !hits("-p udp --dport 54", &u)
    );
    assert!(hits("-p udp ! --dport 54", &u) && !hits("-p tcp --dport 53", &u));
    // A non-first fragment has no ports: port matches fail, even negated.
    let frag = PacketInfo {
        fragment: true,
        ..syn
    };
    assert!(!hits("-p tcp --dport 443", &frag) && !hits("-p tcp ! --dport 80", &frag));
    assert!(rule_err("-p tcp --tcp-flags SYN,BOGUS SYN").contains("unknown TCP flag \"BOGUS\""));
    assert!(rule_err("-p tcp --dport 5:1").contains("start above end"));
    let rs = load("*filter\n-A INPUT -p tcp --syn -j ACCEPT\n-A INPUT -p tcp --sport 0:65535 --tcp-flags NONE NONE -j ACCEPT\nCOMMIT\n");
    let s = rs.rules_spec(Table::Filter);
    assert!(
        s.contains("-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT"),
        "{s}"
    );
    assert!(s.contains("-A INPUT -p tcp -m tcp -j ACCEPT"), "{s}");
}

#[test]
fn icmp_types() {
    let ping = icmp(8, 0);
    assert!(
        hits("-p icmp --icmp-type echo-request", &ping)
            && hits("-p icmp -m icmp --icmp-type 8", &ping)
    );
    assert!(hits("-p icmp --icmp-type 8/0", &ping) && !hits("-p icmp --icmp-type 8/1", &ping));
    assert!(
        !hits("-p icmp --icmp-type echo-reply", &ping)
            && hits("-p icmp ! --icmp-type echo-reply", &ping)
    );
    assert!(hits("-p icmp --icmp-type any", &ping) && hits("-p icmp --icmp-type ping", &ping));
    let unreach = icmp(3, 3);
    assert!(hits(
        "-p icmp --icmp-type destination-unreachable",
        &unreach
    ));
    assert!(
        hits("-p icmp --icmp-type port-unreachable", &unreach)
            && !hits("-p icmp --icmp-type host-unreachable", &unreach)
    );
    assert!(hits("-p icmp --icmp-type time-exceeded", &icmp(11, 1)));
    assert!(hits(
        "-p icmp --icmp-type ttl-zero-during-transit",
        &icmp(11, 0)
    ));
    assert!(rule_err("-p icmp --icmp-type echo-requets").contains("did you mean echo-request?"));
    let rs = load("*filter\n-A INPUT -p icmp --icmp-type port-unreachable -j ACCEPT\n-A INPUT -p icmp --icmp-type echo-request -j ACCEPT\nCOMMIT\n");
    let s = rs.rules_spec(Table::Filter);
    assert!(
        s.contains("-p icmp -m icmp --icmp-type 3/3 -j ACCEPT")
            && s.contains("--icmp-type 8 -j ACCEPT"),
        "{s}"
    );
}

#[test]
fn multiport() {
    let p = tcp("1.1.1.1", 40000, "2.2.2.2", 443, 0);
    assert!(
        hits("-p tcp -m multiport --dports 80,443", &p)
            && !hits("-p tcp -m multiport --dports 80,8080", &p)
    );
    assert!(hits("-p tcp -m multiport --dports 1:100,400:500", &p));
    assert!(
        hits("-p tcp -m multiport ! --dports 80,8080", &p)
            && !hits("-p tcp -m multiport ! --dports 443", &p)
    );
    assert!(
        hits("-p tcp -m multiport --sports 40000", &p)
            && !hits("-p tcp -m multiport --sports 443", &p)
    );
    assert!(
        hits("-p tcp -m multiport --ports 40000", &p)
            && hits("-p tcp -m multiport --ports 443", &p)
    );
    assert!(hits(
        "-p udp -m multiport --dports 53,443",
        &udp("1.1.1.1", 1, "2.2.2.2", 53)
    ));
    assert!(rule_err("-m multiport --dports 80")
        .contains("-m multiport needs -p tcp, udp, sctp or udplite"));
    assert!(
        rule_err("-p tcp -m multiport --dports 80 --sports 1").contains("multiport takes one of")
    );
}

#[test]
fn physdev() {
    let mut p = tcp("1.1.1.1", 1, "2.2.2.2", 2, 0);
    p.iif = WEB;
    p.oif = DB;
    p.bridged = true;
    assert!(hits("-m physdev --physdev-in web", &p) && !hits("-m physdev --physdev-in db", &p));
    assert!(hits("-m physdev ! --physdev-in db --physdev-out db", &p));
    assert!(
        hits("-m physdev --physdev-is-bridged", &p)
            && !hits("-m physdev ! --physdev-is-bridged", &p)
    );
    assert!(hits("-m physdev --physdev-is-in --physdev-is-out", &p));
    assert!(hits("-m physdev --physdev-in w+", &p));
    let mut routed = p;
    routed.bridged = false;
    assert!(
        !hits("-m physdev --physdev-in web", &routed)
            && hits("-m physdev ! --physdev-is-bridged", &routed)
    );
    let mut local = p;
    local.oif = None;
    assert!(
        !hits("-m physdev --physdev-is-bridged", &local)
            && !hits("-m physdev --physdev-is-out", &local)
    );
    assert!(rule_err("-m physdev --physdev-in front").contains("no port has that name"));
    assert!(
        err("*filter\n-A OUTPUT -m physdev --physdev-out db -j ACCEPT\nCOMMIT\n")
            .contains("not valid in OUTPUT")
    );
    load("*filter\n-A OUTPUT -m physdev --physdev-is-bridged --physdev-out db -j ACCEPT\nCOMMIT\n");
}

fn tracked(state: CtState) -> PacketInfo {
    let mut p = tcp("10.0.0.2", 40000, "10.0.0.3", 80, tcp_flags::ACK);
    p.ct = CtInfo {
        state,
        status: CtInfo::SEEN_REPLY | CtInfo::ASSURED | CtInfo::CONFIRMED,
        nat: CtInfo::DNAT,
        dir: CtDir::Reply,
        orig_src: ip("192.0.2.9"),
        orig_dst: ip("192.0.2.10"),
        orig_sport: 40000,
        orig_dport: 8080,
        reply_src: ip("172.17.0.2"),
        reply_dst: ip("192.0.2.9"),
        reply_sport: 80,
        reply_dport: 40000,
    };
    p
}

#[test]
fn conntrack_and_state() {
    let est = tracked(CtState::Established);
    assert!(hits("-m conntrack --ctstate RELATED,ESTABLISHED", &est));
    assert!(
        !hits("-m conntrack --ctstate NEW", &est) && hits("-m conntrack ! --ctstate NEW", &est)
    );
    assert!(
        hits("-m conntrack --ctstate DNAT", &est) && !hits("-m conntrack --ctstate SNAT", &est)
    );
    assert!(
        hits("-m state --state ESTABLISHED", &est) && !hits("-m state --state NEW,INVALID", &est)
    );
    assert!(hits("-m state ! --state NEW", &est));
    assert!(
        hits("-m conntrack --ctstatus ASSURED", &est)
            && !hits("-m conntrack --ctstatus EXPECTED", &est)
    );
    assert!(hits("-m conntrack ! --ctstatus EXPECTED", &est));
    assert!(hits(
        "-m conntrack --ctorigsrc 192.0.2.0/24 --ctorigdst 192.0.2.10",
        &est
    ));
    assert!(
        !hits("-m conntrack --ctorigdst 10.0.0.0/8", &est)
            && hits("-m conntrack ! --ctorigdst 10.0.0.0/8", &est)
    );
    assert!(hits(
        "-m conntrack --ctreplsrc 172.17.0.2 --ctrepldst 192.0.2.9",
        &est
    ));
    assert!(hits(
        "-m conntrack --ctorigdstport 8080 --ctorigsrcport 40000:40100",
        &est
    ));
    assert!(!hits("-m conntrack --ctorigdstport 80", &est));
    assert!(hits(
        "-m conntrack --ctreplsrcport 80 --ctrepldstport 40000",
        &est
    ));
    assert!(
        hits("-m conntrack --ctdir REPLY", &est) && !hits("-m conntrack --ctdir ORIGINAL", &est)
    );
    let new = tracked(CtState::New);
    assert!(hits("-m conntrack --ctstate NEW", &new) && hits("-m state --state NEW", &new));
    let inv = tracked(CtState::Invalid);
    assert!(hits("-m conntrack --ctstate INVALID", &inv) && hits("-m state --state INVALID", &inv));
    // No connection: other criteria fail, as in the kernel.
    assert!(!hits("-m conntrack --ctstate INVALID --ctdir REPLY", &inv));
    let untracked = tracked(CtState::Untracked);
    assert!(
        hits("-m conntrack --ctstate UNTRACKED", &untracked)
            && !hits("-m conntrack --ctstate NEW,ESTABLISHED", &untracked)
    );
    assert!(hits(
        "-m conntrack --ctstate RELATED",
        &tracked(CtState::Related)
    ));
    assert!(rule_err("-m conntrack --ctstate NEWW").contains("unknown state \"NEWW\""));
    assert!(rule_err("-m conntrack --ctdir SIDEWAYS").contains("ORIGINAL or REPLY"));
    assert!(rule_err("-m conntrack").contains("needs a --ct* option"));
    let rs = load("*filter\n-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED --ctstatus ASSURED,SEEN_REPLY --ctorigdst 10.0.0.1/32 --ctdir ORIGINAL -j ACCEPT\nCOMMIT\n");
    assert!(rs.rules_spec(Table::Filter).contains(
        "-m conntrack --ctstate RELATED,ESTABLISHED --ctorigdst 10.0.0.1 --ctstatus SEEN_REPLY,ASSURED --ctdir ORIGINAL -j ACCEPT"
    ));
}

#[test]
fn mac_marks_ranges_types_length_ttl_comment() {
    let mut p = tcp("10.0.0.5", 1, "10.0.0.200", 2, 0);
    p.src_mac = MacAddr([0x02, 0x42, 0xac, 0x11, 0, 2]);
    p.len = 1500;
    p.ttl = 64;
    p.src_type = AddrType::UNICAST;
    p.dst_type = AddrType::LOCAL.union(AddrType::UNICAST);
    assert!(
        hits("-m mac --mac-source 02:42:ac:11:00:02", &p)
            && hits("-m mac --mac-source 02:42:AC:11:00:02", &p)
    );
    assert!(
        !hits("-m mac --mac-source 02:42:ac:11:00:03", &p)
            && hits("-m mac ! --mac-source 02:42:ac:11:00:03", &p)
    );
    assert!(
        err("*filter\n-A OUTPUT -m mac --mac-source 02:42:ac:11:00:02 -j DROP\nCOMMIT\n")
            .contains("-m mac is only valid in PREROUTING, INPUT and FORWARD")
    );
    let meta = Meta {
        mark: 0x12,
        ctmark: 0x300,
        ..Meta::default()
    };
    assert!(
        hits_meta("-m mark --mark 0x12", &p, meta) && !hits_meta("-m mark --mark 0x2", &p, meta)
    );
    assert!(
        hits_meta("-m mark --mark 0x2/0xf", &p, meta)
            && hits_meta("-m mark ! --mark 0x2", &p, meta)
    );
    assert!(
        hits_meta("-m connmark --mark 768", &p, meta)
            && !hits_meta("-m connmark --mark 0x12", &p, meta)
    );
    assert!(hits_meta("-m connmark ! --mark 0x1/0x1", &p, meta));
    assert!(
        hits("-m iprange --src-range 10.0.0.1-10.0.0.9", &p)
            && !hits("-m iprange --src-range 10.0.0.6-10.0.0.9", &p)
    );
    assert!(
        hits("-m iprange ! --dst-range 10.0.0.1-10.0.0.9", &p)
            && hits("-m iprange --dst-range 10.0.0.200-10.0.0.200", &p)
    );
    assert!(hits("-m addrtype --dst-type LOCAL", &p) && !hits("-m addrtype --src-type LOCAL", &p));
    assert!(hits(
        "-m addrtype ! --src-type LOCAL,BROADCAST --dst-type UNICAST",
        &p
    ));
    assert!(!hits("-m addrtype --dst-type MULTICAST,BROADCAST", &p));
    assert!(rule_err("-m addrtype --dst-type LOCAL --limit-iface-in")
        .contains("unknown option \"--limit-iface-in\""));
    assert!(hits("-m length --length 1500", &p) && hits("-m length --length 1000:1600", &p));
    assert!(!hits("-m length --length :1000", &p) && hits("-m length ! --length :1000", &p));
    assert!(hits("-m ttl --ttl-eq 64", &p) && !hits("-m ttl ! --ttl-eq 64", &p));
    assert!(
        hits("-m ttl --ttl-lt 65", &p)
            && !hits("-m ttl --ttl-lt 64", &p)
            && hits("-m ttl --ttl-gt 63", &p)
    );
    assert!(rule_err("-m ttl ! --ttl-lt 3").contains("--ttl-lt cannot be negated"));
    assert!(hits("-m comment --comment \"any text\"", &p));
    assert!(rule_err("-m comment ! --comment x").contains("cannot be negated"));
}

#[test]
fn limit_is_a_token_bucket_on_injected_time() {
    let mut rs = load("*filter\n:INPUT DROP [0:0]\n-A INPUT -m limit --limit 2/second --limit-burst 3 -j ACCEPT\nCOMMIT\n");
    let p = icmp(8, 0);
    let at = |rs: &mut Ruleset, ms: u64| {
        rs.evaluate(
            Table::Filter,
            Hook::Input,
            &p,
            &mut Meta::default(),
            Timestamp::from_nanos(ms * 1_000_000),
            &mut NoTrace,
        )
    };
    // The burst passes at once, then one packet per 500 ms.
    let first: Vec<Outcome> = (0..5).map(|_| at(&mut rs, 1000)).collect();
    assert_eq!(
        first,
        [
            Outcome::Accept,
            Outcome::Accept,
            Outcome::Accept,
            Outcome::Drop,
            Outcome::Drop
        ]
    );
    assert_eq!(at(&mut rs, 1400), Outcome::Drop);
    assert_eq!(at(&mut rs, 1500), Outcome::Accept);
    assert_eq!(at(&mut rs, 1500), Outcome::Drop);
    // A long pause refills the bucket to the burst, no more.
    let later: Vec<Outcome> = (0..4).map(|_| at(&mut rs, 60_000)).collect();
    assert_eq!(
        later,
        [
            Outcome::Accept,
            Outcome::Accept,
            Outcome::Accept,
            Outcome::Drop
        ]
    );
    assert_eq!(
        rs.rule_counters(Table::Filter, "INPUT", 1)
            .map(|c| c.packets),
        Some(7)
    );
    let s = load("*filter\n-A INPUT -m limit --limit 60/minute -j ACCEPT\n-A INPUT -m limit --limit 3/hour --limit-burst 5 -j ACCEPT\n-A INPUT -m limit --limit 10/d -j ACCEPT\nCOMMIT\n")
        .rules_spec(Table::Filter);
    assert!(
        s.contains("-m limit --limit 1/sec -j ACCEPT")
            && s.contains("-m limit --limit 3/hour -j ACCEPT"),
        "{s}"
    );
    assert!(s.contains("--limit 10/day"), "{s}");
    assert!(rule_err("-m limit --limit 20000/second").contains("too fast"));
    assert!(rule_err("-m limit --limit 5/fortnight").contains("unit must be"));
    assert!(rule_err("-m limit --limit-burst 0").contains("burst must be"));
}

#[test]
fn terminal_targets() {
    let p = tcp("1.1.1.1", 1, "2.2.2.2", 80, 0);
    let verdict = |target: &str| {
        let mut rs = load(&format!("*filter\n-A INPUT {target}\nCOMMIT\n"));
        run(&mut rs, Table::Filter, Hook::Input, &p)
    };
    assert_eq!(verdict("-j ACCEPT"), Outcome::Accept);
    assert_eq!(verdict("-j DROP"), Outcome::Drop);
    assert_eq!(
        verdict("-j REJECT"),
        Outcome::Reject(RejectWith::PortUnreachable)
    );
    for (name, w) in [
        ("icmp-net-unreachable", RejectWith::NetUnreachable),
        ("net-unreach", RejectWith::NetUnreachable),
        ("icmp-host-unreachable", RejectWith::HostUnreachable),
        ("host-unreach", RejectWith::HostUnreachable),
        ("icmp-port-unreachable", RejectWith::PortUnreachable),
        ("icmp-proto-unreachable", RejectWith::ProtoUnreachable),
        ("proto-unreach", RejectWith::ProtoUnreachable),
        ("icmp-net-prohibited", RejectWith::NetProhibited),
        ("icmp-host-prohibited", RejectWith::HostProhibited),
        ("host-prohib", RejectWith::HostProhibited),
        ("icmp-admin-prohibited", RejectWith::AdminProhibited),
        ("admin-prohib", RejectWith::AdminProhibited),
    ] {
        assert_eq!(
            verdict(&format!("-j REJECT --reject-with {name}")),
            Outcome::Reject(w),
            "{name}"
        );
    }
    assert_eq!(
        verdict("-p tcp -j REJECT --reject-with tcp-reset"),
        Outcome::Reject(RejectWith::TcpReset)
    );
    assert_eq!(
        verdict("-p tcp -j REJECT --reject-with tcp-rst"),
        Outcome::Reject(RejectWith::TcpReset)
    );
    assert!(rule_err("-j REJECT --reject-with tcp-reset").contains("tcp-reset needs -p tcp"));
    assert!(rule_err("-j REJECT --reject-with icmp-port-unreachabel")
        .contains("did you mean icmp-port-unreachable?"));
    // The rule with no target counts and carries on.
    let mut rs = load("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp\n-A INPUT -p tcp\nCOMMIT\n");
    assert_eq!(run(&mut rs, Table::Filter, Hook::Input, &p), Outcome::Drop);
    assert_eq!(
        rs.rule_counters(Table::Filter, "INPUT", 2),
        Some(Counters {
            packets: 1,
            bytes: 60
        })
    );
    assert_eq!(
        rs.save(Some(Table::Filter)).lines().nth(4),
        Some("-A INPUT -p tcp")
    );
}

#[test]
fn meta_targets() {
    let p = PacketInfo {
        ttl: 10,
        tos: 0x11,
        ..tcp("1.1.1.1", 1, "2.2.2.2", 80, 0)
    };
    let m0 = Meta {
        mark: 0xff00,
        ctmark: 0x0f,
        ..Meta::default()
    };
    assert_eq!(mangle("-j MARK --set-mark 0x1", &p, m0).mark, 0x1);
    assert_eq!(mangle("-j MARK --set-mark 0x1/0xf", &p, m0).mark, 0xff01);
    assert_eq!(mangle("-j MARK --set-xmark 0x1/0xff00", &p, m0).mark, 0x1);
    assert_eq!(mangle("-j MARK --and-mark 0xf000", &p, m0).mark, 0xf000);
    assert_eq!(mangle("-j MARK --or-mark 0x3", &p, m0).mark, 0xff03);
    assert_eq!(mangle("-j MARK --xor-mark 0x0100", &p, m0).mark, 0xfe00);
    assert_eq!(mangle("-j CONNMARK --set-mark 0x5", &p, m0).ctmark, 0x5);
    assert_eq!(
        mangle("-j CONNMARK --set-xmark 0x50/0xf0", &p, m0).ctmark,
        0x5f
    );
    assert_eq!(mangle("-j CONNMARK --or-mark 0x30", &p, m0).ctmark, 0x3f);
    assert_eq!(mangle("-j CONNMARK --and-mark 0x3", &p, m0).ctmark, 0x3);
    assert_eq!(mangle("-j CONNMARK --xor-mark 0x1", &p, m0).ctmark, 0xe);
    assert_eq!(mangle("-j CONNMARK --save-mark", &p, m0).ctmark, 0xff00);
    assert_eq!(
        mangle("-j CONNMARK --save-mark --mask 0x0f00", &p, m0).ctmark,
        0x0f0f
    );
    assert_eq!(
        mangle(
            "-j CONNMARK --save-mark --nfmask 0xf000 --ctmask 0xf0f0",
            &p,
            m0
        )
        .ctmark,
        0xf00f
    );
    assert_eq!(mangle("-j CONNMARK --restore-mark", &p, m0).mark, 0x0f);
    assert_eq!(
        mangle("-j CONNMARK --restore-mark --mask 0xff", &p, m0).mark,
        0xff0f
    );
    assert_eq!(
        mangle("-j TTL --ttl-set 64", &p, Meta::default()).ttl,
        Some(64)
    );
    assert_eq!(
        mangle("-j TTL --ttl-dec 3", &p, Meta::default()).ttl,
        Some(7)
    );
    assert_eq!(
        mangle("-j TTL --ttl-dec 30", &p, Meta::default()).ttl,
        Some(0)
    );
    assert_eq!(
        mangle("-j TTL --ttl-inc 250", &p, Meta::default()).ttl,
        Some(255)
    );
    assert_eq!(
        mangle("-j TOS --set-tos 0x10", &p, Meta::default()).tos,
        Some(0x10)
    );
    assert_eq!(
        mangle("-j TOS --set-tos 0x04/0x0f", &p, Meta::default()).tos,
        Some(0x14)
    );
    assert_eq!(
        mangle("-j TOS --set-tos Minimize-Delay", &p, Meta::default()).tos,
        Some(0x10)
    );
    assert_eq!(
        mangle("-j TOS --or-tos 0x02", &p, Meta::default()).tos,
        Some(0x13)
    );
    assert_eq!(
        mangle("-j DSCP --set-dscp 0x2e", &p, Meta::default()).tos,
        Some(0xb9)
    );
    assert_eq!(
        mangle("-j DSCP --set-dscp-class EF", &p, Meta::default()).tos,
        Some(0xb9)
    );
    assert_eq!(
        mangle("-j DSCP --set-dscp-class AF41", &p, Meta::default()).tos,
        Some((34 << 2) | 1)
    );
    assert_eq!(
        mangle("-j DSCP --set-dscp-class cs1", &p, Meta::default()).tos,
        Some((8 << 2) | 1)
    );
    // Later rules see what earlier targets set.
    let mut rs = load("*mangle\n-A FORWARD -j MARK --set-mark 7\n-A FORWARD -m mark --mark 7 -j TTL --ttl-dec 1\n-A FORWARD -m ttl --ttl-eq 9 -j CONNMARK --save-mark\nCOMMIT\n");
    let mut m = Meta::default();
    rs.evaluate(
        Table::Mangle,
        Hook::Forward,
        &p,
        &mut m,
        Timestamp::ZERO,
        &mut NoTrace,
    );
    assert_eq!(
        m,
        Meta {
            mark: 7,
            ctmark: 7,
            ttl: Some(9),
            tos: None,
            notrack: false
        }
    );
    for (table, rule) in [("raw", "-j NOTRACK"), ("raw", "-j CT --notrack")] {
        let mut rs = load(&format!("*{table}\n-A PREROUTING {rule}\nCOMMIT\n"));
        let mut m = Meta::default();
        assert_eq!(
            rs.evaluate(
                Table::Raw,
                Hook::Prerouting,
                &p,
                &mut m,
                Timestamp::ZERO,
                &mut NoTrace
            ),
            Outcome::Accept
        );
        assert!(m.notrack, "{rule}");
    }
    assert!(rule_err("-j MARK").contains("MARK needs"));
    assert!(rule_err("-j MARK --set-mark 1 --or-mark 2")
        .contains("--or-mark conflicts with --set-mark"));
    assert!(err("*mangle\n-A FORWARD -j CONNMARK --nfmask 1\nCOMMIT\n")
        .contains("goes after --save-mark"));
    assert!(err("*mangle\n-A FORWARD -j TTL --ttl-dec 0\nCOMMIT\n").contains("changes nothing"));
    assert!(err("*mangle\n-A FORWARD -j DSCP --set-dscp 64\nCOMMIT\n").contains("DSCP is 0-63"));
    assert!(
        err("*raw\n-A PREROUTING -j CT --zone 1\nCOMMIT\n").contains("unknown option \"--zone\"")
    );
    assert!(err("*raw\n-A PREROUTING -j CT\nCOMMIT\n").contains("CT needs --notrack"));
}

#[test]
fn log_target_formats_the_kernel_line_and_continues() {
    let mut rs = load("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -j LOG --log-prefix \"FW: \" --log-level info --log-tcp-sequence\n-A FORWARD -j ACCEPT\nCOMMIT\n");
    let mut p = tcp("10.0.0.2", 40000, "10.0.0.3", 5432, tcp_flags::SYN);
    p.iif = WEB;
    p.oif = DB;
    p.src_mac = MacAddr([0x02, 0x42, 10, 0, 0, 2]);
    let mut tr = TraceLines::default();
    let o = rs.evaluate(
        Table::Filter,
        Hook::Forward,
        &p,
        &mut Meta::default(),
        Timestamp::ZERO,
        &mut tr,
    );
    assert_eq!(o, Outcome::Accept);
    assert!(tr.lines.contains(&"log: FW: IN=web OUT=db MAC=02:42:0a:00:00:02 SRC=10.0.0.2 DST=10.0.0.3 LEN=60 TOS=0x00 PREC=0x00 TTL=64 PROTO=TCP SPT=40000 DPT=5432 SYN".to_string()), "{:?}", tr.lines);
    assert!(rs
        .save(None)
        .contains("-A FORWARD -j LOG --log-prefix \"FW: \" --log-level 6 --log-tcp-sequence"));
    let mut u = udp("10.0.0.2", 1, "10.0.0.3", 53);
    u.oif = DB;
    let mut tr = TraceLines::default();
    rs.evaluate(
        Table::Filter,
        Hook::Forward,
        &u,
        &mut Meta::default(),
        Timestamp::ZERO,
        &mut tr,
    );
    assert!(tr.lines.contains(&"log: FW: IN= OUT=db SRC=10.0.0.2 DST=10.0.0.3 LEN=40 TOS=0x00 PREC=0x00 TTL=64 PROTO=UDP SPT=1 DPT=53".to_string()), "{:?}", tr.lines);
    assert!(
        rule_err("-j LOG --log-prefix \"this prefix is far too long!!!\"")
            .contains("longer than 29")
    );
}

#[test]
fn nat_targets() {
    let p = tcp("10.0.0.2", 40000, "192.0.2.10", 8080, tcp_flags::SYN);
    let nat = |hook: &str, rule: &str| {
        let mut rs = load(&format!("*nat\n-A {hook} {rule}\nCOMMIT\n"));
        let h = Hook::ALL
            .into_iter()
            .find(|h| h.chain_name() == hook)
            .unwrap();
        run(&mut rs, Table::Nat, h, &p)
    };
    let range = |lo: &str, hi: &str, ports: Option<(u16, u16)>| NatRange {
        addr_lo: ip(lo),
        addr_hi: ip(hi),
        ports: ports.map(|(lo, hi)| PortRange { lo, hi }),
        random: false,
        random_fully: false,
        persistent: false,
    };
    assert_eq!(
        nat(
            "PREROUTING",
            "-p tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80"
        ),
        Outcome::Nat(NatAction::Dnat(range(
            "172.17.0.2",
            "172.17.0.2",
            Some((80, 80))
        )))
    );
    assert_eq!(
        nat(
            "OUTPUT",
            "-j DNAT --to-destination 10.0.0.1-10.0.0.4 --persistent"
        ),
        Outcome::Nat(NatAction::Dnat(NatRange {
            persistent: true,
            ..range("10.0.0.1", "10.0.0.4", None)
        }))
    );
    assert_eq!(
        nat(
            "POSTROUTING",
            "-p tcp -j SNAT --to-source 192.0.2.1:1024-2047 --random --random-fully"
        ),
        Outcome::Nat(NatAction::Snat(NatRange {
            random: true,
            random_fully: true,
            ..range("192.0.2.1", "192.0.2.1", Some((1024, 2047)))
        }))
    );
    assert_eq!(
        nat("INPUT", "-j SNAT --to-source 10.9.9.9"),
        Outcome::Nat(NatAction::Snat(range("10.9.9.9", "10.9.9.9", None)))
    );
    assert_eq!(
        nat("POSTROUTING", "-j MASQUERADE"),
        Outcome::Nat(NatAction::Masquerade {
            ports: None,
            random: false,
            random_fully: false
        })
    );
    assert_eq!(
        nat(
            "POSTROUTING",
            "-p tcp -j MASQUERADE --to-ports 1000-2000 --random-fully"
        ),
        Outcome::Nat(NatAction::Masquerade {
            ports: Some(PortRange { lo: 1000, hi: 2000 }),
            random: false,
            random_fully: true
        })
    );
    assert_eq!(
        nat("PREROUTING", "-p tcp -j REDIRECT --to-ports 3128 --random"),
        Outcome::Nat(NatAction::Redirect {
            ports: Some(PortRange { lo: 3128, hi: 3128 }),
            random: true
        })
    );
    assert_eq!(nat("PREROUTING", "-p udp --dport 1"), Outcome::Accept);
    let text = "*nat\n-A PREROUTING -p tcp -j DNAT --to-destination 172.17.0.2:80 --random\n-A POSTROUTING -p udp -j SNAT --to-source 1.1.1.1-1.1.1.9:100-200 --persistent\n-A POSTROUTING -p tcp -j MASQUERADE --to-ports 5-6 --random\n-A OUTPUT -p tcp -j REDIRECT --to-ports 80\nCOMMIT\n";
    let saved = round_trip(text);
    assert!(
        saved.contains(
            "-A POSTROUTING -p udp -j SNAT --to-source 1.1.1.1-1.1.1.9:100-200 --persistent"
        ),
        "{saved}"
    );
    assert!(
        err("*nat\n-A POSTROUTING -j DNAT --to-destination 1.1.1.1\nCOMMIT\n")
            .contains("DNAT is only valid in PREROUTING and OUTPUT (here in POSTROUTING)")
    );
    assert!(
        err("*nat\n-A PREROUTING -j SNAT --to-source 1.1.1.1\nCOMMIT\n")
            .contains("SNAT is only valid in POSTROUTING and INPUT")
    );
    assert!(err("*nat\n-A OUTPUT -j MASQUERADE\nCOMMIT\n")
        .contains("MASQUERADE is only valid in POSTROUTING"));
    assert!(err("*nat\n-A POSTROUTING -j REDIRECT\nCOMMIT\n")
        .contains("REDIRECT is only valid in PREROUTING and OUTPUT"));
    assert!(err("*nat\n-A PREROUTING -j DNAT\nCOMMIT\n").contains("DNAT needs --to-destination"));
    assert!(
        err("*nat\n-A PREROUTING -j DNAT --to-destination 1.1.1.1:80\nCOMMIT\n")
            .contains("ports in a NAT target need -p tcp")
    );
    assert!(
        err("*nat\n-A PREROUTING -p tcp -j DNAT --to-destination :80\nCOMMIT\n")
            .contains("an address is required")
    );
    assert!(
        err("*nat\n-A PREROUTING -j DNAT --to-destination 1.1.1.9-1.1.1.1\nCOMMIT\n")
            .contains("start above end")
    );
    assert!(
        err("*nat\n-A PREROUTING -j DNAT --to-destination 1.1.1.1 --random-fully\nCOMMIT\n")
            .contains("unknown option \"--random-fully\"")
    );
    // A user chain inherits the hooks of the chains that reach it.
    let e = err("*nat\n:D - [0:0]\n-A PREROUTING -j D\n-A POSTROUTING -j D\n-A D -j DNAT --to-destination 1.1.1.1\nCOMMIT\n");
    assert_eq!(e, "rules.v4:5:9: DNAT is only valid in PREROUTING and OUTPUT (chain D is reached from POSTROUTING)");
    load("*nat\n:D - [0:0]\n-A PREROUTING -j D\n-A OUTPUT -j D\n-A D -j DNAT --to-destination 1.1.1.1\nCOMMIT\n");
    load("*nat\n:UNUSED - [0:0]\n-A UNUSED -j MASQUERADE\nCOMMIT\n");
}

#[test]
fn table_restrictions() {
    for (table, rule, msg) in [
        (
            "filter",
            "-A INPUT -j DNAT --to-destination 1.1.1.1",
            "DNAT is only valid in the nat table",
        ),
        (
            "filter",
            "-A INPUT -j MASQUERADE",
            "MASQUERADE is only valid in the nat table",
        ),
        (
            "nat",
            "-A PREROUTING -j REJECT",
            "REJECT is only valid in the filter table",
        ),
        (
            "filter",
            "-A FORWARD -j TTL --ttl-set 1",
            "TTL is only valid in the mangle table",
        ),
        (
            "filter",
            "-A FORWARD -j TOS --set-tos 1",
            "TOS is only valid in the mangle table",
        ),
        (
            "nat",
            "-A PREROUTING -j DSCP --set-dscp 1",
            "DSCP is only valid in the mangle table",
        ),
        (
            "filter",
            "-A INPUT -j NOTRACK",
            "NOTRACK is only valid in the raw table",
        ),
        (
            "mangle",
            "-A PREROUTING -j CT --notrack",
            "CT is only valid in the raw table",
        ),
    ] {
        let e = err(&format!("*{table}\n{rule}\nCOMMIT\n"));
        assert!(e.contains(msg), "{rule}: {e}");
    }
    assert!(
        err("*filter\n-A OUTPUT -i web -j DROP\nCOMMIT\n").contains("-i cannot be used in OUTPUT")
    );
    assert!(
        err("*filter\n-A INPUT -o web -j DROP\nCOMMIT\n").contains("-o cannot be used in INPUT")
    );
    assert!(err("*nat\n-A POSTROUTING -i web -j MASQUERADE\nCOMMIT\n")
        .contains("-i cannot be used in POSTROUTING"));
    // REJECT in a user chain reached from FORWARD is fine; from nowhere too.
    load("*filter\n:R - [0:0]\n-A FORWARD -j R\n-A R -j REJECT\nCOMMIT\n");
    load("*mangle\n-A POSTROUTING -j MARK --set-mark 1\n-A PREROUTING -j CONNMARK --restore-mark\n-A OUTPUT -j LOG\nCOMMIT\n");
}

#[test]
fn jump_goto_return_and_policy_with_exact_counters() {
    let text = "*filter
:FORWARD DROP [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
-A FORWARD -j A
-A FORWARD -p udp -j ACCEPT
-A A -p tcp --dport 1 -j RETURN
-A A -p tcp -g B
-A A -j C
-A B -p tcp --dport 2 -j ACCEPT
-A B -p tcp --dport 3 -j RETURN
-A C -p udp --dport 4 -j DROP
COMMIT
";
    let mut rs = load(text);
    let t = |d: u16| tcp("1.1.1.1", 9, "2.2.2.2", d, 0);
    let u = |d: u16| udp("1.1.1.1", 9, "2.2.2.2", d);
    // tcp/1: A returns at once; FORWARD's udp rule misses; policy DROP.
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &t(1)),
        Outcome::Drop
    );
    // tcp/2: goto B accepts.
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &t(2)),
        Outcome::Accept
    );
    // tcp/3: B returns to FORWARD (the caller of A), not to A: C is skipped.
    let mut tr = TraceLines::default();
    let o = rs.evaluate(
        Table::Filter,
        Hook::Forward,
        &t(3),
        &mut Meta::default(),
        Timestamp::ZERO,
        &mut tr,
    );
    assert_eq!(o, Outcome::Drop);
    assert_eq!(
        tr.lines,
        [
            "filter FORWARD",
            "filter FORWARD #1 -j A : match -> jump A",
            "filter A #1 -p tcp -m tcp --dport 1 -j RETURN : no match",
            "filter A #2 -p tcp -g B : match -> goto B",
            "filter B #1 -p tcp -m tcp --dport 2 -j ACCEPT : no match",
            "filter B #2 -p tcp -m tcp --dport 3 -j RETURN : match",
            "filter B : return to FORWARD",
            "filter FORWARD #2 -p udp -j ACCEPT : no match",
            "filter FORWARD : policy DROP",
        ]
    );
    // tcp/5: B runs out of rules: back to FORWARD as well.
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &t(5)),
        Outcome::Drop
    );
    // udp/4: A -> C drops. udp/5: C ends, A ends, FORWARD accepts udp.
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &u(4)),
        Outcome::Drop
    );
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &u(5)),
        Outcome::Accept
    );
    let c = |chain: &str, i: usize| {
        rs.rule_counters(Table::Filter, chain, i)
            .map(|c| (c.packets, c.bytes))
            .unwrap()
    };
    assert_eq!(c("FORWARD", 1), (6, 6 * 60 - 2 * 20));
    assert_eq!(c("FORWARD", 2), (1, 40));
    assert_eq!(c("A", 1), (1, 60));
    assert_eq!(c("A", 2), (3, 180));
    assert_eq!(c("A", 3), (2, 80));
    assert_eq!(c("B", 1), (1, 60));
    assert_eq!(c("B", 2), (1, 60));
    assert_eq!(c("C", 1), (1, 40));
    assert_eq!(
        rs.chain_counters(Table::Filter, "FORWARD"),
        Some(Counters {
            packets: 3,
            bytes: 180
        })
    );
    assert!(rs
        .list(Table::Filter, true, true)
        .contains("Chain FORWARD (policy DROP 3 packets, 180 bytes)"));
    rs.zero_counters();
    assert_eq!(c_zero(&rs), 0);
    // RETURN in a built-in chain applies its policy.
    let mut rs =
        load("*filter\n:INPUT DROP [0:0]\n-A INPUT -j RETURN\n-A INPUT -j ACCEPT\nCOMMIT\n");
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Input, &t(1)),
        Outcome::Drop
    );
    // Goto from a built-in chain: the end of the target chain is the policy.
    let mut rs =
        load("*filter\n:INPUT DROP [0:0]\n:G - [0:0]\n-A INPUT -g G\n-A INPUT -j ACCEPT\nCOMMIT\n");
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Input, &t(1)),
        Outcome::Drop
    );
}

fn c_zero(rs: &Ruleset) -> u64 {
    rs.tables
        .iter()
        .flat_map(|t| &t.chains)
        .flat_map(|c| std::iter::once(c.counters).chain(c.rules.iter().map(|r| r.counters)))
        .map(|c| c.packets + c.bytes)
        .sum()
}

#[test]
fn jump_loops_and_depth_are_refused() {
    let e = err("*filter\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -g A\nCOMMIT\n");
    assert_eq!(e, "rules.v4:6:9: jump loop: A -> B -> A");
    assert_eq!(
        err("*filter\n:A - [0:0]\n-A A -j A\nCOMMIT\n"),
        "rules.v4:3:9: jump loop: A -> A"
    );
    // Unreachable loops are refused too.
    assert!(
        err("*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\nCOMMIT\n")
            .contains("jump loop")
    );
    let chain = |n: usize| format!("C{n}");
    let build = |depth: usize| {
        let mut s = String::from("*filter\n");
        for i in 0..depth {
            s += &format!(":{} - [0:0]\n", chain(i));
        }
        s += "-A FORWARD -j C0\n";
        for i in 0..depth - 1 {
            s += &format!("-A {} -j {}\n", chain(i), chain(i + 1));
        }
        s += &format!("-A {} -j ACCEPT\nCOMMIT\n", chain(depth - 1));
        s
    };
    let mut rs = load(&build(32));
    assert_eq!(
        run(
            &mut rs,
            Table::Filter,
            Hook::Forward,
            &tcp("1.1.1.1", 1, "2.2.2.2", 2, 0)
        ),
        Outcome::Accept
    );
    assert!(err(&build(33)).contains("nest deeper than 32 chains"));
    // Gotos push no frame: any number of them chain fine.
    let mut s = String::from("*filter\n");
    for i in 0..100 {
        s += &format!(":{} - [0:0]\n", chain(i));
    }
    s += "-A FORWARD -j C0\n";
    for i in 0..99 {
        s += &format!("-A {} -g {}\n", chain(i), chain(i + 1));
    }
    s += "-A C99 -j DROP\nCOMMIT\n";
    let mut rs = load(&s);
    assert_eq!(
        run(
            &mut rs,
            Table::Filter,
            Hook::Forward,
            &tcp("1.1.1.1", 1, "2.2.2.2", 2, 0)
        ),
        Outcome::Drop
    );
}

#[test]
fn generation_changes_with_every_load() {
    let a = load("*filter\nCOMMIT\n");
    let b = load("*filter\nCOMMIT\n");
    assert_ne!(a.generation(), b.generation());
    let mut c = a.clone();
    c.zero_counters();
    assert_eq!(c.generation(), a.generation());
    let l = Ruleset::layered(a.clone(), b).unwrap();
    assert!(l.generation() > a.generation());
}

#[test]
fn is_empty_reports_skippable_chains() {
    let rs = load("*filter\n:INPUT DROP [0:0]\n-A FORWARD -j ACCEPT\nCOMMIT\n");
    assert!(!rs.is_empty(Table::Filter, Hook::Input));
    assert!(!rs.is_empty(Table::Filter, Hook::Forward));
    assert!(rs.is_empty(Table::Filter, Hook::Output));
    assert!(rs.is_empty(Table::Filter, Hook::Prerouting));
    assert!(rs.is_empty(Table::Nat, Hook::Prerouting));
}

#[test]
fn every_option_round_trips() {
    let text = "*raw
:PREROUTING ACCEPT [1:2]
-A PREROUTING -i uplink -p udp -m udp --dport 4789 -j NOTRACK
-A OUTPUT -p udp -j CT --notrack
COMMIT
*mangle
-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff00
-A PREROUTING -m mark --mark 0x0/0xff -j MARK --set-xmark 0x1/0xff
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS-CHAIN
-A FORWARD -j TTL --ttl-inc 1
-A FORWARD -j TOS --set-tos 0x10/0x3f
-A FORWARD -j DSCP --set-dscp-class AF41
-A POSTROUTING -j CONNMARK --save-mark
-A POSTROUTING -m connmark ! --mark 0x1 -j CONNMARK --set-mark 0x2/0x3
-A OUTPUT -j MARK --and-mark 0xff
:TCPMSS-CHAIN - [0:0]
-A TCPMSS-CHAIN -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL,BROADCAST -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
*filter
:INPUT DROP [10:1000]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:LOGDROP - [0:0]
[3:120] -A INPUT -i web -p tcp -m multiport --dports 80,443,8000:8100 -m conntrack --ctstate NEW -j ACCEPT
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type echo-request -m limit --limit 5/sec --limit-burst 10 -j ACCEPT
-A INPUT -p icmp -m icmp ! --icmp-type 3/4 -j ACCEPT
-A INPUT -s 10.0.0.0/255.0.0.0 -m mac --mac-source 02:42:ac:11:00:02 -j ACCEPT
-A INPUT -m iprange --src-range 10.0.0.1-10.0.0.9 ! --dst-range 10.1.0.1-10.1.0.2 -j ACCEPT
-A INPUT -m length --length 0:64 -m ttl --ttl-gt 1 -m comment --comment \"small 'n' live\" -j ACCEPT
-A INPUT -p 99 -f -j DROP
-A INPUT -p sctp -m multiport --ports 9,10 -j DROP
-A FORWARD -m physdev --physdev-in web ! --physdev-out db --physdev-is-bridged -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID,UNTRACKED,SNAT,DNAT ! --ctstatus NONE --ctorigsrc 10.0.0.0/8 --ctrepldst 1.2.3.4 --ctorigsrcport 1:2 --ctorigdstport 3 --ctreplsrcport 4 --ctrepldstport 5:6 --ctdir REPLY -j ACCEPT
-A FORWARD -i veth+ -o + -p tcp -m tcp --sport 1:1023 ! --dport 22 ! --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j LOGDROP
-A FORWARD -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -j REJECT --reject-with icmp-admin-prohibited
-A LOGDROP -j LOG --log-prefix \"dropped: \" --log-level 7 --log-tcp-options --log-ip-options --log-uid --log-macdecode
-A LOGDROP -m ttl ! --ttl-eq 3 -j DROP
-A LOGDROP -m mark --mark 0x5 -m addrtype ! --src-type MULTICAST -g LOGDROP2
-A LOGDROP -j MARK --or-mark 0x4
:LOGDROP2 - [0:0]
-A LOGDROP2 -j CONNMARK --xor-mark 0x1
COMMIT
";
    let saved = round_trip(text);
    for line in [
        "-A INPUT -i web -p tcp -m multiport --dports 80,443,8000:8100 -m conntrack --ctstate NEW -j ACCEPT",
        "-A INPUT -s 10.0.0.0/8 -m mac --mac-source 02:42:AC:11:00:02 -j ACCEPT",
        "-A INPUT -p 99 -f -j DROP",
        "-A INPUT -m length --length 0:64 -m ttl --ttl-gt 1 -m comment --comment \"small \\'n\\' live\" -j ACCEPT",
        "-A PREROUTING -m mark --mark 0x0/0xff -j MARK --set-xmark 0x1/0xff",
        "-A OUTPUT -j MARK --set-xmark 0x0/0xffffff00",
        "-A POSTROUTING -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff",
        "-A POSTROUTING -m connmark ! --mark 0x1 -j CONNMARK --set-xmark 0x2/0x3",
        "-A FORWARD -j DSCP --set-dscp 0x22",
        "-A FORWARD -j TOS --set-tos 0x10/0x3f",
        "-A LOGDROP2 -j CONNMARK --set-xmark 0x1/0x0",
        "-A FORWARD -i veth+ -o + -p tcp -m tcp --sport 1:1023 ! --dport 22 ! --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j LOGDROP",
        ":INPUT DROP [10:1000]",
    ] {
        assert!(saved.contains(line), "missing {line:?} in\n{saved}");
    }
}

#[test]
fn list_like_iptables() {
    let mut rs = load(
        "*filter
:FORWARD DROP [0:0]
:DOCKER - [0:0]
-A FORWARD -o docker0 -j DOCKER
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER -p tcp -m multiport --dports 80,443 -m comment --comment web -j LOG --log-prefix \"x \"
COMMIT
",
    );
    let mut p = tcp("192.0.2.9", 1, "172.17.0.2", 80, 0);
    p.iif = UPLINK;
    p.oif = VETH0;
    p.len = 1000;
    for _ in 0..150 {
        run(&mut rs, Table::Filter, Hook::Forward, &p);
    }
    let l = rs.list(Table::Filter, true, false);
    let expect = "Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         

Chain FORWARD (policy DROP 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
  150  150K DOCKER     all  --  *      docker0  0.0.0.0/0            0.0.0.0/0           

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         

Chain DOCKER (1 references)
 pkts bytes target     prot opt in     out     source               destination         
  150  150K ACCEPT     tcp  --  !docker0 docker0  0.0.0.0/0            172.17.0.2           tcp dpt:80
    0     0 LOG        tcp  --  *      *       0.0.0.0/0            0.0.0.0/0            multiport dports 80,443 /* web */ LOG flags 0 level 4 prefix \"x \"
";
    assert_eq!(l, expect, "\n{l}");
    let x = rs.list(Table::Filter, true, true);
    assert!(
        x.contains("     150   150000 ACCEPT     tcp  --  !docker0 docker0"),
        "\n{x}"
    );
    let short = rs.list(Table::Filter, false, false);
    assert!(short.contains("Chain FORWARD (policy DROP)\ntarget     prot opt source               destination         \nDOCKER     all  --  0.0.0.0/0            0.0.0.0/0           \n"), "\n{short}");
}

#[test]
fn layering_puts_user_rules_first() {
    let generated = Ruleset::parse(
        "*filter
:FORWARD DROP [0:0]
:GEN-ISOLATE - [0:0]
-A FORWARD -j GEN-ISOLATE
-A FORWARD -i front -o front -j ACCEPT
-A GEN-ISOLATE -i web -o db -j DROP
COMMIT
*nat
-A POSTROUTING -o uplink -j MASQUERADE
COMMIT
",
        &Origin::new("<generated>"),
        &ifaces(),
    )
    .unwrap();
    let user_text = "*filter
:GEN-ISOLATE - [0:0]
:MINE - [0:0]
-A FORWARD -p tcp --dport 22 -j DROP
-A GEN-ISOLATE -p tcp --dport 5432 -j RETURN
-A MINE -j ACCEPT
COMMIT
";
    let user = Ruleset::parse(
        user_text,
        &Origin::with_line_offset("topo.toml", 20),
        &ifaces(),
    )
    .unwrap();
    let mut rs = Ruleset::layered(generated.clone(), user).unwrap();
    assert_eq!(
        rs.save(None),
        "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o uplink -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:GEN-ISOLATE - [0:0]
:MINE - [0:0]
-A FORWARD -p tcp -m tcp --dport 22 -j DROP
-A FORWARD -j GEN-ISOLATE
-A FORWARD -i front -o front -j ACCEPT
-A GEN-ISOLATE -p tcp -m tcp --dport 5432 -j RETURN
-A GEN-ISOLATE -i web -o db -j DROP
-A MINE -j ACCEPT
COMMIT
"
    );
    let mut p = tcp("10.0.0.2", 1, "10.0.0.3", 5432, 0);
    p.iif = WEB;
    p.oif = DB;
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &p),
        Outcome::Accept
    );
    p.l4 = L4Info::Tcp {
        sport: 1,
        dport: 80,
        flags: 0,
    };
    assert_eq!(
        run(&mut rs, Table::Filter, Hook::Forward, &p),
        Outcome::Drop
    );
    // A declared built-in chain is the user's alone: policy and rules;
    // undeclared, the generated policy and rules stay.
    let user = load("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j MINE\n:MINE - [0:0]\nCOMMIT\n");
    let rs = Ruleset::layered(generated.clone(), user).unwrap();
    let saved = rs.save(None);
    assert!(saved.contains(":FORWARD ACCEPT [0:0]"), "{saved}");
    let forward: Vec<&str> = saved
        .lines()
        .filter(|l| l.starts_with("-A FORWARD"))
        .collect();
    assert_eq!(forward, ["-A FORWARD -j MINE"]);
    assert!(
        saved.contains("-A GEN-ISOLATE -i web -o db -j DROP"),
        "{saved}"
    );
    let user = load("*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n");
    let rs = Ruleset::layered(generated.clone(), user).unwrap();
    assert!(rs.save(None).contains(":FORWARD DROP [0:0]\n"));
    // Errors found only after layering point at the user's file and line.
    let user = Ruleset::parse(
        "*filter\n:GEN-ISOLATE - [0:0]\n-A GEN-ISOLATE -j FORWARD2\n:FORWARD2 - [0:0]\n-A FORWARD2 -j GEN-ISOLATE\nCOMMIT\n",
        &Origin::with_line_offset("topo.toml", 20),
        &ifaces(),
    );
    let e = user.unwrap_err().to_string();
    assert_eq!(
        e,
        "topo.toml:23:19: jump loop: FORWARD2 -> GEN-ISOLATE -> FORWARD2"
    );
    let user = Ruleset::parse(
        "*filter\n:GEN-ISOLATE - [0:0]\n:X - [0:0]\n-A X -j FORWARD\n-A GEN-ISOLATE -j X\nCOMMIT\n",
        &Origin::with_line_offset("topo.toml", 20),
        &ifaces(),
    );
    assert!(user
        .unwrap_err()
        .to_string()
        .contains("topo.toml:24:9: cannot jump to built-in chain FORWARD"));
    let user = Ruleset::parse(
        "*filter\n:GEN-ISOLATE - [0:0]\n:LOOP - [0:0]\n-A LOOP -j GEN-ISOLATE\nCOMMIT\n",
        &Origin::with_line_offset("topo.toml", 20),
        &ifaces(),
    )
    .unwrap();
    let gen_loop = Ruleset::parse(
        "*filter\n:GEN-ISOLATE - [0:0]\n:LOOP - [0:0]\n-A GEN-ISOLATE -j LOOP\nCOMMIT\n",
        &Origin::new("<generated>"),
        &ifaces(),
    )
    .unwrap();
    let e = Ruleset::layered(gen_loop, user).unwrap_err().to_string();
    assert!(e.contains("jump loop"), "{e}");
    assert!(
        e.starts_with("<generated>:4:") || e.starts_with("topo.toml:24:"),
        "{e}"
    );
    let user = Ruleset::parse(
        "*nat\n:DOCKER - [0:0]\n-A POSTROUTING -j DOCKER\nCOMMIT\n",
        &Origin::with_line_offset("topo.toml", 20),
        &ifaces(),
    )
    .unwrap();
    let gen_nat = Ruleset::parse(
        "*nat\n:DOCKER - [0:0]\n-A DOCKER -j DNAT --to-destination 1.1.1.1\nCOMMIT\n",
        &Origin::new("<generated>"),
        &ifaces(),
    )
    .unwrap();
    let e = Ruleset::layered(gen_nat, user).unwrap_err().to_string();
    assert_eq!(e, "<generated>:3:14: DNAT is only valid in PREROUTING and OUTPUT (chain DOCKER is reached from POSTROUTING)");
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    const SEED: &str = super::super::tests_docker::DOCKER_SAVE;

    const WORDS: &[&str] = &[
        "!",
        "-A",
        "-I",
        "-D",
        "-N",
        "-X",
        "-F",
        "-P",
        "-j",
        "-g",
        "-m",
        "-p",
        "-s",
        "-d",
        "-i",
        "-o",
        "--dport",
        "tcp",
        "udp",
        "ACCEPT",
        "DROP",
        "RETURN",
        "DOCKER",
        "FORWARD",
        "COMMIT",
        "*filter",
        "*nat",
        ":X",
        "-",
        "[0:0]",
        "\"",
        "'",
        "#",
        "1",
        "0",
        "65535",
        "1:2",
        "10.0.0.0/8",
        "--ctstate",
        "NEW",
        "-m conntrack",
        "-j DNAT",
        "--to-destination",
        "1.2.3.4:80",
        "web",
        "docker0",
        "+",
        "--limit",
        "1/s",
        "\n",
        "é",
        "\u{0}",
        "--icmp-type",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn parser_never_panics_on_mutated_text(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0u8..4), 1..8)
        ) {
            let mut words: Vec<String> = SEED.split(' ').map(str::to_string).collect();
            for (at, w, op) in edits {
                let i = at.index(words.len().max(1));
                let word = WORDS[w.index(WORDS.len())].to_string();
                match op {
                    0 if !words.is_empty() => { words.remove(i.min(words.len() - 1)); }
                    1 => words.insert(i.min(words.len()), word),
                    2 if !words.is_empty() => { let j = i.min(words.len() - 1); words[j] = word; }
                    _ => words.truncate(i),
                }
            }
            let text = words.join(" ");
            if let Ok(mut rs) = parse(&text) {
                let saved = rs.save_with_counters(None);
                let again = parse(&saved);
                prop_assert!(again.is_ok(), "saved text does not parse:\n{saved}");
                prop_assert_eq!(again.ok(), Some(rs.clone()));
                let p = tcp("172.17.0.2", 1, "8.8.8.8", 80, tcp_flags::SYN);
                for t in Table::ALL {
                    for h in Hook::ALL {
                        run(&mut rs, t, h, &p);
                    }
                    rs.list(t, true, false);
                    rs.rules_spec(t);
                }
            }
        }

        #[test]
        fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
            let _ = parse(&text);
            let _ = parse(&format!("*filter\n-A FORWARD {text}\nCOMMIT\n"));
        }
    }
}
