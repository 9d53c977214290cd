//! The repository traits the service talks to, and [`connect`], which picks
//! the backend from `DATABASE_URL`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fusion_schemas::{AccessionNumber, PatientId, SopInstanceUid, StudyInstanceUid};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::{
    AuditFilter, AuditRecord, ChainAnchor, ChainReport, ChainVerifier, StoredAuditEvent,
};
use crate::cases::{
    CaseFilter, CaseKey, CaseLink, CaseRecord, CaseStatus, CaseSummary, Enqueued, JobRecord,
    JobState, NewPrediction, NewReview, PredictionRecord, ReviewRecord,
};
use crate::identity::{ApiKeyRecord, LoginGate, NewUser, SessionRecord, UserChange, UserRecord};
pub use crate::monitoring::MonitoringRepository;
use crate::notes::{NewNote, NoteFilter, NoteRecord, NoteSummary};
use crate::records::{
    InstanceQuery, InstanceRecord, NewInstance, PutOutcome, SeriesQuery, SeriesRecord, StudyQuery,
    StudyRecord,
};
use crate::sql::{PgRepository, SqliteRepository};

/// Which database a repository talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, the system of record.
    Postgres,
    /// SQLite, the embedded default.
    Sqlite,
}

impl Backend {
    /// `"postgres"` or `"sqlite"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// A parsed `DATABASE_URL`. Its `Debug` shows the backend only: the URL may
/// hold a password.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: SecretString,
    backend: Backend,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({}://[redacted])", self.backend.as_str())
    }
}

impl DatabaseUrl {
    /// Parses `postgres://…`, `postgresql://…` or `sqlite://…` (also
    /// `sqlite::memory:`).
    ///
    /// # Errors
    ///
    /// [`StoreError::BadUrl`] naming the accepted schemes; the message never
    /// repeats the URL, which may hold a password.
    pub fn parse(url: SecretString) -> Result<Self, StoreError> {
        let raw = url.expose_secret();
        let backend = if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Backend::Postgres
        } else if raw.starts_with("sqlite:") {
            Backend::Sqlite
        } else if raw.trim().is_empty() {
            return Err(StoreError::BadUrl("it is empty".into()));
        } else {
            return Err(StoreError::BadUrl(
                "it must start with postgres://, postgresql:// or sqlite://".into(),
            ));
        };
        Ok(Self { url, backend })
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn expose(&self) -> &str {
        self.url.expose_secret()
    }
}

/// Connection-pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections held open (PostgreSQL); SQLite uses as many readers.
    pub max_connections: u32,
    /// How long a query waits for a connection before failing, so that a
    /// database outage turns into an error instead of a hung request.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Lockout after repeated failed logins (per account; the per-address
/// throttle lives in the API).
#[derive(Debug, Clone)]
pub struct LockoutPolicy {
    /// Failures in a row that lock the account.
    pub max_failures: i32,
    /// How long the lock lasts.
    pub lock_for: chrono::Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_for: chrono::Duration::minutes(15),
        }
    }
}

/// Everything the service stores in its database, behind one trait (made of
/// one sub-trait per concern) so that PostgreSQL and SQLite are
/// interchangeable: the same "story" tests run on both. Every method is one
/// transaction; every method that changes patient data, identities or keys
/// takes the [`AuditRecord`] of that change and appends it to the audit chain
/// in the same transaction.
pub trait Repository:
    RepositoryCore
    + ImagingRepository
    + IdentityRepository
    + AuditRepository
    + NotesRepository
    + CaseRepository
    + MonitoringRepository
    + crate::outbox::OutboxRepository
{
}

impl<T> Repository for T where
    T: RepositoryCore
        + ImagingRepository
        + IdentityRepository
        + AuditRepository
        + NotesRepository
        + CaseRepository
        + MonitoringRepository
        + crate::outbox::OutboxRepository
{
}

