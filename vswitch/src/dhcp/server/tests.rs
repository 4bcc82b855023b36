use proptest::prelude::*;

use super::*;

const GW: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const WEB: MacAddr = MacAddr([0x02, 0x42, 0x0a, 0x0a, 0x00, 0x02]);
const STRANGER: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x99]);
const XID: u32 = 0x3903_f326;

fn server() -> DhcpServer {
    let mut c = ServerConfig::new(GW, Ipv4Net::new(Ipv4Addr::new(10, 10, 0, 0), 24).unwrap());
    c.domain = Some("lab".into());
    let mut s = DhcpServer::new(c);
    s.reserve(WEB, WEB_IP, Some("web".into()));
    s
}

/// The fixed header of RFC 2131 figure 1, secs 3 and siaddr 0, then the
/// magic cookie.
fn header(op: u8, flags: u16, ciaddr: [u8; 4], yiaddr: [u8; 4], giaddr: [u8; 4]) -> Vec<u8> {
    let mut b = vec![op, 1, 6, 0];
    b.extend(XID.to_be_bytes());
    b.extend(if op == 1 { [0, 3] } else { [0, 0] });
    b.extend(flags.to_be_bytes());
    b.extend(ciaddr);
    b.extend(yiaddr);
    b.extend([0; 4]);
    b.extend(giaddr);
    b.extend(WEB.octets());
    b.extend([0; 10 + 64 + 128]);
    b.extend([99, 130, 83, 99]);
    b
}

/// What busybox udhcpc puts after the type: client id, max size 576, its
/// parameter list and vendor class.
fn udhcpc_options() -> Vec<u8> {
    let mut o = vec![61, 7, 1];
    o.extend(WEB.octets());
    o.extend([57, 2, 0x02, 0x40]);
    o.extend([55, 7, 1, 3, 6, 12, 15, 28, 42]);
    o.extend([60, 12]);
    o.extend(b"udhcp 1.36.1");
    o
}

fn discover() -> Vec<u8> {
    let mut b = header(1, 0, [0; 4], [0; 4], [0; 4]);
    b.extend([53, 1, 1]);
    b.extend(udhcpc_options());
    b.push(255);
    b.resize(300, 0);
    b
}

/// `extra` goes between the type and udhcpc's usual options.
fn request(flags: u16, ciaddr: [u8; 4], giaddr: [u8; 4], extra: &[u8]) -> Vec<u8> {
    let mut b = header(1, flags, ciaddr, [0; 4], giaddr);
    b.extend([53, 1, 3]);
    b.extend(extra);
    b.extend(udhcpc_options());
    b.push(255);
    b
}

fn selecting(ip: [u8; 4]) -> Vec<u8> {
    let mut extra = vec![50, 4];
    extra.extend(ip);
    extra.extend([54, 4, 10, 10, 0, 1]);
    request(0, [0; 4], [0; 4], &extra)
}

fn message(mac: MacAddr, t: MessageType, ciaddr: Ipv4Addr) -> Vec<u8> {
    let mut m = DhcpRepr::new(Op::BootRequest, t, XID, mac);
    m.ciaddr = ciaddr;
    to_bytes(&m)
}

/// The options of an OFFER or ACK to `web` from the test server, after
/// the type.
fn lease_options() -> Vec<u8> {
    let mut o = vec![54, 4, 10, 10, 0, 1];
    o.extend([51, 4, 0, 0, 0x0e, 0x10]); // 3600 s
    o.extend([58, 4, 0, 0, 0x07, 0x08]); // 1800 s
    o.extend([59, 4, 0, 0, 0x0c, 0x4e]); // 3150 s
    o.extend([1, 4, 255, 255, 255, 0]);
    o.extend([28, 4, 10, 10, 0, 255]);
    o.extend([3, 4, 10, 10, 0, 1]);
    o.extend([6, 4, 10, 10, 0, 1]);
    o.extend([15, 3]);
    o.extend(b"lab");
    o.extend([12, 3]);
    o.extend(b"web");
    o.extend([61, 7, 1]);
    o.extend(WEB.octets());
    o
}

const T0: Timestamp = Timestamp::from_secs(100);

