//! Shared test support: the real app on fresh resources, and a real git server.

pub mod app;
