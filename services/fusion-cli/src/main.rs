//! `fusion`: the service binary. Thin on purpose: it parses the command
//! line, loads settings, starts telemetry and hands over to the library
//! crates, which the tests link directly.

mod calibrate;
mod demo;
mod eval;
mod ingest;
mod models;
mod operator;
mod outbox;
mod reports;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fusion_api::Application;
use fusion_app::Settings;
use fusion_app::config::Overrides;

/// Clinical multimodal fusion service: DICOMweb and clinical notes in, fused
/// predictions with calibrated uncertainty out.
#[derive(Debug, Parser)]
#[command(name = "fusion", version, about)]
struct Cli {
    /// Settings file (TOML); `FUSION_*` variables and flags override it.
    #[arg(long, global = true, env = "FUSION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (migrates the database first; creates the first
    /// admin when there are no users).
    Serve {
        /// Address to listen on [env: FUSION_BIND] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        bind: Option<SocketAddr>,
        /// After start, load a demo case: the public chest radiograph
        /// RG1_UNCR.dcm and an invented report (FUSION_DEMO_DICOM overrides
        /// the file).
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users (passwords are read from a prompt or standard input,
    /// never from the command line).
    #[command(subcommand)]
    User(operator::UserCommand),
    /// Manage API keys for integration clients (the PACS, the EHR).
    #[command(subcommand)]
    Apikey(operator::ApiKeyCommand),
    /// Verify or export the audit trail.
    #[command(subcommand)]
    Audit(operator::AuditCommand),
    /// Blob store upkeep.
    #[command(subcommand)]
    Blobs(operator::BlobsCommand),
    /// Results leaving the service (SR to the PACS, FHIR to the EHR): list
    /// deliveries, queue failed ones again.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// Export the clinicians' reviews as labelled reports (audited).
    #[command(subcommand)]
    Export(operator::ExportCommand),
    /// Import every DICOM file under a folder (as STOW-RS would); exit 2
    /// when some failed.
    Ingest {
        /// The folder to walk.
        folder: PathBuf,
    },
    /// Run inference workers only (no HTTP): they claim queued prediction
    /// jobs from the shared database until stopped.
    Worker {
        /// How many workers [default: FUSION_WORKERS, at least 1]
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
    },
    /// Evaluate components on public test kits (reads files only).
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// List or verify model packages (reads files only).
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Fit a package's per-label temperature (and conformal q̂) on a
    /// labelled CSV and write them into its manifest.
    Calibrate(calibrate::CalibrateArgs),
    /// Train report heads on a site's labelled reports (frozen encoder, the
    /// labeller's findings) and write a calibrated text model package.
    Train(reports::train::TrainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fusion: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line: every error type of ours already names its cause.
            eprintln!("fusion: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Evaluations need no settings, database or telemetry.
    let cli = match cli.command {
        Command::Eval(cmd) => return eval::eval(cmd),
        Command::Models(cmd) => return models::run(cmd),
        Command::Train(args) => {
            let dir = reports::models_dir(args.models.as_deref());
            return reports::train::run(&args, &dir);
        }
        command => Cli { command, ..cli },
    };
    let bind = match &cli.command {
        Command::Serve { bind, .. } => *bind,
        _ => None,
    };
    let mut settings = Settings::load(&Overrides {
        config_file: cli.config,
        bind,
    })?;
    // A one-shot operator command prints its answer, not the service's
    // INFO lines ("storage ready"), unless a log filter was asked for (in
    // the environment or the settings file).
    let long_running = matches!(
        cli.command,
        Command::Serve { .. } | Command::Worker { .. } | Command::Ingest { .. }
    );
    if !long_running && settings.log == fusion_app::config::DEFAULT_LOG {
        settings.log = "warn,jpeg2k=warn,openjp2=warn".to_owned();
    }
    let _telemetry = fusion_app::telemetry::init(&settings)?;
    match cli.command {
        Command::Serve { demo, .. } => {
            // The labeller's phrase tables (about half a million phrases)
            // are built on first use; build them now, beside start-up, so
            // the first note after a restart does not wait for them.
            std::thread::spawn(|| fusion_notes::analyze("FINDINGS:\nNo pleural effusion."));
            let app = Application::build(&settings).await?;
            if let Some(password) =
                fusion_app::admin::bootstrap_admin(app.state(), settings.admin_password.as_ref())
                    .await?
            {
                operator::announce_admin(&password);
            }
            println!("fusion listening on http://{}", app.local_addr());
            if demo {
                let state = app.state().clone();
                let base = format!("http://{}", app.local_addr());
                tokio::spawn(async move {
                    if let Err(e) = demo::load(&state, &base, &demo::dicom_path()).await {
                        eprintln!("fusion: demo not loaded: {e}");
                    }
                });
            }
            app.run_until_stopped().await?;
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let mut settings = settings;
            settings.migrate_on_start = true;
            let state = fusion_app::connect_storage(&settings).await?;
            println!(
                "fusion: migrations applied ({})",
                state.repository.backend().as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => operator::user(&settings, cmd).await,
        Command::Apikey(cmd) => operator::apikey(&settings, cmd).await,
        Command::Audit(cmd) => operator::audit(&settings, cmd).await,
        Command::Blobs(cmd) => operator::blobs(&settings, cmd).await,
        Command::Outbox(cmd) => outbox::run(&settings, cmd).await,
        Command::Export(cmd) => operator::export(&settings, cmd).await,
        Command::Ingest { folder } => ingest::run(&settings, &folder).await,
        Command::Worker { workers } => worker::run(&settings, workers).await,
        Command::Eval(cmd) => eval::eval(cmd),
        Command::Models(cmd) => models::run(cmd),
        Command::Train(args) => {
            let dir = reports::models_dir(args.models.as_deref());
            reports::train::run(&args, &dir)
        }
        Command::Calibrate(args) => {
            let code = calibrate::run(&args)?;
            if !args.dry_run && code == ExitCode::SUCCESS {
                calibrate::audit_change(&settings, &args.package).await?;
            }
            Ok(code)
        }
    }
}