#[test]
fn offer_for_udhcpc_discover() {
    let mut s = server();
    let reply = s.handle(T0, WEB, &discover()).unwrap();
    let mut want = header(2, 0, [0; 4], WEB_IP.octets(), [0; 4]);
    want.extend([53, 1, 2]);
    want.extend(lease_options());
    want.push(255);
    assert_eq!(reply.payload, want);
    assert_eq!(
        reply.to,
        Destination::Unicast {
            ip: WEB_IP,
            mac: WEB
        }
    );
    // An offer is no lease.
    assert_eq!(s.leases().count(), 0);
}

#[test]
fn ack_for_udhcpc_request() {
    let mut s = server();
    let reply = s.handle(T0, WEB, &selecting(WEB_IP.octets())).unwrap();
    let mut want = header(2, 0, [0; 4], WEB_IP.octets(), [0; 4]);
    want.extend([53, 1, 5]);
    want.extend(lease_options());
    want.push(255);
    assert_eq!(reply.payload, want);
    assert_eq!(
        s.leases().collect::<Vec<_>>(),
        [Lease {
            mac: WEB,
            ip: WEB_IP,
            expires: Timestamp::from_secs(3700)
        }]
    );
}

#[test]
fn broadcast_flag() {
    let mut s = server();
    let mut b = discover();
    b[10] = 0x80;
    let reply = s.handle(T0, WEB, &b).unwrap();
    assert_eq!(reply.to, Destination::Broadcast);
    assert_eq!(reply.payload[10], 0x80);
}

#[test]
fn init_reboot_renew_and_rebind_are_acked() {
    let mut s = server();
    // INIT-REBOOT: option 50, no server id.
    let reply = s
        .handle(T0, WEB, &request(0, [0; 4], [0; 4], &[50, 4, 10, 10, 0, 2]))
        .unwrap();
    assert_eq!(
        DhcpRepr::parse(&reply.payload).unwrap().message_type,
        MessageType::Ack
    );

    // RENEWING (and REBINDING, which looks the same to us): ciaddr only;
    // the ACK goes straight to it and carries it.
    let later = Timestamp::from_secs(2000);
    let reply = s
        .handle(later, WEB, &request(0, WEB_IP.octets(), [0; 4], &[]))
        .unwrap();
    let ack = DhcpRepr::parse(&reply.payload).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!((ack.ciaddr, ack.yiaddr), (WEB_IP, WEB_IP));
    assert_eq!(
        reply.to,
        Destination::Unicast {
            ip: WEB_IP,
            mac: WEB
        }
    );
    assert_eq!(
        s.leases().next().unwrap().expires,
        Timestamp::from_secs(5600)
    );
}

fn nak_bytes(flags: u16, giaddr: [u8; 4]) -> Vec<u8> {
    let mut want = header(2, flags, [0; 4], [0; 4], giaddr);
    want.extend([53, 1, 6, 54, 4, 10, 10, 0, 1, 61, 7, 1]);
    want.extend(WEB.octets());
    want.push(255);
    want.resize(300, 0);
    want
}

#[test]
fn naks_for_an_address_not_theirs() {
    let mut s = server();
    let other = [10, 10, 0, 7];
    for req in [
        selecting(other),
        request(0, [0; 4], [0; 4], &[50, 4, 10, 10, 0, 7]),
        request(0, other, [0; 4], &[]),
        request(0, [0; 4], [0; 4], &[50, 4, 192, 168, 1, 5]),
    ] {
        let reply = s.handle(T0, WEB, &req).unwrap();
        assert_eq!(reply.payload, nak_bytes(0, [0; 4]));
        assert_eq!(reply.to, Destination::Broadcast);
    }
    assert_eq!(s.leases().count(), 0);
}

#[test]
fn relayed_replies_go_to_the_relay() {
    let mut s = server();
    let relay_mac = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    let giaddr = [10, 9, 0, 1];
    let mut extra = vec![50, 4];
    extra.extend(WEB_IP.octets());
    let reply = s
        .handle(T0, relay_mac, &request(0, [0; 4], giaddr, &extra))
        .unwrap();
    let relay = Destination::Relay {
        ip: Ipv4Addr::from(giaddr),
        mac: relay_mac,
    };
    assert_eq!(reply.to, relay);
    assert_eq!(
        DhcpRepr::parse(&reply.payload).unwrap().giaddr,
        Ipv4Addr::from(giaddr)
    );

    // A relayed NAK asks the relay to broadcast it.
    let reply = s
        .handle(
            T0,
            relay_mac,
            &request(0, [0; 4], giaddr, &[50, 4, 10, 10, 0, 9]),
        )
        .unwrap();
    assert_eq!(reply.payload, nak_bytes(0x8000, giaddr));
    assert_eq!(reply.to, relay);
}