/// Connection-level operations.
#[async_trait]
pub trait RepositoryCore: Send + Sync + fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Applies the migrations under `migrations/<backend>/` that have not run.
    ///
    /// # Errors
    ///
    /// [`StoreError::Migrate`], e.g. when a merged migration was edited.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Round-trips a trivial query: the readiness check.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database cannot be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The imaging index: studies, series, instances (PS3.3 Annex A.1.2).
#[async_trait]
pub trait ImagingRepository: Send + Sync {
    /// Indexes an instance and its study and series, and appends `audit`, in
    /// one transaction. The bytes must already be durable in the blob store.
    /// A conflicting re-send is recorded and audited as a minor failure.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails; a conflicting re-send
    /// is not an error but [`PutOutcome::Conflict`].
    async fn put_instance(
        &self,
        new: &NewInstance,
        audit: &AuditRecord,
    ) -> Result<PutOutcome, StoreError>;

    /// [`Self::put_instance`] for several instances in one transaction
    /// (group commit: one WAL flush for the batch), outcomes in the order
    /// given. All or nothing: on an error nothing of the batch is kept, and
    /// the caller may retry the instances one by one to isolate the failure.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails for any instance.
    async fn put_instances(
        &self,
        batch: &[(&NewInstance, &AuditRecord)],
    ) -> Result<Vec<PutOutcome>, StoreError>;

    /// One instance by SOP Instance UID.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn instance(&self, uid: &SopInstanceUid) -> Result<Option<InstanceRecord>, StoreError>;

    /// One study by Study Instance UID, with its instance count.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn study(&self, uid: &StudyInstanceUid) -> Result<Option<StudyRecord>, StoreError>;

    /// Which of `keys` a row still refers to (an instance's bytes, or either
    /// side of a recorded conflict): the blobs the collector must keep.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn referenced_blobs(
        &self,
        keys: &[crate::BlobKey],
    ) -> Result<std::collections::HashSet<crate::BlobKey>, StoreError>;

    /// Studies with stored instances that no case names, by study or by
    /// accession number: stored before a crash, never linked (issue #14,
    /// finding 3). For the start-up sweep.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn studies_without_case(&self) -> Result<Vec<StudyRecord>, StoreError>;

    /// The instances of a study, ordered by series then instance number.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn study_instances(
        &self,
        uid: &StudyInstanceUid,
    ) -> Result<Vec<InstanceRecord>, StoreError>;

    /// QIDO-RS study search (PS3.18 §10.6), newest study date first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_studies(&self, query: &StudyQuery) -> Result<Vec<StudyRecord>, StoreError>;

    /// QIDO-RS series search within a study, by series number.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_series(
        &self,
        study: &StudyInstanceUid,
        query: &SeriesQuery,
    ) -> Result<Vec<SeriesRecord>, StoreError> {
        self.search_series_in(Some(study), query).await
    }

    /// QIDO-RS series search within a study, or across all studies when
    /// `study` is `None` (PS3.18 §10.6.1: `GET /series`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_series_in(
        &self,
        study: Option<&StudyInstanceUid>,
        query: &SeriesQuery,
    ) -> Result<Vec<SeriesRecord>, StoreError>;

    /// QIDO-RS instance search within a study (and a series, if given).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_instances(
        &self,
        study: &StudyInstanceUid,
        query: &InstanceQuery,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        self.search_instances_in(Some(study), query).await
    }

    /// QIDO-RS instance search within a study, or across all studies when
    /// `study` is `None` (PS3.18 §10.6.1: `GET /instances`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_instances_in(
        &self,
        study: Option<&StudyInstanceUid>,
        query: &InstanceQuery,
    ) -> Result<Vec<InstanceRecord>, StoreError>;

    /// How many conflicting re-sends were recorded for a SOP Instance UID.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn conflict_count(&self, uid: &SopInstanceUid) -> Result<i64, StoreError>;
}

/// Users, sessions and API keys.
#[async_trait]
pub trait IdentityRepository: Send + Sync {
    /// How many users exist (zero on first start).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn count_users(&self) -> Result<i64, StoreError>;

