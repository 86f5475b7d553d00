//! Builds the application: database, shared state, listener, App factory, background tasks.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, ErrorHandlers, Next};
use actix_web::{web, App, HttpMessage as _, HttpServer};

use crate::services::batch::Batcher;
use crate::services::group_commit::GroupCommit;
use crate::services::instances::Conns;
use crate::services::recent::Recent;
use crate::services::users::SessionReads;
use chrono::Duration;
use rand::RngCore as _;
use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbBackend, DbErr};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::auth::rate_limit::FailureLimiter;
use crate::auth::{password, JwtKeys};
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, DbError};
use crate::domain::obligations::ObligationPolicy;
use crate::error;
use crate::routes;
use crate::services::{self, definitions};
use crate::workflow::{self, Kinds, WorkflowSet};

/// Largest accepted JSON body.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// How often expired rows of `revoked_tokens` are deleted.
const PURGE_INTERVAL: StdDuration = StdDuration::from_secs(3600);

/// Everything a request handler may need. One is shared by all workers, except that a single
/// worker on PostgreSQL gets a copy with batching tasks of its own ([`AppState::for_worker`]).
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// For reads that are not part of a write (the session check); see [`db::connect_reader`].
    pub reader: DatabaseConnection,
    /// The group commit task for transitions; see [`crate::services::group_commit`].
    pub group_commit: Option<GroupCommit>,
    /// Session checks, in batches on `reader`; see [`crate::services::batch`].
    pub sessions: Batcher<SessionReads>,
    /// The sessions and rows this replica keeps, shared by its workers; see
    /// [`crate::services::recent`].
    pub recent: Arc<Recent>,
    pub settings: Settings,
    /// Signing and verification keys for session tokens.
    pub jwt: JwtKeys,
    /// The source of "now" for every request.
    pub clock: Clock,
    /// Lifetime of a newly issued session token.
    pub token_ttl: Duration,
    /// Every loaded workflow definition, by `(id, version)`.
    pub workflows: Arc<WorkflowSet>,
    /// The context kinds this deployment knows.
    pub kinds: Arc<Kinds>,
    /// Which obligations the chains generate and how they are reminded.
    pub obligation_policy: Arc<ObligationPolicy>,
    /// Failed sign-ins per login and address (in memory, per replica).
    pub sign_in_limiter: Arc<FailureLimiter>,
    /// Verified against when a login does not exist, so that both cases cost the same.
    pub(crate) dummy_password_hash: String,
}

impl AppState {
    /// Where an instance event's reads and writes go.
    pub fn conns(&self) -> Conns<'_> {
        Conns {
            db: &self.db,
            reader: &self.reader,
            group_commit: self.group_commit.as_ref(),
            recent: Some(&self.recent),
        }
    }

    /// A copy for one HTTP worker, with a group commit and a session reader started on the
    /// calling thread's runtime (call it on the worker's thread). Every request then has its
    /// session read and its transition written without leaving the thread that serves it: on
    /// two cores with PostgreSQL, 2.0 context switches per request instead of 3.0, a sixth less
    /// CPU and 6–9 % more transitions per second (the README's figures). The tasks end with
    /// the worker, and a restarted worker starts its own. Everything else (the pools, the
    /// sign-in limiter, the definitions) stays shared.
    fn for_worker(&self) -> Self {
        Self {
            group_commit: self
                .group_commit
                .as_ref()
                .map(|_| GroupCommit::start(self.db.clone())),
            sessions: Batcher::start(SessionReads::new(self.reader.clone())),
            ..self.clone()
        }
    }
}

