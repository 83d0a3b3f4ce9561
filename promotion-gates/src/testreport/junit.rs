//! JUnit XML as nextest, pytest, Jest, Surefire and others write it: a streaming parser that
//! counts test cases itself, records the counts a report declares, and names the file and line
//! of any structural problem.

use std::collections::BTreeMap;

use quick_xml::encoding::Decoder;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde::Serialize;
use serde_json::json;

use promotion_core::GateError;

use crate::input::invalid_input;

use super::line_at;

/// Outcome counts, counted from `<testcase>` elements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(super) struct Counts {
    pub(super) tests: u64,
    pub(super) passed: u64,
    pub(super) failed: u64,
    pub(super) errored: u64,
    pub(super) skipped: u64,
    /// Passed after failing at least once (also counted in `passed`).
    pub(super) flaky: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Flaky,
    Failed,
    Errored,
    Skipped,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        self.tests += 1;
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Flaky => {
                self.passed += 1;
                self.flaky += 1;
            }
            Outcome::Failed => self.failed += 1,
            Outcome::Errored => self.errored += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
    pub(super) fn merge(&mut self, o: &Counts) {
        self.tests += o.tests;
        self.passed += o.passed;
        self.failed += o.failed;
        self.errored += o.errored;
        self.skipped += o.skipped;
        self.flaky += o.flaky;
    }
    pub(super) fn executed(&self) -> u64 {
        self.tests.saturating_sub(self.skipped)
    }
}

/// The counts a `<testsuites>` or `<testsuite>` element declares in its attributes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Declared {
    tests: Option<u64>,
    failures: Option<u64>,
    errors: Option<u64>,
    skipped: Option<u64>,
}

impl Declared {
    /// `(attribute, declared, counted)` for each declared count that disagrees.
    fn disagreements(&self, c: &Counts) -> Vec<(&'static str, u64, u64)> {
        [
            ("tests", self.tests, c.tests),
            ("failures", self.failures, c.failed),
            ("errors", self.errors, c.errored),
            ("skipped", self.skipped, c.skipped),
        ]
        .into_iter()
        .filter_map(|(k, d, n)| d.filter(|&d| d != n).map(|d| (k, d, n)))
        .collect()
    }
}

