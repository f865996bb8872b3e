//! One module per subcommand: argument struct + `run`.

pub mod bench;
pub mod corpus;
pub mod fetch;
pub mod io;
pub mod progress;
pub mod residuals;
pub mod sae;
pub mod tokenize;