/// The server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database")]
    Database(#[from] DbError),
    #[error("cannot migrate the database")]
    Migrate(#[source] DbErr),
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the workflow definitions are not valid:\n{0}")]
    Workflows(String),
    #[error("cannot prepare password hashing: {0}")]
    PasswordHashing(String),
    #[error("cannot set up mail delivery")]
    Mail(#[from] crate::notify::dispatcher::MailSetupError),
    #[error("the obligation policy is not valid: {0}")]
    ObligationPolicy(String),
}

/// A built application, listening but not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    stop_background: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Connects, migrates and binds, with the system clock.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::System).await
    }

    /// Like [`Application::build`], with the given clock (tests pin time with it).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        Self::build_with(settings, clock, Kinds::product()).await
    }

    /// Like [`Application::build`], with the given clock and context kinds (the benchmarks add
    /// the workload kind).
    pub async fn build_with(
        settings: Settings,
        clock: Clock,
        kinds: Kinds,
    ) -> Result<Self, StartupError> {
        tracing::info!(?settings, version = env!("CARGO_PKG_VERSION"), "starting");
        let db = db::connect(&settings).await?;
        db::migrate(&db).await.map_err(StartupError::Migrate)?;
        let reader = db::connect_reader(&settings, &db).await?;
        let mut workflows =
            workflow::load_dir(&settings.workflows_dir, &kinds).map_err(|errors| {
                StartupError::Workflows(
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?;
        definitions::deploy(&db, &mut workflows, &kinds, clock.now())
            .await
            .map_err(|e| StartupError::Workflows(e.to_string()))?;
        tracing::info!(definitions = workflows.len(), "workflow definitions loaded");
        for rt in workflows.iter() {
            let d = rt.describe();
            if d.create_org.is_none() {
                tracing::warn!(workflow = %d.id, version = d.version, "{}", crate::commands::UNSCOPED);
            }
        }
        let filled = crate::services::instances::index_waiting(&db, &workflows)
            .await
            .map_err(|e| {
                StartupError::Workflows(format!("cannot index who instances wait for: {e:?}"))
            })?;
        if filled > 0 {
            tracing::info!(instances = filled, "who instances wait for indexed");
        }
        let obligation_policy = crate::schedule::load_obligation_policy(&settings)
            .map_err(StartupError::ObligationPolicy)?;

        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                address: address.clone(),
                source,
            })?
            .port();
        // Links point at the server itself unless an external address is configured.
        let mut settings = settings;
        if settings.public_url.is_none() {
            settings.public_url = Some(
                Settings {
                    port,
                    ..settings.clone()
                }
                .public_url(),
            );
        }

        let state = web::Data::new(AppState {
            jwt: JwtKeys::from_secret(jwt_secret(&settings).expose_secret().as_bytes()),
            token_ttl: Duration::minutes(i64::from(settings.token_ttl_minutes)),
            sign_in_limiter: Arc::new(FailureLimiter::sign_in()),
            dummy_password_hash: dummy_password_hash().await?,
            group_commit: Some(GroupCommit::start(db.clone())),
            sessions: Batcher::start(SessionReads::new(reader.clone())),
            recent: Arc::new(Recent::default()),
            db,
            reader,
            clock,
            settings,
            workflows: Arc::new(workflows),
            kinds: Arc::new(kinds),
            obligation_policy: Arc::new(obligation_policy),
        });
        let server = run(listener, state.clone())
            .map_err(|source| StartupError::Bind { address, source })?;

        let (stop_background, stopped) = watch::channel(false);
        let mut background = vec![tokio::spawn(purge_revoked_tokens(
            state.clone(),
            stopped.clone(),
        ))];
        match state.settings.evidence_sweep_interval_seconds {
            0 => tracing::info!(
                "the evidence expiry sweep is disabled (evidence_sweep_interval_seconds = 0)"
            ),
            seconds => background.push(tokio::spawn(sweep_expired_evidence(
                state.clone(),
                StdDuration::from_secs(seconds),
                stopped.clone(),
            ))),
        }
        background.extend(mail_and_timers(&state, &stopped)?);
        match state.settings.audit_anchor_interval_seconds {
            0 => tracing::info!("audit anchoring is disabled (audit_anchor_interval_seconds = 0)"),
            seconds => background.push(tokio::spawn(anchor_audit_heads(
                state.clone(),
                StdDuration::from_secs(seconds),
                stopped,
            ))),
        }
        tracing::info!(
            port,
            http_workers = state.settings.effective_http_workers(),
            runtime_threads = tokio::runtime::Handle::current().metrics().num_workers(),
            "listening"
        );
        Ok(Self {
            port,
            server,
            state,
            stop_background,
            background,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, as handlers see it.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM/SIGINT (graceful, bounded by `shutdown_timeout_seconds`), then stops
    /// the background tasks.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        // Receivers are gone only if every task already ended; nothing to tell then.
        let _ = self.stop_background.send(true);
        for task in self.background {
            if let Err(error) = task.await {
                tracing::error!(%error, "a background task failed");
            }
        }
        tracing::info!("stopped");
        served
    }
}

/// The mail dispatcher and the timer scheduler, as configured (an interval of 0 disables one).
fn mail_and_timers(
    state: &web::Data<AppState>,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, StartupError> {
    let settings = &state.settings;
    let mut tasks = Vec::new();
    let dispatcher = crate::notify::Dispatcher::new(
        state.db.clone(),
        state.workflows.clone(),
        &settings.mail,
        &settings.mail_dir,
        &settings.public_url(),
    )?;
    match settings.mail.dispatch_interval_seconds {
        0 => tracing::info!("mail dispatch is disabled (mail.dispatch_interval_seconds = 0)"),
        seconds => {
            tracing::info!(transport = ?dispatcher.transport(), "mail dispatch");
            tasks.push(tokio::spawn(crate::notify::dispatcher::run_periodically(
                dispatcher,
                state.clock,
                StdDuration::from_secs(seconds),
                stop.clone(),
            )));
        }
    }
    match settings.timer_interval_seconds {
        0 => tracing::info!("workflow timers are disabled (timer_interval_seconds = 0)"),
        seconds => tasks.push(tokio::spawn(crate::schedule::remind_periodically(
            crate::schedule::Scheduler {
                db: state.db.clone(),
                workflows: state.workflows.clone(),
                obligation_policy: state.obligation_policy.clone(),
                evidence_reminder_days: settings.evidence_reminder_days.clone(),
            },
            state.clock,
            StdDuration::from_secs(seconds),
            stop.clone(),
        ))),
    }
    Ok(tasks)
}

/// The configured secret, or a random one (with a warning: tokens die with the process).
fn jwt_secret(settings: &Settings) -> SecretString {
    if let Some(secret) = &settings.jwt_secret {
        return secret.clone();
    }
    tracing::warn!(
        "ITAKU_JWT_SECRET is not set: using a random key, so sessions will not survive a restart \
         and replicas will not accept each other's tokens"
    );
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(hex::encode(bytes))
}

async fn dummy_password_hash() -> Result<String, StartupError> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    password::hash_blocking(SecretString::from(hex::encode(bytes)))
        .await
        .map_err(|error| StartupError::PasswordHashing(format!("{error:?}")))
}

fn run(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    let shutdown_timeout = state.settings.shutdown_timeout_seconds;
    let workers = state.settings.effective_http_workers();
    // On PostgreSQL, one worker batches on its own thread (see [`AppState::for_worker`]).
    // Several share the tasks started with the state: tasks per worker would split every batch
    // between them (two workers on two cores: 2,200–2,392 transitions/s against 2,436–2,491).
    // SQLite keeps them on the runtime too: its statements run on threads of the process, which
    // then has both cores to itself, and the one worker thread became the bottleneck (1,270–1,435
    // transitions/s against 1,626–1,700).
    let batches_on_worker = workers == 1 && state.db.get_database_backend() == DbBackend::Postgres;
    let server = HttpServer::new(move || {
        let state = if batches_on_worker {
            web::Data::new(state.for_worker())
        } else {
            state.clone()
        };
        App::new()
            .app_data(state)
            .app_data(
                web::JsonConfig::default()
                    .limit(JSON_BODY_LIMIT)
                    .error_handler(error::json_error_handler),
            )
            .app_data(web::PathConfig::default().error_handler(error::path_error_handler))
            .app_data(web::QueryConfig::default().error_handler(error::query_error_handler))
            // Innermost first: reshape foreign errors, then stamp headers, then trace.
            .wrap(ErrorHandlers::new().default_handler(error::reshape_foreign_error))
            .wrap(from_fn(response_headers))
            .wrap(TracingLogger::default())
            .configure(routes::configure)
            .default_service(web::to(error::not_found))
    })
    .workers(workers)
    .listen(listener)?
    .shutdown_timeout(shutdown_timeout)
    .run();
    Ok(server)
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds the request id and the security headers to every response, errors included.
///
/// Handlers' and extractors' errors arrive here as ordinary responses; only a failing
/// middleware yields `Err`, which is passed on untouched.
async fn response_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = request.extensions().get::<RequestId>().copied();
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        headers.insert(X_REQUEST_ID, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    Ok(response)
}

/// Deletes revoked-token rows whose token has expired anyway, until told to stop.
async fn purge_revoked_tokens(state: web::Data<AppState>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(PURGE_INTERVAL);
    loop {
        tokio::select! {
            _ = every.tick() => {
                match services::tokens::purge_expired(&state.db, state.clock.now()).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged expired revoked tokens"),
                    Err(error) => tracing::warn!(?error, "could not purge expired revoked tokens"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Anchors the audit chain heads that changed, every `period` (the first one period after
/// start), until told to stop.
/// Every `period` (the first run at start), suspends the nodes whose evidence expired. Each
/// record lapses once whichever replica gets it (see `services::evidence::sweep`).
async fn sweep_expired_evidence(
    state: web::Data<AppState>,
    period: StdDuration,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let now = crate::workflow::Now {
                    at: state.clock.now(),
                    today: state.clock.today_jst(),
                };
                match services::evidence::sweep(&state.db, &state.workflows, now).await {
                    Ok(nodes) if nodes.is_empty() => {}
                    Ok(nodes) => tracing::info!(?nodes, "suspended nodes whose evidence expired"),
                    Err(error) => tracing::warn!(?error, "the evidence expiry sweep failed"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn anchor_audit_heads(
    state: web::Data<AppState>,
    period: StdDuration,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                match services::audit::anchor(&state.db, state.clock.now()).await {
                    Ok(Some(anchor)) => tracing::info!(
                        seq = anchor.seq,
                        heads = anchor.heads,
                        hash = %anchor.hash,
                        "anchored the audit chain heads"
                    ),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(?error, "could not anchor the audit chain heads"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}
