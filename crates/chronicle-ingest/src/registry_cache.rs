//! What the ingest knows of the registry, kept between batches: each device that sent (its
//! key, patient, kind, whether it is revoked) and which gateway relays which device, so a batch
//! asks the database only about identities it has not seen since they last changed.
//!
//! Every change to a device, a gateway or what a gateway relays is announced by the
//! registry's triggers (`chronicle_registry`, any process) and drops what is held of it; when
//! announcements may have been missed everything is dropped. A lookup that raced with a change
//! (it read the database before the announcement arrived) keeps its answer for its own batch
//! but does not hold it. Between a revocation's commit and its announcement (milliseconds) a
//! batch may still see the device as it was, as it would have a moment earlier.

use chronicle_domain::sync::lock;
use chronicle_storage::{DeviceForIngest, RegistryChange, StorageError, Store};
use lru::LruCache;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// Devices held (about 100 bytes each).
pub const DEVICES_HELD: usize = 200_000;
/// Gateway–device pairs held, relayed or not.
const PAIRS_HELD: usize = 200_000;

/// The registry as the ingest last read it.
#[derive(Debug)]
pub struct RegistryCache {
    devices: Mutex<LruCache<String, DeviceForIngest>>,
    /// (gateway, device) → whether the gateway relays the device.
    pairs: Mutex<LruCache<(String, String), bool>>,
    /// Raised by every change heard; a lookup holds its answer only if it did not move.
    changes: AtomicU64,
}

impl Default for RegistryCache {
    fn default() -> Self {
        let capacity = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        RegistryCache {
            devices: Mutex::new(LruCache::new(capacity(DEVICES_HELD))),
            pairs: Mutex::new(LruCache::new(capacity(PAIRS_HELD))),
            changes: AtomicU64::new(0),
        }
    }
}

impl RegistryCache {
    /// The registered devices among `ids` (unknown ones are absent).
    pub async fn devices(
        &self,
        store: &Store,
        ids: &[&str],
    ) -> Result<HashMap<String, DeviceForIngest>, StorageError> {
        let before = self.changes.load(Ordering::Acquire);
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let mut held = lock(&self.devices);
            for id in ids {
                match held.get(*id) {
                    Some(device) => {
                        found.insert((*id).to_owned(), device.clone());
                    }
                    None => missing.push(*id),
                }
            }
        }
        if !missing.is_empty() {
            let read = store.devices_for_ingest(&missing).await?;
            let mut held = lock(&self.devices);
            if self.changes.load(Ordering::Acquire) == before {
                for (id, device) in &read {
                    held.put(id.clone(), device.clone());
                }
            }
            found.extend(read);
        }
        Ok(found)
    }

    /// Which of the (gateway, device) pairs are a gateway relaying a device, neither revoked.
    pub async fn relayed(
        &self,
        store: &Store,
        pairs: &[(&str, &str)],
    ) -> Result<HashSet<(String, String)>, StorageError> {
        let before = self.changes.load(Ordering::Acquire);
        let mut relayed = HashSet::new();
        let mut missing = Vec::new();
        {
            let mut held = lock(&self.pairs);
            for &(gateway, device) in pairs {
                match held.get(&(gateway.to_owned(), device.to_owned())) {
                    Some(true) => {
                        relayed.insert((gateway.to_owned(), device.to_owned()));
                    }
                    Some(false) => {}
                    None => missing.push((gateway, device)),
                }
            }
        }
        if !missing.is_empty() {
            let read: HashSet<(String, String)> =
                store.relayed_pairs(&missing).await?.into_iter().collect();
            let mut held = lock(&self.pairs);
            if self.changes.load(Ordering::Acquire) == before {
                for &(gateway, device) in &missing {
                    let pair = (gateway.to_owned(), device.to_owned());
                    let is_relayed = read.contains(&pair);
                    held.put(pair, is_relayed);
                }
            }
            relayed.extend(read);
        }
        Ok(relayed)
    }

    /// Drops what a registry change may have made wrong.
    pub fn forget(&self, change: &RegistryChange) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        match change {
            RegistryChange::Device(device) => {
                lock(&self.devices).pop(device.as_str());
                // Revoking a device also takes it off its gateways.
                lock(&self.pairs).clear();
            }
            RegistryChange::Gateway(_) => lock(&self.pairs).clear(),
            RegistryChange::IngestAccount(_) => {}
            RegistryChange::Missed => {
                lock(&self.devices).clear();
                lock(&self.pairs).clear();
            }
        }
    }

    /// Devices held now.
    pub fn devices_held(&self) -> usize {
        lock(&self.devices).len()
    }

    /// Follows the registry's announcements until shutdown.
    pub async fn follow(&self, store: Store, shutdown: CancellationToken) {
        let mut changes = store.registry_listener();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                change = changes.next() => self.forget(&change),
            }
        }
    }
}
