//! Reading a capture: the UDP datagrams of a pcap or pcapng file (Ethernet, Linux cooked, raw IP or
//! BSD loopback link types), each with its capture time, source, destination and payload. Pure Rust
//! (`pcap-file` + `etherparse`): no libpcap, no root.

use std::fs::File;
use std::io::{BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

/// One UDP datagram of a capture.
#[derive(Debug, Clone)]
pub(crate) struct Datagram {
    /// Capture time, from the start of the capture.
    pub(crate) at: Duration,
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    pub(crate) payload: Vec<u8>,
}

/// At most this many datagrams are read from one capture (a recorded call, not a trace).
const MAX_DATAGRAMS: usize = 200_000;

/// Reads every UDP datagram of the capture at `path`, in capture order.
pub(crate) fn read_udp(path: &Path) -> Result<Vec<Datagram>, String> {
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut first: Option<Duration> = None;
    let mut push = |ts: Duration, link: DataLink, data: &[u8]| {
        if out.len() >= MAX_DATAGRAMS {
            return;
        }
        if let Some((src, dst, payload)) = udp_of(link, data) {
            let start = *first.get_or_insert(ts);
            out.push(Datagram {
                at: ts.saturating_sub(start),
                src,
                dst,
                payload: payload.to_vec(),
            });
        }
    };
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut ng = PcapNgReader::new(reader).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut links = Vec::new();
        while let Some(block) = ng.next_block() {
            let block = block.map_err(|e| format!("{}: {e}", path.display()))?;
            match block {
                Block::InterfaceDescription(idb) => links.push(idb.linktype),
                Block::EnhancedPacket(epb) => {
                    let link = links
                        .get(epb.interface_id as usize)
                        .copied()
                        .unwrap_or(DataLink::ETHERNET);
                    push(epb.timestamp, link, &epb.data);
                }
                _ => {}
            }
        }
    } else {
        let mut pcap = PcapReader::new(reader).map_err(|e| format!("{}: {e}", path.display()))?;
        let link = pcap.header().datalink;
        while let Some(pkt) = pcap.next_packet() {
            let pkt = pkt.map_err(|e| format!("{}: {e}", path.display()))?;
            push(pkt.timestamp, link, &pkt.data);
        }
    }
    Ok(out)
}

/// The UDP addresses and payload of one link-layer frame, if it is an unfragmented UDP datagram.
fn udp_of(link: DataLink, data: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let sliced = match link {
        DataLink::ETHERNET => SlicedPacket::from_ethernet(data).ok()?,
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data).ok()?,
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data).ok()?,
        // BSD loopback: a 4-byte address family, then the IP packet.
        DataLink::NULL | DataLink::LOOP => SlicedPacket::from_ip(data.get(4..)?).ok()?,
        _ => return None,
    };
    let (sip, dip): (IpAddr, IpAddr) = match sliced.net? {
        NetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
    };
    let TransportSlice::Udp(udp) = sliced.transport? else {
        return None;
    };
    Some((
        SocketAddr::new(sip, udp.source_port()),
        SocketAddr::new(dip, udp.destination_port()),
        udp.payload(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcaps() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
    }

    #[test]
    fn reads_the_recorded_call() {
        let d = read_udp(&pcaps().join("g711-rtcp.pcap")).unwrap();
        // 7 s of 30 ms audio both ways, SIP and RTCP: the text twin lists 495 packets.
        assert!(d.len() > 480, "{}", d.len());
        assert!(d[0].payload.starts_with(b"INVITE "));
        assert_eq!(d[0].at, Duration::ZERO);
        assert_eq!(d[0].src.to_string(), "127.46.0.1:5060");
        assert!(d.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        assert!(read_udp(Path::new("/nonexistent.pcap")).is_err());
    }
}
