//! The device channel, server side: the registry as the embedded broker's authority, and the
//! registry's announcements carried to whatever enforces the rules — the embedded broker, or
//! an external Mosquitto's password and ACL files.

use crate::cli::MosquittoFiles;
use chronicle_broker::{Authority, AuthorityError, Principal, RegistryChanges};
use chronicle_domain::Publisher;
use chronicle_storage::{BrokerCredentials, BrokerPrincipal, RegistryChange, Store};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The registry, answering the embedded broker.
pub struct RegistryAuthority(pub Store);

fn principal(found: BrokerPrincipal) -> Principal {
    Principal {
        identity: found.identity,
        relays: found.relays.into_iter().collect(),
    }
}

impl Authority for RegistryAuthority {
    async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Principal>, AuthorityError> {
        Ok(self
            .0
            .authenticate_broker_client(username, password)
            .await?
            .map(principal))
    }

    async fn principal(&self, identity: &Publisher) -> Result<Option<Principal>, AuthorityError> {
        Ok(self.0.broker_principal(identity).await?.map(principal))
    }
}

/// Carries every registry change to the embedded broker and to an external Mosquitto's files
/// until `shutdown`.
pub async fn follow_registry(
    store: Store,
    broker: Option<RegistryChanges>,
    mosquitto: Option<MosquittoSync>,
    shutdown: CancellationToken,
) {
    let mut listener = store.registry_listener();
    loop {
        let change = tokio::select! {
            () = shutdown.cancelled() => return,
            change = listener.next() => change,
        };
        forward(broker.as_ref(), &change);
        if let Some(mosquitto) = &mosquitto {
            // Changes come in bursts (an import, an erasure): gather them for a moment and
            // write the files once.
            let burst = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(burst);
            loop {
                tokio::select! {
                    () = &mut burst => break,
                    () = shutdown.cancelled() => return,
                    more = listener.next() => forward(broker.as_ref(), &more),
                }
            }
            mosquitto.sync(&store).await;
        }
    }
}

/// Tells the embedded broker (if it runs) what changed.
fn forward(broker: Option<&RegistryChanges>, change: &RegistryChange) {
    let Some(broker) = broker else {
        return;
    };
    match change {
        RegistryChange::Device(device) => broker.device_changed(device.clone()),
        RegistryChange::Gateway(gateway) => {
            broker.identity_changed(Publisher::Gateway(gateway.clone()));
        }
        RegistryChange::Missed => broker.recheck_all(),
        // Ingest accounts are for external brokers.
        RegistryChange::IngestAccount(_) => {}
    }
}

/// Keeps an external Mosquitto's `password_file` and `acl_file` equal to the registry.
pub struct MosquittoSync {
    dir: PathBuf,
    pid_file: Option<PathBuf>,
    topic_prefix: String,
}

impl MosquittoSync {
    /// Writes the files once now, so Mosquitto can load them before devices connect.
    pub async fn start(
        files: &MosquittoFiles,
        topic_prefix: &str,
        store: &Store,
    ) -> anyhow::Result<MosquittoSync> {
        let sync = MosquittoSync {
            dir: files.dir.clone(),
            pid_file: files.pid_file.clone(),
            topic_prefix: topic_prefix.to_owned(),
        };
        let credentials = store.broker_credentials().await?;
        sync.write(&credentials)?;
        sync.reload();
        tracing::info!(dir = %sync.dir.display(), devices = credentials.devices.len(), gateways = credentials.gateways.len(), "Mosquitto's password and ACL files written from the registry");
        Ok(sync)
    }

    /// Rewrites the files from the registry and has Mosquitto reload them; failures are logged
    /// and retried at the next change.
    async fn sync(&self, store: &Store) {
        let credentials = match store.broker_credentials().await {
            Ok(credentials) => credentials,
            Err(error) => {
                tracing::error!(%error, "cannot read the registry for Mosquitto's files");
                return;
            }
        };
        match self.write(&credentials) {
            Ok(()) => self.reload(),
            Err(error) => {
                tracing::error!(%error, dir = %self.dir.display(), "cannot write Mosquitto's files")
            }
        }
    }

    fn write(&self, credentials: &BrokerCredentials) -> std::io::Result<()> {
        write_atomically(&self.dir.join(PASSWORD_FILE), &password_file(credentials))?;
        write_atomically(
            &self.dir.join(ACL_FILE),
            &acl_file(credentials, &self.topic_prefix),
        )
    }

