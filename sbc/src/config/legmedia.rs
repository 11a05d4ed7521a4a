//! The media keys a `[[trunk]]` or a `[[target_group]]` may set for the legs toward it, over the
//! side's: `srtp`, `codecs`, `dtmf` (see `docs/configuration.md`, "Media per trunk and target group").

use std::sync::Arc;

use sbc_core::media::callmedia::LegOverrides;
use sbc_core::media::sdes::SrtpMode;

use super::codecs::CodecPolicySection;
use super::dtmf::dtmf_mode;
use super::schema::Config;

/// The media keys of one `[[trunk]]` or `[[target_group]]`.
pub(crate) struct LegMediaKeys<'a> {
    pub(crate) srtp: Option<&'a String>,
    pub(crate) codecs: Option<&'a CodecPolicySection>,
    pub(crate) dtmf: Option<&'a String>,
}

impl Config {
    /// The overrides of a trunk or target group (`what` names it in errors, e.g. `trunk "x"`);
    /// `None` when it sets none of the keys. An SRTP mode needs `[srtp]` to terminate SRTP (no
    /// side `pass`), and cannot itself be `pass`.
    pub(crate) fn leg_overrides(
        &self,
        what: &str,
        keys: LegMediaKeys<'_>,
    ) -> Result<Option<Arc<LegOverrides>>, String> {
        if keys.srtp.is_none() && keys.codecs.is_none() && keys.dtmf.is_none() {
            return Ok(None);
        }
        let srtp = keys
            .srtp
            .map(|name| {
                let mode = SrtpMode::from_name(name).ok_or_else(|| {
                    format!("{what}: srtp: {name:?} is not a mode (plain, sdes, optional)")
                })?;
                if mode == SrtpMode::Pass {
                    return Err(format!(
                        "{what}: srtp: \"pass\" is for [srtp] as a whole, not one trunk or group"
                    ));
                }
                if self.srtp.outside.eq_ignore_ascii_case("pass") {
                    return Err(format!(
                        "{what}: srtp: needs [srtp] outside and inside other than \"pass\" (the \
                         SBC terminates SRTP only when it owns both legs' media)"
                    ));
                }
                Ok(mode)
            })
            .transpose()?;
        let codecs = keys
            .codecs
            .map(|c| self.codecs.policy_of(&format!("{what}: codecs"), c))
            .transpose()?;
        let dtmf = keys
            .dtmf
            .map(|n| dtmf_mode(&format!("{what}: dtmf"), n))
            .transpose()?;
        Ok(Some(Arc::new(LegOverrides { srtp, codecs, dtmf })))
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::Config;
    use super::*;
    use sbc_core::media::codecs::AudioCodec;
    use sbc_core::media::dtmf_relay::{DtmfMode, DtmfPolicy};

    const BASE: &str = "[sip]\nudp = [\"127.0.0.1:5060\"]\n\
        [inside]\ntargets = [\"pbx\"]\n\
        [[target_group]]\nname = \"pbx\"\ntargets = [{ address = \"127.0.0.1:5080\" }]\n";

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_toml(&format!("{BASE}{extra}"), "t.toml")
    }

    #[test]
    fn dtmf_section_and_bad_modes_named() {
        let c = load("[dtmf]\noutside = \"info\"\ninside = \"RFC4733\"\n").unwrap();
        let p = c.dtmf.policy().unwrap();
        assert_eq!((p.outside, p.inside), (DtmfMode::Info, DtmfMode::Rfc4733));
        let p = load("").unwrap().dtmf.policy().unwrap();
        assert_eq!(p, DtmfPolicy::default());
        let e = load("[dtmf]\ninside = \"sipinfo\"\n").unwrap_err();
        assert!(e.contains("dtmf.inside") && e.contains("sipinfo"), "{e}");
        let e = load("[dtmf]\nmode = \"info\"\n").unwrap_err();
        assert!(e.contains("mode"), "{e}");
    }

