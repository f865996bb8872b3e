//! One module per subcommand: argument struct + `run`.

pub mod corpus;
pub mod fetch;
pub mod io;
pub mod sae;
pub mod tokenize;