#[test]
fn silent_cases() {
    let mut s = server();
    // A MAC with no reservation: no offer, no ACK, no NAK.
    let mut b = discover();
    b[28..34].copy_from_slice(&STRANGER.octets());
    assert_eq!(s.handle(T0, STRANGER, &b), None);
    let mut b = selecting(WEB_IP.octets());
    b[28..34].copy_from_slice(&STRANGER.octets());
    assert_eq!(s.handle(T0, STRANGER, &b), None);
    // chaddr is not the sender's MAC, and there is no relay.
    assert_eq!(s.handle(T0, STRANGER, &discover()), None);
    // The client chose another server.
    let mut b = selecting(WEB_IP.octets());
    let at = b.len() - udhcpc_options().len() - 1 - 4;
    assert_eq!(&b[at - 2..at], [54, 4]);
    b[at + 3] = 254;
    assert_eq!(s.handle(T0, WEB, &b), None);
    // A REQUEST naming no address at all.
    assert_eq!(s.handle(T0, WEB, &request(0, [0; 4], [0; 4], &[])), None);
    // Server messages and replies sent to us.
    assert_eq!(
        s.handle(T0, WEB, &message(WEB, MessageType::Offer, GW)),
        None
    );
    let mut b = discover();
    b[0] = 2;
    assert_eq!(s.handle(T0, WEB, &b), None);
    assert_eq!(s.leases().count(), 0);
}