    /// Creates a user.
    ///
    /// # Errors
    ///
    /// [`StoreError::AlreadyExists`] when the name is taken.
    async fn create_user(&self, user: &NewUser, audit: &AuditRecord) -> Result<(), StoreError>;

    /// A user by login name.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    /// A user by id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError>;

    /// Every user, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// Disables, enables or resets the password of a user; disabling or a
    /// new password revokes the user's sessions. `Ok(false)` when no such user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn update_user(
        &self,
        username: &str,
        change: &UserChange,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;

    /// Counts a login attempt for `username` before any password is checked,
    /// in one statement (`UPDATE … RETURNING`), so that concurrent attempts
    /// cannot all read the same count (issue #14, finding 2). The count is
    /// of attempts since the last success or lock, so an attempt still being
    /// verified counts as a failure until it succeeds. An enabled, unlocked
    /// account with fewer than `policy.max_failures` counted attempts admits
    /// the attempt; one that has reached it is locked by this attempt (the
    /// lock starts at `now`, `lock_audit` is appended in the same
    /// transaction, naming the account among its entities) and refuses it; a locked or disabled account refuses
    /// without counting.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn begin_login(
        &self,
        username: &str,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
        lock_audit: &AuditRecord,
    ) -> Result<LoginGate, StoreError>;

    /// After an admitted attempt failed its password check: locks the
    /// account when its counted attempts have reached `policy.max_failures`
    /// (appending `lock_audit`, naming the account, with the lock), and appends the failure's
    /// `audit`. With `user_id` `None` (unknown user, refused before
    /// checking, throttled) it only appends `audit`. Returns the lock's end
    /// when this failure locked the account.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn record_failed_login(
        &self,
        user_id: Option<Uuid>,
        policy: &LockoutPolicy,
        audit: &AuditRecord,
        lock_audit: &AuditRecord,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Stores a new session after a successful password check and clears
    /// the attempt count, only if the account is still enabled and not
    /// locked at `session.created_at`: a lock set while the password was
    /// being checked stands. `Ok(false)` (nothing written) when it is not.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn start_session(
        &self,
        session: &SessionRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;

    /// A session by token hash.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Records activity on a session (idle timeout).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn touch_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Revokes a session (logout). `Ok(false)` when it was not active.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn end_session(&self, token_hash: &str, audit: &AuditRecord) -> Result<bool, StoreError>;

    /// Stores a new API key (its secret's hash only).
    ///
    /// # Errors
    ///
    /// [`StoreError::AlreadyExists`] on an id collision.
    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    /// An API key by id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Every API key.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Revokes a key. `Ok(false)` when no active key has this id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn revoke_api_key(&self, id: &str, audit: &AuditRecord) -> Result<bool, StoreError>;
}

/// Clinical notes with their analysis.
#[async_trait]
pub trait NotesRepository: Send + Sync {
    /// Stores a note and appends `audit`, in one transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::AlreadyExists`] when a note with this id exists,
    /// [`StoreError::Query`] when the database fails; nothing is stored then.
    async fn put_note(&self, note: &NewNote, audit: &AuditRecord) -> Result<(), StoreError>;

    /// One note by id, with its text and analysis.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn note(&self, id: Uuid) -> Result<Option<NoteRecord>, StoreError>;

    /// Summaries of the notes matching `filter`, oldest first, at most
    /// `filter.limit` (default 100, at most 1,000).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn notes(&self, filter: &NoteFilter) -> Result<Vec<NoteSummary>, StoreError>;
}

/// Cases (a study and the notes of one order), their prediction versions
/// and reviews, and the inference queue that produces the versions.
///
/// Linking methods take an audit *template* (agent, request id, purpose,
/// patients, the note or study entities): only the store knows whether the
/// case existed, so it sets the subtype (`case-create`, action C, or
/// `case-link`, action U), names the case first among the entities and
/// appends the event in the linking transaction. Nothing is appended when
/// nothing changed.
#[async_trait]
pub trait CaseRepository: Send + Sync {
    /// Finds the case of a stored study (by accession number when given,
    /// else by Study Instance UID), creating it when there is none, and
    /// completes its identifiers.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`]; nothing changes then.
    async fn upsert_case_for_study(
        &self,
        study: &StudyInstanceUid,
        accession: Option<&AccessionNumber>,
        patient: Option<&PatientId>,
        audit: &AuditRecord,
    ) -> Result<CaseLink, StoreError>;

