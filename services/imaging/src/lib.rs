//! DICOM handling for the fusion service (in progress).
