//! One module per subcommand: parse its flags, load what it needs, run it.

pub mod admin_client;
pub mod audit;
pub mod backup;
pub mod chaos;
pub mod check;
pub mod demo;
pub mod incident;
pub mod keys;
pub mod maintenance;
pub mod mock;
pub mod serve;
pub mod status;
pub mod webhook;
