//! A prediction the pipeline produced, stored and read back, on PostgreSQL
//! and SQLite: the store keeps it in its typed stored shape
//! (`fusion_schemas::prediction`), hands back exactly what it was given, and
//! what it hands back validates against `schemas/prediction.schema.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use fusion_models::{CaseInput, ImageCandidate, NoteInput, Pipeline};
use fusion_schemas::{AccessionNumber, FrameValues, GateAttributes, PredictionInputs};
use fusion_store::{
    AuditAction, AuditAgent, AuditEventType, AuditOutcome, AuditRecord, CaseKey, DatabaseUrl,
    NewPrediction, PoolOptions, PredictionStatus, Repository,
};
use fusion_tests::{TestDatabase, repo_root};
use uuid::Uuid;

const NOTE: &str = "INDICATION: Cough and fever.\n\
FINDINGS: Right lower lobe consolidation. No pleural effusion. \
Heart size is normal. No pneumothorax.\n\
IMPRESSION: Right lower lobe pneumonia.\n";

fn audit() -> AuditRecord {
    AuditRecord {
        event_type: AuditEventType::PatientRecord,
        subtype: "prediction-create".into(),
        action: AuditAction::Create,
        outcome: AuditOutcome::Success,
        outcome_desc: None,
        agent: AuditAgent::system(),
        entities: vec![],
        patient_ids: vec![],
        purpose_of_use: None,
        request_id: None,
    }
}

/// The catalogue's packages run on a chest image (a synthetic frame) and a
/// report: both branches contribute.
fn case() -> CaseInput {
    let (rows, columns) = (320_u32, 320_u32);
    let image = ImageCandidate {
        sop_instance_uid: "1.2.826.0.1.3680043.10.1.77.1".into(),
        attributes: GateAttributes {
            modality: Some("CR".into()),
            body_part_examined: Some("CHEST".into()),
            view_position: Some("PA".into()),
            photometric_interpretation: Some("MONOCHROME2".into()),
            patient_age: Some("045Y".into()),
            bits_stored: Some(12),
            ..GateAttributes::default()
        },
        pixels: Ok(FrameValues {
            rows,
            columns,
            values: (0..rows * columns)
                .map(|i| ((i % columns) * 4095 / columns) as f32)
                .collect(),
        }),
    };
    let note = NoteInput {
        note_id: Uuid::now_v7().to_string(),
        text: NOTE.to_owned(),
        analysis: Some(fusion_notes::analyze(NOTE)),
        ..NoteInput::default()
    };
    CaseInput {
        images: vec![image],
        notes: vec![note],
    }
}

async fn connect(url: &str) -> Arc<dyn Repository> {
    let url = DatabaseUrl::parse(url.to_owned().into()).unwrap();
    let repo = fusion_store::connect(&url, &PoolOptions::default())
        .await
        .unwrap();
    repo.migrate().await.unwrap();
    repo
}

async fn round_trip(repo: &dyn Repository) {
    let pipeline = Pipeline::load(&repo_root().join("models/packages"));
    let input = case();
    let output = pipeline.predict(&input);
    assert!(output.modalities_available);
    assert!(
        output.branches.image.status.contributed() && output.branches.text.status.contributed(),
        "both branches contribute: {:?}",
        output.branches
    );
    let link = repo
        .open_case(
            &CaseKey {
                accession_number: Some(AccessionNumber::parse("ACC-RT-1").unwrap()),
                ..CaseKey::default()
            },
            &[],
            &audit(),
        )
        .await
        .unwrap();
    let new = NewPrediction {
        id: Uuid::now_v7(),
        case_id: link.case_id,
        status: if output.abstain {
            PredictionStatus::Abstained
        } else {
            PredictionStatus::Predicted
        },
        packages: output.packages.clone(),
        branches: output.branches.clone(),
        fused: output.fused.clone(),
        abstain: output.abstain,
        abstain_reasons: output.abstain_reasons.clone(),
        timings: output.timings_ms.clone(),
        inputs: PredictionInputs {
            study_instance_uid: None,
            instances: vec![input.images[0].sop_instance_uid.clone()],
            notes: vec![input.notes[0].note_id.clone()],
        },
        findings: vec![],
        refer: false,
        job_id: None,
        deliveries: vec![],
    };
    repo.insert_prediction(&new, &audit()).await.unwrap();

    let stored = repo.prediction(new.id).await.unwrap().unwrap();
    assert_eq!(stored.prediction, new, "read back as given");
    assert_eq!(stored.prediction.output(), output);

    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("schemas/prediction.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let json = serde_json::to_value(stored.prediction.output()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert_eq!(errors, Vec::<String>::new());
}

#[tokio::test]
async fn a_pipeline_prediction_round_trips_on_postgres() {
    let db = TestDatabase::create().await;
    round_trip(connect(&db.url).await.as_ref()).await;
}

#[tokio::test]
async fn a_pipeline_prediction_round_trips_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/fusion.db", dir.path().display());
    round_trip(connect(&url).await.as_ref()).await;
}
