//! Email over SMTP with lettre: STARTTLS or implicit TLS (rustls) or plain
//! text, as `smtp_tls` says. Subject: the headline; body: the plain text
//! notice.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{ChannelConfig, SmtpTls, plain};
use crate::Error;
use crate::eval::Notice;

/// The message for `n`.
pub fn message(c: &ChannelConfig, n: &Notice) -> Result<Message, Error> {
    let bad = |e: String| Error::Invalid(format!("alert channel {:?}: {e}", c.name));
    let mut b = Message::builder()
        .from(c.from.parse().map_err(|e| bad(format!("from: {e}")))?)
        .subject(n.headline())
        .header(ContentType::TEXT_PLAIN);
    for to in &c.to {
        b = b.to(to.parse().map_err(|e| bad(format!("to {to:?}: {e}")))?);
    }
    b.body(plain(n)).map_err(|e| bad(e.to_string()))
}

/// The TLS mode for the channel; `extra_pem` are extra trusted CAs.
fn tls(c: &ChannelConfig, extra_pem: &[u8]) -> Result<Tls, Error> {
    let mode = match c.smtp_tls {
        SmtpTls::Auto if c.smtp_port == 465 => SmtpTls::Tls,
        other => other,
    };
    if mode == SmtpTls::None {
        return Ok(Tls::None);
    }
    let fail = |e: lettre::transport::smtp::Error| {
        Error::Invalid(format!("alert channel {:?}: TLS settings: {e}", c.name))
    };
    let mut params = TlsParameters::builder(c.smtp_host.clone());
    if !extra_pem.is_empty() {
        params = params.add_root_certificate(Certificate::from_pem(extra_pem).map_err(fail)?);
    }
    let params = params.build_rustls().map_err(fail)?;
    Ok(match mode {
        SmtpTls::Tls => Tls::Wrapper(params),
        SmtpTls::Starttls => Tls::Required(params),
        SmtpTls::Auto | SmtpTls::None => Tls::Opportunistic(params),
    })
}

/// Sends `n` to the channel's recipients; `extra_pem` are extra trusted
/// CAs (the channel's `ca_file`).
pub async fn send(c: &ChannelConfig, extra_pem: &[u8], n: &Notice) -> Result<(), Error> {
    let msg = message(c, n)?;
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.smtp_host)
        .port(c.smtp_port)
        .tls(tls(c, extra_pem)?)
        .timeout(Some(c.timeout));
    if let (Some(u), Some(p)) = (&c.username, &c.password) {
        t = t.credentials(Credentials::new(u.clone(), p.clone()));
    }
    t.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| Error::Delivery(format!("{}: SMTP: {}", c.name, super::error_chain(&e))))
}
