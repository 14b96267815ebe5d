//! Pure rules of reintegration (no tonic, no sqlx).

pub mod deadlines;
pub mod episode;
pub mod policy;
