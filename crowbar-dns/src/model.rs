//! What the zones are built from: hosts and the zone settings. Knows nothing of the crowbar model.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::{DnsError, DnsName};

/// One host: its canonical name, optional aliases (served as CNAMEs) and its addresses.
///
/// ```
/// use crowbar_dns::Host;
/// let h = Host::new("node1.lab.test".parse().unwrap())
///     .with_v4("198.18.1.1".parse().unwrap())
///     .with_v6("2001:db8:100::1".parse().unwrap())
///     .with_alias("www.lab.test".parse().unwrap());
/// assert_eq!(h.v4.len() + h.v6.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The canonical name (the node's FQDN).
    pub fqdn: DnsName,
    /// Other names that resolve to this host through a CNAME.
    pub aliases: Vec<DnsName>,
    /// IPv4 addresses (A records and in-addr.arpa PTRs).
    pub v4: Vec<Ipv4Addr>,
    /// IPv6 addresses (AAAA records and ip6.arpa PTRs).
    pub v6: Vec<Ipv6Addr>,
}

impl Host {
    /// A host with no addresses yet.
    pub fn new(fqdn: DnsName) -> Self {
        Host {
            fqdn,
            aliases: Vec::new(),
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }

    /// Adds an IPv4 address.
    pub fn with_v4(mut self, addr: Ipv4Addr) -> Self {
        self.v4.push(addr);
        self
    }

    /// Adds an IPv6 address.
    pub fn with_v6(mut self, addr: Ipv6Addr) -> Self {
        self.v6.push(addr);
        self
    }

    /// Adds an address of either family.
    pub fn with_addr(self, addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => self.with_v4(a),
            IpAddr::V6(a) => self.with_v6(a),
        }
    }

    /// Adds an alias.
    pub fn with_alias(mut self, alias: DnsName) -> Self {
        self.aliases.push(alias);
        self
    }
}

/// One change in a batch given to [`Zones::apply`](crate::Zones::apply).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Add the host, or replace the host of the same FQDN.
    Upsert(Host),
    /// Remove the host of that FQDN (nothing happens if there is none).
    Remove(DnsName),
}

/// The settings of the zones: the domain, the name server, TTLs, the SOA timers and the reverse
/// zones.
///
/// ```
/// use crowbar_dns::ZoneConfig;
/// // As Crowbar did: the domain is the admin node's FQDN without its first label.
/// let cfg = ZoneConfig::from_admin_fqdn("admin.lab.test".parse().unwrap()).unwrap();
/// assert_eq!(cfg.domain.to_string(), "lab.test.");
/// assert_eq!(cfg.nameserver.to_string(), "admin.lab.test.");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneConfig {
    /// The forward zone.
    pub domain: DnsName,
    /// The primary name server (SOA MNAME and the NS record of every zone).
    pub nameserver: DnsName,
    /// The SOA RNAME (mailbox of the zone's administrator, in name form).
    pub hostmaster: DnsName,
    /// TTL of host records (A, AAAA, PTR, CNAME).
    pub ttl: u32,
    /// TTL of the SOA and NS records.
    pub soa_ttl: u32,
    /// SOA REFRESH.
    pub refresh: u32,
    /// SOA RETRY.
    pub retry: u32,
    /// SOA EXPIRE.
    pub expire: u32,
    /// SOA MINIMUM: the negative-caching TTL (RFC 2308).
    pub minimum: u32,
    /// Reverse zones to serve. IPv4 prefixes shorter than /24 are split into /24 zones, longer
    /// ones are served as RFC 2317 classless zones; IPv6 prefixes are split on nibble
    /// boundaries. When empty, a /24 (IPv4) or /64 (IPv6) zone is made for every address seen.
    pub reverse: Vec<IpNet>,
}

