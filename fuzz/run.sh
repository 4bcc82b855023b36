#!/usr/bin/env bash
# Fuzzes every target for SECONDS in all (default 60) with the stable
# random-mutation runner, starting from the kept corpus. A crash leaves its
# input in fuzz/artifacts/<target>/ and fails the script.
# Coverage-guided, where a nightly toolchain and cargo-fuzz are installed:
#   cd fuzz && cargo +nightly fuzz run switch --features libfuzzer corpus/switch
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
# A debug build: overflow checks and debug assertions find more, and it is
# the build `cargo test` has already made.
exec cargo run -q -p vswitch-fuzz --bin vswitch-fuzz -- run --seconds "$seconds"
