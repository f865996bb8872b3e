//! One module per subcommand: argument struct + `run`.

pub mod annotate;
pub mod bench;
pub mod calibrate;
pub mod compare;
pub mod corpus;
pub mod diff;
pub mod efficiency;
pub mod eval;
pub mod fetch;
pub mod io;
pub mod lexicon;
pub mod merge;
pub mod perturb;
pub mod probe;
pub mod profile;
pub mod progress;
pub mod residuals;
pub mod sae;
pub mod serve;
pub mod silver;
pub mod stack;
pub mod study;
pub mod tagger;
pub mod tokenize;