    /// Links a stored note to the case `key` names, creating the case when
    /// there is none. `key` needs an accession number or a study.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] (also when the note does not exist).
    async fn link_note(
        &self,
        note_id: Uuid,
        key: &CaseKey,
        audit: &AuditRecord,
    ) -> Result<CaseLink, StoreError>;

    /// Finds or creates the case `key` names and links `note_ids` (which
    /// must exist): `POST /cases`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn open_case(
        &self,
        key: &CaseKey,
        note_ids: &[Uuid],
        audit: &AuditRecord,
    ) -> Result<CaseLink, StoreError>;

    /// One case with its note ids.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn case(&self, id: Uuid) -> Result<Option<CaseRecord>, StoreError>;

    /// Cases matching `filter`, each with its latest prediction in brief.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, StoreError>;

    /// Queues a prediction job for an existing case (unless one is queued
    /// already: then that one is returned) and marks the case `queued`;
    /// appends `audit` when given, in the same transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] (also when the case does not exist).
    async fn enqueue(
        &self,
        case_id: Uuid,
        audit: Option<&AuditRecord>,
    ) -> Result<Enqueued, StoreError>;

    /// Claims the oldest queued job of a case no worker is busy with, for
    /// `worker_id`; `None` when there is none. Concurrent claimers never get
    /// the same job (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn claim_job(&self, worker_id: &str) -> Result<Option<JobRecord>, StoreError>;

    /// One job.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError>;

    /// The jobs of a case, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn jobs_of_case(&self, case_id: Uuid) -> Result<Vec<JobRecord>, StoreError>;

    /// Marks a running job done without a prediction, setting the case's
    /// status (e.g. [`CaseStatus::NoModality`]) unless another job of the
    /// case is queued, and appends `audit` when given. `Ok(false)` when the
    /// job was not running (finished, or requeued as stale).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn complete_job(
        &self,
        job_id: Uuid,
        case_status: Option<CaseStatus>,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError>;

    /// Records a failed attempt of a running job: back to `queued`, or
    /// `failed` after [`crate::MAX_JOB_ATTEMPTS`] attempts (or when another
    /// job of the case is queued already, which will do the work). `error`
    /// must carry no PHI. `None` when the job was not running.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn fail_job(&self, job_id: Uuid, error: &str) -> Result<Option<JobState>, StoreError>;

    /// Treats jobs claimed longer than `older_than` ago and still running as
    /// failed attempts (their worker died): they are queued again or given
    /// up. Returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn requeue_stale(&self, older_than: chrono::Duration) -> Result<u64, StoreError>;

    /// Stores `new` as the next version of its case (`max + 1`, in the same
    /// transaction; rows are never updated), sets the case's status, marks
    /// `new.job_id` done, and appends `audit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::AlreadyExists`] on an id collision, [`StoreError::Query`].
    async fn insert_prediction(
        &self,
        new: &NewPrediction,
        audit: &AuditRecord,
    ) -> Result<PredictionRecord, StoreError>;

    /// Every version of a case's prediction, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn predictions_of_case(&self, case_id: Uuid)
    -> Result<Vec<PredictionRecord>, StoreError>;

    /// One prediction version.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn prediction(&self, id: Uuid) -> Result<Option<PredictionRecord>, StoreError>;

    /// Stores a review of a prediction version, marks its case `reviewed`
    /// and appends `audit`. `Ok(None)` when the prediction does not exist.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn put_review(
        &self,
        review: &NewReview,
        audit: &AuditRecord,
    ) -> Result<Option<ReviewRecord>, StoreError>;

    /// The reviews of a prediction version, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn reviews_of_prediction(
        &self,
        prediction_id: Uuid,
    ) -> Result<Vec<ReviewRecord>, StoreError>;
}