#[derive(Debug)]
pub(super) struct Suite {
    pub(super) name: String,
    pub(super) line: usize,
    /// Including nested suites.
    pub(super) counts: Counts,
    declared: Declared,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct FailedTest {
    report: String,
    suite: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    classname: String,
    name: String,
    /// `failure` or `error`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
}

#[derive(Debug)]
pub(super) struct ParsedReport {
    pub(super) path: String,
    pub(super) tool: &'static str,
    pub(super) counts: Counts,
    root_declared: Option<(Declared, usize)>,
    pub(super) suites: Vec<Suite>,
    pub(super) failed: Vec<FailedTest>,
    pub(super) flaky: Vec<String>,
}

impl ParsedReport {
    pub(super) fn mismatches(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut push = |element: String, line: usize, d: &Declared, c: &Counts| {
            for (attribute, declared, counted) in d.disagreements(c) {
                out.push(json!({
                    "report": self.path,
                    "element": element,
                    "line": line,
                    "attribute": attribute,
                    "declared": declared,
                    "counted": counted,
                }));
            }
        };
        if let Some((d, line)) = &self.root_declared {
            push("testsuites".to_owned(), *line, d, &self.counts);
        }
        for s in &self.suites {
            push(
                format!("testsuite {}", s.name),
                s.line,
                &s.declared,
                &s.counts,
            );
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Root,
    Suite,
    Case,
    Other,
}

#[derive(Debug)]
struct Frame {
    name: String,
    line: usize,
    kind: FrameKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    Failure,
    Error,
}

#[derive(Debug)]
struct Case {
    name: String,
    classname: String,
    /// Stack depth of the `<testcase>` frame.
    depth: usize,
    failure: Option<String>,
    error: Option<String>,
    skipped: bool,
    flaky: bool,
    /// Collecting the text of a `<failure>`/`<error>` without a `message` attribute.
    capture: Option<(Bad, usize, String)>,
}

/// Streaming JUnit reader state for one file.
struct JunitParser<'a> {
    path: &'a str,
    bytes: &'a [u8],
    stack: Vec<Frame>,
    suite_stack: Vec<usize>,
    case: Option<Case>,
    root_seen: bool,
    root_closed: bool,
    root_name: Option<String>,
    schema: Option<String>,
    report: ParsedReport,
}

const MESSAGE_LIMIT: usize = 200;

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.chars().count() > MESSAGE_LIMIT {
        let mut s: String = line.chars().take(MESSAGE_LIMIT).collect();
        s.push('…');
        s
    } else {
        line.to_owned()
    }
}

/// Parses one JUnit XML report; `path` is how the file is named in errors and evidence.
pub(super) fn parse_junit(path: &str, bytes: &[u8]) -> Result<ParsedReport, GateError> {
    let mut reader = Reader::from_reader(bytes);
    let mut p = JunitParser {
        path,
        bytes,
        stack: Vec::new(),
        suite_stack: Vec::new(),
        case: None,
        root_seen: false,
        root_closed: false,
        root_name: None,
        schema: None,
        report: ParsedReport {
            path: path.to_owned(),
            tool: "junit",
            counts: Counts::default(),
            root_declared: None,
            suites: Vec::new(),
            failed: Vec::new(),
            flaky: Vec::new(),
        },
    };
    loop {
        let start = reader.buffer_position();
        let event = reader.read_event().map_err(|e| {
            invalid_input(
                path,
                Some(line_at(bytes, reader.error_position())),
                format!("malformed XML: {e}"),
            )
        })?;
        let decoder = reader.decoder();
        match event {
            Event::Start(e) => p.open(&e, start, decoder, false)?,
            Event::Empty(e) => p.open(&e, start, decoder, true)?,
            Event::End(_) => p.close(start)?,
            Event::Text(t) => {
                if p.capturing() {
                    let text = t.decode().map_err(|e| p.err(start, format!("{e}")))?;
                    p.text(&text);
                } else if !p.root_seen || p.root_closed {
                    let text = t.decode().map_err(|e| p.err(start, format!("{e}")))?;
                    if !text.trim().is_empty() {
                        return Err(p.err(
                            start,
                            "text outside the root element: not a JUnit XML report",
                        ));
                    }
                }
            }
            Event::CData(t) if p.capturing() => {
                let text = t.decode().map_err(|e| p.err(start, format!("{e}")))?;
                p.text(&text);
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| p.err(start, format!("{e}")))?;
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                        .map(str::to_owned)
                        .ok_or_else(|| p.err(start, format!("unknown entity `&{name};`")))?,
                    Err(e) => return Err(p.err(start, format!("malformed XML: {e}"))),
                };
                p.text(&resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    p.finish()
}

impl JunitParser<'_> {
    fn err(&self, pos: u64, message: impl Into<String>) -> GateError {
        invalid_input(self.path, Some(line_at(self.bytes, pos)), message)
    }

    fn capturing(&self) -> bool {
        self.case.as_ref().is_some_and(|c| c.capture.is_some())
    }

    fn text(&mut self, text: &str) {
        if let Some(Case {
            capture: Some((_, _, buf)),
            ..
        }) = &mut self.case
        {
            if buf.len() < 4 * MESSAGE_LIMIT {
                buf.push_str(text);
            }
        }
    }

    fn attributes(
        &self,
        e: &BytesStart<'_>,
        pos: u64,
        decoder: Decoder,
    ) -> Result<BTreeMap<String, String>, GateError> {
        let mut out = BTreeMap::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|e| self.err(pos, format!("malformed attribute: {e}")))?;
            let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
            let value = attr
                .decode_and_unescape_value(decoder)
                .map_err(|e| self.err(pos, format!("attribute `{key}`: {e}")))?;
            out.insert(key, value.into_owned());
        }
        Ok(out)
    }

