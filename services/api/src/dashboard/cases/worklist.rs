//! `GET /worklist`: the cases with their status, top findings and refer
//! flag; the JSON list's filters, sorting by column, 25 a page.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use fusion_store::{AuditAction, AuditEntity, AuditEventType, CaseStatus, CaseSummary, EntityKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{StatusView, observation_name, percent, pretty_date, status_view, width};
use crate::AppState;
use crate::auth::AuditContext;
use crate::dashboard::{Layout, PageError, html, render};
use crate::routes::cases::ListQuery;

/// Cases per worklist page.
const PER_PAGE: i64 = 25;
/// Fused probability from which the worklist lists a finding as likely
/// present.
const LIKELY: f64 = 0.5;

/// Query of `GET /worklist`: the JSON list's filters, and a page number.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WorklistQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    accession_number: String,
    #[serde(default)]
    study_date_from: String,
    #[serde(default)]
    study_date_to: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    order: String,
    /// 1-based; anything unreadable is page 1.
    #[serde(default)]
    page: String,
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

impl WorklistQuery {
    fn page(&self) -> i64 {
        self.page
            .trim()
            .parse::<i64>()
            .unwrap_or(1)
            .clamp(1, 10_000)
    }

    fn list_query(&self) -> ListQuery {
        ListQuery {
            status: non_empty(&self.status),
            patient_id: non_empty(&self.patient_id),
            accession_number: non_empty(&self.accession_number),
            study_date_from: non_empty(&self.study_date_from),
            study_date_to: non_empty(&self.study_date_to),
            sort: non_empty(&self.sort),
            order: non_empty(&self.order),
            // One more than a page, to know whether a next page exists.
            limit: Some(PER_PAGE + 1),
            offset: Some((self.page() - 1) * PER_PAGE),
        }
    }

    /// This query's address with `changes` applied (`page` reset unless
    /// named), for sort links and the pager.
    fn href(&self, changes: &[(&str, String)]) -> String {
        let mut pairs: Vec<(&str, String)> = vec![
            ("status", self.status.clone()),
            ("patient_id", self.patient_id.clone()),
            ("accession_number", self.accession_number.clone()),
            ("study_date_from", self.study_date_from.clone()),
            ("study_date_to", self.study_date_to.clone()),
            ("sort", self.sort.clone()),
            ("order", self.order.clone()),
        ];
        for (k, v) in changes {
            if let Some(p) = pairs.iter_mut().find(|(name, _)| name == k) {
                p.1.clone_from(v);
            } else {
                pairs.push((k, v.clone()));
            }
        }
        pairs.retain(|(_, v)| !v.trim().is_empty());
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            "/worklist".to_owned()
        } else {
            format!("/worklist?{query}")
        }
    }

    fn filtered(&self) -> bool {
        [
            &self.status,
            &self.patient_id,
            &self.accession_number,
            &self.study_date_from,
            &self.study_date_to,
        ]
        .iter()
        .any(|v| !v.trim().is_empty())
    }
}

#[derive(Debug, Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Debug, Serialize)]
struct SortLink {
    href: String,
    /// `ascending`, `descending` or `none` (for `aria-sort`).
    state: &'static str,
}

#[derive(Debug, Serialize)]
struct FindingView {
    label: String,
    probability: String,
    width: String,
}

#[derive(Debug, Serialize)]
struct WorklistRow {
    id: Uuid,
    href: String,
    patient_id: String,
    accession_number: String,
    study_date: String,
    status: StatusView,
    findings: Vec<FindingView>,
    refer: bool,
    abstain: bool,
    /// The stored findings could not be read.
    unreadable: bool,
    version: Option<i32>,
    updated_at: String,
    updated_iso: String,
}

