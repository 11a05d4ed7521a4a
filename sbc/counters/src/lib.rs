//! `sbc-counters`: one macro, [`counters!`], that declares the counters of a layer (transport, SIP,
//! B2BUA, media, guard) from ONE list of documented fields.
//!
//! From that list it generates the struct (every field a `u64`, `Copy`, so a snapshot is a copy),
//! [`merge`](#merging) to sum the snapshots of several workers, and `fields()`, the name, kind, help
//! text and value of each field in declaration order, for logs and for the Prometheus exposition.
//! Adding a counter is adding one line: nothing else keeps a list of the fields.
//!
//! Each field is a `counter` (only grows) or a `gauge` (a level that goes up and down, such as live
//! calls). Both are summed across workers; the kind tells an exposition which type to declare.
//!
//! ```
//! sbc_counters::counters! {
//!     /// What the transport layer of one worker counted.
//!     pub struct Transport {
//!         /// Datagrams received.
//!         counter udp_rx,
//!         /// Connections open now.
//!         gauge tcp_open,
//!     }
//! }
//!
//! let mut total = Transport::default();
//! total.merge(&Transport { udp_rx: 3, tcp_open: 1 });
//! total.merge(&Transport { udp_rx: 4, tcp_open: 2 });
//! assert_eq!(total, Transport { udp_rx: 7, tcp_open: 3 });
//! let [rx, open] = total.fields();
//! assert_eq!((rx.name, rx.kind, rx.value), ("udp_rx", sbc_counters::Kind::Counter, 7));
//! assert_eq!((open.name, open.kind, open.help), ("tcp_open", sbc_counters::Kind::Gauge, "Connections open now."));
//! ```
//!
//! # Merging
//! `merge` adds field by field with saturating arithmetic: a total never wraps.
//!
//! No IO, no clock, no allocation: `no_std`.
#![cfg_attr(not(test), no_std)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

/// Whether a field only grows or is a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Only grows while the process runs (packets received, calls started).
    Counter,
    /// A level that goes up and down (live calls, ports in use).
    Gauge,
}

impl Kind {
    /// The Prometheus type name: `counter` or `gauge`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// One field of a counters struct: its name, kind, documentation and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name, as declared (`udp_rx`).
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The field's doc comment, lines joined, outer whitespace trimmed.
    pub help: &'static str,
    /// The value.
    pub value: u64,
}

/// Declares a counters struct from one list of documented fields.
///
/// ```text
/// counters! {
///     /// Doc of the struct (required by `missing_docs` when public).
///     pub struct Name {
///         /// Doc of the field (required: it is the help text).
///         counter field_a,
///         /// ...
///         gauge field_b,
///     }
/// }
/// ```
///
/// The struct derives `Clone, Copy, Debug, Default, PartialEq, Eq`; its fields are `u64` with the
/// visibility of the struct. Generated items:
/// - `LEN`: the number of fields;
/// - `merge(&mut self, other: &Self)`: saturating field-by-field sum;
/// - `fields(&self) -> [Field; LEN]`: name, kind, help and value per field, in declaration order.
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $kind:ident $field:ident
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        $vis struct $name {
            $(
                $(#[doc = $doc])+
                $vis $field: u64,
            )*
        }

        impl $name {
            /// The number of fields.
            $vis const LEN: usize = <[&str]>::len(&[$(stringify!($field)),*]);

            /// Add `other` field by field (saturating): the sum of several workers' snapshots.
            $vis fn merge(&mut self, other: &Self) {
                let _ = other; // a struct without fields has nothing to add
                $( self.$field = self.$field.saturating_add(other.$field); )*
            }

            /// Name, kind, help text and value of every field, in declaration order.
            $vis fn fields(&self) -> [$crate::Field; Self::LEN] {
                [$(
                    $crate::Field {
                        name: stringify!($field),
                        kind: $crate::counters!(@kind $kind),
                        help: concat!($($doc),+).trim_ascii(),
                        value: self.$field,
                    }
                ),*]
            }
        }
    };
    (@kind counter) => { $crate::Kind::Counter };
    (@kind gauge) => { $crate::Kind::Gauge };
}

#[cfg(test)]
mod tests {
    use super::{Field, Kind};

    counters! {
        /// A layer for the tests.
        pub(crate) struct Layer {
            /// Datagrams received.
            counter rx,
            /// Calls held now,
            /// on two lines.
            gauge live,
            /// Errors.
            counter errors,
        }
    }

    counters! {
        /// A private layer with no fields.
        struct Empty {}
    }

    #[test]
    fn merge_sums_every_field() {
        let mut total = Layer::default();
        total.merge(&Layer {
            rx: 1,
            live: 2,
            errors: 3,
        });
        total.merge(&Layer {
            rx: 10,
            live: 20,
            errors: 30,
        });
        assert_eq!(
            total,
            Layer {
                rx: 11,
                live: 22,
                errors: 33
            }
        );
    }

    #[test]
    fn merge_saturates() {
        let mut total = Layer {
            rx: u64::MAX - 1,
            ..Layer::default()
        };
        total.merge(&Layer {
            rx: 5,
            ..Layer::default()
        });
        assert_eq!(total.rx, u64::MAX);
    }

    #[test]
    fn fields_in_declaration_order_with_kind_and_help() {
        let l = Layer {
            rx: 7,
            live: 8,
            errors: 9,
        };
        assert_eq!(Layer::LEN, 3);
        assert_eq!(
            l.fields(),
            [
                Field {
                    name: "rx",
                    kind: Kind::Counter,
                    help: "Datagrams received.",
                    value: 7
                },
                Field {
                    name: "live",
                    kind: Kind::Gauge,
                    help: "Calls held now, on two lines.",
                    value: 8
                },
                Field {
                    name: "errors",
                    kind: Kind::Counter,
                    help: "Errors.",
                    value: 9
                },
            ]
        );
        assert_eq!(Kind::Gauge.as_str(), "gauge");
        assert_eq!(Kind::Counter.as_str(), "counter");
    }

    #[test]
    fn empty_layer() {
        let mut e = Empty::default();
        e.merge(&Empty {});
        assert_eq!(Empty::LEN, 0);
        assert_eq!(e.fields(), []);
    }

    #[test]
    fn debug_prints_name_colon_value() {
        // The SBC's exit log (and the integration tests reading it) rely on `name: value`.
        let l = Layer {
            rx: 4,
            live: 0,
            errors: 1,
        };
        assert_eq!(format!("{l:?}"), "Layer { rx: 4, live: 0, errors: 1 }");
    }
}
