//! Settings: built-in defaults, then an optional TOML file named by `ITAKU_CONFIG`, then
//! `ITAKU_*` environment variables (nested keys with `__`). Every setting is documented in
//! README.md.

use std::fmt;
use std::path::PathBuf;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Prefix of every environment variable the settings read.
pub const ENV_PREFIX: &str = "ITAKU_";
/// Environment variable naming the optional TOML settings file.
pub const CONFIG_FILE_ENV: &str = "ITAKU_CONFIG";
/// Shortest accepted `jwt_secret`: HS256 keys should carry at least 256 bits.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// Pool size on PostgreSQL when `database_max_connections` is not set.
pub const DEFAULT_POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for terminals.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The running server's settings.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// `sqlite://…` (default) or `postgres://…`.
    pub database_url: String,
    /// Pool size; unset means 16 on PostgreSQL and one connection on SQLite.
    pub database_max_connections: Option<u32>,
    /// Folder of workflow definition files.
    pub workflows_dir: PathBuf,
    /// HS256 signing key for session tokens; generated at start when unset.
    pub jwt_secret: Option<SecretString>,
    /// Lifetime of a session token.
    pub token_ttl_minutes: u32,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// Grace period for in-flight requests on SIGTERM/SIGINT.
    pub shutdown_timeout_seconds: u64,
    /// Where outgoing mail is written when no SMTP server is configured.
    pub mail_dir: PathBuf,
    /// The externally visible base URL, used in links (mail, redirects); unset, the address the
    /// server listens on (see [`Settings::public_url`]).
    pub public_url: Option<String>,
    /// How often the server anchors the audit chain heads; 0 disables anchoring.
    pub audit_anchor_interval_seconds: u64,
    /// Largest accepted evidence file, in MiB.
    pub max_upload_mb: u32,
    /// How often the server checks for evidence that expired and cascades the lapse.
    pub evidence_sweep_interval_seconds: u64,
    /// Mail delivery: SMTP server, sender, retries (`ITAKU_MAIL__*`).
    pub mail: crate::notify::MailSettings,
    /// How often the server fires due workflow timers (reminders, escalations); 0 disables.
    pub timer_interval_seconds: u64,
    /// Days before an evidence record's `valid_until` on which its owner and the root
    /// municipality's officers are reminded (each stage once per record).
    pub evidence_reminder_days: Vec<u32>,
    /// A TOML file replacing the built-in obligation policy (`src/domain/obligation_policy.toml`).
    pub obligation_policy: Option<PathBuf>,
    /// Threads serving HTTP requests; unset means half the machine's cores (at least one).
    pub http_workers: Option<usize>,
    /// Threads of the runtime that runs the tasks behind the requests (the group commit, the
    /// session reads, mail, timers); unset means half the machine's cores (at least one).
    pub runtime_threads: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            database_url: "sqlite://./data/itaku.db?mode=rwc".to_owned(),
            database_max_connections: None,
            workflows_dir: PathBuf::from("workflows"),
            jwt_secret: None,
            token_ttl_minutes: 15,
            log_format: LogFormat::Pretty,
            shutdown_timeout_seconds: 10,
            mail_dir: PathBuf::from("./data/mail"),
            public_url: None,
            audit_anchor_interval_seconds: 300,
            max_upload_mb: 20,
            evidence_sweep_interval_seconds: 3600,
            mail: crate::notify::MailSettings::default(),
            timer_interval_seconds: 900,
            evidence_reminder_days: vec![90, 30, 7],
            obligation_policy: None,
            http_workers: None,
            runtime_threads: None,
        }
    }
}

