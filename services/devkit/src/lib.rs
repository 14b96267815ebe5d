//! Development and test support for the zvv suite. `zvv up` uses [`devdb`] to run a private
//! PostgreSQL cluster; service tests use [`testkit`] as a dev-dependency, and [`tls`] for
//! certificates made in the test. Service binaries never link this crate, so they carry no
//! initdb or test code.

pub mod devdb;
pub mod testkit;
pub mod tls;
