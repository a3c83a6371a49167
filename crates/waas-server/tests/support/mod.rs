//! The native test device and what it needs to talk to a real `waas-server` process: the process
//! itself ([`TestServer`]), signed HTTP calls ([`Client`]), a device that registers, generates keys
//! and signs ([`TestDevice`]), the dev API key ([`ApiKeyClient`]), Ethereum address checks
//! ([`eth`]), a text dump of the database ([`db_dump`]), and direct reads and writes of it
//! ([`db_query`], [`db_execute`]) for states the API cannot reach yet; key generations and
//! signings taken round by round ([`StartedKeygen`], [`StartedSigning`]); the passcode and the
//! device archive ([`passcode`]); the device backup and its string ([`backup`]).
//!
//! Shared by every test target and by the benches (`benches/loopback.rs`, `benches/load.rs`);
//! each uses part of it.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod backup;
mod client;
pub mod cluster;
mod db;
mod device;
pub mod eth;
pub mod exits;
pub mod passcode;
mod postgres;
pub mod recovery;
pub mod retrying;
mod route;
mod server;
mod started;

pub use client::{Auth, Call, Client, Raw, Signer, b64, mint, random_hex, sha256};
pub use db::{db_dump, db_execute, db_query};
pub use device::{ApiKeyClient, DeviceKeys, Signed, TestDevice, Wallet, reply, revoke_call};
pub use passcode::{Login, PASSCODE, archive_op_of};
pub use postgres::{PgDatabase, on_postgres};
pub use route::{Address, Route, Trap};
pub use server::TestServer;
pub use started::{StartedKeygen, StartedSigning, flip, mpc_operation_of};

/// The audience the server checks in every token (its `--audience`, default `waas-server`).
pub const AUDIENCE: &str = "waas-server";

/// The pool the server creates on first start.
pub fn default_pool() -> waas_api::PoolName {
    "pools/default".parse().unwrap()
}