    fn declared(
        &self,
        attrs: &BTreeMap<String, String>,
        element: &str,
        pos: u64,
    ) -> Result<Declared, GateError> {
        let count = |key: &str| -> Result<Option<u64>, GateError> {
            match attrs.get(key) {
                None => Ok(None),
                Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                    self.err(
                        pos,
                        format!("attribute `{key}` of <{element}> is not a count: `{v}`"),
                    )
                }),
            }
        };
        Ok(Declared {
            tests: count("tests")?,
            failures: count("failures")?,
            errors: count("errors")?,
            skipped: count("skipped")?,
        })
    }

    fn push(&mut self, name: String, pos: u64, kind: FrameKind) {
        let line = line_at(self.bytes, pos);
        self.stack.push(Frame { name, line, kind });
    }

    fn open_suite(
        &mut self,
        attrs: &BTreeMap<String, String>,
        name: String,
        pos: u64,
    ) -> Result<(), GateError> {
        let declared = self.declared(attrs, "testsuite", pos)?;
        let suite_name = attrs.get("name").cloned().unwrap_or_default();
        self.report.suites.push(Suite {
            name: suite_name,
            line: line_at(self.bytes, pos),
            counts: Counts::default(),
            declared,
        });
        self.suite_stack
            .push(self.report.suites.len().saturating_sub(1));
        self.push(name, pos, FrameKind::Suite);
        Ok(())
    }

    fn open(
        &mut self,
        e: &BytesStart<'_>,
        pos: u64,
        decoder: Decoder,
        empty: bool,
    ) -> Result<(), GateError> {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        let top = self.stack.last().map(|f| f.kind);
        if top.is_none() {
            if self.root_closed {
                return Err(self.err(
                    pos,
                    format!("a second root element <{name}>: not one JUnit XML report"),
                ));
            }
            self.root_seen = true;
            let attrs = self.attributes(e, pos, decoder)?;
            match name.as_str() {
                "testsuites" => {
                    let declared = self.declared(&attrs, "testsuites", pos)?;
                    self.report.root_declared = Some((declared, line_at(self.bytes, pos)));
                    self.root_name = attrs.get("name").cloned();
                    self.push(name, pos, FrameKind::Root);
                }
                "testsuite" => {
                    self.schema = attrs.get("xsi:noNamespaceSchemaLocation").cloned();
                    self.open_suite(&attrs, name, pos)?;
                }
                _ => {
                    return Err(self.err(
                        pos,
                        format!(
                        "expected a <testsuites> or <testsuite> root element, found <{name}>: not a JUnit XML report"
                    ),
                    ))
                }
            }
        } else if let Some(depth) = self.case.as_ref().map(|c| c.depth) {
            if self.stack.len() == depth {
                let attrs = self.attributes(e, pos, decoder)?;
                let message = attrs.get("message").map(|m| first_line(m));
                let new_depth = self.stack.len() + 1;
                if let Some(case) = &mut self.case {
                    match name.as_str() {
                        "failure" | "error" => {
                            let bad = if name == "failure" {
                                Bad::Failure
                            } else {
                                Bad::Error
                            };
                            let msg = message.filter(|m| !m.is_empty());
                            let slot = match bad {
                                Bad::Failure => &mut case.failure,
                                Bad::Error => &mut case.error,
                            };
                            *slot = Some(msg.clone().unwrap_or_default());
                            if msg.is_none() && !empty {
                                case.capture = Some((bad, new_depth, String::new()));
                            }
                        }
                        "skipped" => case.skipped = true,
                        "flakyFailure" | "flakyError" => case.flaky = true,
                        "testcase" | "testsuite" => {
                            return Err(self.err(pos, format!("<{name}> inside a <testcase>")))
                        }
                        // rerunFailure/rerunError accompany a final failure/error; output
                        // elements and properties carry no outcome.
                        _ => {}
                    }
                }
            }
            self.push(name, pos, FrameKind::Other);
        } else {
            match (name.as_str(), top) {
                ("testsuite", Some(FrameKind::Root | FrameKind::Suite)) => {
                    let attrs = self.attributes(e, pos, decoder)?;
                    self.open_suite(&attrs, name, pos)?;
                }
                ("testcase", Some(FrameKind::Suite)) => {
                    let attrs = self.attributes(e, pos, decoder)?;
                    self.case = Some(Case {
                        name: attrs.get("name").cloned().unwrap_or_default(),
                        classname: attrs.get("classname").cloned().unwrap_or_default(),
                        depth: self.stack.len() + 1,
                        failure: None,
                        error: None,
                        skipped: false,
                        flaky: false,
                        capture: None,
                    });
                    self.push(name, pos, FrameKind::Case);
                }
                ("testcase", Some(FrameKind::Root)) => {
                    return Err(self.err(pos, "<testcase> outside any <testsuite>"));
                }
                _ => self.push(name, pos, FrameKind::Other),
            }
        }
        if empty {
            self.close(pos)?;
        }
        Ok(())
    }

    fn close(&mut self, pos: u64) -> Result<(), GateError> {
        let depth = self.stack.len();
        let frame = self
            .stack
            .pop()
            .ok_or_else(|| self.err(pos, "a closing tag without an opening one"))?;
        match frame.kind {
            FrameKind::Root => {}
            FrameKind::Suite => {
                self.suite_stack.pop();
            }
            FrameKind::Case => self.finish_case(),
            FrameKind::Other => {
                if let Some(case) = &mut self.case {
                    if case.capture.as_ref().is_some_and(|(_, d, _)| *d == depth) {
                        if let Some((bad, _, text)) = case.capture.take() {
                            let slot = match bad {
                                Bad::Failure => &mut case.failure,
                                Bad::Error => &mut case.error,
                            };
                            *slot = Some(first_line(&text));
                        }
                    }
                }
            }
        }
        if self.stack.is_empty() {
            self.root_closed = true;
        }
        Ok(())
    }

    fn finish_case(&mut self) {
        let Some(case) = self.case.take() else {
            return;
        };
        let outcome = if case.error.is_some() {
            Outcome::Errored
        } else if case.failure.is_some() {
            Outcome::Failed
        } else if case.skipped {
            Outcome::Skipped
        } else if case.flaky {
            Outcome::Flaky
        } else {
            Outcome::Passed
        };
        self.report.counts.add(outcome);
        for &i in &self.suite_stack {
            if let Some(s) = self.report.suites.get_mut(i) {
                s.counts.add(outcome);
            }
        }
        let suite = self
            .suite_stack
            .last()
            .and_then(|&i| self.report.suites.get(i))
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let (kind, message) = match (outcome, case.error, case.failure) {
            (Outcome::Errored, Some(m), _) => ("error", m),
            (Outcome::Failed, _, Some(m)) => ("failure", m),
            (Outcome::Flaky, _, _) => {
                self.report
                    .flaky
                    .push(display_name(&suite, &case.classname, &case.name));
                return;
            }
            _ => return,
        };
        self.report.failed.push(FailedTest {
            report: self.path.to_owned(),
            suite,
            classname: case.classname,
            name: case.name,
            outcome: kind,
            message,
        });
    }

    fn finish(mut self) -> Result<ParsedReport, GateError> {
        if !self.root_seen {
            return Err(invalid_input(
                self.path,
                None,
                "no XML root element: the file is empty or not a JUnit XML report",
            ));
        }
        if let Some(open) = self.stack.last() {
            return Err(invalid_input(
                self.path,
                Some(line_at(self.bytes, self.bytes.len() as u64)),
                format!(
                    "the file ends before <{}> opened at line {} is closed: truncated?",
                    open.name, open.line
                ),
            ));
        }
        self.report.tool = self.detect_tool();
        Ok(self.report)
    }

    /// The tool that wrote the report, from the marks each one leaves.
    fn detect_tool(&self) -> &'static str {
        let first_suite = self.report.suites.first().map(|s| s.name.as_str());
        match (
            self.root_name.as_deref(),
            first_suite,
            self.schema.as_deref(),
        ) {
            (Some("nextest-run"), _, _) => "nextest",
            (Some("pytest tests"), _, _) | (None, Some("pytest"), _) => "pytest",
            (Some("jest tests"), _, _) => "jest",
            (_, _, Some(s)) if s.contains("surefire") || s.contains("failsafe") => "surefire",
            _ => "junit",
        }
    }
}

fn display_name(suite: &str, classname: &str, name: &str) -> String {
    if classname.is_empty() || classname == name {
        if suite.is_empty() || suite == name {
            name.to_owned()
        } else {
            format!("{suite} {name}")
        }
    } else {
        format!("{classname} {name}")
    }
}
