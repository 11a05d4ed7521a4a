//! ng replies: [`Reply`] for the ng engine to encode, and [`ReplyView`] for the load tester to
//! read what rtpengine answered.
//!
//! The statistics of `query` (and optionally of `delete`) follow rtpengine's shape, which
//! Kamailio's `rtpengine` module reads: `created`, `last signal`, `tags` (one dictionary per SIP
//! tag, with its `medias` and their `streams`) and `totals`, whose `RTP` and `RTCP` dictionaries
//! hold `packets`, `bytes` and `errors` (the `$rtpstat` variable prints exactly those six). Keys are
//! written in bencode's canonical (sorted) order; rtpengine's clients accept any order.

use std::net::SocketAddr;

use super::bencode::{self, Dict, DictEncoder, Value};
use super::{name_eq, NgError};

/// Packet counters of one stream, or of a call's RTP or RTCP in total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets relayed.
    pub packets: u64,
    /// Bytes relayed.
    pub bytes: u64,
    /// Packets that could not be relayed.
    pub errors: u64,
}

/// A call's counters in total (`totals`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// All RTP streams.
    pub rtp: Counters,
    /// All RTCP streams.
    pub rtcp: Counters,
}

/// One packet stream of a media section (usually one for RTP, one for RTCP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats<'r> {
    /// Local relay port (`local port`), absent for an inactive stream.
    pub local_port: Option<u16>,
    /// Where media is sent (`endpoint`).
    pub endpoint: Option<SocketAddr>,
    /// What the SDP advertised (`advertised endpoint`).
    pub advertised_endpoint: Option<SocketAddr>,
    /// SRTP suite in use (`crypto suite`).
    pub crypto_suite: Option<&'r str>,
    /// Unix time of the last packet received (`last packet`).
    pub last_packet: Option<i64>,
    /// Status flags (`RTP`, `RTCP`, `filled`, `confirmed`, ...).
    pub flags: &'r [&'r str],
    /// Counters (`stats`).
    pub stats: Counters,
}

/// One media section (`m=` line) of a party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaStats<'r> {
    /// 1-based position in the SDP (`index`).
    pub index: u32,
    /// `audio`, `video`, ... (`type`).
    pub media_type: &'r str,
    /// `RTP/AVP`, ... (`protocol`).
    pub protocol: Option<&'r str>,
    /// Status flags (`initialized`, `rtcp-mux`, `ICE`, ...).
    pub flags: &'r [&'r str],
    /// Packet streams.
    pub streams: &'r [StreamStats<'r>],
}

/// One party of a call, by SIP tag (an entry of `tags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagStats<'r> {
    /// The SIP tag; empty for a side that has not signalled one yet.
    pub tag: &'r [u8],
    /// Unix time the tag was first seen.
    pub created: i64,
    /// The party's label.
    pub label: Option<&'r [u8]>,
    /// The tag of the other side (`in dialogue with`).
    pub in_dialogue_with: Option<&'r [u8]>,
    /// Its media sections.
    pub medias: &'r [MediaStats<'r>],
}

/// Statistics of one call: the reply to `query`, optionally to `delete`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats<'r> {
    /// Unix time the call was created.
    pub created: i64,
    /// Microseconds part of `created` (`created_us`), if known.
    pub created_us: Option<u32>,
    /// Unix time of the last offer, answer or other signalling (`last signal`).
    pub last_signal: i64,
    /// The parties.
    pub tags: &'r [TagStats<'r>],
    /// Counters in total.
    pub totals: Totals,
}

/// A reply to encode. `warning` goes with `result: ok` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'r> {
    /// `{result: pong}`, to `ping`.
    Pong,
    /// `{result: ok}`: to `delete` without statistics, or any command with nothing to return.
    Ok {
        /// A non-fatal problem to report.
        warning: Option<&'r str>,
    },
    /// `{result: ok, sdp}`, to `offer` and `answer`.
    Sdp {
        /// The rewritten SDP.
        sdp: &'r [u8],
        /// A non-fatal problem to report.
        warning: Option<&'r str>,
    },
    /// `{result: ok, created, last signal, tags, totals}`, to `query`, or to `delete` with
    /// statistics.
    Stats {
        /// The call's statistics.
        stats: &'r CallStats<'r>,
        /// A non-fatal problem to report.
        warning: Option<&'r str>,
    },
    /// `{result: ok, calls: [call-id, ...]}`, to `list`.
    List {
        /// Call-ids.
        calls: &'r [&'r [u8]],
    },
    /// `{result: error, error-reason}`.
    Error {
        /// Why.
        reason: &'r str,
    },
}

