//! Clinical note understanding: sections, sentences, observation mentions with
//! ConText assertion, note-level labels (in progress).
