//! PXE decisions as data: which file or URL a booting client is told to fetch.

use std::net::Ipv4Addr;

use crate::{Bootenv, MacAddr};

/// What a client says about itself when it boots (options 93, 77 and 60).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ClientFacts {
    /// Every architecture of option 93, in the client's order (empty when absent).
    pub archs: Vec<u16>,
    /// Option 77 (user class) contains `iPXE`: the client already runs iPXE.
    pub ipxe: bool,
    /// Option 60 (vendor class).
    pub vendor: VendorClass,
}

/// The vendor class a booting client sent (option 60).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum VendorClass {
    /// No option 60.
    #[default]
    Absent,
    /// Starts with `PXEClient`: PXE firmware.
    PxeClient,
    /// Starts with `HTTPClient`: UEFI HTTP boot.
    HttpClient,
    /// Anything else (an OS DHCP client).
    Other,
}

impl VendorClass {
    /// Classifies the raw bytes of option 60.
    pub fn classify(raw: &[u8]) -> Self {
        if raw.starts_with(b"PXEClient") {
            VendorClass::PxeClient
        } else if raw.starts_with(b"HTTPClient") {
            VendorClass::HttpClient
        } else {
            VendorClass::Other
        }
    }
}

/// Which clients a [`BootRule`] applies to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ArchMatch {
    /// Any client.
    Any,
    /// A client listing one of these option-93 values.
    Arch(Vec<u16>),
    /// A client that sent no option 93 at all (an OS DHCP client, or old firmware).
    Unspecified,
}

/// What a matching client is told to load.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BootTarget {
    /// A file name on our TFTP server (next-server = us), or a URL for clients that fetch
    /// it themselves (iPXE, given `[boot] ipxe_script = "http://..."`).
    Tftp(String),
    /// A URL (UEFI HTTP boot); the reply carries vendor class `HTTPClient`.
    Http(String),
    /// The per-node iPXE script, served over TFTP as `ipxe/<mac>.ipxe`.
    IpxeScript,
}

/// One row of the decision table: the first rule that matches wins.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BootRule {
    /// Architectures the rule is for.
    pub arch: ArchMatch,
    /// `Some(true)`: only iPXE clients; `Some(false)`: only non-iPXE; `None`: either.
    pub ipxe: Option<bool>,
    /// `Some(v)`: only clients sending that vendor class.
    pub vendor: Option<VendorClass>,
    /// What to boot.
    pub target: BootTarget,
}

/// The table of boot rules, checked in order, with every option-93 entry tried in the
/// client's order before the `Any`/`Unspecified` rules.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BootPolicy {
    /// The rules.
    pub rules: Vec<BootRule>,
}

/// The boot part of a reply: `siaddr`, `file` / option 67, option 66 and option 60.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BootDecision {
    /// next-server (`siaddr`).
    pub next_server: Ipv4Addr,
    /// The boot file or URL (header `file` and option 67).
    pub file: String,
    /// Option 66: the TFTP server's name (its address as text).
    pub tftp_server_name: String,
    /// Option 60 to send back (`PXEClient` / `HTTPClient`), if any.
    pub vendor_class: Option<VendorClass>,
}

/// Option-93 values (RFC 4578 and the IANA registry).
pub mod arch {
    /// x86 BIOS.
    pub const BIOS: u16 = 0;
    /// x86 (32-bit) UEFI.
    pub const EFI_IA32: u16 = 6;
    /// x86-64 UEFI.
    pub const EFI_X64: u16 = 7;
    /// EFI byte code (what many x86-64 firmwares send).
    pub const EFI_BC: u16 = 9;
    /// ARM 32-bit UEFI.
    pub const EFI_ARM32: u16 = 10;
    /// ARM 64-bit UEFI.
    pub const EFI_ARM64: u16 = 11;
    /// x86 UEFI HTTP boot.
    pub const HTTP_IA32: u16 = 15;
    /// x86-64 UEFI HTTP boot.
    pub const HTTP_X64: u16 = 16;
    /// ARM 64-bit UEFI HTTP boot.
    pub const HTTP_ARM64: u16 = 19;
}

