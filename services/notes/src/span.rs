//! Byte spans into the original note text, shared by every other module.

pub use fusion_schemas::note::Span;
