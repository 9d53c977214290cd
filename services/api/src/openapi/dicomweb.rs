//! The DICOMweb operations (DICOM PS3.18) for [`super::document`]: STOW-RS
//! (§10.5), QIDO-RS (§10.6) and WADO-RS (§10.4), described here rather than
//! on the handlers (routes/dicomweb/), since one handler serves the study,
//! series and instance levels of a resource. Query keys are those of the
//! standard: match keys by keyword or tag (Tables 10.6.1-5 to -7), `limit`,
//! `offset`, `includefield`, `fuzzymatching`.

use super::Op;

const DICOM_JSON: &[&str] = &["application/dicom+json"];
const MULTIPART: &[&str] = &["multipart/related"];

const BAD_UID: &str = "`bad_request`: a malformed UID in the path or query";
const NOT_FOUND: &str =
    "`not_found`: no such study, series or instance (or, to an integration client, none it sent)";
const NOT_ACCEPTABLE: &str = "`not_acceptable`: no media type or transfer syntax of the `Accept` header can be served; the message lists those available";

fn stow(path: &'static str, summary: &'static str) -> Op {
    Op::post(path, "dicomweb", summary)
        .describe("STOW-RS (PS3.18 §10.5): `multipart/related; type=\"application/dicom\"`, one DICOM file (PS3.10) per part, read as a stream. Each instance is stored or refused on its own; the answer lists both (ReferencedSOPSequence, FailedSOPSequence with FailureReason, PS3.18 Table 10.5.3-1).")
        .body(&["multipart/related"], "DICOM instances, `type=\"application/dicom\"`")
        .answers(200, "Every instance stored", DICOM_JSON)
        .answers(202, "Some instances stored, some refused (FailedSOPSequence)", DICOM_JSON)
        .answers(409, "No instance stored: each refused, with its FailureReason", DICOM_JSON)
        .error(400, "`bad_request`: a malformed multipart/related body; `no_instances`: a body with no part")
        .error(413, "`too_large`: the body passes the configured STOW-RS limit")
        .error(415, "`unsupported_media_type`: not `multipart/related; type=\"application/dicom\"`")
}

fn search(path: &'static str, summary: &'static str, keys: &'static str) -> Op {
    Op::get(path, "dicomweb", summary)
        .describe(keys)
        .query("limit", "At most this many results (default and maximum 10000); when it cuts the result, `Warning: 299` says so", false)
        .query("offset", "Skip this many results", false)
        .query("includefield", "Attributes to add to each result, by keyword or tag, comma-separated, or `all`", false)
        .query("fuzzymatching", "Accepted and ignored: matching is exact", false)
        .answers(200, "The matches, DICOM JSON (PS3.18 Annex F)", DICOM_JSON)
        .answers(204, "No match", &[])
        .error(400, "`bad_request`: a match key this search does not support, a malformed value, `limit` or `offset`")
}

fn retrieve(path: &'static str, summary: &'static str) -> Op {
    Op::get(path, "dicomweb", summary)
        .describe("WADO-RS (PS3.18 §10.4.1.1.1): the instances as `multipart/related; type=\"application/dicom\"`, each in its stored transfer syntax or, on request (`transfer-syntax` parameter of the Accept header, §8.7.3.5.2), transcoded to Explicit VR Little Endian.")
        .answers(200, "The instances, one part each, with a random boundary", MULTIPART)
        .error(400, BAD_UID)
        .error(404, NOT_FOUND)
        .error(406, NOT_ACCEPTABLE)
}

fn metadata(path: &'static str, summary: &'static str) -> Op {
    Op::get(path, "dicomweb", summary)
        .describe("WADO-RS metadata (PS3.18 §10.4.1.1.2): DICOM JSON of every instance, bulk data (pixel data included) as BulkDataURIs that resolve.")
        .answers(200, "An array of DICOM JSON data sets", DICOM_JSON)
        .error(400, BAD_UID)
        .error(404, NOT_FOUND)
        .error(406, "`not_acceptable`: only `application/dicom+json` is served")
}

/// A study or series rendered: one image per instance (PS3.18 §10.4.1.1.3).
fn rendered_set(path: &'static str, summary: &'static str) -> Op {
    Op::get(path, "dicomweb", summary)
        .describe("PS3.18 §10.4.1.1.3: the first frame of each instance with pixel data, in index order, as `multipart/related; type=\"image/jpeg\"` (or PNG, GIF); an Accept header for a single image is served when exactly one instance renders. Parameters as for the rendered instance.")
        .query("accept", "A media type replacing the Accept header (PS3.18 §8.3.3.1)", false)
        .query("window", "`center,width[,linear]` (PS3.18 §8.3.5.1.2)", false)
        .query("viewport", "`vw,vh[,sx,sy,sw,sh]` (PS3.18 §8.3.5.1.3)", false)
        .query("quality", "1..100, JPEG only (PS3.18 §8.3.5.1.4)", false)
        .answers(200, "One rendered image per instance", MULTIPART)
        .error(400, "`bad_request`: a malformed UID or parameter, or an unsupported one (`annotation`, `iccprofile` other than `no`)")
        .error(404, NOT_FOUND)
        .error(406, NOT_ACCEPTABLE)
        .error(422, "`not_renderable`: no instance renders")
}