impl Reply<'_> {
    /// Encode the reply dictionary (without cookie) into `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        bencode::dict(out, |d| match *self {
            Self::Pong => {
                d.bytes("result", b"pong");
            }
            Self::Ok { warning } => {
                d.bytes("result", b"ok");
                d.opt_bytes("warning", warning.map(str::as_bytes));
            }
            Self::Sdp { sdp, warning } => {
                d.bytes("result", b"ok").bytes("sdp", sdp);
                d.opt_bytes("warning", warning.map(str::as_bytes));
            }
            Self::Stats { stats, warning } => {
                d.int("created", stats.created);
                if let Some(us) = stats.created_us {
                    d.int("created_us", i64::from(us));
                }
                d.int("last signal", stats.last_signal);
                d.bytes("result", b"ok");
                d.dict("tags", |t| {
                    for tag in stats.tags {
                        t.dict_raw_key(tag.tag, |d| encode_tag(d, tag));
                    }
                });
                d.dict("totals", |d| encode_totals(d, &stats.totals));
                d.opt_bytes("warning", warning.map(str::as_bytes));
            }
            Self::List { calls } => {
                d.list("calls", |l| {
                    for call in calls {
                        l.bytes(call);
                    }
                });
                d.bytes("result", b"ok");
            }
            Self::Error { reason } => {
                d.bytes("error-reason", reason.as_bytes())
                    .bytes("result", b"error");
            }
        });
    }
}

fn encode_tag(d: &mut DictEncoder<'_>, tag: &TagStats<'_>) {
    d.int("created", tag.created);
    d.opt_bytes("in dialogue with", tag.in_dialogue_with);
    d.opt_bytes("label", tag.label);
    d.list("medias", |l| {
        for media in tag.medias {
            l.dict(|d| encode_media(d, media));
        }
    });
    d.bytes("tag", tag.tag);
}

fn encode_media(d: &mut DictEncoder<'_>, media: &MediaStats<'_>) {
    d.list("flags", |l| {
        for flag in media.flags {
            l.bytes(flag.as_bytes());
        }
    });
    d.int("index", i64::from(media.index));
    d.opt_bytes("protocol", media.protocol.map(str::as_bytes));
    d.list("streams", |l| {
        for stream in media.streams {
            l.dict(|d| encode_stream(d, stream));
        }
    });
    d.bytes("type", media.media_type.as_bytes());
}

fn encode_stream(d: &mut DictEncoder<'_>, stream: &StreamStats<'_>) {
    if let Some(ep) = stream.advertised_endpoint {
        d.dict("advertised endpoint", |d| encode_endpoint(d, ep));
    }
    d.opt_bytes("crypto suite", stream.crypto_suite.map(str::as_bytes));
    if let Some(ep) = stream.endpoint {
        d.dict("endpoint", |d| encode_endpoint(d, ep));
    }
    d.list("flags", |l| {
        for flag in stream.flags {
            l.bytes(flag.as_bytes());
        }
    });
    if let Some(t) = stream.last_packet {
        d.int("last packet", t);
    }
    if let Some(port) = stream.local_port {
        d.int("local port", i64::from(port));
    }
    d.dict("stats", |d| encode_counters(d, &stream.stats));
}

fn encode_endpoint(d: &mut DictEncoder<'_>, ep: SocketAddr) {
    use std::io::Write;
    let mut buf = [0u8; 48];
    let mut cursor = std::io::Cursor::new(buf.as_mut_slice());
    // 48 bytes hold any address, so the write cannot fail; an error would leave it empty.
    let len = match write!(cursor, "{}", ep.ip()) {
        Ok(()) => usize::try_from(cursor.position()).unwrap_or(0),
        Err(_) => 0,
    };
    d.bytes("address", buf.get(..len).unwrap_or_default());
    let family: &[u8] = if ep.is_ipv4() { b"IPv4" } else { b"IPv6" };
    d.bytes("family", family);
    d.int("port", i64::from(ep.port()));
}

