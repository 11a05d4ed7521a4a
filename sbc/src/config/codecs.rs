//! `[codecs]`: the codec policy per side (allow, strip, prefer, transcode_to), turned into the
//! core's [`CodecPolicies`] for the media anchor (see `docs/codecs.md`).

use sbc_core::media::codecs::{AudioCodec, CodecPolicies, CodecPolicy};
use serde::Deserialize;

/// `[codecs.outside]` / `[codecs.inside]`: the policy for descriptions sent to that side.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodecPolicySection {
    #[serde(default)]
    pub(crate) allow: Vec<String>,
    #[serde(default)]
    pub(crate) strip: Vec<String>,
    #[serde(default)]
    pub(crate) prefer: Vec<String>,
    #[serde(default)]
    pub(crate) transcode_to: Vec<String>,
}

/// `[codecs]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodecsSection {
    #[serde(default)]
    pub(crate) outside: CodecPolicySection,
    #[serde(default)]
    pub(crate) inside: CodecPolicySection,
}

impl CodecPolicySection {
    fn policy(&self, side: &str) -> Result<CodecPolicy, String> {
        let transcode_to = self
            .transcode_to
            .iter()
            .map(|n| {
                AudioCodec::from_name(n).ok_or_else(|| {
                    format!("codecs.{side}.transcode_to: {n:?} is not a codec the SBC transcodes (PCMU, PCMA)")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CodecPolicy {
            allow: self.allow.clone(),
            strip: self.strip.clone(),
            prefer: self.prefer.clone(),
            transcode_to,
        })
    }
}

impl CodecsSection {
    /// The core's policies; an unknown `transcode_to` codec is an error naming the key.
    pub(crate) fn policies(&self) -> Result<CodecPolicies, String> {
        Ok(CodecPolicies {
            outside: self.outside.policy("outside")?,
            inside: self.inside.policy("inside")?,
        })
    }
}