    /// SIGHUP to Mosquitto: it reloads both files and drops clients whose password no longer
    /// checks (revoked devices and gateways).
    fn reload(&self) {
        let Some(pid_file) = &self.pid_file else {
            return;
        };
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok());
        let Some(pid) = pid else {
            tracing::warn!(pid_file = %pid_file.display(), "cannot read Mosquitto's pid: it keeps the files it loaded until it is reloaded");
            return;
        };
        if let Err(error) = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGHUP,
        ) {
            tracing::warn!(%error, pid, "cannot signal Mosquitto to reload its files");
        }
    }
}

/// The file names in `--mosquitto-auth-dir`.
pub const PASSWORD_FILE: &str = "chronicle.passwd";
pub const ACL_FILE: &str = "chronicle.acl";

/// Mosquitto's password file: one `username:hash` line per identity that may connect.
fn password_file(credentials: &BrokerCredentials) -> String {
    let mut out = String::new();
    for (device, hash) in &credentials.devices {
        out.push_str(&format!("{device}:{hash}\n"));
    }
    for (gateway, hash, _) in &credentials.gateways {
        out.push_str(&format!("{gateway}:{hash}\n"));
    }
    for (name, hash) in &credentials.ingest_accounts {
        out.push_str(&format!("{name}:{hash}\n"));
    }
    out
}

/// Mosquitto's ACL file: the device rule as a pattern, the ingest accounts' rights, and each
/// gateway's devices. Anything not granted here is denied (no wildcards, no `$SYS`).
fn acl_file(credentials: &BrokerCredentials, prefix: &str) -> String {
    let mut out = format!(
        "# Written by Chronicle from its registry and rewritten on every change: do not edit.\n\
         # Every device publishes only its own readings and reads only its own acks.\n\
         pattern write {prefix}/devices/%u/readings\n\
         pattern read {prefix}/devices/%u/acks\n"
    );
    for (name, _) in &credentials.ingest_accounts {
        out.push_str(&format!(
            "\n# The ingest: every device's readings, and the acks.\nuser {name}\n\
             topic read {prefix}/devices/+/readings\ntopic write {prefix}/devices/+/acks\n"
        ));
    }
    for (gateway, _, relays) in &credentials.gateways {
        out.push_str(&format!(
            "\n# Gateway: the devices it relays.\nuser {gateway}\n"
        ));
        for device in relays {
            out.push_str(&format!(
                "topic write {prefix}/devices/{device}/readings\ntopic read {prefix}/devices/{device}/acks\n"
            ));
        }
    }
    out
}

/// Replaces `path` with `contents` in one rename, readable by the owner and the directory's
/// group (give the directory Mosquitto's group), never by everyone: it holds password hashes.
fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    // Unique per writer: several servers may keep the same files.
    let temporary = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    drop(file);
    let group = std::fs::metadata(dir)?.gid();
    nix::unistd::chown(&temporary, None, Some(nix::unistd::Gid::from_raw(group)))
        .map_err(std::io::Error::from)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronicle_domain::{DeviceId, GatewayId};

    #[test]
    fn mosquitto_files_grant_exactly_the_protocols_topics() {
        let device = |id: &str| DeviceId::parse(id).expect("device id");
        let credentials = BrokerCredentials {
            devices: vec![(device("dev_a"), "$7$101$s$h".into())],
            gateways: vec![(
                GatewayId::parse("gw_k3v9q2m8x1ab").expect("gateway id"),
                "$7$101$t$i".into(),
                vec![device("dev_a")],
            )],
            ingest_accounts: vec![("ingest-1".into(), "$7$101$u$j".into())],
        };
        assert_eq!(
            password_file(&credentials),
            "dev_a:$7$101$s$h\ngw_k3v9q2m8x1ab:$7$101$t$i\ningest-1:$7$101$u$j\n"
        );
        let acl = acl_file(&credentials, "chronicle/v1");
        let rules: Vec<&str> = acl
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        assert_eq!(
            rules,
            [
                "pattern write chronicle/v1/devices/%u/readings",
                "pattern read chronicle/v1/devices/%u/acks",
                "user ingest-1",
                "topic read chronicle/v1/devices/+/readings",
                "topic write chronicle/v1/devices/+/acks",
                "user gw_k3v9q2m8x1ab",
                "topic write chronicle/v1/devices/dev_a/readings",
                "topic read chronicle/v1/devices/dev_a/acks",
            ]
        );
    }
}
