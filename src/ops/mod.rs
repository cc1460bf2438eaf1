//! Tools for operators: inspecting and replaying the dead-letter queue.

pub mod dlq;
