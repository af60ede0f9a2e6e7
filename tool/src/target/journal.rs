//! The journal of an operation on a target: which operation, the last step it finished,
//! and what it needs to finish. On the target it is `key=value` lines, so that a shell
//! script (and a person with `cat`) reads it too; here it is a type.

use serde::Serialize;
use std::fmt;

/// The operation in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Stage,
    Rollback,
    /// The board's DKMS installing a package (the package's hook, `bench-slots.sh`).
    Dkms,
}

/// The last step an operation finished, in the order a stage or a rollback takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Journal written, nothing changed yet (a stage's module is not verified yet).
    Begin,
    /// Stage: the module is in staging/ with its sha256 and srcversion checked.
    Prepared,
    /// Stage: the old rollback went to forensics.
    RollbackDisplaced,
    /// Stage: the active module became the rollback (or went to forensics when failed).
    ActiveDemoted,
    /// Rollback: the active module went to forensics.
    ActiveRetired,
    /// The new active slot is in place.
    Promoted,
}

impl Step {
    const ALL: [(Step, &'static str); 6] = [
        (Step::Begin, "begin"),
        (Step::Prepared, "prepared"),
        (Step::RollbackDisplaced, "rollback-displaced"),
        (Step::ActiveDemoted, "active-demoted"),
        (Step::ActiveRetired, "active-retired"),
        (Step::Promoted, "promoted"),
    ];

    pub fn name(self) -> &'static str {
        Step::ALL.iter().find(|(s, _)| *s == self).map_or("?", |(_, n)| n)
    }

    fn parse(s: &str) -> Option<Step> {
        Step::ALL.iter().find(|(_, n)| *n == s).map(|(s, _)| *s)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Stage => "stage",
            Op::Rollback => "rollback",
            Op::Dkms => "dkms",
        })
    }
}

/// One operation's journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Journal {
    pub op: Op,
    pub step: Step,
    /// Stage only: the variant, the module's sha256, whether it is staged as failed (the
    /// active module then goes to forensics, not to rollback), and its srcversion once
    /// prepared.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    pub failed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub srcversion: String,
    /// DKMS only: the package version being installed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
}

impl Journal {
    pub fn new(op: Op) -> Self {
        Journal {
            op,
            step: Step::Begin,
            variant: String::new(),
            sha256: String::new(),
            failed: false,
            srcversion: String::new(),
            version: String::new(),
        }
    }

    /// The text written on the target.
    pub fn render(&self) -> String {
        let mut out = format!("op={}\nstep={}\n", self.op, self.step);
        if self.op == Op::Stage {
            out.push_str(&format!("variant={}\nsha256={}\nfailed={}\n", self.variant, self.sha256, self.failed as u8));
            if !self.srcversion.is_empty() {
                out.push_str(&format!("srcversion={}\n", self.srcversion));
            }
        }
        if self.op == Op::Dkms {
            out.push_str(&format!("variant={}\nversion={}\n", self.variant, self.version));
        }
        out
    }

    /// Reads a journal; the error says which line is not one bench writes.
    pub fn parse(text: &str) -> Result<Journal, String> {
        let mut op = None;
        let mut step = None;
        let mut j = Journal::new(Op::Stage);
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = || format!("line {}: `{line}` is not a journal entry", i + 1);
            let (k, v) = line.split_once('=').ok_or_else(bad)?;
            match k {
                "op" => {
                    op = Some(match v {
                        "stage" => Op::Stage,
                        "rollback" => Op::Rollback,
                        "dkms" => Op::Dkms,
                        _ => return Err(format!("line {}: unknown operation `{v}` (stage, rollback or dkms)", i + 1)),
                    })
                }
                "step" => {
                    step = Some(Step::parse(v).ok_or_else(|| {
                        let known: Vec<&str> = Step::ALL.iter().map(|(_, n)| *n).collect();
                        format!("line {}: unknown step `{v}` (one of {})", i + 1, known.join(", "))
                    })?)
                }
                "variant" => j.variant = v.to_string(),
                "sha256" => j.sha256 = v.to_string(),
                "failed" => j.failed = v == "1",
                "srcversion" => j.srcversion = v.to_string(),
                "version" => j.version = v.to_string(),
                _ => return Err(bad()),
            }
        }
        j.op = op.ok_or("no `op=` line")?;
        j.step = step.ok_or("no `step=` line")?;
        Ok(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_reads_back_as_written() {
        let mut j = Journal::new(Op::Stage);
        j.variant = "c-v2".into();
        j.sha256 = "ab".repeat(32);
        j.failed = true;
        j.step = Step::Prepared;
        j.srcversion = "4453B716".into();
        assert_eq!(Journal::parse(&j.render()), Ok(j));
        let d = Journal {
            step: Step::ActiveDemoted,
            variant: "c-v2".into(),
            version: "0.1.0+c-v2.4453b716".into(),
            ..Journal::new(Op::Dkms)
        };
        assert_eq!(Journal::parse(&d.render()), Ok(d));
        let r = Journal { step: Step::ActiveRetired, ..Journal::new(Op::Rollback) };
        assert_eq!(r.render(), "op=rollback\nstep=active-retired\n");
        assert_eq!(Journal::parse(&r.render()), Ok(r));
    }

    #[test]
    fn a_journal_bench_did_not_write_is_refused_with_its_line() {
        assert_eq!(Journal::parse("op=stage\nstep=halfway\n").unwrap_err().split(':').next(), Some("line 2"));
        assert!(Journal::parse("op=upgrade\nstep=begin\n").unwrap_err().contains("unknown operation"));
        assert!(Journal::parse("step=begin\n").unwrap_err().contains("op="));
        assert!(Journal::parse("op=stage\nstep=begin\ngarbage\n").unwrap_err().contains("line 3"));
    }

    #[test]
    fn steps_are_ordered_as_an_operation_takes_them() {
        assert!(Step::Begin < Step::Prepared && Step::Prepared < Step::RollbackDisplaced);
        assert!(Step::RollbackDisplaced < Step::ActiveDemoted && Step::ActiveDemoted < Step::Promoted);
        assert!(Step::ActiveRetired < Step::Promoted);
    }
}
