//! The daemon's TOML configuration: parsed raw, then validated into typed settings.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::hosts::{RawHost, parse_hosts};
use crate::pxe::{ArchMatch, BootTarget, arch};
use crate::{
    BootPolicy, HostEntry, Listener, PxeError, ScriptConfig, ServerConfig, ServiceConfig,
    SubnetConfig, TftpConfig,
};

/// Where reservations come from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum HostsConfig {
    /// A hosts file (see [`StaticHosts::from_toml`](crate::StaticHosts::from_toml)).
    File(PathBuf),
    /// Entries written in the configuration itself.
    Inline(Vec<HostEntry>),
    /// A crowbar store (its SQLite file), key `[crowbar_store]`. This crate does not read
    /// the model: the embedding program loads the cluster, serves its DHCP database and
    /// checks the store's revision every `poll` for changes (`crowbar-dhcpd` does; see
    /// [`run_daemon_with_hosts`](crate::run_daemon_with_hosts)).
    Store {
        /// The store's file.
        path: PathBuf,
        /// How often to look for a new revision.
        poll: Duration,
    },
}

/// The validated daemon configuration.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The core.
    pub server: ServerConfig,
    /// The sockets.
    pub service: ServiceConfig,
    /// Reservations.
    pub hosts: HostsConfig,
    /// SQLite lease database; `None` keeps leases in memory only.
    pub lease_db: Option<PathBuf>,
    /// TFTP, if enabled.
    pub tftp: Option<TftpConfig>,
    /// iPXE script rendering.
    pub scripts: ScriptConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "yes")]
    authoritative: bool,
    #[serde(default = "default_offer_hold")]
    offer_hold_secs: u32,
    #[serde(default = "default_probation")]
    probation_secs: u32,
    lease_db: Option<PathBuf>,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_client_port")]
    client_port: u16,
    #[serde(default)]
    interface: Vec<RawInterface>,
    #[serde(default)]
    subnet: Vec<RawSubnet>,
    #[serde(default)]
    boot: RawBoot,
    hosts_file: Option<PathBuf>,
    #[serde(default)]
    host: Vec<RawHost>,
    crowbar_store: Option<RawStore>,
    tftp: Option<RawTftp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: PathBuf,
    #[serde(default = "default_store_poll")]
    poll_ms: u64,
}

fn default_store_poll() -> u64 {
    2000
}

fn yes() -> bool {
    true
}
fn default_offer_hold() -> u32 {
    30
}
fn default_probation() -> u32 {
    600
}
fn default_port() -> u16 {
    67
}
fn default_client_port() -> u16 {
    68
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: Option<String>,
    address: Ipv4Addr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubnet {
    cidr: Ipv4Net,
    server_ip: Ipv4Addr,
    pool: Option<RawPool>,
    #[serde(default)]
    routers: Vec<Ipv4Addr>,
    #[serde(default)]
    dns_servers: Vec<Ipv4Addr>,
    domain: Option<String>,
    #[serde(default = "default_pool_lease")]
    pool_lease_secs: u32,
    #[serde(default = "default_reserved_lease")]
    reserved_lease_secs: u32,
}

fn default_pool_lease() -> u32 {
    120
}
fn default_reserved_lease() -> u32 {
    3600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    start: Ipv4Addr,
    end: Ipv4Addr,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBoot {
    http_base: Option<String>,
    #[serde(default)]
    extra_args: String,
    bios: Option<String>,
    efi_x64: Option<String>,
    efi_arm64: Option<String>,
    ipxe_script: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTftp {
    root: PathBuf,
    #[serde(default = "default_tftp_bind")]
    bind: SocketAddr,
    block_size_limit: Option<u16>,
    window_size_limit: Option<u16>,
    timeout_secs: Option<u64>,
    retries: Option<u32>,
    idle_timeout_secs: Option<u64>,
    max_transfers: Option<usize>,
}

fn default_tftp_bind() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 69))
}

