//! Per-node iPXE scripts whose content follows the node's bootenv.

use crate::{Bootenv, HostEntry, MacAddr};

/// Where the discovery image and OS installers live, for rendering iPXE scripts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ScriptConfig {
    /// Base URL of the provisioner's web server, e.g. `http://10.77.0.1:8091`. Nothing in
    /// this project serves it yet (see the crate docs): the provisioning issue adds the HTTP
    /// file server; until then the site must serve the images there itself.
    pub http_base: String,
    /// Extra kernel arguments for every image (e.g. `console=ttyS0`).
    pub extra_args: String,
}

impl ScriptConfig {
    /// Renders the script for a machine: `host` is its DHCP database entry, `None` for an
    /// unknown machine (which gets the discovery image).
    pub fn render(&self, mac: MacAddr, host: Option<&HostEntry>) -> String {
        let base = self.http_base.trim_end_matches('/');
        let extra = if self.extra_args.is_empty() {
            String::new()
        } else {
            format!(" {}", self.extra_args)
        };
        let bootif = format!("BOOTIF=01-{}", mac.dashed());
        let env = host.map_or(Bootenv::Sledgehammer, |h| h.bootenv.clone());
        match env {
            Bootenv::Sledgehammer => {
                let fqdn = host
                    .map(|h| format!(" crowbar.fqdn={}", h.fqdn))
                    .unwrap_or_default();
                format!(
                    "#!ipxe\n\
                     echo crowbar: {mac} boots the discovery image\n\
                     kernel {base}/discovery/vmlinuz0 initrd=initrd0.img crowbar.state=discovery {bootif}{fqdn}{extra}\n\
                     initrd {base}/discovery/initrd0.img\n\
                     boot\n"
                )
            }
            Bootenv::Install { os } => {
                let fqdn = host.map_or("", |h| h.fqdn.as_str());
                format!(
                    "#!ipxe\n\
                     echo crowbar: {fqdn} installs {os}\n\
                     kernel {base}/{os}/install/vmlinuz initrd=initrd.img {bootif} \
                     ks={base}/nodes/{fqdn}/compute.ks url={base}/nodes/{fqdn}/seed \
                     netcfg/get_hostname={fqdn}{extra}\n\
                     initrd {base}/{os}/install/initrd.img\n\
                     boot\n"
                )
            }
            Bootenv::Local => {
                "#!ipxe\necho crowbar: booting from the local disk\nexit\n".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(env: &str) -> HostEntry {
        HostEntry {
            fqdn: "node1.example.com".into(),
            macs: vec![MacAddr([2, 0, 0, 0, 0, 1])],
            address: "10.0.0.5/24".parse().unwrap(),
            bootenv: env.parse().unwrap(),
        }
    }

    #[test]
    fn script_follows_the_bootenv() {
        let cfg = ScriptConfig {
            http_base: "http://10.0.0.1:8091/".into(),
            extra_args: "console=ttyS0".into(),
        };
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        assert_eq!(
            cfg.render(mac, None),
            "#!ipxe\necho crowbar: 02:00:00:00:00:01 boots the discovery image\n\
             kernel http://10.0.0.1:8091/discovery/vmlinuz0 initrd=initrd0.img crowbar.state=discovery BOOTIF=01-02-00-00-00-00-01 console=ttyS0\n\
             initrd http://10.0.0.1:8091/discovery/initrd0.img\nboot\n"
        );
        let install = cfg.render(mac, Some(&host("centos-6.5-install")));
        assert!(
            install.contains("kernel http://10.0.0.1:8091/centos-6.5/install/vmlinuz"),
            "{install}"
        );
        assert!(install.contains("ks=http://10.0.0.1:8091/nodes/node1.example.com/compute.ks"));
        let known = cfg.render(mac, Some(&host("sledgehammer")));
        assert!(known.contains("crowbar.fqdn=node1.example.com"), "{known}");
        assert_eq!(
            cfg.render(mac, Some(&host("local"))),
            "#!ipxe\necho crowbar: booting from the local disk\nexit\n"
        );
    }
}
