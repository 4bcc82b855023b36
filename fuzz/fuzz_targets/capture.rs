#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::targets::capture(data));
