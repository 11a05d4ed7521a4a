//! Replays the B2BUA fuzz seeds and the saved regression inputs through the fuzz target body, on
//! stable, with every `cargo test`: an invariant broken by a checked-in input fails here without a
//! fuzzer.

#[path = "../../sip/tests/common/fuzz_replay.rs"]
mod fuzz_replay;

#[test]
fn b2bua_seeds() {
    let ran = fuzz_replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "b2bua",
        sbc_core::fuzzing::b2bua,
    );
    assert!(ran > 0, "no seeds for the b2bua target");
}