impl From<CaseSummary> for WorklistRow {
    fn from(s: CaseSummary) -> Self {
        let unreadable = s
            .latest_prediction
            .as_ref()
            .is_some_and(|p| p.findings_unreadable);
        let (findings, refer, abstain, version) = match s.latest_prediction {
            Some(p) => (
                p.findings
                    .iter()
                    .filter(|f| f.probability >= LIKELY)
                    .take(3)
                    .map(|f| FindingView {
                        label: observation_name(&f.label),
                        probability: percent(f.probability),
                        width: width(f.probability),
                    })
                    .collect(),
                p.refer,
                p.abstain,
                Some(p.version),
            ),
            None => (Vec::new(), false, false, None),
        };
        Self {
            id: s.id,
            href: format!("/cases/{}/view", s.id),
            patient_id: s
                .patient_id
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            accession_number: s
                .accession_number
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            study_date: pretty_date(s.study_date.as_deref()),
            status: status_view(s.status),
            findings,
            refer,
            abstain,
            unreadable,
            version,
            updated_at: s.updated_at.format("%Y-%m-%d %H:%M").to_string(),
            updated_iso: s.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize)]
struct QueryEcho {
    patient_id: String,
    accession_number: String,
    study_date_from: String,
    study_date_to: String,
}

#[derive(Debug, Serialize)]
struct WorklistPage {
    rows: Vec<WorklistRow>,
    q: QueryEcho,
    statuses: Vec<Choice>,
    sorts: BTreeMap<&'static str, SortLink>,
    filtered: bool,
    error: Option<String>,
    page: i64,
    first: i64,
    last: i64,
    prev: Option<String>,
    next: Option<String>,
}

/// `GET /worklist`: cases with their status, top findings and refer flag;
/// filters, sorting by column, 25 a page.
pub(crate) async fn worklist(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
) -> Result<HttpResponse, PageError> {
    let q: WorklistQuery = crate::dashboard::page_query(&req);
    let layout = Layout::signed_in(&req, &ctx.principal, "Worklist", "/worklist");
    let (rows, error) = match q.list_query().parse() {
        Ok(filter) => {
            let cases = state.repository.list_cases(&filter).await?;
            let mut patients: Vec<String> = cases
                .iter()
                .filter_map(|c| c.patient_id.as_ref().map(|p| p.as_str().to_owned()))
                .collect();
            patients.sort();
            patients.dedup();
            let audit = ctx.record(
                AuditEventType::Query,
                "case-search",
                AuditAction::Execute,
                cases
                    .iter()
                    .map(|c| AuditEntity::new(EntityKind::Case, c.id.to_string()))
                    .collect(),
                patients,
            );
            state.repository.append_audit(&audit).await?;
            (cases, None)
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let more = rows.len() as i64 > PER_PAGE;
    let rows: Vec<WorklistRow> = rows
        .into_iter()
        .take(PER_PAGE as usize)
        .map(WorklistRow::from)
        .collect();
    let page = q.page();
    let first = (page - 1) * PER_PAGE + 1;
    let last = first + rows.len() as i64 - 1;
    let statuses = std::iter::once(Choice {
        value: "",
        label: "Any status",
        selected: q.status.trim().is_empty(),
    })
    .chain(CaseStatus::ALL.into_iter().map(|s| {
        let v = status_view(s);
        Choice {
            value: v.value,
            label: v.label,
            selected: q.status == v.value,
        }
    }))
    .collect();
    let mut sorts = BTreeMap::new();
    let current = match q.sort.as_str() {
        "" => "updated",
        s => s,
    };
    for (key, default_asc) in [("updated", false), ("study_date", false), ("status", true)] {
        let active = current == key;
        let ascending = match q.order.as_str() {
            "asc" => true,
            "desc" => false,
            _ => default_asc,
        };
        let next_order = if active && ascending == default_asc {
            if default_asc { "desc" } else { "asc" }
        } else if default_asc {
            "asc"
        } else {
            "desc"
        };
        sorts.insert(
            key,
            SortLink {
                href: q.href(&[("sort", key.to_owned()), ("order", next_order.to_owned())]),
                state: match (active, ascending) {
                    (false, _) => "none",
                    (true, true) => "ascending",
                    (true, false) => "descending",
                },
            },
        );
    }
    let page_view = WorklistPage {
        prev: (page > 1).then(|| q.href(&[("page", (page - 1).to_string())])),
        next: more.then(|| q.href(&[("page", (page + 1).to_string())])),
        q: QueryEcho {
            patient_id: q.patient_id.clone(),
            accession_number: q.accession_number.clone(),
            study_date_from: q.study_date_from.clone(),
            study_date_to: q.study_date_to.clone(),
        },
        filtered: q.filtered(),
        statuses,
        sorts,
        error,
        page,
        first,
        last,
        rows,
    };
    Ok(html(
        StatusCode::OK,
        render("worklist.html", &layout, page_view)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worklist_links_keep_filters_and_reset_the_page() {
        let q = WorklistQuery {
            status: "predicted".into(),
            patient_id: "P 1".into(),
            page: "3".into(),
            ..WorklistQuery::default()
        };
        assert_eq!(
            q.href(&[("sort", "status".into()), ("order", "asc".into())]),
            "/worklist?status=predicted&patient_id=P+1&sort=status&order=asc"
        );
        assert_eq!(
            q.href(&[("page", "4".into())]),
            "/worklist?status=predicted&patient_id=P+1&page=4"
        );
        assert_eq!(q.list_query().offset, Some(50));
    }
}