/// Every DICOMweb operation of the route table.
pub(super) fn all() -> Vec<Op> {
    const I: &str = "/dicom-web/studies/{study}/series/{series}/instances/{instance}";
    vec![
        stow("/dicom-web/studies", "Store instances (STOW-RS)"),
        stow("/dicom-web/studies/{study}", "Store instances of one study (STOW-RS)"),
        search(
            "/dicom-web/studies",
            "Search for studies (QIDO-RS)",
            "Match keys of PS3.18 Table 10.6.1-5: PatientID, PatientName, AccessionNumber, StudyDescription, StudyDate, StudyTime, StudyID, ReferringPhysicianName, ModalitiesInStudy, StudyInstanceUID (keyword or tag). `*` alone matches every value, empty and absent included.",
        ),
        search(
            "/dicom-web/series",
            "Search for series of all studies (QIDO-RS)",
            "Study match keys and series match keys (Modality, SeriesInstanceUID, SeriesNumber, SeriesDescription).",
        ),
        search(
            "/dicom-web/instances",
            "Search for instances of all studies (QIDO-RS)",
            "Study, series and instance match keys (SOPInstanceUID, SOPClassUID, InstanceNumber).",
        ),
        search(
            "/dicom-web/studies/{study}/series",
            "Search for the series of a study (QIDO-RS)",
            "Series match keys (PS3.18 Table 10.6.1-6): Modality, SeriesInstanceUID, SeriesNumber, SeriesDescription.",
        ),
        search(
            "/dicom-web/studies/{study}/instances",
            "Search for the instances of a study (QIDO-RS)",
            "Series and instance match keys.",
        ),
        search(
            "/dicom-web/studies/{study}/series/{series}/instances",
            "Search for the instances of a series (QIDO-RS)",
            "Instance match keys (PS3.18 Table 10.6.1-7): SOPInstanceUID, SOPClassUID, InstanceNumber.",
        ),
        retrieve("/dicom-web/studies/{study}", "Retrieve a study (WADO-RS)"),
        retrieve("/dicom-web/studies/{study}/series/{series}", "Retrieve a series (WADO-RS)"),
        retrieve(I, "Retrieve an instance (WADO-RS)"),
        metadata("/dicom-web/studies/{study}/metadata", "Study metadata (WADO-RS)"),
        metadata(
            "/dicom-web/studies/{study}/series/{series}/metadata",
            "Series metadata (WADO-RS)",
        ),
        metadata(
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata",
            "Instance metadata (WADO-RS)",
        ),
        Op::get(
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered",
            "dicomweb",
            "Rendered instance (WADO-RS)",
        )
        .describe("PS3.18 §10.4.1.1.3: the first frame, modality and VOI LUTs applied, as an image.")
        .query("accept", "A media type replacing the Accept header (PS3.18 §8.3.3.1)", false)
        .query("window", "`center,width[,linear]` (PS3.18 §8.3.5.1.2)", false)
        .query("viewport", "`vw,vh[,sx,sy,sw,sh]` (PS3.18 §8.3.5.1.3)", false)
        .query("quality", "1..100, JPEG only (PS3.18 §8.3.5.1.4)", false)
        .answers(200, "The rendered frame (JPEG by default)", &["image/jpeg", "image/png", "image/gif"])
        .error(400, "`bad_request`: a malformed UID or `window`")
        .error(404, NOT_FOUND)
        .error(406, NOT_ACCEPTABLE)
        .error(422, "`not_renderable`: the pixel data cannot be decoded"),
        Op::get(
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered",
            "dicomweb",
            "Rendered frame (WADO-RS)",
        )
        .describe("PS3.18 §10.4.1.1.3: one frame, as for the rendered instance.")
        .query("accept", "A media type replacing the Accept header (PS3.18 §8.3.3.1)", false)
        .query("window", "`center,width[,linear]` (PS3.18 §8.3.5.1.2)", false)
        .query("viewport", "`vw,vh[,sx,sy,sw,sh]` (PS3.18 §8.3.5.1.3)", false)
        .query("quality", "1..100, JPEG only (PS3.18 §8.3.5.1.4)", false)
        .answers(200, "The rendered frame (JPEG by default)", &["image/jpeg", "image/png", "image/gif"])
        .error(400, "`bad_request`: a malformed UID, frame number or `window`")
        .error(404, NOT_FOUND)
        .error(406, NOT_ACCEPTABLE)
        .error(422, "`not_renderable`: the pixel data cannot be decoded"),
        rendered_set("/dicom-web/studies/{study}/rendered", "Rendered study (WADO-RS)"),
        rendered_set(
            "/dicom-web/studies/{study}/series/{series}/rendered",
            "Rendered series (WADO-RS)",
        ),
        Op::get(
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            "dicomweb",
            "Retrieve frames (WADO-RS)",
        )
        .describe("PS3.18 §10.4.1.1.4: pixel data of the listed frames, one part each: uncompressed as `application/octet-stream` (Explicit VR Little Endian, decoding compressed frames), or as stored in the compressed media type of the transfer syntax (`image/jls`, `image/jp2`, `image/jpeg`, `image/dicom-rle`, …) as the Accept header asks (Table 8.7.3-2).")
        .answers(200, "The frames, `multipart/related; type=…`", MULTIPART)
        .error(400, "`bad_request`: a malformed UID or frame list")
        .error(404, "`not_found`: no such instance or frame (or, to an integration client, none it sent)")
        .error(406, NOT_ACCEPTABLE)
        .error(422, "`pixel_data_unusable`: the frames cannot be decoded for an uncompressed answer"),
        Op::get(
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/bulk/{path:.*}",
            "dicomweb",
            "Retrieve bulk data (WADO-RS)",
        )
        .describe("PS3.18 §10.4.1.1.5: the value of a bulk data element, as the metadata's BulkDataURI names it (pixel data as for Retrieve Frames).")
        .answers(200, "The bulk data, `multipart/related`", MULTIPART)
        .error(400, BAD_UID)
        .error(404, "`not_found`: no such instance or bulk data element")
        .error(406, NOT_ACCEPTABLE)
        .error(422, "`pixel_data_unusable`: compressed pixel data asked uncompressed cannot be decoded"),
    ]
}