fn encode_totals(d: &mut DictEncoder<'_>, totals: &Totals) {
    d.dict("RTCP", |d| encode_counters(d, &totals.rtcp));
    d.dict("RTP", |d| encode_counters(d, &totals.rtp));
}

fn encode_counters(d: &mut DictEncoder<'_>, c: &Counters) {
    d.uint("bytes", c.bytes)
        .uint("errors", c.errors)
        .uint("packets", c.packets);
}

/// The `result` of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResultCode {
    /// `ok`.
    Ok,
    /// `pong`.
    Pong,
    /// `error` (see [`ReplyView::error_reason`]).
    Error,
    /// `load limit`: the engine refused a new call because of its load (the `supports`
    /// extension).
    LoadLimit,
    /// Anything else.
    Other,
}

/// A decoded reply, as the load tester reads rtpengine's answers. Byte strings borrow from the
/// datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyView<'a> {
    /// `result`.
    pub result: ResultCode,
    /// `sdp` (offer, answer).
    pub sdp: Option<&'a [u8]>,
    /// `warning`.
    pub warning: Option<&'a [u8]>,
    /// `error-reason`.
    pub error_reason: Option<&'a [u8]>,
    /// `created` (query, delete).
    pub created: Option<i64>,
    /// `last signal` (query, delete).
    pub last_signal: Option<i64>,
    /// `totals` (query, delete).
    pub totals: Option<Totals>,
    /// `calls` (list).
    pub calls: Vec<&'a [u8]>,
}

impl<'a> ReplyView<'a> {
    /// Read a reply from its decoded dictionary; fails only without a `result` string.
    pub fn from_dict(dict: Dict<'a, '_>) -> Result<Self, NgError> {
        let mut view = Self {
            result: ResultCode::Other,
            sdp: None,
            warning: None,
            error_reason: None,
            created: None,
            last_signal: None,
            totals: None,
            calls: Vec::new(),
        };
        let mut have_result = false;
        for (key, value) in dict.iter() {
            if name_eq(key, "result") {
                let Some(result) = value.as_bytes() else {
                    continue;
                };
                have_result = true;
                view.result = match result {
                    r if name_eq(r, "ok") => ResultCode::Ok,
                    r if name_eq(r, "pong") => ResultCode::Pong,
                    r if name_eq(r, "error") => ResultCode::Error,
                    r if name_eq(r, "load limit") => ResultCode::LoadLimit,
                    _ => ResultCode::Other,
                };
            } else if name_eq(key, "sdp") {
                view.sdp = value.as_bytes();
            } else if name_eq(key, "warning") {
                view.warning = value.as_bytes();
            } else if name_eq(key, "error-reason") {
                view.error_reason = value.as_bytes();
            } else if name_eq(key, "created") {
                view.created = value.as_int();
            } else if name_eq(key, "last signal") {
                view.last_signal = value.as_int();
            } else if name_eq(key, "totals") {
                view.totals = value.as_dict().map(read_totals);
            } else if name_eq(key, "calls") {
                if let Some(list) = value.as_list() {
                    view.calls = list.iter().filter_map(|v| v.as_bytes()).collect();
                }
            }
        }
        if !have_result {
            return Err(NgError::NoResult);
        }
        Ok(view)
    }
}

fn read_totals(dict: Dict<'_, '_>) -> Totals {
    let mut totals = Totals::default();
    for (key, value) in dict.iter() {
        let Some(inner) = value.as_dict() else {
            continue;
        };
        if name_eq(key, "RTP") {
            totals.rtp = read_counters(inner);
        } else if name_eq(key, "RTCP") {
            totals.rtcp = read_counters(inner);
        }
    }
    totals
}

fn read_counters(dict: Dict<'_, '_>) -> Counters {
    let get = |name: &str| {
        dict.iter()
            .find(|(k, _)| name_eq(k, name))
            .and_then(|(_, v)| match v {
                Value::Int(i) => u64::try_from(i).ok(),
                _ => None,
            })
            .unwrap_or(0)
    };
    Counters {
        packets: get("packets"),
        bytes: get("bytes"),
        errors: get("errors"),
    }
}
