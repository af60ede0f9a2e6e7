//! The one error type of `bench`: its kind picks the exit code; it prints as
//! Error / Caused by / Hint.

use std::fmt;

/// What went wrong, as a script sees it (the exit code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The run worked and found a failure (a WARN, a wedge, a dead link): exit 1.
    Failed,
    /// Bad input: a flag, a name, a value: exit 2.
    Usage,
    /// The tool could not do its job (a build failed, a file is unreadable): exit 3.
    Environment,
    /// A check used as a bisect oracle could not test this candidate: exit 125, which
    /// `git bisect run` and `bench bisect --oracle cmd:` read as "skip".
    CouldNotTest,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Environment => 3,
            Kind::CouldNotTest => 125,
        }
    }
}

#[derive(Debug)]
pub struct BenchError {
    pub kind: Kind,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, BenchError>;

impl BenchError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        BenchError { kind, message: message.into(), causes: Vec::new(), hint: None }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn env(message: impl Into<String>) -> Self {
        Self::new(Kind::Environment, message)
    }
    pub fn cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Turns any error into a [`BenchError`] of a kind, with what was being done as the
/// message and the error itself as the cause: `fs::read(&p).or_env(format!("cannot read
/// {}", p.display()))?`. The kind says whose fault it is; [`Kind::exit_code`] alone maps
/// it to the exit status.
pub trait ResultExt<T> {
    /// The environment failed (exit 3): a build, a file bench keeps, a program it runs.
    fn or_env(self, what: impl Into<String>) -> Result<T>;
    /// The user's input is wrong (exit 2): a file or value they named.
    fn or_usage(self, what: impl Into<String>) -> Result<T>;
}

impl<T, E: fmt::Display> ResultExt<T> for std::result::Result<T, E> {
    fn or_env(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| BenchError::env(what).cause(e.to_string()))
    }
    fn or_usage(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| BenchError::usage(what).cause(e.to_string()))
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Error: {}", self.message)?;
        for c in &self.causes {
            for (i, line) in c.lines().enumerate() {
                if i == 0 {
                    writeln!(f, "Caused by: {line}")?;
                } else {
                    writeln!(f, "  {line}")?;
                }
            }
        }
        if let Some(h) = &self.hint {
            writeln!(f, "Hint: {h}")?;
        }
        Ok(())
    }
}

/// For tests: each input fails with an error of `kind` whose message contains its needle.
/// Returns the errors, for further checks.
#[cfg(test)]
pub fn assert_each_fails<T: fmt::Debug>(
    cases: &[(&str, &str)],
    kind: Kind,
    f: impl Fn(&str) -> Result<T>,
) -> Vec<BenchError> {
    cases
        .iter()
        .map(|(input, needle)| {
            let e = f(input).expect_err(input);
            assert!(e.message.contains(needle), "{input}: `{}` lacks `{needle}`", e.message);
            assert_eq!(e.kind, kind, "{input}");
            e
        })
        .collect()
}
