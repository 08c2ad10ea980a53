//! The doctor's findings, rendered for people (one block per check and a summary line) or for
//! machines (JSON).

use std::fmt::Write as _;

use serde::Serialize;

use super::{Check, Status};

/// Everything the doctor found, in the order it looked.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst status of any check (pass for an empty report).
    pub fn status(&self) -> Status {
        self.checks
            .iter()
            .map(|check| check.status)
            .max()
            .unwrap_or(Status::Pass)
    }

    /// Whether any check failed: the doctor's exit code.
    pub fn failed(&self) -> bool {
        self.status() == Status::Fail
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The report for machines, pretty-printed: `{"status", "summary": {"pass", "warn",
    /// "fail"}, "checks": [{"name", "status", "measured", "expected", "fix"?, "note"?}]}`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Summary {
            pass: usize,
            warn: usize,
            fail: usize,
        }
        #[derive(Serialize)]
        struct Document<'a> {
            status: Status,
            summary: Summary,
            checks: &'a [Check],
        }
        let document = Document {
            status: self.status(),
            summary: Summary {
                pass: self.count(Status::Pass),
                warn: self.count(Status::Warn),
                fail: self.count(Status::Fail),
            },
            checks: &self.checks,
        };
        // Plain data with string keys: serialising it cannot fail.
        serde_json::to_string_pretty(&document).unwrap_or_default()
    }

    /// The report for people: one block per check, then a summary line.
    pub fn to_text(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut text = String::new();
        for check in &self.checks {
            let _ = writeln!(
                text,
                "[{}] {:width$}  {}",
                check.status.label(),
                check.name,
                check.measured
            );
            let indent = width + 9;
            let _ = writeln!(text, "{:indent$}want: {}", "", check.expected);
            if let Some(fix) = &check.fix {
                let _ = writeln!(text, "{:indent$}fix:  {fix}", "");
            }
            if let Some(note) = &check.note {
                let _ = writeln!(text, "{:indent$}note: {note}", "");
            }
        }
        let _ = writeln!(
            text,
            "doctor: {} checks: {} pass, {} warn, {} fail",
            self.checks.len(),
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail)
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_as_bad_as_its_worst_check() {
        let mut report = Report {
            checks: vec![Check::pass("a", "1", "1")],
        };
        assert_eq!(report.status(), Status::Pass);
        report.checks.push(Check::warn("b", "1", "2", "x"));
        assert!(!report.failed(), "a warning does not fail the doctor");
        report.checks.push(Check::fail("c", "1", "2", "x"));
        assert!(report.failed());
        let text = report.to_json();
        assert!(
            text.starts_with("{\n  \"status\": \"fail\",\n  \"summary\""),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["status"], "fail");
        assert_eq!(json["summary"]["warn"], 1);
        assert_eq!(json["checks"][0]["name"], "a");
        assert!(json["checks"][0].get("fix").is_none(), "a pass has no fix");
        assert_eq!(json["checks"][2]["fix"], "x");
        let text = report.to_text();
        assert!(text.contains("[fail] c"), "{text}");
        assert!(
            text.ends_with("doctor: 3 checks: 1 pass, 1 warn, 1 fail\n"),
            "{text}"
        );
    }
}
