//! What an identity may do on the broker, as pure functions: the client ids an identity may
//! use, and which devices it may publish for or read acks of (the topics' shape is
//! [`chronicle_domain::topics`]).
//!
//! A device may publish only to its own readings topic and subscribe only to its own acks
//! topic; a gateway only to those of the devices it relays. No wildcards, no other topic, no
//! `$SYS`. The same rules are written out for Mosquitto's ACL file and answered to EMQX's
//! authorization hook, so every broker enforces one policy.

use chronicle_domain::{DeviceId, Publisher};
use std::collections::HashSet;

/// An authenticated identity and what it may relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub identity: Publisher,
    /// The devices whose readings it may publish and whose acks it may read: a device
    /// itself, or the devices a gateway relays (none revoked).
    pub relays: HashSet<DeviceId>,
}

impl Principal {
    /// Whether it may publish readings for, and read the acks of, `device`.
    pub fn relays(&self, device: &str) -> bool {
        match &self.identity {
            Publisher::Device(own) => own.as_str() == device,
            Publisher::Gateway(_) => {
                DeviceId::parse(device).is_ok_and(|d| self.relays.contains(&d))
            }
        }
    }
}

/// The separator between an identity and a suffix of its choosing in a client id
/// (`dev_k3v9q2m8x1ab.acks`). Identities never contain it.
pub const CLIENT_ID_SEPARATOR: char = '.';

/// Whether `identity` may connect with `client_id`: its own name, or its name, a `.` and a
/// suffix (so one device can hold two connections, e.g. a listener for acks beside a
/// publisher). A client id is thereby bound to one identity: nobody can take over another's
/// session.
pub fn client_id_allowed(identity: &Publisher, client_id: &str) -> bool {
    let name = identity.as_str();
    match client_id.strip_prefix(name) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix(CLIENT_ID_SEPARATOR)
            .is_some_and(|suffix| !suffix.is_empty() && suffix.len() <= 64),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronicle_domain::GatewayId;

    fn device(id: &str) -> Publisher {
        Publisher::Device(DeviceId::parse(id).expect("device id"))
    }

    fn gateway(relays: &[&str]) -> Principal {
        Principal {
            identity: Publisher::Gateway(GatewayId::parse("gw_k3v9q2m8x1ab").expect("gateway id")),
            relays: relays
                .iter()
                .map(|d| DeviceId::parse(d).expect("device id"))
                .collect(),
        }
    }

    #[test]
    fn client_ids_are_bound_to_their_identity() {
        let a = device("dev_a");
        assert!(client_id_allowed(&a, "dev_a"));
        assert!(client_id_allowed(&a, "dev_a.acks"));
        for bad in [
            "dev_b",
            "dev_ab",
            "dev_a.",
            "dev_a-acks",
            "",
            "chronicle-ingest",
            "x.dev_a",
        ] {
            assert!(!client_id_allowed(&a, bad), "{bad}");
        }
        let g = gateway(&[]).identity;
        assert!(client_id_allowed(&g, "gw_k3v9q2m8x1ab"));
        assert!(client_id_allowed(&g, "gw_k3v9q2m8x1ab.phone"));
        assert!(!client_id_allowed(&g, "dev_a"));
    }

    #[test]
    fn devices_relay_themselves_and_gateways_their_devices() {
        let a = Principal {
            identity: device("dev_a"),
            relays: HashSet::new(),
        };
        assert!(a.relays("dev_a"));
        assert!(!a.relays("dev_b"));
        let g = gateway(&["dev_a", "dev_b"]);
        assert!(g.relays("dev_a") && g.relays("dev_b"));
        assert!(!g.relays("dev_c"));
        assert!(!g.relays("gw_k3v9q2m8x1ab"));
    }
}
