//! Sending e-mail through the configured SMTP relay: alarms to confirmed e-mail channels
//! ([`crate::notifications`]) and the one-time code that confirms a new address.

use crate::notifications::EmailSettings;
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the sender or the recipient is not an e-mail address")]
    Address,
    #[error("the message could not be built")]
    Message,
    /// The relay answered or failed; `permanent` when no retry can succeed.
    #[error("{}", relay_words(.permanent, .timeout))]
    Relay {
        code: Option<u16>,
        permanent: bool,
        timeout: bool,
    },
}

fn relay_words(permanent: &bool, timeout: &bool) -> &'static str {
    if *permanent {
        "the relay refused the message"
    } else if *timeout {
        "timed out"
    } else {
        "the relay could not be reached or failed"
    }
}

/// The SMTP relay and the sender every message names. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// The relay of `settings`, each message bounded by `timeout`.
    pub fn new(settings: &EmailSettings, timeout: Duration) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.relay_url)
            .map_err(|e| format!("the SMTP relay URL is not usable: {e}"))?
            .timeout(Some(timeout))
            .build();
        settings
            .from
            .parse::<Mailbox>()
            .map_err(|_| "the sender (--smtp-from) is not an e-mail address".to_owned())?;
        Ok(Mailer {
            transport,
            from: settings.from.clone(),
        })
    }

    /// Sends a plain-text message to `to`; the relay's answer.
    pub async fn send(&self, to: &str, subject: &str, text: String) -> Result<Response, MailError> {
        let (Ok(from), Ok(to)) = (self.from.parse::<Mailbox>(), to.parse::<Mailbox>()) else {
            return Err(MailError::Address);
        };
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|_| MailError::Message)?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Relay {
                code: e.status().map(u16::from),
                permanent: e.is_permanent(),
                timeout: e.is_timeout(),
            })
    }
}

/// The subject of the message carrying a confirmation code.
pub const CONFIRMATION_SUBJECT: &str = "Your Chronicle confirmation code";

/// The text of the message carrying a confirmation code: the code, how long it lives, where
/// to type it (the dashboard's Notifications page, when the server knows its address), and
/// what to do when the address was given by someone else.
pub fn confirmation_text(
    code: &str,
    expires_at: DateTime<Utc>,
    dashboard_url: Option<&str>,
) -> String {
    let mut text = format!(
        "Someone asked Chronicle to send health alerts to this address.\n\n\
         If that was you, confirm the address with this code:\n\n    {code}\n\n\
         It can be used until {}.\n",
        expires_at.format("%Y-%m-%d %H:%M UTC")
    );
    match dashboard_url {
        Some(url) => text.push_str(&format!(
            "\nType it on the Notifications page: {}/notifications\n",
            url.trim_end_matches('/')
        )),
        None => text.push_str("\nType it on Chronicle's Notifications page.\n"),
    }
    text.push_str(
        "\nIf it was not you, ignore this message: no alert is sent to this address until \
         the code is typed back.\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_message_carries_the_code_and_the_page_to_type_it_on() {
        let text = confirmation_text("7K2Q-MX9D", Utc::now(), Some("https://chronicle.example/"));
        assert!(text.contains("    7K2Q-MX9D\n"), "{text}");
        assert!(
            text.contains("https://chronicle.example/notifications\n"),
            "{text}"
        );
        assert!(confirmation_text("X", Utc::now(), None).contains("Notifications page."));
    }

    #[test]
    fn a_bad_relay_or_sender_is_refused_when_configured() {
        let settings = |relay: &str, from: &str| EmailSettings {
            relay_url: relay.to_owned(),
            from: from.to_owned(),
        };
        let timeout = Duration::from_secs(1);
        assert!(Mailer::new(&settings("smtp://127.0.0.1:25", "C <c@x.example>"), timeout).is_ok());
        assert!(Mailer::new(&settings("not a url", "c@x.example"), timeout).is_err());
        assert!(Mailer::new(&settings("smtp://127.0.0.1:25", "nobody"), timeout).is_err());
    }
}
