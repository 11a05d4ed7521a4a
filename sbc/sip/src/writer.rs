//! Serialization of SIP messages into a caller-supplied buffer (no allocation once the buffer has grown).

use crate::message::Method;

/// Writes one SIP message into `out`. Headers are written as given; `finish` appends Content-Length
/// (computed from the body) and the body.
pub struct MessageWriter<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> MessageWriter<'b> {
    /// Start a request: `METHOD uri SIP/2.0\r\n`.
    pub fn request(out: &'b mut Vec<u8>, method: &Method, uri: &str) -> Self {
        let _ = (method, uri);
        Self { out }
    }
    /// Start a response: `SIP/2.0 code reason\r\n`.
    pub fn response(out: &'b mut Vec<u8>, code: u16, reason: &str) -> Self {
        let _ = (code, reason);
        Self { out }
    }
    /// Append `name: value\r\n`.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = (name, value, &self.out);
        todo!()
    }
    /// Append Content-Length and the body (and Content-Type if given and the body is not empty).
    pub fn finish(self, content_type: Option<&str>, body: &[u8]) {
        let _ = (content_type, body);
        todo!()
    }
}