#[test]
fn inform_gets_configuration_without_a_lease() {
    let mut s = server();
    let static_ip = Ipv4Addr::new(10, 10, 0, 50);
    let reply = s
        .handle(
            T0,
            STRANGER,
            &message(STRANGER, MessageType::Inform, static_ip),
        )
        .unwrap();
    let ack = DhcpRepr::parse(&reply.payload).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!((ack.ciaddr, ack.yiaddr), (static_ip, Ipv4Addr::UNSPECIFIED));
    assert_eq!(
        (ack.lease_time, ack.renewal_time, ack.rebinding_time),
        (None, None, None)
    );
    assert_eq!(ack.server_id, Some(GW));
    assert_eq!(ack.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!((ack.router, &ack.dns[..]), (Some(GW), &[GW][..]));
    assert_eq!(ack.domain_name.as_deref(), Some("lab"));
    assert_eq!(ack.hostname, None);
    assert_eq!(
        reply.to,
        Destination::Unicast {
            ip: static_ip,
            mac: STRANGER
        }
    );
    assert_eq!(s.leases().count(), 0);
    // Not on this network.
    let outside = Ipv4Addr::new(10, 11, 0, 50);
    assert_eq!(
        s.handle(
            T0,
            STRANGER,
            &message(STRANGER, MessageType::Inform, outside)
        ),
        None
    );
}

#[test]
fn release_and_decline_end_the_lease() {
    let mut s = server();
    s.handle(T0, WEB, &selecting(WEB_IP.octets())).unwrap();
    // Releasing an address it does not hold changes nothing.
    let other = Ipv4Addr::new(10, 10, 0, 9);
    assert_eq!(
        s.handle(T0, WEB, &message(WEB, MessageType::Release, other)),
        None
    );
    assert_eq!(s.leases().count(), 1);
    assert_eq!(
        s.handle(T0, WEB, &message(WEB, MessageType::Release, WEB_IP)),
        None
    );
    assert_eq!(s.leases().count(), 0);

    s.handle(T0, WEB, &selecting(WEB_IP.octets())).unwrap();
    let mut decline = DhcpRepr::new(Op::BootRequest, MessageType::Decline, XID, WEB);
    decline.requested_ip = Some(WEB_IP);
    decline.server_id = Some(GW);
    assert_eq!(s.handle(T0, WEB, &to_bytes(&decline)), None);
    assert_eq!(s.leases().count(), 0);
    // The reservation stays: the next DISCOVER is offered the same address.
    let offer = s.handle(T0, WEB, &discover()).unwrap();
    assert_eq!(DhcpRepr::parse(&offer.payload).unwrap().yiaddr, WEB_IP);
}

#[test]
fn leases_expire() {
    let mut s = server();
    s.handle(T0, WEB, &selecting(WEB_IP.octets())).unwrap();
    s.expire(Timestamp::from_secs(3699));
    assert_eq!(s.leases().count(), 1);
    s.expire(Timestamp::from_secs(3700));
    assert_eq!(s.leases().count(), 0);
}

#[test]
fn leases_survive_export_and_import() {
    let mut s = server();
    s.handle(T0, WEB, &selecting(WEB_IP.octets())).unwrap();
    let json = serde_json::to_string(&s.leases().collect::<Vec<_>>()).unwrap();
    assert_eq!(
        json,
        r#"[{"mac":"02:42:0a:0a:00:02","ip":"10.10.0.2","expires":3700000000000}]"#
    );
    let saved: Vec<Lease> = serde_json::from_str(&json).unwrap();

    let mut fresh = server();
    let stale = Lease {
        mac: STRANGER,
        ip: Ipv4Addr::new(10, 10, 0, 3),
        expires: T0,
    };
    let moved = Lease {
        mac: WEB,
        ip: Ipv4Addr::new(10, 10, 0, 4),
        ..saved[0]
    };
    fresh.import([stale, moved]);
    assert_eq!(fresh.leases().count(), 0);
    fresh.import(saved.clone());
    assert_eq!(fresh.leases().collect::<Vec<_>>(), saved);
}

#[test]
fn options_that_do_not_fit_are_left_out() {
    let mut c = ServerConfig::new(GW, Ipv4Net::new(Ipv4Addr::new(10, 10, 0, 0), 24).unwrap());
    c.domain = Some("d".repeat(200));
    let mut s = DhcpServer::new(c);
    s.reserve(WEB, WEB_IP, Some("h".repeat(200)));
    // udhcpc's max size is 576: the host name goes, the domain stays.
    let reply = s.handle(T0, WEB, &discover()).unwrap();
    assert!(reply.payload.len() <= 548);
    let offer = DhcpRepr::parse(&reply.payload).unwrap();
    assert_eq!(offer.hostname, None);
    assert_eq!(offer.domain_name.map(|d| d.len()), Some(200));
    // With room for both (option 57 of 1500), both go out.
    let b = discover();
    let at = 240 + 3 + 9;
    assert_eq!(&b[at..at + 2], [57, 2]);
    let mut b = b;
    b[at + 2..at + 4].copy_from_slice(&1500u16.to_be_bytes());
    let offer = DhcpRepr::parse(&s.handle(T0, WEB, &b).unwrap().payload).unwrap();
    assert_eq!(offer.hostname.map(|h| h.len()), Some(200));
}

#[test]
fn malformed_payloads_are_ignored() {
    let mut s = server();
    let good = discover();
    // Every truncation: below the header nothing parses; past it, udhcpc's
    // options are cut mid-way.
    for len in 0..good.len() {
        let r = s.handle(T0, WEB, &good[..len]);
        if len < 243 || (244..252).contains(&len) {
            assert_eq!(r, None, "len {len}");
        }
    }
    let mut b = good.clone();
    b[239] = 0x64;
    assert_eq!(s.handle(T0, WEB, &b), None, "no cookie");
    let mut b = good.clone();
    b[244] = 0xff; // client id claims 255 bytes: past the End and the padding
    assert_eq!(s.handle(T0, WEB, &b), None, "option overrun");
    let mut b = good.clone();
    b[241] = 2; // message type of two bytes
    assert_eq!(s.handle(T0, WEB, &b), None, "bad option length");
    assert_eq!(s.leases().count(), 0);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut s = server();
        let _ = s.handle(T0, WEB, &b);
    }

    #[test]
    fn mutated_requests_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut b = [discover(), selecting(WEB_IP.octets()), request(0, WEB_IP.octets(), [0; 4], &[])]
            [which]
            .clone();
        for (at, v) in edits {
            let i = at % b.len();
            b[i] = v;
        }
        b.truncate(cut % (b.len() + 1));
        let mut s = server();
        if let Some(r) = s.handle(T0, WEB, &b) {
            // Whatever we answer parses back.
            prop_assert!(DhcpRepr::parse(&r.payload).is_ok());
        }
    }
}
