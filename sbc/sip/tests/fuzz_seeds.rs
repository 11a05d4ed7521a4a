//! Replays the fuzz seeds and the saved regression inputs through the fuzz target bodies, on stable, with
//! every `cargo test`: an invariant broken by a checked-in input fails here without a fuzzer.

#[path = "common/fuzz_replay.rs"]
mod fuzz_replay;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    fuzz_replay::replay(env!("CARGO_MANIFEST_DIR"), target, body)
}

#[test]
fn sip_message_seeds() {
    assert!(replay("sip_message", sbc_sip::fuzzing::sip_message) > 0);
}

#[test]
fn sip_framing_seeds() {
    assert!(replay("sip_framing", sbc_sip::fuzzing::sip_framing) > 0);
}

#[test]
fn sdp_seeds() {
    assert!(replay("sdp", sbc_sip::fuzzing::sdp) > 0);
}

#[test]
fn transactions_seeds() {
    replay("transactions", sbc_sip::fuzzing::transactions);
}