impl BootPolicy {
    /// The default table: iPXE clients get their script; BIOS `undionly.kpxe`; x86-64 UEFI
    /// `ipxe.efi`; ARM64 `ipxe-arm64.efi`; HTTP-boot architectures `<http_base>/ipxe.efi`
    /// (or `ipxe-arm64.efi`); clients that say nothing get the BIOS loader, as Crowbar's
    /// dhcpd did.
    pub fn default_for(http_base: &str) -> Self {
        let rule = |arch: ArchMatch, ipxe: Option<bool>, target: BootTarget| BootRule {
            arch,
            ipxe,
            vendor: None,
            target,
        };
        let base = http_base.trim_end_matches('/');
        BootPolicy {
            rules: vec![
                rule(ArchMatch::Any, Some(true), BootTarget::IpxeScript),
                rule(
                    ArchMatch::Arch(vec![arch::HTTP_IA32, arch::HTTP_X64]),
                    None,
                    BootTarget::Http(format!("{base}/ipxe.efi")),
                ),
                rule(
                    ArchMatch::Arch(vec![arch::HTTP_ARM64]),
                    None,
                    BootTarget::Http(format!("{base}/ipxe-arm64.efi")),
                ),
                rule(
                    ArchMatch::Arch(vec![arch::BIOS]),
                    None,
                    BootTarget::Tftp("undionly.kpxe".into()),
                ),
                rule(
                    ArchMatch::Arch(vec![arch::EFI_X64, arch::EFI_BC]),
                    None,
                    BootTarget::Tftp("ipxe.efi".into()),
                ),
                rule(
                    ArchMatch::Arch(vec![arch::EFI_IA32]),
                    None,
                    BootTarget::Tftp("ipxe-ia32.efi".into()),
                ),
                rule(
                    ArchMatch::Arch(vec![arch::EFI_ARM64]),
                    None,
                    BootTarget::Tftp("ipxe-arm64.efi".into()),
                ),
                rule(
                    ArchMatch::Arch(vec![arch::EFI_ARM32]),
                    None,
                    BootTarget::Tftp("ipxe-arm32.efi".into()),
                ),
                rule(
                    ArchMatch::Unspecified,
                    None,
                    BootTarget::Tftp("undionly.kpxe".into()),
                ),
            ],
        }
    }

    /// Decides what `client` boots. `None` means no boot options at all: the bootenv is
    /// `local`, or no rule matches.
    pub fn decide(
        &self,
        client: &ClientFacts,
        bootenv: &Bootenv,
        mac: MacAddr,
        next_server: Ipv4Addr,
    ) -> Option<BootDecision> {
        if *bootenv == Bootenv::Local {
            return None;
        }
        let rule = self.find(client)?;
        let (file, vendor_class) = match &rule.target {
            BootTarget::Tftp(name) => (name.clone(), pxe_echo(client.vendor)),
            BootTarget::Http(url) => (url.clone(), Some(VendorClass::HttpClient)),
            BootTarget::IpxeScript => (script_path(mac), pxe_echo(client.vendor)),
        };
        Some(BootDecision {
            next_server,
            file,
            tftp_server_name: next_server.to_string(),
            vendor_class,
        })
    }

    fn find(&self, client: &ClientFacts) -> Option<&BootRule> {
        let fits = |r: &BootRule| {
            r.ipxe.is_none_or(|want| want == client.ipxe)
                && r.vendor.is_none_or(|v| v == client.vendor)
        };
        // Every option-93 entry, in the client's order, against the arch-specific rules
        // (after the rules for any architecture, which come first when they fit).
        for rule in &self.rules {
            if rule.arch == ArchMatch::Any && fits(rule) {
                return Some(rule);
            }
        }
        let http = client.vendor == VendorClass::HttpClient;
        for a in &client.archs {
            for rule in &self.rules {
                if let ArchMatch::Arch(list) = &rule.arch
                    && list.contains(a)
                    && fits(rule)
                {
                    return Some(rule);
                }
            }
        }
        if client.archs.is_empty() && !http {
            return self
                .rules
                .iter()
                .find(|r| r.arch == ArchMatch::Unspecified && fits(r));
        }
        None
    }
}

