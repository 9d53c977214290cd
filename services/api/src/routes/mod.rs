//! Route groups, one file each.

pub(crate) mod health;