impl DaemonConfig {
    /// Reads a configuration file; relative paths in it are taken from its directory.
    pub fn load(path: &Path) -> Result<Self, PxeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PxeError::io(format!("reading {}", path.display()), e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, path, base)
    }

    /// Parses and validates configuration text; `base` anchors relative paths.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, PxeError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| PxeError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let anchor = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        if raw.subnet.is_empty() {
            return Err(PxeError::config(
                "subnet",
                "at least one subnet is required",
            ));
        }
        if raw.interface.is_empty() {
            return Err(PxeError::config(
                "interface",
                "at least one interface is required",
            ));
        }
        let http_base = raw
            .boot
            .http_base
            .clone()
            .unwrap_or_else(|| format!("http://{}:8091", raw.subnet[0].server_ip));
        let mut boot = BootPolicy::default_for(&http_base);
        for rule in &mut boot.rules {
            let overridden = match &rule.arch {
                ArchMatch::Arch(list) if list.contains(&arch::BIOS) => raw.boot.bios.clone(),
                ArchMatch::Unspecified => raw.boot.bios.clone(),
                ArchMatch::Arch(list) if list.contains(&arch::EFI_X64) => raw.boot.efi_x64.clone(),
                ArchMatch::Arch(list) if list.contains(&arch::EFI_ARM64) => {
                    raw.boot.efi_arm64.clone()
                }
                _ => None,
            };
            if let Some(file) = overridden {
                if file.is_empty() || file.len() > 127 {
                    return Err(PxeError::config(
                        "boot",
                        "boot file names must be 1-127 bytes",
                    ));
                }
                rule.target = BootTarget::Tftp(file);
            }
        }
        for (i, s) in raw.subnet.iter().enumerate() {
            // A relayed subnet's server address is ours on another network: it must then be
            // the address of one of our interfaces, or clients are told a server identifier
            // that does not reach us.
            if !s.cidr.contains(&s.server_ip)
                && !raw.interface.iter().any(|l| l.address == s.server_ip)
            {
                return Err(PxeError::config(
                    format!("subnet[{i}].server_ip"),
                    format!(
                        "{} is outside {} and is not the address of any [[interface]]",
                        s.server_ip, s.cidr
                    ),
                ));
            }
        }
        if let Some(script) = &raw.boot.ipxe_script {
            // One script for every iPXE client (a site menu) instead of ipxe/<mac>.ipxe: a
            // name on our TFTP server, or a URL iPXE fetches itself.
            if script.is_empty() || script.len() > 127 || script.contains('\0') {
                return Err(PxeError::config(
                    "boot.ipxe_script",
                    "must be a TFTP file name or a URL of 1-127 bytes",
                ));
            }
            for rule in &mut boot.rules {
                if rule.target == BootTarget::IpxeScript {
                    rule.target = BootTarget::Tftp(script.clone());
                }
            }
        }
        let subnets: Vec<SubnetConfig> = raw
            .subnet
            .into_iter()
            .map(|s| SubnetConfig {
                net: s.cidr,
                server_ip: s.server_ip,
                pool: s.pool.map(|p| p.start..=p.end),
                routers: s.routers,
                dns_servers: s.dns_servers,
                domain: s.domain,
                pool_lease_secs: s.pool_lease_secs,
                reserved_lease_secs: s.reserved_lease_secs,
            })
            .collect();
        let hosts = match (raw.hosts_file, raw.host.is_empty(), raw.crowbar_store) {
            (Some(_), false, _) => return Err(PxeError::conflict("hosts_file", "[[host]]")),
            (Some(_), _, Some(_)) => {
                return Err(PxeError::conflict("hosts_file", "[crowbar_store]"));
            }
            (None, false, Some(_)) => {
                return Err(PxeError::conflict("[[host]]", "[crowbar_store]"));
            }
            (Some(f), true, None) => HostsConfig::File(anchor(f)),
            (None, true, Some(store)) => {
                if store.poll_ms == 0 {
                    return Err(PxeError::config(
                        "crowbar_store.poll_ms",
                        "must be at least 1",
                    ));
                }
                HostsConfig::Store {
                    path: anchor(store.path),
                    poll: Duration::from_millis(store.poll_ms),
                }
            }
            (None, _, None) => {
                let hosts = parse_hosts(raw.host)?;
                check_reservations(&hosts, &subnets, |i, _| format!("host[{i}].address"))?;
                HostsConfig::Inline(hosts)
            }
        };
        let tftp = raw.tftp.map(|t| tftp_config(t, &anchor)).transpose()?;
        Ok(DaemonConfig {
            server: ServerConfig {
                subnets,
                authoritative: raw.authoritative,
                offer_hold_secs: raw.offer_hold_secs,
                probation_secs: raw.probation_secs,
                boot,
            },
            service: ServiceConfig {
                listeners: raw
                    .interface
                    .into_iter()
                    .map(|i| Listener {
                        interface: i.name,
                        address: i.address,
                    })
                    .collect(),
                port: raw.port,
                client_port: raw.client_port,
                reply_to_source: false,
            },
            hosts,
            lease_db: raw.lease_db.map(anchor),
            tftp,
            scripts: ScriptConfig {
                http_base,
                extra_args: raw.boot.extra_args,
            },
        })
    }
}