    #[test]
    fn trunk_and_group_overrides_parse_and_reach_the_routing() {
        let c = load(
            "[srtp]\noutside = \"plain\"\ninside = \"plain\"\nrequire_tls_for_sdes = false\n\
             [[trunk]]\nname = \"secure\"\noutbound = { proxy = \"127.0.0.1:5090\" }\n\
             srtp = \"sdes\"\ndtmf = \"info\"\ncodecs = { allow = [\"PCMA\"], transcode_to = [\"pcma\"] }\n\
             [[trunk]]\nname = \"plain\"\noutbound = { proxy = \"127.0.0.1:5091\" }\n\
             addresses = [\"127.0.0.9\"]\ntarget_group = \"pbx\"\n\
             [[target_group]]\nname = \"fax\"\ndtmf = \"inband\"\n\
             targets = [{ address = \"127.0.0.1:5081\" }]\n",
        )
        .unwrap();
        let core = c.b2bua().unwrap();
        let policy = core.policy(Default::default(), Default::default());
        let media_of = |name: &str| {
            let i = core.group_names.iter().position(|n| n == name).unwrap();
            policy.groups[i].media.clone()
        };
        let secure = media_of("trunk:secure").expect("the trunk's group has its settings");
        assert_eq!(secure.srtp, Some(SrtpMode::Srtp));
        assert_eq!(secure.dtmf, Some(DtmfMode::Info));
        let codecs = secure.codecs.as_ref().unwrap();
        assert_eq!(codecs.allow, vec!["PCMA".to_owned()]);
        assert_eq!(codecs.transcode_to, vec![AudioCodec::Pcma]);
        assert!(media_of("trunk:plain").is_none());
        assert!(media_of("pbx").is_none());
        assert_eq!(media_of("fax").unwrap().dtmf, Some(DtmfMode::Inband));
        // A call from a trunk: its caller leg takes the trunk's settings.
        assert_eq!(policy.trunks[0].media.as_ref(), Some(&secure));
        assert!(policy.trunks[1].media.is_none());
        let secure_in = load(
            "[[trunk]]\nname = \"in\"\naddresses = [\"127.0.0.9\"]\ntarget_group = \"pbx\"\n\
             dtmf = \"rfc4733\"\n",
        )
        .unwrap()
        .b2bua()
        .unwrap()
        .policy(Default::default(), Default::default());
        assert_eq!(
            secure_in.trunks[0].media.as_ref().unwrap().dtmf,
            Some(DtmfMode::Rfc4733)
        );
    }

    /// The example of `docs/config.md`, "Media per trunk and target group", loads and sets what
    /// it says.
    #[test]
    fn the_documented_example_loads() {
        let doc = include_str!("../../../docs/config.md");
        let section = doc
            .split("## Media per trunk and target group")
            .nth(1)
            .unwrap();
        let toml = section
            .split("```toml\n")
            .nth(1)
            .and_then(|s| s.split("```").next())
            .unwrap();
        let c = Config::from_toml(toml, "config.md").unwrap();
        let p = c.dtmf.policy().unwrap();
        assert_eq!((p.outside, p.inside), (DtmfMode::Info, DtmfMode::Rfc4733));
        let core = c.b2bua().unwrap();
        let policy = core.policy(Default::default(), Default::default());
        let of = |name: &str| {
            let i = core.group_names.iter().position(|n| n == name).unwrap();
            policy.groups[i].media.clone()
        };
        let secure = of("trunk:secure-carrier").unwrap();
        assert_eq!(secure.srtp, Some(SrtpMode::Srtp));
        assert_eq!(secure.dtmf, Some(DtmfMode::Rfc4733));
        assert!(of("trunk:plain-carrier").is_none());
    }

    #[test]
    fn bad_overrides_name_the_field() {
        let trunk = |keys: &str| {
            format!(
                "[[trunk]]\nname = \"t1\"\noutbound = {{ proxy = \"127.0.0.1:5090\" }}\n{keys}\n"
            )
        };
        let e = load(&trunk("srtp = \"sdes\"")).unwrap_err();
        assert!(
            e.contains("trunk \"t1\": srtp") && e.contains("pass"),
            "{e}"
        );
        let e = load(&format!(
            "[srtp]\noutside = \"plain\"\ninside = \"plain\"\n{}",
            trunk("srtp = \"dtls\"")
        ))
        .unwrap_err();
        assert!(
            e.contains("trunk \"t1\": srtp") && e.contains("dtls"),
            "{e}"
        );
        let e = load(&format!(
            "[srtp]\noutside = \"plain\"\ninside = \"plain\"\n{}",
            trunk("srtp = \"pass\"")
        ))
        .unwrap_err();
        assert!(e.contains("trunk \"t1\": srtp"), "{e}");
        let e = load(&trunk("dtmf = \"tones\"")).unwrap_err();
        assert!(
            e.contains("trunk \"t1\": dtmf") && e.contains("tones"),
            "{e}"
        );
        let e = load(&trunk("codecs = { transcode_to = [\"G729\"] }")).unwrap_err();
        assert!(
            e.contains("trunk \"t1\": codecs.transcode_to") && e.contains("G729"),
            "{e}"
        );
        let e = load(&trunk("codecs = { transcode = [] }")).unwrap_err();
        assert!(e.contains("transcode"), "{e}");
        let e = load(
            "[[target_group]]\nname = \"g\"\ndtmf = \"x\"\ntargets = [{ address = \"127.0.0.1:5081\" }]\n",
        )
        .unwrap_err();
        assert!(e.contains("target_group \"g\": dtmf"), "{e}");
    }
}
