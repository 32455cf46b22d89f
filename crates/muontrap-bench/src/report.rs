//! The rows of the result table and its markdown form.

use crate::stats::{Stats, fmt_dur};

/// What a row measured.
pub enum Value {
    /// Timing samples, summarised.
    Time(Stats),
    /// A memory figure in KB.
    Kb(u64),
    /// Not measured, with the reason.
    NotAvailable(String),
}

/// One row of the table.
pub struct Row {
    pub name: String,
    pub value: Value,
    /// The median this row's ratio is taken against (the std row of its section).
    pub baseline: Option<Stats>,
    pub target: String,
    /// Processes of the measured trees left after the operation (summed over iterations).
    pub leftovers: Option<usize>,
    pub note: String,
}

impl Row {
    pub fn new(name: impl Into<String>, value: Value) -> Row {
        Row {
            name: name.into(),
            value,
            baseline: None,
            target: String::new(),
            leftovers: None,
            note: String::new(),
        }
    }
    pub fn baseline(mut self, b: Option<Stats>) -> Row {
        self.baseline = b;
        self
    }
    pub fn target(mut self, t: impl Into<String>) -> Row {
        self.target = t.into();
        self
    }
    pub fn leftovers(mut self, n: usize) -> Row {
        self.leftovers = Some(n);
        self
    }
    pub fn note(mut self, n: impl Into<String>) -> Row {
        self.note = n.into();
        self
    }
    pub fn stats(&self) -> Option<Stats> {
        match self.value {
            Value::Time(s) => Some(s),
            _ => None,
        }
    }
}

/// A row from a measurement that may have failed.
pub fn timed(name: &str, r: Result<Stats, String>) -> Row {
    match r {
        Ok(s) => Row::new(name, Value::Time(s)),
        Err(e) => Row::new(name, Value::NotAvailable(e)),
    }
}

/// One table: a heading, what the ratio column is taken against, the rows.
pub struct Section<'a> {
    pub title: &'a str,
    /// Names the baseline in the ratio column's heading ("std", …).
    pub ratio_to: &'a str,
    pub rows: Vec<Row>,
}

/// The markdown table of `rows`, under section headings.
pub fn markdown(sections: &[Section<'_>]) -> String {
    let mut out = String::new();
    for Section {
        title,
        ratio_to,
        rows,
    } in sections
    {
        out.push_str(&format!("\n#### {title}\n\n"));
        out.push_str(&format!("| measurement | n | median | p90 | mean | ratio to {ratio_to} (median) | target | left behind | notes |\n"));
        out.push_str("|---|---:|---:|---:|---:|---:|---|---:|---|\n");
        for r in rows {
            let (n, med, p90, mean) = match &r.value {
                Value::Time(s) => (
                    s.n.to_string(),
                    fmt_dur(s.median),
                    fmt_dur(s.p90),
                    fmt_dur(s.mean),
                ),
                Value::Kb(kb) => ("1".into(), format!("{kb} KB"), "".into(), "".into()),
                Value::NotAvailable(why) => {
                    ("–".into(), format!("n/a: {why}"), "".into(), "".into())
                }
            };
            let ratio = match (r.stats(), r.baseline) {
                (Some(s), Some(b)) if !b.median.is_zero() => {
                    format!("{:.2}×", s.median.as_secs_f64() / b.median.as_secs_f64())
                }
                _ => String::new(),
            };
            let left = r.leftovers.map(|n| n.to_string()).unwrap_or_default();
            out.push_str(&format!(
                "| {} | {n} | {med} | {p90} | {mean} | {ratio} | {} | {left} | {} |\n",
                r.name, r.target, r.note
            ));
        }
    }
    out
}
