//! mediavault: a hardened credential vault for an office's new-media accounts.
pub mod platforms;
pub mod policy;
