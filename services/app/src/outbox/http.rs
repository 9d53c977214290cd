//! The outbox's HTTP side: STOW-RS to a PACS (PS3.18 §10.5) and a FHIR R4
//! `transaction` Bundle to an EHR (FHIR R4 §3.1.0.11 `transaction`), each
//! answer read into an [`Attempt`].

use secrecy::ExposeSecret;

use super::{Attempt, Destination, OutboxSettings};
use crate::sr::SrDocument;

/// Longest part of a destination's body kept as the reason, characters.
const MAX_BODY_CHARS: usize = 300;

/// The client the senders share: the per-request limit covers the body.
///
/// # Errors
///
/// reqwest's error when the TLS backend cannot start.
pub fn client(settings: &OutboxSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(std::time::Duration::from_secs(10)))
        .pool_idle_timeout(std::time::Duration::from_millis(500))
        .user_agent(concat!("fusion/", env!("CARGO_PKG_VERSION")))
        // A redirect would carry the SR or Bundle to a host nobody
        // configured: a 3xx is the destination's answer, not followed.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Sends `req` and reads the whole answer: `(status, body)` for a 2xx, else
/// the attempt it makes — a network error, or a non-2xx status (408, 429
/// and 5xx transient, every other one, 3xx included, refused) with an
/// excerpt of the body.
async fn answer(req: reqwest::RequestBuilder) -> Result<(u16, bytes::Bytes), Attempt> {
    let res = req.send().await.map_err(|e| network_error(&e))?;
    let status = res.status().as_u16();
    let bytes = res.bytes().await.map_err(|e| network_error(&e))?;
    if (200..300).contains(&status) {
        return Ok((status, bytes));
    }
    let code = Some(i32::from(status));
    let error = format!("HTTP {status}: {}", excerpt(&bytes));
    Err(if transient_status(status) {
        Attempt::Transient {
            status: code,
            error,
        }
    } else {
        Attempt::Refused {
            status: code,
            error,
        }
    })
}

/// `<base>/<segment>` whatever the base's trailing slash.
fn join(base: &url::Url, segment: &str) -> String {
    format!("{}/{segment}", base.as_str().trim_end_matches('/'))
}

/// What a status says about retrying: 408, 429 and 5xx may pass.
fn transient_status(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// The body's first characters, printable only.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_BODY_CHARS)
        .collect();
    if text.chars().count() > MAX_BODY_CHARS {
        s.push('…');
    }
    s.trim().to_owned()
}

fn network_error(e: &reqwest::Error) -> Attempt {
    let what = if e.is_timeout() {
        "the destination did not answer in time"
    } else if e.is_connect() {
        "cannot connect to the destination"
    } else if e.is_body() || e.is_decode() {
        "the destination's answer broke off"
    } else {
        "the request failed"
    };
    Attempt::Transient {
        status: None,
        error: what.to_owned(),
    }
}

