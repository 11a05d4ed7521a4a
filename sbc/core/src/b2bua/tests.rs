//! Unit tests of the B2BUA.

use super::*;

#[test]
fn contact_uri_is_extracted() {
    assert_eq!(
        uri_of("<sip:a@1.2.3.4:5060;transport=udp>;expires=3"),
        "sip:a@1.2.3.4:5060;transport=udp"
    );
    assert_eq!(uri_of("sip:a@1.2.3.4;expires=3"), "sip:a@1.2.3.4");
    assert_eq!(uri_of("\"A\" <sip:a@h>"), "sip:a@h");
}

#[test]
fn sides_are_opposite() {
    assert_eq!(other(Side::Inside), Side::Outside);
    assert_eq!(other(Side::Outside), Side::Inside);
}
