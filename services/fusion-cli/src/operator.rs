//! The operator's commands: users, API keys, the audit trail. Each connects
//! to the configured database directly and is audited with the operating
//! system user as the agent.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use fusion_app::Settings;
use fusion_app::admin::{self, Operator};
use fusion_app::audit_export::{ExportFormat, render};
use fusion_schemas::Role;
use fusion_store::{AuditAction, AuditEventType, AuditFilter, AuditRecord, EntityKind};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user.
    Add {
        /// Login name.
        name: String,
        /// integration, clinician, auditor or admin.
        #[arg(long)]
        role: Role,
    },
    /// Disable a user (ends their sessions).
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// Set a new password (ends their sessions, clears a lockout).
    ResetPassword { name: String },
    /// List users.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Create a key; prints `id:` and `secret:` once.
    Create {
        /// integration (for a PACS or an EHR) or another role.
        #[arg(long)]
        role: Role,
        /// A label, e.g. the sending system's name.
        #[arg(long)]
        name: String,
        /// Expire after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<i64>,
        /// `text` (`id: …` and `secret: …` lines), `env` (`KEY_ID='…'` and
        /// `KEY_SECRET='…'`, for `eval "$(fusion apikey create … --format env)"`)
        /// or `json` (`{"id":…,"secret":…,"expires_at":…}`).
        #[arg(long, value_enum, default_value_t = KeyFormat::Text)]
        format: KeyFormat,
    },
    /// Revoke a key.
    Revoke { id: String },
    /// List keys (never their secrets).
    List,
}

/// How `fusion apikey create` prints the new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KeyFormat {
    /// `id: …`, `secret: …` and `expires: …` lines.
    Text,
    /// Shell assignments `KEY_ID='…'`, `KEY_SECRET='…'` (and `KEY_EXPIRES`).
    Env,
    /// One JSON object.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Walk the hash chain; exit 1 and name the first broken event if any.
    /// With `--expect-head`, the chain must also still hold that event (a
    /// head printed earlier and kept outside the database): a truncated or
    /// rewritten trail that still links is then reported as broken.
    Verify {
        /// An event hash kept outside the database (64 hex digits), e.g. the
        /// head an earlier `fusion audit verify` printed or the service
        /// published ("audit chain head" log line).
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
        /// That event's sequence number.
        #[arg(long, value_name = "N", requires = "expect_head")]
        expect_seq: Option<i64>,
    },
    /// Export events as a FHIR R4 Bundle, NDJSON, CSV or JSON.
    Export {
        /// fhir, ndjson, csv or json.
        #[arg(long, default_value = "fhir")]
        format: String,
        /// Recorded at or after (RFC 3339).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Recorded before (RFC 3339).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        /// Only events naming this Patient ID.
        #[arg(long)]
        patient: Option<String>,
        /// Only events by this agent (id or name).
        #[arg(long)]
        agent: Option<String>,
        /// Write here instead of standard output, readable by its owner
        /// only (0600; an existing file is replaced and made so).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// The clinicians' reviewed decisions as a labelled-reports CSV for
    /// `fusion train` and `fusion eval reports` (with
    /// `--map models/maps/reviews.toml`). Holds note text: audited as an
    /// export naming every case, note and patient.
    Reviews {
        /// Write here, readable by its owner only (`-`: standard output).
        /// The file holds PHI: keep it inside the hospital.
        #[arg(long, short)]
        out: PathBuf,
        /// Replace the file when it exists.
        #[arg(long)]
        force: bool,
    },
}

/// Opens the export's file before anything is read or audited: owner-only
/// (0600, also when an existing file is replaced), not following a symbolic
/// link at the final component, refusing an existing file unless `force`.
fn open_export(path: &std::path::Path, force: bool) -> anyhow::Result<Box<dyn Write>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdout()));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists: give --force to replace it", path.display())
        } else {
            anyhow::anyhow!("cannot write {}: {e}", path.display())
        }
    })?;
    // A replaced file keeps its old mode on open: made owner-only too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| anyhow::anyhow!("cannot make {} owner-only: {e}", path.display()))?;
    }
    Ok(Box::new(std::io::BufWriter::new(file)))
}

