//! Accounts: what is recorded about authentication, how long API tokens live, which passwords
//! are accepted, and how failed log-ins slow down further attempts. Pure rules; the HTTP edge
//! and the storage apply them.

use std::time::Duration;

string_enum!(
    /// What an authentication event records.
    AuthenticationEventKind {
        LoginSucceeded => "login_succeeded",
        /// A log-in refused (see [`LoginFailure`] for why).
        LoginFailed => "login_failed",
        LoggedOut => "logged_out",
        TokenIssued => "token_issued",
        /// One token revoked by its owner.
        TokenRevoked => "token_revoked",
        /// Every token of the account revoked at once: off-boarding by an administrator.
        TokensRevoked => "tokens_revoked",
        /// The password changed; the account's other sessions and its API tokens were revoked.
        PasswordChanged => "password_changed",
        /// A password change refused because the current password was wrong.
        PasswordChangeFailed => "password_change_failed",
        /// Disabled by an administrator; every token of the account was revoked.
        AccountDisabled => "account_disabled",
        AccountEnabled => "account_enabled",
    }
);

string_enum!(
    /// Why a log-in (or a password change) was refused. The caller always gets the same answer;
    /// only the record says which it was.
    LoginFailure {
        /// No account has the e-mail given.
        UnknownAccount => "unknown_account",
        WrongPassword => "wrong_password",
        AccountDisabled => "account_disabled",
        /// The account has no password log-in.
        NoPassword => "no_password",
    }
);

/// How long an API token lasts when its request names no lifetime.
pub const DEFAULT_API_TOKEN_DAYS: u32 = 90;
/// The longest an API token may be asked to last.
pub const MAX_API_TOKEN_DAYS: u32 = 365;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expires_days must be between 1 and {MAX_API_TOKEN_DAYS}")]
pub struct TokenLifetimeOutOfRange;

/// The days an API token lasts: the default, or what was asked within 1..=MAX. Every API token
/// expires, so a token forgotten in a script or leaked with it stops working on its own.
pub fn api_token_days(requested: Option<u32>) -> Result<u32, TokenLifetimeOutOfRange> {
    match requested {
        None => Ok(DEFAULT_API_TOKEN_DAYS),
        Some(days) if (1..=MAX_API_TOKEN_DAYS).contains(&days) => Ok(days),
        Some(_) => Err(TokenLifetimeOutOfRange),
    }
}

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The most characters a password may have (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// The least zxcvbn score a password needs: 3 is "safely unguessable" (more than 10⁸ guesses
/// by zxcvbn's estimate), which refuses common and breached-style passwords, keyboard walks,
/// repeats and passwords made of the user's own name or e-mail.
pub const MIN_PASSWORD_SCORE: u8 = 3;

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    /// Too easy to guess; `hint` is zxcvbn's warning when it has one.
    #[error("the password is too easy to guess{}", hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Guessable { hint: Option<String> },
}

/// Checks a new password against the policy. `personal` are words an attacker knows about the
/// account (e-mail, name): a password built from them is refused.
pub fn check_password(password: &str, personal: &[&str]) -> Result<(), WeakPassword> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(WeakPassword::TooLong);
    }
    // An e-mail's local part and every part count separately: "pat.smith@example.org" gives
    // "pat.smith", "pat", "smith", "example"; zxcvbn matches each against the password.
    let mut words: Vec<&str> = vec!["chronicle"];
    for text in personal {
        words.push(text);
        words.extend(text.split_once('@').map(|(local, _)| local));
        words.extend(
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().count() >= 3),
        );
    }
    let estimate = zxcvbn::zxcvbn(password, &words);
    if u8::from(estimate.score()) >= MIN_PASSWORD_SCORE {
        Ok(())
    } else {
        Err(WeakPassword::Guessable {
            hint: estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| w.to_string()),
        })
    }
}

/// How failed log-ins slow further attempts for one key (an account, or a client address):
/// the first `free_failures` cost nothing; from then on each failure refuses every attempt
/// for `first_delay`, doubling with each further failure up to `max_delay`. Failures are
/// forgotten `forget_after` the last one, and a successful log-in forgets an account's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginBackoff {
    pub free_failures: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub forget_after: Duration,
}

impl LoginBackoff {
    /// Per account: a person mistyping gets five tries; a guesser gets one try per
    /// quarter of an hour soon after.
    pub const PER_ACCOUNT: LoginBackoff = LoginBackoff {
        free_failures: 5,
        first_delay: Duration::from_secs(30),
        max_delay: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(60 * 60),
    };

    /// Per client address: room for a clinic behind one address, none for trying a few
    /// passwords on every account (password spraying).
    pub const PER_ADDRESS: LoginBackoff = LoginBackoff {
        free_failures: 20,
        first_delay: Duration::from_secs(30),
        max_delay: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(60 * 60),
    };

    /// How long attempts are refused after the `failures`-th consecutive failure.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.free_failures)?;
        // 2^beyond saturates long before u32 does: the cap applies from 2^5 on.
        let factor = 1u32.checked_shl(beyond.min(30)).unwrap_or(u32::MAX);
        Some(
            self.first_delay
                .checked_mul(factor)
                .map_or(self.max_delay, |d| d.min(self.max_delay)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_tokens_expire_by_default_and_within_a_year() {
        assert_eq!(api_token_days(None), Ok(90));
        assert_eq!(api_token_days(Some(7)), Ok(7));
        assert_eq!(api_token_days(Some(365)), Ok(365));
        assert_eq!(api_token_days(Some(0)), Err(TokenLifetimeOutOfRange));
        assert_eq!(api_token_days(Some(366)), Err(TokenLifetimeOutOfRange));
    }

    #[test]
    fn weak_passwords_are_refused() {
        for weak in [
            "aaaaaaaaaaaa",
            "password1234",
            "qwertyuiop123",
            "123456789012",
            "Password123!",
        ] {
            assert!(
                matches!(
                    check_password(weak, &[]),
                    Err(WeakPassword::Guessable { .. })
                ),
                "{weak} must be refused"
            );
        }
        assert_eq!(check_password("short", &[]), Err(WeakPassword::TooShort));
        assert_eq!(
            check_password(&"x".repeat(MAX_PASSWORD_CHARS + 1), &[]),
            Err(WeakPassword::TooLong)
        );
        // The user's own name does not make a password.
        assert!(
            check_password("PatSmithPatSmith", &["pat.smith@example.org", "Pat Smith"]).is_err()
        );
    }

    #[test]
    fn strong_passwords_pass() {
        for strong in [
            "correct horse battery staple",
            "tapir-monsoon-lantern-87",
            "Vq3x9LpT2mZa7Rk1",
        ] {
            assert_eq!(check_password(strong, &[]), Ok(()), "{strong}");
        }
    }

    #[test]
    fn failures_back_off_after_the_free_ones() {
        let b = LoginBackoff::PER_ACCOUNT;
        assert_eq!(b.delay_after(4), None);
        assert_eq!(b.delay_after(5), Some(Duration::from_secs(30)));
        assert_eq!(b.delay_after(6), Some(Duration::from_secs(60)));
        assert_eq!(b.delay_after(9), Some(Duration::from_secs(480)));
        assert_eq!(b.delay_after(10), Some(Duration::from_secs(900)));
        assert_eq!(b.delay_after(u32::MAX), Some(Duration::from_secs(900)));
    }
}
