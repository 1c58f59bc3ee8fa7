//! Decode and handle arbitrary bytes: the core must never panic, and every reply it produces
//! must decode again. The first byte picks a clock offset so expiry paths are reached too.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use crowbar_pxe::{HostIndex, Outcome, ParsedReply, Server, ServerConfig, SubnetConfig};
use libfuzzer_sys::fuzz_target;

const US: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);

fn server() -> &'static Mutex<Server> {
    static S: OnceLock<Mutex<Server>> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = ServerConfig::single(SubnetConfig {
            net: "10.9.0.0/24".parse().unwrap(),
            server_ip: US,
            pool: Some(Ipv4Addr::new(10, 9, 0, 10)..=Ipv4Addr::new(10, 9, 0, 20)),
            routers: vec![US],
            dns_servers: vec![],
            domain: None,
            pool_lease_secs: 60,
            reserved_lease_secs: 600,
        });
        Mutex::new(Server::new(cfg, Arc::new(HostIndex::default())).unwrap())
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&t, packet)) = data.split_first() else {
        return;
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_000_000 + u64::from(t) * 10);
    let mut s = server().lock().unwrap();
    if let Outcome::Reply(r) = s.handle(packet, US, now) {
        assert!(ParsedReply::parse(&r.bytes).is_some());
    }
    s.take_changes();
});
