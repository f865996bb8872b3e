//! Progress bars on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting tokens, with rate and (when `total` is known) ETA.
pub fn tokens_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} tokens ({per_sec}, ETA {eta})",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::no_length().with_style(
            ProgressStyle::with_template("{elapsed_precise} {pos} tokens ({per_sec})")
                .expect("valid template"),
        ),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}
