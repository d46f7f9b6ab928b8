//! TLS for the channels: rustls (aws-lc-rs) everywhere, the system's root
//! certificates plus an optional per-channel PEM bundle of extra CAs.

use std::path::Path;

/// The PEM text of `path`, checked to hold at least one certificate.
pub fn read_pem_certs(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{}: not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no `BEGIN CERTIFICATE` block found",
            path.display()
        ));
    }
    Ok(pem)
}

/// An HTTP client trusting the system's roots and the certificates in
/// `extra_pem` (empty: none).
pub fn http_client(extra_pem: &[u8]) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder();
    if !extra_pem.is_empty() {
        builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(extra_pem)?);
    }
    builder.build()
}
