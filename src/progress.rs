//! The one progress bar style of the command line (stderr; hidden when asked to be quiet or when stderr is not
//! a terminal, so logs stay free of control codes).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `total` steps labelled `what`, or a hidden one when `show` is false or stderr is not a terminal.
pub fn bar(what: &str, total: u64, show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let template = format!("{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} eta {{eta}} {{msg}}");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
