//! Shared test support: the real app on fresh resources, and a real git server.

// Each integration test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod app;
pub mod console;
pub mod fake_github;
pub mod fake_llm;
pub mod git_server;
pub mod npm_registry;
pub mod processes;
pub mod python_index;
pub mod python_mirror;
pub mod remediation;
pub mod sparse_registry;
