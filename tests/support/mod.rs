//! Shared support for the integration tests.

// Each integration test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod git_server;
