//! `[codecs]`: the codec policy per side (allow, strip, prefer, transcode_to), turned into the
//! core's [`CodecPolicies`] for the media anchor (see `docs/codecs.md`).

use sbc_core::media::codecs::{AudioCodec, CodecPolicies, CodecPolicy, DEFAULT_OPUS_COMPLEXITY};
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
    /// The Opus encoder complexity, 0-10 (default 3).
    #[serde(default)]
    pub(crate) opus_complexity: Option<u8>,
    /// How G.722 meets a narrowband leg: `"subband"` (default) or `"resample"`.
    #[serde(default)]
    pub(crate) g722_narrowband: Option<String>,
}

impl CodecPolicySection {
    fn policy(
        &self,
        key: &str,
        opus_complexity: u8,
        g722_resample: bool,
    ) -> Result<CodecPolicy, String> {
        let transcode_to = self
            .transcode_to
            .iter()
            .map(|n| {
                AudioCodec::from_name(n).ok_or_else(|| {
                    format!("{key}.transcode_to: {n:?} is not a codec the SBC transcodes (PCMU, PCMA, G722, opus)")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CodecPolicy {
            allow: self.allow.clone(),
            strip: self.strip.clone(),
            prefer: self.prefer.clone(),
            transcode_to,
            opus_complexity,
            g722_resample,
        })
    }
}

impl CodecsSection {
    /// The core's policies; an unknown `transcode_to` codec is an error naming the key.
    pub(crate) fn policies(&self) -> Result<CodecPolicies, String> {
        let (complexity, g722_resample) = self.common()?;
        Ok(CodecPolicies {
            outside: self
                .outside
                .policy("codecs.outside", complexity, g722_resample)?,
            inside: self
                .inside
                .policy("codecs.inside", complexity, g722_resample)?,
        })
    }

    /// The policy of a trunk's or target group's `codecs` (`key` names it in errors), with the
    /// section's Opus complexity and G.722 setting.
    pub(crate) fn policy_of(
        &self,
        key: &str,
        section: &CodecPolicySection,
    ) -> Result<CodecPolicy, String> {
        let (complexity, g722_resample) = self.common()?;
        section.policy(key, complexity, g722_resample)
    }

    /// The Opus complexity and whether G.722 meets narrowband by resampling.
    fn common(&self) -> Result<(u8, bool), String> {
        let complexity = self.opus_complexity.unwrap_or(DEFAULT_OPUS_COMPLEXITY);
        if complexity > 10 {
            return Err(format!(
                "codecs.opus_complexity: {complexity} is not within 0-10"
            ));
        }
        let g722_resample = match self.g722_narrowband.as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("subband") => false,
            Some(v) if v.eq_ignore_ascii_case("resample") => true,
            Some(v) => {
                return Err(format!(
                    "codecs.g722_narrowband: {v:?} is not \"subband\" or \"resample\""
                ))
            }
        };
        Ok((complexity, g722_resample))
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::Config;
    use super::*;

    const SIP: &str = "[sip]\nudp = [\"127.0.0.1:5060\"]\n";

    #[test]
    fn policies_from_toml_and_unknown_codecs_named() {
        let c = Config::from_toml(
            &format!("{SIP}[codecs.inside]\ntranscode_to = [\"pcmu\"]\nstrip = [\"G729\"]\n"),
            "t.toml",
        )
        .unwrap();
        let p = c.codecs.policies().unwrap();
        assert_eq!(p.inside.transcode_to, vec![AudioCodec::Pcmu]);
        assert_eq!(p.inside.strip, vec!["G729".to_owned()]);
        assert!(p.outside.is_empty());
        assert_eq!(p.inside.opus_complexity, DEFAULT_OPUS_COMPLEXITY);
        let c = Config::from_toml(
            &format!(
                "{SIP}[codecs]\nopus_complexity = 10\n[codecs.outside]\ntranscode_to = [\"G722\", \"OPUS\"]\n"
            ),
            "t.toml",
        )
        .unwrap();
        let p = c.codecs.policies().unwrap();
        assert_eq!(
            p.outside.transcode_to,
            vec![AudioCodec::G722, AudioCodec::Opus]
        );
        assert_eq!(p.outside.opus_complexity, 10);
        assert!(!p.outside.g722_resample);
        let text = format!("{SIP}[codecs]\ng722_narrowband = \"resample\"\n");
        let p = Config::from_toml(&text, "t.toml")
            .unwrap()
            .codecs
            .policies()
            .unwrap();
        assert!(p.inside.g722_resample && p.outside.g722_resample);
        let text = format!("{SIP}[codecs]\ng722_narrowband = \"fir\"\n");
        let e = Config::from_toml(&text, "t.toml").unwrap_err();
        assert!(e.contains("codecs.g722_narrowband"), "{e}");
        let text = format!("{SIP}[codecs.outside]\ntranscode_to = [\"G729\"]\n");
        let e = Config::from_toml(&text, "t.toml").unwrap_err();
        assert!(
            e.contains("codecs.outside.transcode_to") && e.contains("G729"),
            "{e}"
        );
        let text = format!("{SIP}[codecs]\nopus_complexity = 11\n");
        let e = Config::from_toml(&text, "t.toml").unwrap_err();
        assert!(e.contains("codecs.opus_complexity"), "{e}");
        let text = format!("{SIP}[codecs.inside]\ntranscode = []\n");
        let e = Config::from_toml(&text, "t.toml").unwrap_err();
        assert!(e.contains("transcode"), "{e}");
    }
}
