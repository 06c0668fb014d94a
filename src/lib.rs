//! tokenmeter: live Claude token and cost metering from `tracing` spans.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod pricing;
pub mod record;
