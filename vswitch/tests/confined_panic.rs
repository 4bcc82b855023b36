//! `privileges::run_confined` when the datapath panics: the child exits
//! 101 and the parent, still running, learns it. A process of its own with
//! no test harness, since forking asks for a single thread. Needs root to
//! drop capabilities; without it, says so and passes.

use std::cell::Cell;

use vswitch::io::privileges::{run_confined, Exit};

fn main() {
    if !vswitch::io::is_root() {
        eprintln!("skipping confined_panic: dropping capabilities needs root");
        return;
    }
    let announced = Cell::new(false);
    let exit = run_confined(
        |_ready, _parent| panic!("a bug in the datapath"),
        || announced.set(true),
        |_| {},
    );
    assert_eq!(exit.expect("fork"), Exit::Code(101));
    assert!(!announced.get(), "never ready, never announced");

    let exit = run_confined(
        |ready, _parent| {
            ready();
            panic!("a bug once forwarding")
        },
        || announced.set(true),
        |_| {},
    );
    assert_eq!(exit.expect("fork"), Exit::Code(101));
    assert!(announced.get());

    // A datapath that ends on its own passes its code through.
    let exit = run_confined(|_ready, _parent| 7, || {}, |_| {});
    assert_eq!(exit.expect("fork"), Exit::Code(7));
    println!("confined_panic: ok");
}
