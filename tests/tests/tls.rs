//! TLS as an operator sets it up: `chronicle tls init` makes a private CA and a server
//! certificate; `chronicle serve` uses them for HTTPS and MQTT over TLS; devices and browsers
//! trust `ca.pem`. Plaintext to the TLS port fails, and plaintext beyond loopback is refused.

use chronicle_tests::server::{chronicle_binary, traversable_tempdir};
use chronicle_tests::{
    ChronicleServer, Mosquitto, MosquittoTls, ServerOptions, TestDatabase,
    secured_mosquitto_options,
};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// `chronicle tls init` into `dir`.
fn tls_init(dir: &Path) {
    let out = std::process::Command::new(chronicle_binary().expect("binary"))
        .args(["tls", "init", "--dir"])
        .arg(dir)
        .args(["--name", "localhost", "--name", "127.0.0.1"])
        .output()
        .expect("chronicle tls init runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    // Never overwrites.
    let again = std::process::Command::new(chronicle_binary().expect("binary"))
        .args(["tls", "init", "--dir"])
        .arg(dir)
        .output()
        .expect("runs");
    assert!(
        !again.status.success(),
        "a second init must not overwrite the CA"
    );
}

fn reading() -> String {
    let at = chrono::Utc::now() - chrono::Duration::minutes(1);
    json!({"type": "glucose", "value": 101, "unit": "mg/dL",
           "measured_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
    .to_string()
}

/// `mosquitto_rr` (MQTT 3.1.1, one connection as a device has) publishes a reading to `port`
/// and waits for its ack, with `--cafile` when `ca` is given; returns the ack, or what it
/// printed.
async fn publish_over_tls(
    port: u16,
    ca: Option<&Path>,
    device: &str,
    secret: &str,
) -> Result<serde_json::Value, String> {
    let port = port.to_string();
    let mut rr = tokio::process::Command::new("mosquitto_rr");
    rr.args([
        "-V",
        "311",
        "-h",
        "localhost",
        "-p",
        &port,
        "-q",
        "1",
        "-W",
        "10",
    ])
    .args(["-i", device, "-u", device, "-P", secret])
    .args(["-t", &format!("chronicle/v1/devices/{device}/readings")])
    .args(["-e", &format!("chronicle/v1/devices/{device}/acks")])
    .args(["-m", &reading()]);
    if let Some(ca) = ca {
        rr.arg("--cafile").arg(ca);
    }
    let out = rr
        .output()
        .await
        .expect("mosquitto_rr is installed (apt-get install mosquitto-clients)");
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "no ack ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

async fn curl(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl is installed")
}

#[tokio::test]
async fn https_and_mqtt_over_tls_with_a_private_ca() {
    let dir = traversable_tempdir().expect("dir");
    let tls = dir.path().join("tls");
    tls_init(&tls);
    let db = TestDatabase::create().await.expect("database");
    let server = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        tls_dir: Some(tls.clone()),
        ..Default::default()
    })
    .await
    .expect("server starts with TLS");
    let patient = server.add_patient("Tess").await.expect("patient");
    let (device, secret) = server.add_device(&patient, "cgm").await.expect("device");
    let tls_port = server.mqtt_tls_port().expect("TLS listener");
    let ca = tls.join("ca.pem");

    let ack = publish_over_tls(tls_port, Some(&ca), &device, &secret)
        .await
        .expect("mosquitto_pub --cafile gets an ack");
    assert_eq!(ack["stored"], 1, "{ack}");
    assert!(
        publish_over_tls(tls_port, None, &device, &secret)
            .await
            .is_err(),
        "plaintext to the TLS port fails"
    );

    let url = server.http_url("/healthz");
    assert!(url.starts_with("https://"));
    let trusted = curl(&["--cacert", ca.to_str().expect("path"), &url]).await;
    assert_eq!(String::from_utf8_lossy(&trusted.stdout), "200");
    let untrusted = curl(&[&url]).await;
    assert!(
        !untrusted.status.success(),
        "curl without the CA refuses the certificate"
    );
    let plain = curl(&[&url.replace("https://", "http://")]).await;
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");

    // Over HTTPS too the server knows each client's address (for log-in throttling and the
    // authentication events).
    let login = curl(&[
        "--cacert",
        ca.to_str().expect("path"),
        "-H",
        "content-type: application/json",
        "--data",
        r#"{"email": "nobody@example.org", "password": "a guess"}"#,
        &server.http_url("/v1/auth/login"),
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&login.stdout), "401");
    let (address,): (Option<String>,) = sqlx::query_as(
        "SELECT host(client_address) FROM authentication_events WHERE kind = 'login_failed'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the failed log-in is recorded");
    assert_eq!(address.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn mosquitto_as_documented_serves_devices_over_tls() {
    let dir = traversable_tempdir().expect("dir");
    let tls = dir.path().join("tls");
    tls_init(&tls);
    // Mosquitto reads its key after giving up root's privileges: the operator makes it
    // readable by Mosquitto's group (docs/security.md).
    make_readable_by_mosquitto(&tls.join("server-key.pem"));
    let broker = Mosquitto::start_secured(Some(MosquittoTls {
        ca_file: tls.join("ca.pem"),
        cert_file: tls.join("server.pem"),
        key_file: tls.join("server-key.pem"),
    }))
    .await
    .expect("mosquitto with TLS");
    let db = TestDatabase::create().await.expect("database");
    let options = secured_mosquitto_options(&db.url, &broker, "ingest-tls")
        .await
        .expect("ingest account");
    let server = ChronicleServer::start(options).await.expect("server");
    let patient = server.add_patient("Tom").await.expect("patient");
    let (device, secret) = server.add_device(&patient, "cgm").await.expect("device");
    let port = broker.tls_port().expect("TLS port");
    let ca = tls.join("ca.pem");
    let ack = chronicle_tests::eventually(Duration::from_secs(20), "an ack over TLS", || {
        let ca = ca.clone();
        let (device, secret) = (device.clone(), secret.clone());
        async move {
            publish_over_tls(port, Some(&ca), &device, &secret)
                .await
                .map_err(|e| eprintln!("not yet: {e}"))
                .ok()
        }
    })
    .await;
    assert_eq!(ack["stored"], 1, "{ack}");
}

fn make_readable_by_mosquitto(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    if let Ok(Some(group)) = nix::unistd::Group::from_name("mosquitto") {
        nix::unistd::chown(path, None, Some(group.gid)).expect("chgrp");
    }
    // The directories on the way must be traversable too.
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == Path::new("/tmp") || d == Path::new("/") {
            break;
        }
        let mode = std::fs::metadata(d).expect("dir").permissions().mode();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o005)).expect("chmod");
        dir = d.parent();
    }
}

#[tokio::test]
async fn plaintext_beyond_loopback_is_refused_unless_the_operator_says_so() {
    let dir = traversable_tempdir().expect("dir");
    let out = tokio::process::Command::new(chronicle_binary().expect("binary"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--http-addr", "0.0.0.0:0"])
        .env_remove("CHRONICLE_DATABASE_URL")
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without TLS") && stderr.contains("--tls-cert"),
        "{stderr}"
    );
    let out = tokio::process::Command::new(chronicle_binary().expect("binary"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--mqtt-listen", "0.0.0.0:0"])
        .env_remove("CHRONICLE_DATABASE_URL")
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--mqtt-tls-listen"), "{stderr}");
}