fn pxe_echo(vendor: VendorClass) -> Option<VendorClass> {
    match vendor {
        VendorClass::PxeClient => Some(VendorClass::PxeClient),
        VendorClass::HttpClient => Some(VendorClass::HttpClient),
        _ => None,
    }
}

/// The TFTP path of a node's iPXE script: `ipxe/<mac-with-dashes>.ipxe`.
pub fn script_path(mac: MacAddr) -> String {
    format!("ipxe/{}.ipxe", mac.dashed())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0xaa, 0xbb, 1]);
    const US: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

    fn check(archs: &[u16], ipxe: bool, vendor: VendorClass, env: &str, expected: Option<&str>) {
        let policy = BootPolicy::default_for("http://10.77.0.1:8091/");
        let facts = ClientFacts {
            archs: archs.to_vec(),
            ipxe,
            vendor,
        };
        let got = policy.decide(&facts, &env.parse().unwrap(), MAC, US);
        assert_eq!(
            got.as_ref().map(|d| d.file.as_str()),
            expected,
            "{facts:?} {env}"
        );
        if let Some(d) = got {
            assert_eq!(d.next_server, US);
            assert_eq!(d.tftp_server_name, "10.77.0.1");
        }
    }

    #[test]
    fn decision_table() {
        use VendorClass::*;
        let sh = "sledgehammer";
        check(&[0], false, PxeClient, sh, Some("undionly.kpxe"));
        check(&[7], false, PxeClient, sh, Some("ipxe.efi"));
        check(&[9], false, PxeClient, sh, Some("ipxe.efi"));
        check(&[11], false, PxeClient, sh, Some("ipxe-arm64.efi"));
        check(
            &[16],
            false,
            HttpClient,
            sh,
            Some("http://10.77.0.1:8091/ipxe.efi"),
        );
        check(
            &[19],
            false,
            HttpClient,
            sh,
            Some("http://10.77.0.1:8091/ipxe-arm64.efi"),
        );
        check(
            &[7],
            true,
            PxeClient,
            sh,
            Some("ipxe/52-54-00-aa-bb-01.ipxe"),
        );
        check(&[], false, Absent, sh, Some("undionly.kpxe"));
        check(
            &[7],
            false,
            PxeClient,
            "ubuntu-22.04-install",
            Some("ipxe.efi"),
        );
        // Every entry of option 93: an unknown first arch falls through to the second.
        check(&[0x99, 11], false, PxeClient, sh, Some("ipxe-arm64.efi"));
        check(&[0x99], false, PxeClient, sh, None);
        // local: nothing at all, even for iPXE.
        check(&[7], true, PxeClient, "local", None);
        check(&[], false, Absent, "local", None);
    }

    #[test]
    fn vendor_class_is_echoed() {
        let policy = BootPolicy::default_for("http://h");
        let pxe = ClientFacts {
            archs: vec![7],
            ipxe: false,
            vendor: VendorClass::classify(b"PXEClient:Arch:00007:UNDI:003016"),
        };
        let d = policy
            .decide(&pxe, &Bootenv::Sledgehammer, MAC, US)
            .unwrap();
        assert_eq!(d.vendor_class, Some(VendorClass::PxeClient));
        let http = ClientFacts {
            archs: vec![16],
            ipxe: false,
            vendor: VendorClass::classify(b"HTTPClient:Arch:00016"),
        };
        let d = policy
            .decide(&http, &Bootenv::Sledgehammer, MAC, US)
            .unwrap();
        assert_eq!(d.vendor_class, Some(VendorClass::HttpClient));
        assert_eq!(VendorClass::classify(b"udhcp 1.35"), VendorClass::Other);
    }
}