/// The audit trail: append-only, hash chained.
#[async_trait]
pub trait AuditRepository: Send + Sync {
    /// Appends one event on its own (reads, failed authentication, exports).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`]: the caller must then not serve the request.
    async fn append_audit(&self, record: &AuditRecord) -> Result<StoredAuditEvent, StoreError>;

    /// Events matching `filter`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn audit_events(&self, filter: &AuditFilter)
    -> Result<Vec<StoredAuditEvent>, StoreError>;

    /// Up to `limit` events after sequence number `after_seq`, for walking
    /// the whole chain in pages.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn audit_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredAuditEvent>, StoreError>;

    /// The newest event's sequence number and hash (the chain head), if
    /// any, for publishing outside the database.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn audit_head(&self) -> Result<Option<ChainAnchor>, StoreError>;
}

/// Walks the whole audit chain in pages of 1,000 and reports the first break.
///
/// # Errors
///
/// [`StoreError`] when the trail cannot be read.
pub async fn verify_chain(repo: &dyn Repository) -> Result<ChainReport, StoreError> {
    verify_chain_against(repo, None).await
}

/// As [`verify_chain`], and the chain must also hold `anchor`, a head kept
/// outside the database ([`ChainAnchor`]): a truncated or rewritten trail
/// that still links is then reported as broken.
///
/// # Errors
///
/// [`StoreError`] when the trail cannot be read.
pub async fn verify_chain_against(
    repo: &dyn Repository,
    anchor: Option<ChainAnchor>,
) -> Result<ChainReport, StoreError> {
    let mut verifier = match anchor {
        Some(a) => ChainVerifier::with_anchor(a),
        None => ChainVerifier::default(),
    };
    let mut after = 0;
    loop {
        let page = repo.audit_after(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        page.iter().for_each(|e| verifier.push(e));
    }
    Ok(verifier.finish())
}

/// Connects to the database `url` names. PostgreSQL: an eager connection, so
/// a wrong host or password fails here. SQLite: the file and its folder are
/// created if missing; WAL journal, `synchronous = FULL` (an acknowledged
/// write survives power loss), foreign keys on.
///
/// # Errors
///
/// [`StoreError::Connect`] when the database cannot be reached or opened,
/// [`StoreError::BadUrl`] when the driver refuses the URL.
pub async fn connect(
    url: &DatabaseUrl,
    options: &PoolOptions,
) -> Result<Arc<dyn Repository>, StoreError> {
    match url.backend() {
        Backend::Postgres => {
            let connect = sqlx::postgres::PgConnectOptions::from_str(url.expose())
                .map_err(|e| StoreError::BadUrl(e.to_string()))?
                .application_name("fusion");
            // One direct connection first: a pool would hide "connection
            // refused" or "password authentication failed" behind a timeout.
            probe::<sqlx::PgConnection>(&connect, "postgres").await?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_lazy_with(connect);
            Ok(Arc::new(PgRepository::new(pool)))
        }
        Backend::Sqlite => {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            let connect = SqliteConnectOptions::from_str(url.expose())
                .map_err(|e| StoreError::BadUrl(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let file = connect.get_filename();
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Connect {
                    backend: "sqlite",
                    source: sqlx::Error::Io(e),
                })?;
            }
            probe::<sqlx::SqliteConnection>(&connect, "sqlite").await?;
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_lazy_with(connect);
            Ok(Arc::new(SqliteRepository::new(pool)))
        }
    }
}

/// Opens and closes one connection, returning the driver's own error.
async fn probe<C: sqlx::Connection>(
    options: &C::Options,
    backend: &'static str,
) -> Result<(), StoreError> {
    let conn = C::connect_with(options)
        .await
        .map_err(|source| StoreError::Connect { backend, source })?;
    // Closing cleanly is a courtesy to the server; a failure here changes nothing.
    let _ = conn.close().await;
    Ok(())
}