/// `fusion export reviews`: opens the file, collects, audits, then writes.
pub(crate) async fn export(settings: &Settings, cmd: ExportCommand) -> anyhow::Result<ExitCode> {
    let state = fusion_app::connect_storage(settings).await?;
    match cmd {
        ExportCommand::Reviews { out, force } => {
            let export = fusion_app::reviews_export::collect(state.repository.as_ref()).await?;
            let mut file = open_export(&out, force)?;
            // Audited before anything leaves the database: no audit, no data.
            let audited = state
                .repository
                .append_audit(&export.audit_record(Operator::current().agent()))
                .await;
            if let Err(e) = audited {
                if out.as_os_str() != "-" {
                    let _ = std::fs::remove_file(&out);
                }
                return Err(e.into());
            }
            export
                .write_csv(&mut file)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            file.flush()
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            let validation = export
                .rows
                .iter()
                .filter(|r| r.split == "validation")
                .count();
            eprintln!(
                "fusion: {} reviewed cases written to {} ({} train, {validation} validation); \
                 {} reviewed cases without note text left out{}",
                export.rows.len(),
                out.display(),
                export.rows.len() - validation,
                export.without_text,
                if export.unreadable > 0 {
                    format!(
                        "; {} cases with a stored row that cannot be read left out (see the log)",
                        export.unreadable
                    )
                } else {
                    String::new()
                }
            );
            // Written, but not everything: a script must be able to tell.
            Ok(if export.unreadable > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Prints the first admin's generated password, once.
pub(crate) fn announce_admin(password: &SecretString) {
    println!("fusion: created user 'admin' (role admin) on first start");
    println!(
        "fusion: one-time admin password: {}",
        password.expose_secret()
    );
    println!("fusion: it is not stored in clear and will not be shown again");
}

/// Reads a password: twice from a prompt on a terminal, else one line of
/// standard input.
fn read_password() -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ")?;
        let second = rpassword::prompt_password("again: ")?;
        if first != second {
            anyhow::bail!("the two passwords differ");
        }
        Ok(SecretString::from(first))
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(SecretString::from(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ))
    }
}

pub(crate) async fn user(settings: &Settings, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let state = fusion_app::connect_storage(settings).await?;
    let op = Operator::current();
    match cmd {
        UserCommand::Add { name, role } => {
            let password = read_password()?;
            admin::add_user(&state, &op, &name, role, &password).await?;
            println!("fusion: user {name:?} created with role {role}");
        }
        UserCommand::Disable { name } => {
            admin::set_disabled(&state, &op, &name, true).await?;
            println!("fusion: user {name:?} disabled");
        }
        UserCommand::Enable { name } => {
            admin::set_disabled(&state, &op, &name, false).await?;
            println!("fusion: user {name:?} enabled");
        }
        UserCommand::ResetPassword { name } => {
            let password = read_password()?;
            admin::reset_password(&state, &op, &name, &password).await?;
            println!("fusion: password of {name:?} reset");
        }
        UserCommand::List => {
            for u in admin::list_users(&state).await? {
                let status = if u.disabled { "disabled" } else { "active" };
                println!("{}\t{}\t{}", u.username, u.role, status);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn apikey(settings: &Settings, cmd: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    let state = fusion_app::connect_storage(settings).await?;
    let op = Operator::current();
    match cmd {
        ApiKeyCommand::Create {
            role,
            name,
            expires_in_days,
            format,
        } => {
            let key = admin::create_api_key(&state, &op, &name, role, expires_in_days).await?;
            let (id, secret) = (key.id.as_str(), key.secret.expose_secret());
            let expires = key.expires_at.map(|t| t.to_rfc3339());
            let mut out = std::io::stdout().lock();
            match format {
                KeyFormat::Text => {
                    writeln!(out, "id: {id}")?;
                    writeln!(out, "secret: {secret}")?;
                    if let Some(t) = &expires {
                        writeln!(out, "expires: {t}")?;
                    }
                }
                KeyFormat::Env => {
                    writeln!(out, "KEY_ID={}", shell_quote(id))?;
                    writeln!(out, "KEY_SECRET={}", shell_quote(secret))?;
                    if let Some(t) = &expires {
                        writeln!(out, "KEY_EXPIRES={}", shell_quote(t))?;
                    }
                }
                KeyFormat::Json => {
                    let body = serde_json::json!({
                        "id": id,
                        "secret": secret,
                        "role": role.to_string(),
                        "name": name,
                        "expires_at": expires,
                    });
                    writeln!(out, "{body}")?;
                }
            }
            eprintln!(
                "fusion: the secret is shown once. Use it as HTTP Basic credentials \
                 (user = id, password = secret) or as 'Authorization: Bearer <id>.<secret>'."
            );
        }
        ApiKeyCommand::Revoke { id } => {
            admin::revoke_api_key(&state, &op, &id).await?;
            println!("fusion: API key {id} revoked");
        }
        ApiKeyCommand::List => {
            for k in admin::list_api_keys(&state).await? {
                let status = if k.revoked_at.is_some() {
                    "revoked".to_owned()
                } else if let Some(t) = k.expires_at {
                    format!("expires {}", t.to_rfc3339())
                } else {
                    "active".to_owned()
                };
                println!("{}\t{}\t{}\t{}", k.id, k.name, k.role, status);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `value` as one single-quoted POSIX shell word.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn operator_record(subtype: &str, event_type: AuditEventType, action: AuditAction) -> AuditRecord {
    AuditRecord::builder(event_type, subtype, action, Operator::current().agent())
        .entity(EntityKind::AuditLog, "audit_events")
        .build()
}

pub(crate) async fn audit(settings: &Settings, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let state = fusion_app::connect_storage(settings).await?;
    match cmd {
        AuditCommand::Verify {
            expect_head,
            expect_seq,
        } => {
            let anchor = match expect_head {
                Some(hash) => {
                    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        anyhow::bail!("--expect-head must be 64 hexadecimal digits");
                    }
                    Some(fusion_store::ChainAnchor {
                        hash,
                        seq: expect_seq,
                    })
                }
                None => None,
            };
            let expected = anchor.as_ref().map(|a| a.hash.clone());
            let report =
                fusion_store::verify_chain_against(state.repository.as_ref(), anchor).await?;
            match report.first_break {
                None => {
                    println!(
                        "fusion: audit chain intact: {} events, head {} (seq {})",
                        report.events,
                        report.head.as_deref().unwrap_or("(empty)"),
                        report.events
                    );
                    if let Some(hash) = expected {
                        println!("fusion: the expected head {hash} is in the chain");
                    }
                    state
                        .repository
                        .append_audit(&operator_record(
                            "audit-verify",
                            AuditEventType::AuditLogUsed,
                            AuditAction::Execute,
                        ))
                        .await?;
                    Ok(ExitCode::SUCCESS)
                }
                Some(b) => {
                    println!(
                        "fusion: audit chain BROKEN at event {}: {} ({} events read)",
                        b.seq, b.problem, report.events
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Export {
            format,
            from,
            to,
            patient,
            agent,
            out,
        } => {
            let format = ExportFormat::parse(&format).ok_or_else(|| {
                anyhow::anyhow!("unknown format {format:?}: use fhir, ndjson, csv or json")
            })?;
            let mut record =
                operator_record("audit-export", AuditEventType::Export, AuditAction::Execute);
            record.patient_ids = patient.iter().cloned().collect();
            record.outcome_desc = Some(format!("format {format:?}"));
            let own = state.repository.append_audit(&record).await?;
            let filter = AuditFilter {
                from,
                to,
                patient_id: patient,
                agent,
                ..AuditFilter::default()
            };
            let events = state.repository.audit_events(&filter).await?;
            let body = render(&events, format, Some(&own.hash))?;
            match out {
                Some(path) => {
                    // Patient IDs and who read what: owner-only, as the
                    // reviews export (an existing file is replaced).
                    let mut file = open_export(&path, true)?;
                    file.write_all(&body)?;
                    file.flush()?;
                    eprintln!(
                        "fusion: {} events written to {}; chain head {}",
                        events.len(),
                        path.display(),
                        own.hash
                    );
                }
                None => std::io::stdout().lock().write_all(&body)?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("fk_abc-_9"), "'fk_abc-_9'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum BlobsCommand {
    /// Remove blobs that no instance or recorded conflict refers to and
    /// that were last written longer ago than the grace period, and staged
    /// files as old (the service also does this at each start).
    Gc {
        /// Grace period, minutes [default: FUSION_BLOB_GC_GRACE_MINUTES, 1440]
        #[arg(long, value_name = "MINUTES")]
        grace_minutes: Option<u64>,
    },
}

pub(crate) async fn blobs(settings: &Settings, cmd: BlobsCommand) -> anyhow::Result<ExitCode> {
    let state = fusion_app::connect_storage(settings).await?;
    match cmd {
        BlobsCommand::Gc { grace_minutes } => {
            let minutes = grace_minutes.unwrap_or(settings.blob_gc_grace_minutes);
            let grace = chrono::Duration::minutes(i64::try_from(minutes)?);
            let report = fusion_app::blob_gc::collect_blobs(&state, grace).await?;
            println!(
                "fusion: blobs gc: {} blobs older than {minutes} min checked, {} removed \
                 ({} bytes), {} staged files removed ({} bytes)",
                report.examined,
                report.removed,
                report.removed_bytes,
                report.staged_removed,
                report.staged_bytes
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