/// Refuses a reservation whose address lies outside every subnet: that machine would never
/// get an answer. `key` names the entry (its index and FQDN) in the message.
pub(crate) fn check_reservations(
    hosts: &[HostEntry],
    subnets: &[SubnetConfig],
    key: impl Fn(usize, &HostEntry) -> String,
) -> Result<(), PxeError> {
    for (i, h) in hosts.iter().enumerate() {
        let ip = h.address.addr();
        if !subnets.iter().any(|s| s.net.contains(&ip)) {
            return Err(PxeError::config(
                key(i, h),
                format!(
                    "{ip} (reserved for {}) is outside every [[subnet]]; that machine would never get an answer",
                    h.fqdn
                ),
            ));
        }
    }
    Ok(())
}

/// The `[tftp]` table over [`TftpConfig::new`]'s defaults; a value that cannot work is refused
/// with its key.
fn tftp_config(t: RawTftp, anchor: &dyn Fn(PathBuf) -> PathBuf) -> Result<TftpConfig, PxeError> {
    let mut c = TftpConfig::new(anchor(t.root), t.bind);
    if let Some(b) = t.block_size_limit {
        if !(8..=65464).contains(&b) {
            return Err(PxeError::config(
                "tftp.block_size_limit",
                format!("must be 8 to 65464 (RFC 2348), not {b}"),
            ));
        }
        c.block_size_limit = b;
    }
    if let Some(w) = t.window_size_limit {
        if w == 0 {
            return Err(PxeError::config(
                "tftp.window_size_limit",
                "must be at least 1 (RFC 7440)",
            ));
        }
        c.window_size_limit = w;
    }
    if let Some(secs) = t.timeout_secs {
        if !(1..=255).contains(&secs) {
            return Err(PxeError::config(
                "tftp.timeout_secs",
                format!("must be 1 to 255 (RFC 2349), not {secs}"),
            ));
        }
        c.timeout = Duration::from_secs(secs);
    }
    if let Some(r) = t.retries {
        c.retries = r;
    }
    if let Some(secs) = t.idle_timeout_secs {
        if secs == 0 {
            return Err(PxeError::config(
                "tftp.idle_timeout_secs",
                "must be at least 1",
            ));
        }
        c.idle_timeout = Duration::from_secs(secs);
    }
    if let Some(m) = t.max_transfers {
        if m == 0 {
            return Err(PxeError::config("tftp.max_transfers", "must be at least 1"));
        }
        c.max_transfers = m;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
lease_db = "leases.sqlite"

[[interface]]
name = "vsrv"
address = "10.77.0.1"

[[subnet]]
cidr = "10.77.0.0/24"
server_ip = "10.77.0.1"
pool = { start = "10.77.0.100", end = "10.77.0.199" }
routers = ["10.77.0.1"]
pool_lease_secs = 60

[boot]
http_base = "http://10.77.0.1:8091"
bios = "lpxelinux.0"

[[host]]
fqdn = "node1.example.com"
macs = ["52:54:00:aa:bb:01"]
address = "10.77.0.50/24"

[tftp]
root = "tftp"
block_size_limit = 1468
"#;

    #[test]
    fn example_config_is_validated_into_typed_settings() {
        let c = DaemonConfig::parse(EXAMPLE, Path::new("c.toml"), Path::new("/etc/cb")).unwrap();
        assert_eq!(c.lease_db, Some(PathBuf::from("/etc/cb/leases.sqlite")));
        assert_eq!(c.server.subnets[0].pool_lease_secs, 60);
        assert_eq!(c.server.subnets[0].reserved_lease_secs, 3600);
        assert_eq!(c.service.listeners[0].interface.as_deref(), Some("vsrv"));
        assert_eq!(c.service.port, 67);
        let HostsConfig::Inline(hosts) = &c.hosts else {
            panic!("inline hosts")
        };
        assert_eq!(hosts[0].fqdn, "node1.example.com");
        let tftp = c.tftp.unwrap();
        assert_eq!(tftp.root, PathBuf::from("/etc/cb/tftp"));
        assert_eq!(tftp.bind, "0.0.0.0:69".parse().unwrap());
        assert!(
            c.server
                .boot
                .rules
                .iter()
                .any(|r| r.target == BootTarget::Tftp("lpxelinux.0".into()))
        );
    }

    #[test]
    fn a_crowbar_store_is_a_hosts_source_of_its_own() {
        let base = EXAMPLE.replace(
            "[[host]]\nfqdn = \"node1.example.com\"\nmacs = [\"52:54:00:aa:bb:01\"]\naddress = \"10.77.0.50/24\"\n",
            "",
        );
        assert!(!base.contains("[[host]]"));
        let with_store = format!("{base}\n[crowbar_store]\npath = \"crowbar.sqlite\"\n");
        let c =
            DaemonConfig::parse(&with_store, Path::new("c.toml"), Path::new("/etc/cb")).unwrap();
        assert_eq!(
            c.hosts,
            HostsConfig::Store {
                path: PathBuf::from("/etc/cb/crowbar.sqlite"),
                poll: Duration::from_secs(2)
            }
        );
        let fast = format!("{with_store}poll_ms = 250\n");
        let c = DaemonConfig::parse(&fast, Path::new("c.toml"), Path::new("/")).unwrap();
        assert!(
            matches!(c.hosts, HostsConfig::Store { poll, .. } if poll == Duration::from_millis(250))
        );

        // With another source: an error naming both keys.
        let both = format!("hosts_file = \"hosts.toml\"\n{with_store}");
        let err = DaemonConfig::parse(&both, Path::new("c.toml"), Path::new("/")).unwrap_err();
        assert!(
            matches!(
                &err,
                PxeError::ConflictingKeys {
                    first: "hosts_file",
                    second: "[crowbar_store]"
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "invalid configuration: hosts_file and [crowbar_store] cannot be used together"
        );
        let inline = format!("{EXAMPLE}\n[crowbar_store]\npath = \"crowbar.sqlite\"\n");
        assert!(matches!(
            DaemonConfig::parse(&inline, Path::new("c.toml"), Path::new("/")),
            Err(PxeError::ConflictingKeys {
                first: "[[host]]",
                second: "[crowbar_store]"
            })
        ));
        let zero = format!("{with_store}poll_ms = 0\n");
        assert!(matches!(
            DaemonConfig::parse(&zero, Path::new("c.toml"), Path::new("/")),
            Err(PxeError::InvalidConfig { .. })
        ));
    }

    fn refusal(text: &str) -> String {
        match DaemonConfig::parse(text, Path::new("c.toml"), Path::new("/")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn issue_24_configurations_that_cannot_work_are_refused_naming_the_key() {
        assert_eq!(
            refusal(&EXAMPLE.replace("block_size_limit = 1468", "block_size_limit = 0")),
            "invalid configuration: tftp.block_size_limit: must be 8 to 65464 (RFC 2348), not 0"
        );
        assert_eq!(
            refusal(&EXAMPLE.replace("block_size_limit = 1468", "timeout_secs = 0")),
            "invalid configuration: tftp.timeout_secs: must be 1 to 255 (RFC 2349), not 0"
        );
        assert_eq!(
            refusal(&EXAMPLE.replace("server_ip = \"10.77.0.1\"", "server_ip = \"10.99.0.1\"")),
            "invalid configuration: subnet[0].server_ip: 10.99.0.1 is outside 10.77.0.0/24 \
             and is not the address of any [[interface]]"
        );
        assert_eq!(
            refusal(&EXAMPLE.replace("10.77.0.50/24", "10.99.0.50/24")),
            "invalid configuration: host[0].address: 10.99.0.50 (reserved for \
             node1.example.com) is outside every [[subnet]]; that machine would never get an answer"
        );
        // A relayed subnet's server address is ours on another network: accepted.
        let relayed =
            format!("{EXAMPLE}\n[[subnet]]\ncidr = \"10.88.0.0/24\"\nserver_ip = \"10.77.0.1\"\n");
        assert!(DaemonConfig::parse(&relayed, Path::new("c.toml"), Path::new("/")).is_ok());
    }

    #[test]
    fn issue_24_the_default_tftp_limits_hold_when_the_config_sets_none() {
        let c = DaemonConfig::parse(
            &EXAMPLE.replace("block_size_limit = 1468\n", ""),
            Path::new("c.toml"),
            Path::new("/"),
        )
        .unwrap();
        let t = c.tftp.unwrap();
        assert_eq!(
            (
                t.block_size_limit,
                t.window_size_limit,
                t.retries,
                t.max_transfers
            ),
            (65464, 16, 5, 50)
        );
        assert_eq!(
            (t.timeout, t.idle_timeout),
            (Duration::from_secs(3), Duration::from_secs(30))
        );
        let tuned = EXAMPLE.replace(
            "block_size_limit = 1468",
            "retries = 2\nidle_timeout_secs = 10\nmax_transfers = 4\nwindow_size_limit = 8",
        );
        let t = DaemonConfig::parse(&tuned, Path::new("c.toml"), Path::new("/"))
            .unwrap()
            .tftp
            .unwrap();
        assert_eq!(
            (
                t.retries,
                t.idle_timeout,
                t.max_transfers,
                t.window_size_limit
            ),
            (2, Duration::from_secs(10), 4, 8)
        );
    }

    #[test]
    fn issue_24_ipxe_clients_get_their_own_script_or_the_configured_one() {
        use crate::{ClientPacket, HostIndex, MacAddr, Outcome, ParsedReply, Server};
        let boot_file = |text: &str| {
            let c = DaemonConfig::parse(text, Path::new("c.toml"), Path::new("/")).unwrap();
            let mut server =
                Server::new(c.server, std::sync::Arc::new(HostIndex::default())).unwrap();
            let mac: MacAddr = "52:54:00:00:00:07".parse().unwrap();
            let discover = ClientPacket::discover(mac, 1).ipxe().broadcast().build();
            let now = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let Outcome::Reply(offer) = server.handle(&discover, "10.77.0.1".parse().unwrap(), now)
            else {
                panic!("no offer")
            };
            ParsedReply::parse(&offer.bytes).unwrap().file
        };
        assert_eq!(
            boot_file(EXAMPLE).as_deref(),
            Some("ipxe/52-54-00-00-00-07.ipxe")
        );
        let menu = EXAMPLE.replace("[boot]\n", "[boot]\nipxe_script = \"boot.ipxe\"\n");
        assert_eq!(boot_file(&menu).as_deref(), Some("boot.ipxe"));
        let url = EXAMPLE.replace(
            "[boot]\n",
            "[boot]\nipxe_script = \"http://10.77.0.1/menu.ipxe\"\n",
        );
        assert_eq!(
            boot_file(&url).as_deref(),
            Some("http://10.77.0.1/menu.ipxe")
        );
        assert_eq!(
            refusal(&EXAMPLE.replace("[boot]\n", "[boot]\nipxe_script = \"\"\n")),
            "invalid configuration: boot.ipxe_script: must be a TFTP file name or a URL of 1-127 bytes"
        );
    }

    #[test]
    fn unknown_keys_and_missing_subnets_are_errors() {
        let typo = EXAMPLE.replace("pool_lease_secs", "pool_lease_sec");
        assert!(matches!(
            DaemonConfig::parse(&typo, Path::new("c.toml"), Path::new(".")),
            Err(PxeError::Parse { .. })
        ));
        assert!(matches!(
            DaemonConfig::parse(
                "[[interface]]\naddress = \"10.0.0.1\"\n",
                Path::new("c"),
                Path::new(".")
            ),
            Err(PxeError::InvalidConfig { .. })
        ));
    }
}
