//! `mediavault certs dev`: a development CA and a server certificate, so a newcomer gets TLS
//! without openssl. Not for production: the CA key sits next to the certificates.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub struct DevCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn write_private(path: &Path, data: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data.as_bytes())?;
    Ok(())
}

/// Writes `ca.pem`, `ca-key.pem`, `server.pem` and `server-key.pem` into `dir`; refuses to
/// overwrite an existing server certificate unless `force`.
pub fn write_dev_certs(dir: &Path, hosts: &[String], force: bool) -> anyhow::Result<DevCerts> {
    let out = DevCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    if out.cert.exists() && !force {
        anyhow::bail!(
            "{} already exists; pass --force to replace it",
            out.cert.display()
        );
    }
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mediavault development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(hosts.iter().cloned());
    names.dedup();
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "mediavault");
    let cert = params.signed_by(&server_key, &ca)?;

    std::fs::write(&out.ca, ca.pem())?;
    write_private(&dir.join("ca-key.pem"), &ca.key().serialize_pem())?;
    std::fs::write(&out.cert, cert.pem())?;
    write_private(&out.key, &server_key.serialize_pem())?;
    Ok(out)
}
