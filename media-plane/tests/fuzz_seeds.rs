//! Replays the relay fuzz seeds and the saved regression inputs through the fuzz target body, on
//! stable, with every `cargo test`: an invariant broken by a checked-in input fails here without a
//! fuzzer.

#[path = "../../sbc/sip/tests/common/fuzz_replay.rs"]
mod fuzz_replay;

#[test]
fn relay_seeds() {
    let ran = fuzz_replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "relay",
        media_plane::fuzzing::relay,
    );
    assert!(ran > 0, "no seeds for the relay target");
}
