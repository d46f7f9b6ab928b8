//! Email over plain SMTP with lettre (no TLS: lettre's TLS needs native-tls
//! or rustls, neither in this workspace; use a local relay for TLS).
//! Subject: the headline; body: the plain text notice.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{ChannelConfig, plain};
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

/// Sends `n` to the channel's recipients.
pub async fn send(c: &ChannelConfig, n: &Notice) -> Result<(), Error> {
    let msg = message(c, n)?;
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.smtp_host)
        .port(c.smtp_port)
        .timeout(Some(c.timeout));
    if let (Some(u), Some(p)) = (&c.username, &c.password) {
        t = t.credentials(Credentials::new(u.clone(), p.clone()));
    }
    t.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| Error::Delivery(format!("{}: SMTP: {e}", c.name)))
}