/// Sends one SR by STOW-RS to `<url>/studies`. Delivered only when the
/// answer is 200 or 202 and its DICOM JSON lists the instance in the
/// Referenced SOP Sequence (0008,1199); a Failed SOP Sequence (0008,1198)
/// entry refuses it with its Failure Reason (0008,1197).
pub async fn stow(client: &reqwest::Client, dest: &Destination, doc: &SrDocument) -> Attempt {
    let boundary = format!("fusion-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::with_capacity(doc.bytes.len() + 256);
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&doc.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut req = client
        .post(join(&dest.url, "studies"))
        .header(
            "content-type",
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .header("accept", "application/dicom+json")
        .body(body);
    if let Some(user) = &dest.user {
        req = req.basic_auth(user, dest.secret.as_ref().map(|s| s.expose_secret()));
    }
    let (status, bytes) = match answer(req).await {
        Ok(answer) => answer,
        Err(attempt) => return attempt,
    };
    let code = Some(i32::from(status));
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Attempt::Transient {
            status: code,
            error: format!(
                "HTTP {status} with a body that is not a DICOM JSON STOW-RS response: {}",
                excerpt(&bytes)
            ),
        };
    };
    let listed = |tag: &str| -> Vec<serde_json::Value> {
        json.get(tag)
            .and_then(|s| s.get("Value"))
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let uid_of = |item: &serde_json::Value| -> Option<String> {
        item.get("00081155")?
            .get("Value")?
            .get(0)?
            .as_str()
            .map(str::to_owned)
    };
    if let Some(failed) = listed("00081198")
        .iter()
        .find(|i| uid_of(i).as_deref() == Some(doc.sop_instance_uid.as_str()))
    {
        let reason = failed
            .get("00081197")
            .and_then(|r| r.get("Value"))
            .and_then(|v| v.get(0))
            .and_then(serde_json::Value::as_u64)
            .map_or_else(|| "unknown".to_owned(), |r| format!("{r:#06X}"));
        return Attempt::Refused {
            status: code,
            error: format!(
                "HTTP {status}: the destination refused the instance, failure reason {reason}"
            ),
        };
    }
    if listed("00081199")
        .iter()
        .any(|i| uid_of(i).as_deref() == Some(doc.sop_instance_uid.as_str()))
    {
        return Attempt::Delivered {
            status: code,
            sop_instance_uid: Some(doc.sop_instance_uid.clone()),
        };
    }
    Attempt::Transient {
        status: code,
        error: format!(
            "HTTP {status}, but the response does not list the instance as stored: {}",
            excerpt(&bytes)
        ),
    }
}

/// POSTs a FHIR `transaction` Bundle to the endpoint's base. Delivered on a
/// 2xx with a `transaction-response` Bundle that answers every entry with a
/// 2xx `response.status` (FHIR R4 §3.1.0.11.2, transaction processing: one
/// response entry per request entry, in order; a transaction succeeds or
/// fails as a whole). A response that does not say so is transient: the
/// server may not have processed the transaction, so it is retried.
pub async fn post_fhir(
    client: &reqwest::Client,
    dest: &Destination,
    bundle: &serde_json::Value,
) -> Attempt {
    let mut req = client
        .post(dest.url.as_str().trim_end_matches('/'))
        .header("content-type", "application/fhir+json")
        .header("accept", "application/fhir+json")
        .json(bundle);
    if let Some(token) = &dest.secret {
        req = req.bearer_auth(token.expose_secret());
    }
    let (status, bytes) = match answer(req).await {
        Ok(answer) => answer,
        Err(attempt) => return attempt,
    };
    let code = Some(i32::from(status));
    match transaction_outcome(bundle, &bytes) {
        Ok(()) => Attempt::Delivered {
            status: code,
            sop_instance_uid: None,
        },
        Err(why) => Attempt::Transient {
            status: code,
            error: format!("HTTP {status}, but {why}: {}", excerpt(&bytes)),
        },
    }
}

/// Whether `response` is a `transaction-response` Bundle that answers each
/// entry of `request` with a 2xx status; else what is wrong with it.
fn transaction_outcome(request: &serde_json::Value, response: &[u8]) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_slice(response)
        .map_err(|_| "the body is not a transaction-response Bundle".to_owned())?;
    if v.get("resourceType").and_then(|t| t.as_str()) != Some("Bundle")
        || v.get("type").and_then(|t| t.as_str()) != Some("transaction-response")
    {
        return Err("the body is not a transaction-response Bundle".to_owned());
    }
    let count = |b: &serde_json::Value| {
        b.get("entry")
            .and_then(|e| e.as_array())
            .map_or(0, Vec::len)
    };
    let answered = v
        .get("entry")
        .and_then(|e| e.as_array())
        .map_or(&[][..], Vec::as_slice);
    if answered.len() != count(request) {
        return Err(format!(
            "the transaction-response has {} entries for the {} sent",
            answered.len(),
            count(request)
        ));
    }
    for (k, entry) in answered.iter().enumerate() {
        let status = entry
            .pointer("/response/status")
            .and_then(|s| s.as_str())
            .unwrap_or("");
        // `response.status` is the HTTP status code first, e.g. "201 Created".
        if !status.trim_start().starts_with('2') {
            return Err(format!(
                "entry {k} of the transaction-response is not a success"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::transaction_outcome;

    #[test]
    fn a_transaction_is_delivered_only_when_every_entry_succeeded() {
        let request = json!({"resourceType": "Bundle", "type": "transaction",
            "entry": [{"request": {"method": "POST"}}, {"request": {"method": "PUT"}}]});
        let response = |entries: serde_json::Value| {
            json!({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
                .to_string()
        };
        let ok = response(json!([{"response": {"status": "201 Created"}},
            {"response": {"status": "200"}}]));
        assert_eq!(transaction_outcome(&request, ok.as_bytes()), Ok(()));
        // An empty transaction-response says nothing was processed.
        let empty = json!({"resourceType": "Bundle", "type": "transaction-response"}).to_string();
        assert_eq!(
            transaction_outcome(&request, empty.as_bytes()),
            Err("the transaction-response has 0 entries for the 2 sent".to_owned())
        );
        let one = response(json!([{"response": {"status": "201 Created"}}]));
        assert!(transaction_outcome(&request, one.as_bytes()).is_err());
        let failed = response(json!([{"response": {"status": "201 Created"}},
            {"response": {"status": "400 Bad Request"}}]));
        assert_eq!(
            transaction_outcome(&request, failed.as_bytes()),
            Err("entry 1 of the transaction-response is not a success".to_owned())
        );
        let no_status = response(json!([{"response": {"status": "201 Created"}}, {}]));
        assert!(transaction_outcome(&request, no_status.as_bytes()).is_err());
        let batch = json!({"resourceType": "Bundle", "type": "batch-response"}).to_string();
        assert!(transaction_outcome(&request, batch.as_bytes()).is_err());
        assert!(transaction_outcome(&request, b"\x00garbage!").is_err());
    }
}
