//! `[dtmf]`: the DTMF mode of each side (see `docs/configuration.md`).

use sbc_core::media::dtmf_relay::{DtmfMode, DtmfPolicy};
use serde::Deserialize;

/// `[dtmf]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DtmfSection {
    /// Mode of the legs toward the outside.
    pub(crate) outside: Option<String>,
    /// Mode of the legs toward the inside.
    pub(crate) inside: Option<String>,
}

/// The DTMF mode named `name` at `key`.
pub(crate) fn dtmf_mode(key: &str, name: &str) -> Result<DtmfMode, String> {
    DtmfMode::from_name(name).ok_or_else(|| {
        format!("{key}: {name:?} is not a DTMF mode (pass, rfc4733, info, inband, auto)")
    })
}

impl DtmfSection {
    /// The core's policy; a mode that does not parse is an error naming the key.
    pub(crate) fn policy(&self) -> Result<DtmfPolicy, String> {
        let side = |key: &str, v: &Option<String>| {
            v.as_deref()
                .map_or(Ok(DtmfMode::Pass), |n| dtmf_mode(key, n))
        };
        Ok(DtmfPolicy {
            outside: side("dtmf.outside", &self.outside)?,
            inside: side("dtmf.inside", &self.inside)?,
        })
    }
}
