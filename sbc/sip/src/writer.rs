//! Serialization of SIP messages into a caller-supplied buffer.
//!
//! The writer appends to the caller's `Vec<u8>`, so a worker that keeps one send buffer per loop turn
//! allocates nothing once that buffer has grown to the largest message it has sent.

use std::io::Write as _;

use crate::message::Method;

/// Writes one SIP message into `out`. Headers are written as given; [`MessageWriter::finish`] appends
/// Content-Type (when there is a body), Content-Length computed from the body, the blank line and the body.
#[must_use = "a message is only complete once `finish` is called"]
pub struct MessageWriter<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> MessageWriter<'b> {
    /// Start a request: `METHOD uri SIP/2.0\r\n`.
    pub fn request(out: &'b mut Vec<u8>, method: &Method, uri: &str) -> Self {
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(uri.as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\n");
        Self { out }
    }

    /// Start a response: `SIP/2.0 code reason\r\n`.
    pub fn response(out: &'b mut Vec<u8>, code: u16, reason: &str) -> Self {
        out.extend_from_slice(b"SIP/2.0 ");
        push_u32(out, u32::from(code));
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        Self { out }
    }

    /// Append `name: value\r\n`.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Append `name: ` followed by the pieces of the value, concatenated, and `\r\n`. Saves the caller
    /// a temporary string when a value is built from parts (e.g. a To header plus `;tag=`).
    pub fn header_parts(&mut self, name: &str, parts: &[&str]) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        for part in parts {
            self.out.extend_from_slice(part.as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Append `CSeq: <seq> <method>\r\n`.
    pub fn header_cseq(&mut self, seq: u32, method: &str) -> &mut Self {
        self.out.extend_from_slice(b"CSeq: ");
        push_u32(self.out, seq);
        self.out.push(b' ');
        self.out.extend_from_slice(method.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Append `name: <number>\r\n`.
    pub fn header_u32(&mut self, name: &str, value: u32) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        push_u32(self.out, value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Append Content-Type (if given and the body is not empty), Content-Length, the blank line and the
    /// body. Content-Length is always written: stream transports need it (RFC 3261 §18.3).
    pub fn finish(self, content_type: Option<&str>, body: &[u8]) {
        if let Some(ct) = content_type.filter(|_| !body.is_empty()) {
            self.out.extend_from_slice(b"Content-Type: ");
            self.out.extend_from_slice(ct.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        self.out.extend_from_slice(b"Content-Length: ");
        push_u32(self.out, u32::try_from(body.len()).unwrap_or(u32::MAX));
        self.out.extend_from_slice(b"\r\n\r\n");
        self.out.extend_from_slice(body);
    }
}

fn push_u32(out: &mut Vec<u8>, n: u32) {
    let mut buf = [0u8; 10];
    out.extend_from_slice(decimal(n, &mut buf).as_bytes());
}

/// Append `ip` in dotted decimal (what `Display` writes, without the formatting machinery: the
/// B2BUA writes addresses into several headers of every message).
pub fn push_ipv4(out: &mut String, ip: std::net::Ipv4Addr) {
    let mut buf = [0u8; 10];
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(decimal(u32::from(octet), &mut buf));
    }
}

/// Append `addr` as `Display` writes it (`a.b.c.d:port`, `[v6]:port`); IPv4 without the formatting
/// machinery.
pub fn push_socket_addr(out: &mut String, addr: std::net::SocketAddr) {
    match addr {
        std::net::SocketAddr::V4(a) => {
            push_ipv4(out, *a.ip());
            out.push(':');
            let mut buf = [0u8; 10];
            out.push_str(decimal(u32::from(a.port()), &mut buf));
        }
        std::net::SocketAddr::V6(a) => {
            use std::fmt::Write;
            let _ = write!(out, "{a}");
        }
    }
}

/// `n` in decimal, written into `buf` (no allocation, no formatting machinery).
pub fn decimal(n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(buf.get(i..).unwrap_or_default()).unwrap_or_default()
}

/// Writes `args` into `out` (used where a value is a formatted number or address).
pub fn write_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    // Writing into a Vec<u8> cannot fail.
    let _ = out.write_fmt(args);
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:5060",
            "255.255.255.255:65535",
            "10.20.3.4:80",
            "[::1]:5060",
            "[2001:db8::7]:1",
        ] {
            let addr: std::net::SocketAddr = a.parse().unwrap();
            let mut out = String::new();
            push_socket_addr(&mut out, addr);
            assert_eq!(out, addr.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_with_body_gets_type_and_length() {
        let mut out = Vec::new();
        let mut w = MessageWriter::response(&mut out, 200, "OK");
        w.header("Call-ID", "abc").header_u32("Expires", 3600);
        w.finish(Some("application/sdp"), b"v=0\r\n");
        assert_eq!(
            out,
            b"SIP/2.0 200 OK\r\nCall-ID: abc\r\nExpires: 3600\r\nContent-Type: application/sdp\r\n\
Content-Length: 5\r\n\r\nv=0\r\n"
        );
    }

    #[test]
    fn request_without_body_has_zero_length_and_no_type() {
        let mut out = Vec::new();
        let mut w = MessageWriter::request(&mut out, &Method::Options, "sip:sbc.example.com");
        w.header_parts("To", &["<sip:a@b>", ";tag=", "x1"]);
        w.finish(Some("application/sdp"), b"");
        assert_eq!(
            out,
            b"OPTIONS sip:sbc.example.com SIP/2.0\r\nTo: <sip:a@b>;tag=x1\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0u32, 7, 10, 100, 65535, 2_147_483_647, u32::MAX] {
            let mut out = Vec::new();
            push_u32(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