impl ZoneConfig {
    /// Settings for `domain` served by `nameserver`, with provisioning-friendly defaults: a 60 s
    /// host TTL (records must be right during installs), `hostmaster.<domain>`, automatic
    /// reverse zones.
    pub fn new(domain: DnsName, nameserver: DnsName) -> Self {
        let hostmaster = domain
            .prepend("hostmaster")
            .unwrap_or_else(|_| domain.clone());
        ZoneConfig {
            domain,
            nameserver,
            hostmaster,
            ttl: 60,
            soa_ttl: 3600,
            refresh: 3600,
            retry: 600,
            expire: 604_800,
            minimum: 60,
            reverse: Vec::new(),
        }
    }

    /// The domain is the admin node's FQDN without its first label, and the admin node is the
    /// name server, as in Crowbar's DNS barclamp.
    pub fn from_admin_fqdn(admin: DnsName) -> Result<Self, DnsError> {
        match admin.parent() {
            Some(domain) if domain.label_count() >= 1 => Ok(ZoneConfig::new(domain, admin)),
            _ => Err(DnsError::InvalidName {
                name: admin.to_string(),
                reason: "an admin FQDN needs at least two labels",
            }),
        }
    }

    /// Sets the reverse zones.
    pub fn with_reverse(mut self, prefixes: impl IntoIterator<Item = IpNet>) -> Self {
        self.reverse = prefixes.into_iter().collect();
        self
    }
}

/// Parses an `/etc/hosts`-style file: `ADDRESS NAME [ALIAS...]` per line, `#` comments.
///
/// The first name is the host's FQDN; further names are aliases. Names without a dot are
/// qualified with `domain`; an alias equal to the FQDN is skipped, so `198.18.1.1
/// node1.lab.test node1` works. Lines with the same FQDN add addresses to one host.
///
/// ```
/// use crowbar_dns::parse_hosts;
/// let hosts = parse_hosts(
///     "198.18.1.1 node1.lab.test node1 www\n2001:db8::1 node1.lab.test\n",
///     &"lab.test".parse().unwrap(),
/// ).unwrap();
/// assert_eq!(hosts.len(), 1);
/// assert_eq!(hosts[0].aliases[0].to_string(), "www.lab.test.");
/// ```
pub fn parse_hosts(text: &str, domain: &DnsName) -> Result<Vec<Host>, DnsError> {
    let mut hosts: BTreeMap<DnsName, Host> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let syntax = |reason: String| DnsError::HostsSyntax {
            line: i + 1,
            reason,
        };
        let mut words = line.split_whitespace();
        let addr: IpAddr = words
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|e| syntax(format!("bad address: {e}")))?;
        let qualify = |w: &str| -> Result<DnsName, DnsError> {
            let text = if w.contains('.') {
                w.to_owned()
            } else {
                format!("{w}.{domain}")
            };
            DnsName::new(&text).map_err(|e| syntax(e.to_string()))
        };
        let fqdn = qualify(
            words
                .next()
                .ok_or_else(|| syntax("an address needs a name".into()))?,
        )?;
        let host = hosts
            .entry(fqdn.clone())
            .or_insert_with(|| Host::new(fqdn.clone()));
        if !host_has(host, addr) {
            *host = std::mem::replace(host, Host::new(fqdn.clone())).with_addr(addr);
        }
        for w in words {
            let alias = qualify(w)?;
            if alias != fqdn && !host.aliases.contains(&alias) {
                host.aliases.push(alias);
            }
        }
    }
    Ok(hosts.into_values().collect())
}

fn host_has(host: &Host, addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => host.v4.contains(&a),
        IpAddr::V6(a) => host.v6.contains(&a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_errors_name_the_line() {
        let d: DnsName = "lab.test".parse().unwrap();
        let err = parse_hosts("# c\n198.18.1.1 a\nbogus x\n", &d).unwrap_err();
        assert!(
            matches!(err, DnsError::HostsSyntax { line: 3, .. }),
            "{err}"
        );
        let err = parse_hosts("198.18.1.1\n", &d).unwrap_err();
        assert!(
            matches!(err, DnsError::HostsSyntax { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn admin_fqdn_needs_a_domain() {
        assert!(ZoneConfig::from_admin_fqdn("admin".parse().unwrap()).is_err());
    }
}
