//! All output of `bench` goes through here: results on stdout, messages and progress on
//! stderr. Progress bars draw only on a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;

pub struct Ui;

impl Ui {
    pub fn new() -> Self {
        Ui
    }

    /// A line of the result (stdout).
    pub fn out(&self, line: impl AsRef<str>) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{}", line.as_ref());
    }

    pub fn error(&self, err: &crate::error::BenchError) {
        let mut text = err.to_string();
        // Workspace files by their workspace path (one place for every error).
        if let Some(root) = crate::workspace::found() {
            text = text.replace(&format!("{}/", root.display()), "");
        }
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "{text}");
    }

    /// A spinner for work of unknown length.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let pb = ProgressBar::new_spinner();
        pb.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("static template"));
        pb.set_message(message.into());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    }

    /// A status line for people (stderr), never mixed into `--json` output.
    pub fn status(&self, line: impl AsRef<str>) {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e, "{}", line.as_ref());
    }

    /// A bar counting `total` steps.
    pub fn bar_plain(&self, total: u64, message: impl Into<String>) -> ProgressBar {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
                .expect("static template")
                .progress_chars("=> "),
        );
        pb.set_message(message.into());
        pb
    }

    /// A bar counting `total` virtual seconds.
    pub fn bar(&self, total: u64, message: impl Into<String>) -> ProgressBar {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} virtual s ({elapsed}, eta {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        pb.set_message(message.into());
        pb
    }
}
