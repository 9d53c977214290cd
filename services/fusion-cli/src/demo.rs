//! `fusion serve --demo`: once the service listens, sends it the public chest
//! radiograph `RG1_UNCR.dcm` (pydicom-data, fetched by
//! `scripts/fetch-test-data`) over STOW-RS and an invented chest radiograph
//! report over `/notes`, as a PACS and an EHR would, with a demo integration
//! key. The worker then fuses both into a prediction the dashboard shows.
//! A clinician `demo` (the role that sees the worklist) gets a fresh random
//! password at every demo start, printed once.

use std::path::{Path, PathBuf};

use fusion_app::State;
use fusion_app::admin::{self, AdminError, Operator};
use fusion_schemas::Role;
use fusion_store::StoreError;
use secrecy::{ExposeSecret, SecretString};

/// The demo clinician's login name.
pub(crate) const CLINICIAN: &str = "demo";

/// Where `scripts/fetch-test-data` puts the demo radiograph.
pub(crate) const DEFAULT_DICOM: &str =
    ".test-data/dicom/pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";

/// An invented report (no real patient): findings with a hedge and negations.
const NOTE: &str = "CHEST RADIOGRAPH, PA VIEW\r\n\
\r\n\
INDICATION: Cough and fever for three days. Evaluate for pneumonia.\r\n\
\r\n\
COMPARISON: None.\r\n\
\r\n\
FINDINGS: The heart size is normal. There is a patchy opacity in the right \
lower lobe, which may represent early pneumonia. No pleural effusion. \
No pneumothorax. No acute fracture.\r\n\
\r\n\
IMPRESSION:\r\n\
1. Right lower lobe opacity, possible early pneumonia; clinical correlation advised.\r\n\
2. No pleural effusion or pneumothorax.\r\n";

/// The demo file: `FUSION_DEMO_DICOM`, else [`DEFAULT_DICOM`].
pub(crate) fn dicom_path() -> PathBuf {
    std::env::var_os("FUSION_DEMO_DICOM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DICOM))
}

/// Sends the demo study and note to the service at `base`.
pub(crate) async fn load(state: &State, base: &str, file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).map_err(|e| {
        anyhow::anyhow!(
            "demo: cannot read {} ({e}); run scripts/fetch-test-data",
            file.display()
        )
    })?;
    let instance = fusion_imaging::parse(&bytes)?;
    let attrs = fusion_imaging::index_attributes(&instance);
    let key = admin::create_api_key(
        state,
        &Operator {
            name: "demo".to_owned(),
        },
        "demo",
        Role::Integration,
        Some(1),
    )
    .await?;
    let client = reqwest::Client::new();
    let boundary = "fusion-demo-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Type: application/dicom\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    )
    .into_bytes();
    body.extend_from_slice(&bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--").as_bytes());
    let res = client
        .post(format!("{base}/dicom-web/studies"))
        .basic_auth(&key.id, Some(key.secret.expose_secret()))
        .header(
            "Content-Type",
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "demo: STOW-RS answered {}",
        res.status()
    );
    let mut query: Vec<(&str, String)> = vec![("note_type", "chest radiograph report".into())];
    if let Some(a) = &attrs.accession_number {
        query.push(("accession_number", a.to_string()));
    }
    if let Some(p) = &attrs.patient_id {
        query.push(("patient_id", p.to_string()));
    }
    query.push(("study_instance_uid", attrs.study_instance_uid.to_string()));
    let res = client
        .post(format!("{base}/notes"))
        .basic_auth(&key.id, Some(key.secret.expose_secret()))
        .query(&query)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(NOTE)
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "demo: /notes answered {}",
        res.status()
    );
    let password = demo_clinician(state).await?;
    println!("fusion: demo case loaded (RG1_UNCR.dcm and an invented report)");
    println!(
        "fusion: demo clinician: log in at {base}/login as '{CLINICIAN}' with password {} \
         (new at every --demo start) and open the worklist",
        password.expose_secret()
    );
    Ok(())
}

/// Creates the clinician [`CLINICIAN`], or gives it a new password when it
/// exists; returns the password.
async fn demo_clinician(state: &State) -> anyhow::Result<SecretString> {
    let password = SecretString::from(fusion_app::secrets::random_token()?);
    let op = Operator {
        name: "demo".to_owned(),
    };
    match admin::add_user(state, &op, CLINICIAN, Role::Clinician, &password).await {
        Ok(()) => {}
        Err(AdminError::Store(StoreError::AlreadyExists(_))) => {
            admin::reset_password(state, &op, CLINICIAN, &password).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(password)
}
