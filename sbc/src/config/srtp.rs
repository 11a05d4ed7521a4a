//! `[srtp]`: the SRTP mode of each side (`pass`, `plain`, `sdes`, `optional`) and the policy that
//! keeps SDES keys off sides whose SIP is not TLS, turned into the core's [`SrtpPolicy`] (see
//! `docs/srtp.md`).

use sbc_core::media::sdes::SrtpMode;
use sbc_core::media::srtp::SrtpPolicy;
use serde::Deserialize;

/// `[srtp]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SrtpSection {
    /// Mode of the outside.
    pub(crate) outside: String,
    /// Mode of the inside.
    pub(crate) inside: String,
    /// Never write SDES keys toward a side whose SIP is not TLS.
    pub(crate) require_tls_for_sdes: bool,
}

impl Default for SrtpSection {
    fn default() -> Self {
        Self {
            outside: "pass".into(),
            inside: "pass".into(),
            require_tls_for_sdes: true,
        }
    }
}

fn mode(key: &str, name: &str) -> Result<SrtpMode, String> {
    SrtpMode::from_name(name)
        .ok_or_else(|| format!("srtp.{key}: {name:?} is not a mode (pass, plain, sdes, optional)"))
}

impl SrtpSection {
    /// The core's policy, given whether each side's SIP is TLS only. A mode that does not parse,
    /// or `pass` on one side only, is an error naming the key.
    pub(crate) fn policy(&self, outside_tls: bool, inside_tls: bool) -> Result<SrtpPolicy, String> {
        let outside = mode("outside", &self.outside)?;
        let inside = mode("inside", &self.inside)?;
        if (outside == SrtpMode::Pass) != (inside == SrtpMode::Pass) {
            return Err(format!(
                "srtp: outside = {:?} and inside = {:?}: \"pass\" is for both sides or neither \
                 (the SBC terminates SRTP only when it owns both legs' media)",
                self.outside, self.inside
            ));
        }
        Ok(SrtpPolicy {
            outside,
            inside,
            outside_tls,
            inside_tls,
            require_tls_for_sdes: self.require_tls_for_sdes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::Config;

    const SIP: &str = "[sip]\nudp = [\"127.0.0.1:5060\"]\n";

    #[test]
    fn modes_from_toml_and_bad_ones_named() {
        let c = Config::from_toml(
            &format!("{SIP}[srtp]\noutside = \"sdes\"\ninside = \"plain\"\n"),
            "t.toml",
        )
        .unwrap();
        let p = c.srtp_policy().unwrap();
        assert_eq!(
            (p.outside, p.inside),
            (
                sbc_core::media::sdes::SrtpMode::Srtp,
                sbc_core::media::sdes::SrtpMode::Rtp
            )
        );
        assert!(p.require_tls_for_sdes);
        assert!(!p.outside_tls, "UDP listens on the outside");
        let e =
            Config::from_toml(&format!("{SIP}[srtp]\noutside = \"dtls\"\n"), "t.toml").unwrap_err();
        assert!(e.contains("srtp.outside") && e.contains("dtls"), "{e}");
        let e =
            Config::from_toml(&format!("{SIP}[srtp]\noutside = \"sdes\"\n"), "t.toml").unwrap_err();
        assert!(e.contains("pass"), "{e}");
        let e =
            Config::from_toml(&format!("{SIP}[srtp]\nrequire_tls = true\n"), "t.toml").unwrap_err();
        assert!(e.contains("require_tls"), "{e}");
    }
}