/// Settings that could not be loaded or make no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the settings: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid setting `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl Settings {
    /// Loads defaults → `$ITAKU_CONFIG` (if set) → `ITAKU_*` variables, then validates.
    pub fn load() -> Result<Self, ConfigError> {
        let settings: Settings = Self::figment().extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The layered sources, for callers that want to add their own (tests, tools).
    pub fn figment() -> Figment {
        let mut figment = Figment::new();
        if let Some(path) = std::env::var_os(CONFIG_FILE_ENV) {
            // `file_exact`: a file named explicitly must exist, unlike a searched-for default.
            figment = figment.merge(Toml::file_exact(PathBuf::from(path)));
        }
        figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]))
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if !self.is_postgres() && !self.database_url.starts_with("sqlite:") {
            return invalid("database_url", "must start with sqlite: or postgres://");
        }
        if self.database_max_connections == Some(0) {
            return invalid("database_max_connections", "must be at least 1");
        }
        if self.http_workers == Some(0) {
            return invalid("http_workers", "must be at least 1");
        }
        if self.runtime_threads == Some(0) {
            return invalid("runtime_threads", "must be at least 1");
        }
        if self.token_ttl_minutes == 0 {
            return invalid("token_ttl_minutes", "must be at least 1");
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.expose_secret().len() < MIN_JWT_SECRET_BYTES {
                return invalid("jwt_secret", "must be at least 32 bytes long");
            }
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid("public_url", "must start with http:// or https://");
            }
        }
        if self.evidence_reminder_days.is_empty()
            || self
                .evidence_reminder_days
                .iter()
                .any(|d| !(1..=3650).contains(d))
        {
            return invalid(
                "evidence_reminder_days",
                "must list at least one number of days, each from 1 to 3650",
            );
        }
        if let Some((field, reason)) = self.mail.problem() {
            return invalid(field, &reason);
        }
        Ok(())
    }

    /// Whether `database_url` selects PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
    }

    /// The base URL of links: the configured `public_url`, else the address the server
    /// listens on (`http://host:port`; a wildcard host as `127.0.0.1`).
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None => {
                let host = match self.host.as_str() {
                    "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
                    host => host,
                };
                format!("http://{host}:{}", self.port)
            }
        }
    }

    /// The pool size to use: the setting, or the backend's default (`None`: the driver's own).
    pub fn effective_max_connections(&self) -> Option<u32> {
        match self.database_max_connections {
            Some(n) => Some(n),
            None if self.is_postgres() => Some(DEFAULT_POSTGRES_MAX_CONNECTIONS),
            None => None,
        }
    }

    /// How many threads serve HTTP requests: the setting, or [`half_the_cores`].
    pub fn effective_http_workers(&self) -> usize {
        self.http_workers.unwrap_or_else(half_the_cores)
    }

    /// How many threads the runtime has: the setting, or [`half_the_cores`].
    pub fn effective_runtime_threads(&self) -> usize {
        self.runtime_threads.unwrap_or_else(half_the_cores)
    }

    /// The runtime the server runs on, with [`Settings::effective_runtime_threads`] threads.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.effective_runtime_threads())
            .enable_all()
            .build()
    }
}

/// Half the cores this process may use, at least one: the default of both thread counts.
///
/// The server's own work per request is small next to its database's, which usually runs on
/// the same machine (a municipality's deployment) and needs the other half. More threads than
/// that do not add throughput; they add hand-offs: every request passes from the thread that
/// serves it to the batching tasks and back, and with more threads than cores to share those
/// hand-offs become context switches. On two cores, one thread each did 7 to 12 % more
/// transitions per second than actix's and tokio's defaults of one per core (README, figures).
pub fn half_the_cores() -> usize {
    half_of(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

fn half_of(cores: usize) -> usize {
    (cores / 2).max(1)
}

/// Never prints secrets: the JWT key is hidden and a database password is masked.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database_url", &redact_url_password(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field("workflows_dir", &self.workflows_dir)
            .field(
                "jwt_secret",
                &self
                    .jwt_secret
                    .as_ref()
                    .map_or("<generated at start>", |_| "<redacted>"),
            )
            .field("token_ttl_minutes", &self.token_ttl_minutes)
            .field("log_format", &self.log_format)
            .field("shutdown_timeout_seconds", &self.shutdown_timeout_seconds)
            .field("mail_dir", &self.mail_dir)
            .field("public_url", &self.public_url)
            .field(
                "audit_anchor_interval_seconds",
                &self.audit_anchor_interval_seconds,
            )
            .field("mail", &self.mail)
            .field("timer_interval_seconds", &self.timer_interval_seconds)
            .field("evidence_reminder_days", &self.evidence_reminder_days)
            .field("obligation_policy", &self.obligation_policy)
            .field("http_workers", &self.http_workers)
            .field("runtime_threads", &self.runtime_threads)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &authority[..colon],
        &url[authority_start + at..]
    )
}

