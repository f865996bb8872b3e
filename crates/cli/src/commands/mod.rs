//! One module per subcommand: argument struct + `run`.

pub mod annotate;
pub mod bench;
pub mod calibrate;
pub mod compare;
pub mod corpus;
pub mod efficiency;
pub mod eval;
pub mod fetch;
pub mod io;
pub mod merge;
pub mod probe;
pub mod progress;
pub mod residuals;
pub mod sae;
pub mod stack;
pub mod tokenize;
