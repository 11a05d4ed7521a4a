//! The query string and path segments of a request: percent-decoding, the parameters a route
//! accepts (any other is refused, naming it), and paging (`limit` 1 to 1000, `offset`).

use crate::dto::{CallFilter, Paging};
use crate::handle::ApiError;

/// The largest page.
pub(crate) const MAX_LIMIT: u32 = 1000;

/// `%XX` and `+` decoded; `None` when the result is not UTF-8 or an escape is broken.
pub(crate) fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A request's query parameters, decoded.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Parse `q` (without the `?`); a broken escape is refused naming the parameter.
    pub(crate) fn parse(q: &str) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key =
                decode(k, true).ok_or_else(|| ApiError::invalid(k, "bad percent-encoding"))?;
            let value =
                decode(v, true).ok_or_else(|| ApiError::invalid(&key, "bad percent-encoding"))?;
            if out.iter().any(|(k, _): &(String, String)| *k == key) {
                return Err(ApiError::invalid(&key, "given twice"));
            }
            out.push((key, value));
        }
        Ok(Self(out))
    }

    /// Refuse any parameter not in `allowed`.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(ApiError::invalid(
                k,
                if allowed.is_empty() {
                    "this endpoint takes no query parameter".to_string()
                } else {
                    format!("unknown query parameter (known: {})", allowed.join(", "))
                },
            )),
            None => Ok(()),
        }
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `limit` and `offset`, checked.
    pub(crate) fn paging(&self) -> Result<Paging, ApiError> {
        let mut p = Paging::default();
        if let Some(v) = self.get("limit") {
            p.limit = match v.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    ))
                }
            };
        }
        if let Some(v) = self.get("offset") {
            p.offset = v.parse::<u32>().map_err(|_| {
                ApiError::invalid("offset", "must be an integer from 0 to 4294967295")
            })?;
        }
        Ok(p)
    }

    /// The filters of the call list.
    pub(crate) fn call_filter(&self) -> CallFilter {
        let s = |k| self.get(k).map(str::to_string);
        CallFilter {
            caller: s("caller"),
            callee: s("callee"),
            trunk: s("trunk"),
            state: s("state"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_paging() {
        assert_eq!(decode("10.0.0.0%2F8", false).as_deref(), Some("10.0.0.0/8"));
        assert_eq!(decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(decode("%zz", false), None);
        assert_eq!(decode("%4", false), None);
        let q = Query::parse("limit=1000&offset=5").unwrap();
        assert_eq!(
            q.paging().unwrap(),
            Paging {
                limit: 1000,
                offset: 5
            }
        );
        for bad in ["limit=0", "limit=1001", "limit=x", "offset=-1", "limit=1.5"] {
            let e = Query::parse(bad).unwrap().paging().unwrap_err();
            assert!(matches!(e, ApiError::Invalid { .. }), "{bad}");
        }
        let e = Query::parse("limit=1&limit=2").unwrap_err();
        assert_eq!(e, ApiError::invalid("limit", "given twice"));
        let e = Query::parse("bogus=1")
            .unwrap()
            .only(&["limit"])
            .unwrap_err();
        assert!(matches!(e, ApiError::Invalid { field, .. } if field == "bogus"));
    }
}
