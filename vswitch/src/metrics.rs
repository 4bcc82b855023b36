//! The Prometheus text exposition of the switch's counters, rendered
//! without I/O; `io::metrics` serves it over HTTP when `run --metrics` asks.

use std::fmt::Write as _;

use crate::stats::{IoStats, PortStats};
use crate::switch::Switch;

/// Reads one of a port's counters.
type Counter = fn(&PortStats) -> u64;

/// Every counter, in the text format (version 0.0.4).
pub fn render(switch: &Switch, io: &IoStats) -> String {
    let mut s = String::new();
    let ports = switch.ports();
    let per_port: [(&str, &str, Counter); 4] = [
        ("rx_packets", "Frames received on the port.", |st| {
            st.rx_packets
        }),
        ("rx_bytes", "Bytes received on the port.", |st| st.rx_bytes),
        ("tx_packets", "Frames sent on the port.", |st| st.tx_packets),
        ("tx_bytes", "Bytes sent on the port.", |st| st.tx_bytes),
    ];
    for (name, help, value) in per_port {
        header(
            &mut s,
            &format!("vswitch_port_{name}_total"),
            help,
            "counter",
        );
        for p in ports {
            let _ = writeln!(
                s,
                "vswitch_port_{name}_total{{port=\"{}\"}} {}",
                p.name,
                value(&p.stats)
            );
        }
    }
    header(
        &mut s,
        "vswitch_port_drops_total",
        "Frames dropped, by the port they came in by and the reason.",
        "counter",
    );
    for p in ports {
        for (reason, n) in p.stats.drop_counts() {
            let _ = writeln!(
                s,
                "vswitch_port_drops_total{{port=\"{}\",reason=\"{reason}\"}} {n}",
                p.name
            );
        }
    }
    header(
        &mut s,
        "vswitch_io_errors_total",
        "Errors reading or writing devices.",
        "counter",
    );
    let _ = writeln!(
        s,
        "vswitch_io_errors_total{{direction=\"rx\"}} {}",
        io.rx_errors
    );
    let _ = writeln!(
        s,
        "vswitch_io_errors_total{{direction=\"tx\"}} {}",
        io.tx_errors
    );
    header(
        &mut s,
        "vswitch_datapath_frames_total",
        "Frames each datapath thread received.",
        "counter",
    );
    for (thread, n) in io.thread_frames.iter().enumerate() {
        let _ = writeln!(
            s,
            "vswitch_datapath_frames_total{{thread=\"{thread}\"}} {n}"
        );
    }
    header(
        &mut s,
        "vswitch_tx_batches_total",
        "sendmmsg calls writing frames to AF_PACKET and vxlan sockets.",
        "counter",
    );
    let _ = writeln!(s, "vswitch_tx_batches_total {}", io.tx_batches);
    header(
        &mut s,
        "vswitch_tx_batched_frames_total",
        "Frames those sendmmsg calls wrote.",
        "counter",
    );
    let _ = writeln!(s, "vswitch_tx_batched_frames_total {}", io.tx_batched);
    header(
        &mut s,
        "vswitch_fast_path_lookups_total",
        "Eligible frames the exact-match cache sent on (hit) or left to the full pipeline (miss).",
        "counter",
    );
    let fast = switch.fast_path();
    for (result, n) in [("hit", fast.hits), ("miss", fast.misses)] {
        let _ = writeln!(
            s,
            "vswitch_fast_path_lookups_total{{result=\"{result}\"}} {n}"
        );
    }
    header(
        &mut s,
        "vswitch_conntrack_entries",
        "Tracked connections.",
        "gauge",
    );
    let _ = writeln!(
        s,
        "vswitch_conntrack_entries {}",
        switch.firewall().conntrack().len()
    );
    header(&mut s, "vswitch_fdb_entries", "MAC table entries.", "gauge");
    let _ = writeln!(s, "vswitch_fdb_entries {}", switch.fdb().len());
    s
}

fn header(s: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(s, "# HELP {name} {help}");
    let _ = writeln!(s, "# TYPE {name} {kind}");
}
