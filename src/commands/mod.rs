//! The subcommands of the `remediator` binary, one file each.

pub mod background;
pub mod demo;
pub mod dlq;
pub mod doctor;
pub mod intake;
pub mod token;
pub mod worker;
