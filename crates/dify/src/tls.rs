//! TLS to Dify's PostgreSQL, as libpq's `sslmode` in the DSN says
//! (rustls, aws-lc-rs provider):
//!
//! | `sslmode` | TLS | Server certificate |
//! |---|---|---|
//! | `disable` | never | – |
//! | `prefer` (default) | when the server offers it | not checked (as libpq) |
//! | `require` | always | not checked (as libpq) |
//! | `verify-ca` | always | chain checked against `sslrootcert` (a PEM file) or the system's roots; not the host name |
//! | `verify-full` | always | chain checked as `verify-ca`, and the host name |
//!
//! As libpq: `verify-ca` trusts any server holding a certificate the CA
//! signed, whatever name it was issued for (a private CA per database
//! cluster, reached by an address not in the certificate); `verify-full`
//! also needs the DSN's host in the certificate. Only `verify-*` protects
//! against a server impersonating Dify's database; use it across a network
//! you do not own.
//! The DSN is a URL (`postgres://…?sslmode=verify-full&sslrootcert=/ca.pem`)
//! or libpq's `key=value` form.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::Error;

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Encrypt, check nothing (`prefer`, `require`).
    No,
    /// The chain only, against this PEM bundle or the system's roots.
    Ca(Option<PathBuf>),
    /// Chain and host name, against this PEM bundle or the system's roots.
    Full(Option<PathBuf>),
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits the libpq parameters tokio-postgres does not know
/// (`sslmode=verify-ca|verify-full`, `sslrootcert`) off `dsn`: the DSN
/// tokio-postgres parses (with `sslmode=require` in their place) and the
/// verification asked for.
pub(crate) fn split(dsn: &str) -> (String, Verify) {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Option<&'static str> {
        match key {
            "sslmode" if value == "verify-full" || value == "verify-ca" => {
                mode = Some(value == "verify-full");
                Some("sslmode=require")
            }
            "sslrootcert" => {
                root = Some(PathBuf::from(value));
                Some("")
            }
            _ => None,
        }
    };
    let rest = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        match dsn.split_once('?') {
            None => dsn.to_owned(),
            Some((base, query)) => {
                let kept: Vec<String> = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        match take(k, &percent_decode(v)) {
                            Some("") => None,
                            Some(replaced) => Some(replaced.to_owned()),
                            None => Some(pair.to_owned()),
                        }
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        dsn.split_whitespace()
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = v.trim_matches('\'');
                match take(k.trim(), v) {
                    Some("") => None,
                    Some(replaced) => Some(replaced.to_owned()),
                    None => Some(pair.to_owned()),
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let verify = match mode {
        Some(true) => Verify::Full(root),
        Some(false) => Verify::Ca(root),
        None => Verify::No,
    };
    (rest, verify)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// The connector for `verify` (used only when `sslmode` is not `disable`).
pub(crate) fn connector(verify: &Verify) -> Result<MakeRustlsConnect, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::BadDsn(format!("TLS: {e}")))?;
    let config = match verify {
        Verify::No => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider())))
            .with_no_client_auth(),
        Verify::Full(root) => builder
            .with_root_certificates(roots(root.as_ref(), "verify-full")?)
            .with_no_client_auth(),
        Verify::Ca(root) => {
            let roots = Arc::new(roots(root.as_ref(), "verify-ca")?);
            let chain =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| Error::BadDsn(format!("TLS: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The trusted roots: the `sslrootcert` PEM bundle, else the system's.
fn roots(root: Option<&PathBuf>, mode: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    match root {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| Error::BadDsn(format!("sslrootcert {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::BadDsn(format!(
                    "sslrootcert {}: no usable certificate",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(Error::BadDsn(format!(
                    "sslmode={mode}: no system root certificates found; set sslrootcert"
                )));
            }
        }
    }
    Ok(roots)
}

/// libpq's `verify-ca`: the chain must lead to a trusted root (and be
/// valid now, for server use); the name the certificate was issued for is
/// not compared with the host. rustls checks the chain before the name, so
/// a name mismatch means the chain passed.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error as E};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(E::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// libpq's `prefer`/`require`: the channel is encrypted, the server not
/// authenticated (handshake signatures are still checked).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_are_split_off_both_dsn_forms() {
        let cases: &[(&str, &str, Verify)] = &[
            (
                "postgres://u:p@db:5432/dify",
                "postgres://u:p@db:5432/dify",
                Verify::No,
            ),
            (
                "postgres://u@db/dify?sslmode=require",
                "postgres://u@db/dify?sslmode=require",
                Verify::No,
            ),
            (
                "postgres://u@db/dify?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
                "postgres://u@db/dify?sslmode=require&connect_timeout=5",
                Verify::Full(Some("/etc/ca.pem".into())),
            ),
            (
                "postgresql://db/dify?sslmode=verify-ca",
                "postgresql://db/dify?sslmode=require",
                Verify::Ca(None),
            ),
            (
                "host=db user=u sslmode=verify-full sslrootcert='/ca.pem' dbname=dify",
                "host=db user=u sslmode=require dbname=dify",
                Verify::Full(Some("/ca.pem".into())),
            ),
            (
                "host=db sslmode=disable",
                "host=db sslmode=disable",
                Verify::No,
            ),
        ];
        for (dsn, rest, verify) in cases {
            let (got, v) = split(dsn);
            assert_eq!(&got, rest, "{dsn}");
            assert_eq!(&v, verify, "{dsn}");
            assert!(got.parse::<tokio_postgres::Config>().is_ok(), "{got}");
        }
    }
}
