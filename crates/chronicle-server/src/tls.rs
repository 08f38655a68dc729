//! `chronicle tls init`: a private certificate authority and a server certificate it signed,
//! for a clinic or lab without a PKI of its own. Devices and browsers are given `ca.pem`; the
//! server runs with `--tls-cert server.pem --tls-key server-key.pem`.

use crate::cli::TlsCommand;
use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How long the private CA is valid: ten years, so server certificates can be renewed under
/// it without giving every device a new CA.
const CA_DAYS: i64 = 3650;

pub fn run(command: TlsCommand) -> anyhow::Result<()> {
    match command {
        TlsCommand::Init {
            dir,
            names,
            days,
            organization,
        } => init(&dir, names, days, &organization),
    }
}

fn init(dir: &Path, names: Vec<String>, days: u32, organization: &str) -> anyhow::Result<()> {
    let names = if names.is_empty() {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    } else {
        names
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for file in ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem"] {
        anyhow::ensure!(
            !dir.join(file).exists(),
            "{} exists already: choose another --dir (nothing was written)",
            dir.join(file).display()
        );
    }
    let now = time::OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate().context("cannot make the CA's key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = name(organization, &format!("{organization} private CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(CA_DAYS);
    let ca_certificate = ca.self_signed(&ca_key).context("cannot sign the CA")?;

    let server_key = KeyPair::generate().context("cannot make the server's key")?;
    let mut server = CertificateParams::new(names.clone())
        .context("a --name is neither a host name nor an IP address")?;
    server.distinguished_name = name(organization, &names[0]);
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - time::Duration::days(1);
    server.not_after = now + time::Duration::days(i64::from(days));
    let server_certificate = server
        .signed_by(&server_key, &ca_certificate, &ca_key)
        .context("cannot sign the server certificate")?;

    write(&dir.join("ca.pem"), &ca_certificate.pem(), 0o644)?;
    write(&dir.join("ca-key.pem"), &ca_key.serialize_pem(), 0o600)?;
    write(&dir.join("server.pem"), &server_certificate.pem(), 0o644)?;
    write(
        &dir.join("server-key.pem"),
        &server_key.serialize_pem(),
        0o600,
    )?;
    println!(
        "private CA and server certificate for {} written to {}:",
        names.join(", "),
        dir.display()
    );
    println!("  ca.pem          give it to devices (mosquitto_pub --cafile) and browsers");
    println!("  ca-key.pem      keep it offline: whoever holds it can impersonate the server");
    println!(
        "  server.pem      chronicle serve --tls-cert {}",
        dir.join("server.pem").display()
    );
    println!(
        "  server-key.pem  chronicle serve --tls-key {}",
        dir.join("server-key.pem").display()
    );
    Ok(())
}

fn name(organization: &str, common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, organization);
    name.push(DnType::CommonName, common_name);
    name
}

fn write(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