#[cfg(test)]
// `Jail` closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    /// Runs `test` with no environment variables but those it sets, in a scratch folder.
    fn with_clean_env(test: impl FnOnce(&mut Jail) -> figment::Result<()>) {
        Jail::expect_with(|jail| {
            jail.clear_env();
            test(jail)
        });
    }

    fn load() -> Result<Settings, figment::Error> {
        Settings::load().map_err(|e| figment::Error::from(e.to_string()))
    }

    #[test]
    fn defaults_apply_when_nothing_is_configured() {
        with_clean_env(|_| {
            let settings = load()?;
            assert_eq!(settings.host, "127.0.0.1");
            assert_eq!(settings.port, 8080);
            assert_eq!(settings.database_url, "sqlite://./data/itaku.db?mode=rwc");
            assert_eq!(settings.effective_max_connections(), None);
            assert_eq!(settings.workflows_dir, PathBuf::from("workflows"));
            assert!(settings.jwt_secret.is_none());
            assert_eq!(settings.token_ttl_minutes, 15);
            assert_eq!(settings.log_format, LogFormat::Pretty);
            assert_eq!(settings.shutdown_timeout_seconds, 10);
            assert_eq!(settings.mail_dir, PathBuf::from("./data/mail"));
            assert_eq!(settings.public_url, None);
            assert_eq!(settings.public_url(), "http://127.0.0.1:8080");
            assert_eq!(settings.audit_anchor_interval_seconds, 300);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        with_clean_env(|jail| {
            jail.create_file(
                "itaku.toml",
                "port = 9000\nhost = \"0.0.0.0\"\nlog_format = \"json\"\n",
            )?;
            jail.set_env("ITAKU_CONFIG", "itaku.toml");
            jail.set_env("ITAKU_PORT", "9100");
            jail.set_env("ITAKU_DATABASE_URL", "postgres://itaku@db/itaku");
            let settings = load()?;
            assert_eq!(settings.port, 9100);
            assert_eq!(settings.host, "0.0.0.0");
            assert_eq!(settings.log_format, LogFormat::Json);
            assert!(settings.is_postgres());
            assert_eq!(settings.effective_max_connections(), Some(16));
            Ok(())
        });
    }

    #[test]
    fn a_numeric_looking_secret_is_still_a_string() {
        with_clean_env(|jail| {
            jail.set_env("ITAKU_JWT_SECRET", "12345678901234567890123456789012345");
            let settings = load()?;
            let secret = settings
                .jwt_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned());
            assert_eq!(
                secret.as_deref(),
                Some("12345678901234567890123456789012345")
            );
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        with_clean_env(|jail| {
            jail.set_env("ITAKU_CONFIG", "nope.toml");
            assert!(load().is_err());
            Ok(())
        });
    }

    #[test]
    fn thread_counts_default_to_half_the_cores_and_are_at_least_one() {
        assert_eq!([1, 2, 3, 4, 8, 9].map(half_of), [1, 1, 1, 2, 4, 4]);
        with_clean_env(|jail| {
            let settings = load()?;
            assert_eq!(settings.effective_http_workers(), half_the_cores());
            assert_eq!(settings.effective_runtime_threads(), half_the_cores());
            jail.set_env("ITAKU_HTTP_WORKERS", "3");
            jail.set_env("ITAKU_RUNTIME_THREADS", "5");
            let settings = load()?;
            assert_eq!(settings.effective_http_workers(), 3);
            assert_eq!(settings.effective_runtime_threads(), 5);
            let runtime = settings
                .runtime()
                .map_err(|e| figment::Error::from(e.to_string()))?;
            assert_eq!(runtime.metrics().num_workers(), 5);
            Ok(())
        });
        for field in ["http_workers", "runtime_threads"] {
            let settings = Settings {
                http_workers: Some(usize::from(field != "http_workers")),
                runtime_threads: Some(usize::from(field != "runtime_threads")),
                ..Settings::default()
            };
            let refused = settings.validate().err().map(|e| e.to_string());
            assert_eq!(
                refused.as_deref(),
                Some(format!("invalid setting `{field}`: must be at least 1").as_str())
            );
        }
    }

    #[test]
    fn unknown_settings_and_short_secrets_are_refused() {
        with_clean_env(|jail| {
            jail.set_env("ITAKU_PROT", "1");
            assert!(load().is_err());
            Ok(())
        });
        with_clean_env(|jail| {
            jail.set_env("ITAKU_JWT_SECRET", "short");
            assert!(load().is_err());
            Ok(())
        });
    }

    #[test]
    fn debug_output_hides_secrets() {
        let settings = Settings {
            database_url: "postgres://itaku:hunter2@db:5432/itaku".to_owned(),
            jwt_secret: Some(SecretString::from("x".repeat(40))),
            ..Settings::default()
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains(&"x".repeat(40)), "{printed}");
        assert!(
            printed.contains("postgres://itaku:***@db:5432/itaku"),
            "{printed}"
        );
    }

    #[test]
    fn mail_settings_are_nested_under_mail_and_checked() {
        with_clean_env(|jail| {
            jail.set_env("ITAKU_MAIL__SMTP_HOST", "smtp.example.lg.jp");
            jail.set_env("ITAKU_MAIL__SMTP_SECURITY", "tls");
            jail.set_env("ITAKU_MAIL__SMTP_USERNAME", "itaku");
            jail.set_env("ITAKU_MAIL__SMTP_PASSWORD", "hunter2hunter2");
            jail.set_env("ITAKU_MAIL__FROM", "委託管理 <itaku@example.lg.jp>");
            let settings = load()?;
            assert_eq!(settings.mail.host(), Some("smtp.example.lg.jp"));
            assert_eq!(settings.mail.port(), 465);
            assert!(!format!("{settings:?}").contains("hunter2"));
            Ok(())
        });
        with_clean_env(|jail| {
            jail.set_env("ITAKU_MAIL__FROM", "not an address");
            assert!(load().is_err());
            Ok(())
        });
        with_clean_env(|jail| {
            jail.set_env("ITAKU_MAIL__SMTP_PASSWORD", "no user");
            assert!(load().is_err());
            Ok(())
        });
    }

    #[test]
    fn an_smtp_ca_file_that_is_unreadable_or_not_pem_is_refused_at_start() {
        with_clean_env(|jail| {
            jail.set_env("ITAKU_MAIL__SMTP_CA_FILE", "missing-ca.pem");
            let error = load().expect_err("refused").to_string();
            assert!(
                error.contains("mail.smtp_ca_file") && error.contains("cannot read missing-ca.pem"),
                "{error}"
            );
            Ok(())
        });
        with_clean_env(|jail| {
            jail.create_file("ca.pem", "this is not a certificate\n")?;
            jail.set_env("ITAKU_MAIL__SMTP_CA_FILE", "ca.pem");
            let error = load().expect_err("refused").to_string();
            assert!(
                error.contains("mail.smtp_ca_file") && error.contains("holds no PEM certificate"),
                "{error}"
            );
            Ok(())
        });
        with_clean_env(|jail| {
            let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
            jail.create_file("broken.pem", broken)?;
            jail.set_env("ITAKU_MAIL__SMTP_CA_FILE", "broken.pem");
            assert!(load().is_err());
            Ok(())
        });
    }

    #[test]
    fn urls_without_a_password_are_left_alone() {
        assert_eq!(
            redact_url_password("sqlite://./data/itaku.db?mode=rwc"),
            "sqlite://./data/itaku.db?mode=rwc"
        );
        assert_eq!(
            redact_url_password("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
    }
}
