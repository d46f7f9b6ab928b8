//! Test support shared by the channel tests: an SMTP sink written here with
//! tokio (a real SMTP conversation: EHLO, optional STARTTLS, MAIL, RCPT,
//! DATA, QUIT), plain, upgrading with STARTTLS, or TLS from the first byte,
//! recording its transcript. Tests wait on the transcript with a deadline
//! ([`Sink::wait_for_message`]), never a fixed sleep.

#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One line, read a byte at a time so nothing past it is buffered when
/// the connection is upgraded to TLS.
async fn read_line(s: &mut Box<dyn Io>) -> Option<String> {
    let mut line = Vec::new();
    loop {
        let mut b = [0u8; 1];
        match s.read(&mut b).await {
            Ok(1) => {}
            _ => return None,
        }
        if b[0] == b'\n' {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return String::from_utf8(line).ok();
        }
        line.push(b[0]);
    }
}

/// How the sink secures the session.
#[derive(Clone, Copy, PartialEq)]
pub enum SinkTls {
    /// Offers STARTTLS.
    Starttls,
    /// TLS from the first byte.
    Implicit,
    /// Plain text, no STARTTLS offered.
    Plain,
}

/// A running sink for one SMTP session.
pub struct Sink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    transcript: watch::Receiver<String>,
}

impl Sink {
    /// The transcript so far: each line the client sent, prefixed with
    /// `tls ` or `plain `.
    pub fn transcript(&self) -> String {
        self.transcript.borrow().clone()
    }

    /// Waits until a whole message was received (its end-of-data line
    /// `.`) and returns the transcript; fails the test after ten seconds
    /// (a sink that never gets it is a failure, not a wait).
    pub async fn wait_for_message(&mut self) -> String {
        let end = |t: &String| t.lines().any(|l| l == "plain ." || l == "tls .");
        let seen = tokio::time::timeout(Duration::from_secs(10), self.transcript.wait_for(end))
            .await
            .map(|r| r.map(|t| t.clone()));
        match seen {
            Ok(Ok(t)) => t,
            _ => panic!("the SMTP sink got no whole message: {}", self.transcript()),
        }
    }
}

/// Starts a sink for one session; `acceptor` is needed unless `mode` is
/// [`SinkTls::Plain`].
pub async fn smtp_sink(acceptor: Option<TlsAcceptor>, mode: SinkTls) -> Sink {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (log, transcript) = watch::channel(String::new());
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let mut secure = mode == SinkTls::Implicit;
        let mut s: Box<dyn Io> = match (&acceptor, secure) {
            (Some(a), true) => match a.accept(tcp).await {
                Ok(t) => Box::new(t),
                Err(_) => return,
            },
            (None, true) => return,
            (_, false) => Box::new(tcp),
        };
        let _ = s.write_all(b"220 sink ESMTP\r\n").await;
        let mut in_data = false;
        while let Some(line) = read_line(&mut s).await {
            let tag = if secure { "tls" } else { "plain" };
            log.send_modify(|t| t.push_str(&format!("{tag} {line}\n")));
            let reply: &[u8] = if in_data {
                if line == "." {
                    in_data = false;
                    b"250 queued\r\n"
                } else {
                    continue;
                }
            } else if line.starts_with("EHLO") {
                if mode == SinkTls::Starttls && !secure {
                    b"250-sink\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
                } else {
                    b"250-sink\r\n250 8BITMIME\r\n"
                }
            } else if line == "STARTTLS" && mode == SinkTls::Starttls && !secure {
                let Some(a) = &acceptor else { return };
                let _ = s.write_all(b"220 go ahead\r\n").await;
                match a.accept(s).await {
                    Ok(t) => s = Box::new(t),
                    Err(_) => return,
                }
                secure = true;
                continue;
            } else if line == "DATA" {
                in_data = true;
                b"354 go\r\n"
            } else if line == "QUIT" {
                let _ = s.write_all(b"221 bye\r\n").await;
                return;
            } else {
                b"250 ok\r\n"
            };
            let _ = s.write_all(reply).await;
        }
    });
    Sink { port, transcript }
}
