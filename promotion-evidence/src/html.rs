//! The static release-readiness page: one self-contained HTML file made from a [`Report`].
//!
//! Inline CSS, inline SVG charts, no script and no external resource of any kind, so it can be
//! mailed, archived next to an evidence pack, or served as a file. Per pipeline it shows the
//! DORA figures, where each recent release stands in each stage with its compliance status,
//! each gate's latest verdict with its evidence summary, gate pass rates, a chart of lead times
//! and one of pass rates over time, the approval history, and the break-glass overrides, which
//! are flagged in red wherever they appear.
//!
//! Every text that comes from events (release, stage, gate and principal names, summaries,
//! comments, justifications) is HTML-escaped; only the page's own markup is written raw.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::report::{
    Compliance, DurationStats, LeadTimePoint, PassRatePoint, PipelineReport, Report,
};

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Bidi controls, zero-width and other invisible characters are shown, not obeyed:
            // a right-to-left override must not reorder the rest of a row.
            c if promotion_core::text::is_invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; --muted:#57606a; --line:#d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:#1f2328;
       margin: 0; padding: 24px 32px; background:#f6f8fa; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.muted { color: var(--muted); }
section.pipeline { background:#fff; border:1px solid var(--line); border-radius:8px; padding: 8px 20px 20px; margin-top: 20px; }
.tiles { display:grid; gap:12px; grid-template-columns: repeat(auto-fit, minmax(230px, 1fr)); }
.tile { border:1px solid var(--line); border-radius:6px; padding:8px 12px; background:#fff; }
.tile .v { font-size: 20px; font-weight: 600; }
.tile .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background:#f6f8fa; font-weight: 600; font-size: 12px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display:inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px; font-weight: 600;
         border: 1px solid transparent; white-space: nowrap; }
.s-promoted, .o-pass, .c-compliant { background:#dafbe1; color: var(--ok); border-color:#aceebb; }
.s-failed, .s-rejected, .s-aborted, .s-rolled_back, .s-rolling_back, .o-fail, .o-error, .c-blocked
  { background:#ffebe9; color: var(--bad); border-color:#ffcecb; }
.s-awaiting_approval, .s-checking, .s-scheduled, .s-rolling_out, .s-verifying, .s-soaking, .s-ready,
.o-pending, .o-inconclusive, .c-in_progress { background:#fff8c5; color: var(--warn); border-color:#f5e0a0; }
.s-waiting { background:#f6f8fa; color: var(--muted); border-color: var(--line); }
.override, .c-exception { background:#cf222e; color:#fff; border-color:#a40e26; }
tr.override-row td { background:#ffebe9; }
.flag { color:#fff; background:#cf222e; border-radius:3px; padding:0 4px; font-size:11px; font-weight:700; margin-left:4px; }
.charts { display:flex; gap:24px; flex-wrap:wrap; }
.chart { border:1px solid var(--line); border-radius:6px; padding:8px; background:#fff; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
"#;

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
        .replace('T', " ")
        .replace('Z', " UTC")
}

fn human(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 2.0 * 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

fn stats(s: Option<&DurationStats>) -> String {
    s.map_or_else(
        || "—".to_owned(),
        |s| {
            format!(
                "median {} · p90 {} ({} samples)",
                human(s.median_seconds),
                human(s.p90_seconds),
                s.count
            )
        },
    )
}

fn badge(class_prefix: &str, value: &str, text: &str) -> String {
    let class: String = value
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!(
        "<span class=\"badge {class_prefix}-{class}\">{}</span>",
        escape(text)
    )
}

/// Renders `report` as one self-contained HTML page.
pub fn render_html(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>Release readiness</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n<h1>Release readiness</h1>\n");
    let _ = writeln!(
        out,
        "<p class=\"muted\">Period {} to {}; state as of the end of the period.</p>",
        escape(&time(report.period.from)),
        escape(&time(report.period.to))
    );
    if report.pipelines.is_empty() {
        out.push_str("<p>No release was registered before the end of the period.</p>\n");
    }
    for p in &report.pipelines {
        pipeline(&mut out, p, report);
    }
    refused_attempts(&mut out, &report.refused_attempts);
    out.push_str("</body>\n</html>\n");
    out
}

/// The security stream's refused attempts: who tried what, and why they were refused.
fn refused_attempts(out: &mut String, attempts: &[crate::RefusedAttempt]) {
    if attempts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<section class=\"refused\">\n<h2>Refused attempts <span class=\"muted\">{} in the period</span></h2>\n<table class=\"refused\">\n<tr><th>When</th><th>Who</th><th>Tried</th><th>Release</th><th>Why refused</th></tr>",
        attempts.len()
    );
    for a in attempts {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{} <span class=\"muted\">({})</span></td><td>{} <code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&time(a.at)),
            escape(&a.principal),
            escape(&a.groups.join(", ")),
            escape(&a.action),
            escape(&a.stage),
            escape(&a.release.short()),
            escape(&a.refusal)
        );
    }
    out.push_str("</table>\n</section>\n");
}

fn pipeline(out: &mut String, p: &PipelineReport, report: &Report) {
    let _ = writeln!(
        out,
        "<section class=\"pipeline\">\n<h2>Pipeline {} <span class=\"muted\">versions {}</span></h2>",
        escape(&p.pipeline),
        escape(&p.versions.join(", "))
    );
    let _ = writeln!(
        out,
        "<p class=\"muted\">Stages: {}. Production: {}. {} release(s) registered.</p>",
        escape(&p.stages.join(" → ")),
        if p.production_stages.is_empty() {
            "none found".to_owned()
        } else {
            escape(&p.production_stages.join(", "))
        },
        p.releases_total
    );

    // DORA tiles.
    let d = &p.dora;
    out.push_str("<div class=\"tiles\">\n");
    for (k, v, detail) in [
        (
            "Deployment frequency",
            format!("{:.2} / day", d.deployments_per_day),
            format!(
                "{} production promotions · {:.1} / week",
                d.production_promotions, d.deployments_per_week
            ),
        ),
        (
            "Lead time for changes",
            d.lead_time
                .as_ref()
                .map_or_else(|| "—".to_owned(), |s| human(s.median_seconds)),
            stats(d.lead_time.as_ref()),
        ),
        (
            "Change failure rate",
            percent(d.change_failure_rate),
            format!(
                "{} of {} production deployments failed",
                d.failed_deployments, d.production_deployments
            ),
        ),
        (
            "Time to restore",
            d.time_to_restore
                .as_ref()
                .map_or_else(|| "—".to_owned(), |s| human(s.median_seconds)),
            format!(
                "{}; {} unrestored",
                stats(d.time_to_restore.as_ref()),
                d.unrestored_failures
            ),
        ),
    ] {
        let _ = writeln!(
            out,
            "<div class=\"tile\"><div class=\"k\">{}</div><div class=\"v\">{}</div><div class=\"muted\">{}</div></div>",
            escape(k),
            escape(&v),
            escape(&detail)
        );
    }
    out.push_str("</div>\n");

    // Releases by stage.
    out.push_str(
        "<h3>Recent releases</h3>\n<table class=\"releases\">\n<tr><th>Release</th><th>Commit</th>",
    );
    for s in &p.stages {
        let _ = write!(out, "<th>{}</th>", escape(s));
    }
    out.push_str("<th>Compliance</th></tr>\n");
    for r in &p.releases {
        let _ = write!(
            out,
            "<tr><td><strong>{}</strong><br><code class=\"muted\">{}</code></td><td><code>{}</code><br><span class=\"muted\">{}</span></td>",
            escape(&r.name),
            escape(&r.release.short()),
            escape(&r.commit.chars().take(12).collect::<String>()),
            escape(&time(r.committed_at))
        );
        for s in &p.stages {
            match r.stages.iter().find(|c| &c.stage == s) {
                Some(c) => {
                    let _ = write!(
                        out,
                        "<td>{}{}</td>",
                        badge("s", &c.status, &c.status.replace('_', " ")),
                        if c.overrides > 0 {
                            "<span class=\"flag\" title=\"break-glass override\">OVERRIDE</span>"
                        } else {
                            ""
                        }
                    );
                }
                None => {
                    let _ = write!(out, "<td>{}</td>", badge("s", "waiting", "waiting"));
                }
            }
        }
        let compliance = match r.compliance {
            Compliance::Exception => format!(
                "{} <span class=\"muted\">{} override(s)</span>",
                badge("c", "exception", "exception: break glass"),
                r.overrides
            ),
            c => badge("c", c.class(), c.label()),
        };
        let _ = writeln!(out, "<td>{compliance}</td></tr>");
    }
    out.push_str("</table>\n");

    // Latest verdicts.
    out.push_str("<h3>Latest gate verdicts</h3>\n<table class=\"verdicts\">\n<tr><th>Stage</th><th>Phase</th><th>Gate</th><th>Verdict</th><th>Evidence</th><th>Release</th><th>When</th></tr>\n");
    for v in &p.latest_verdicts {
        let overridden = v.overridden_by.as_ref().map_or(String::new(), |who| {
            format!(
                " <span class=\"badge override\">overridden by {}</span>",
                escape(who)
            )
        });
        let evidence = match (&v.summary, &v.error) {
            (Some(s), _) => escape(s),
            (None, Some(e)) => escape(e),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}{overridden}</td><td>{evidence}{}</td><td>{}</td><td>{}</td></tr>",
            if v.overridden_by.is_some() { " class=\"override-row\"" } else { "" },
            escape(&v.stage),
            escape(&v.phase),
            escape(&v.gate),
            badge("o", &v.outcome, &v.outcome),
            v.producer.as_ref().map_or(String::new(), |p| format!(
                "<br><span class=\"muted\">by {}{}</span>",
                escape(p),
                if v.attachments > 0 { format!(", {} attachment(s)", v.attachments) } else { String::new() }
            )),
            escape(&v.release_name),
            escape(&time(v.at))
        );
    }
    out.push_str("</table>\n");

    // Charts.
    out.push_str("<h3>Over the period</h3>\n<div class=\"charts\">\n");
    lead_time_chart(out, &p.lead_times, report);
    pass_rate_chart(out, &p.pass_rates);
    out.push_str("</div>\n");

    // Gate pass rates.
    out.push_str("<h3>Gate pass rates</h3>\n<table class=\"gates\">\n<tr><th>Stage</th><th>Phase</th><th>Gate</th><th>Evaluations</th><th>Pass</th><th>Fail</th><th>Inconclusive</th><th>Errors</th><th>Pass rate</th></tr>\n");
    for g in &p.gates {
        let width = g.pass_rate.map_or(0.0, |r| r * 120.0);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><svg width=\"124\" height=\"12\" role=\"img\" aria-label=\"pass rate\"><rect x=\"0\" y=\"1\" width=\"120\" height=\"10\" fill=\"#ffebe9\"/><rect x=\"0\" y=\"1\" width=\"{width:.1}\" height=\"10\" fill=\"#2da44e\"/></svg> {}</td></tr>",
            escape(&g.stage),
            escape(&g.phase),
            escape(&g.gate),
            g.evaluations,
            g.passed,
            g.failed,
            g.inconclusive,
            g.errors,
            percent(g.pass_rate)
        );
    }
    out.push_str("</table>\n");

    // Failures.
    if !p.dora.failures.is_empty() {
        out.push_str("<h3>Production failures</h3>\n<table class=\"failures\">\n<tr><th>When</th><th>Release</th><th>Stage</th><th>What</th><th>Restored</th></tr>\n");
        for f in &p.dora.failures {
            let restored = match (&f.restored_at, &f.restored_by) {
                (Some(at), Some(by)) => format!(
                    "{} by {} (after {})",
                    escape(&time(*at)),
                    escape(by),
                    human((*at - f.failed_at).num_milliseconds() as f64 / 1000.0)
                ),
                _ => "<span class=\"badge o-fail\">not yet</span>".to_owned(),
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{restored}</td></tr>",
                escape(&time(f.failed_at)),
                escape(&f.release_name),
                escape(&f.stage),
                escape(&f.what)
            );
        }
        out.push_str("</table>\n");
    }

    // Approvals.
    let _ = writeln!(
        out,
        "<h3>Approval history</h3>\n<p class=\"muted\">Waiting for approval: {}; {} request(s) still open.</p>",
        escape(&stats(p.approval_wait.as_ref())),
        p.approvals_pending
    );
    out.push_str("<table class=\"approvals\">\n<tr><th>When</th><th>Release</th><th>Stage</th><th>Who</th><th>Decision</th><th>Comment</th><th>Bound to</th></tr>\n");
    for a in &p.approvals {
        let bound = match (&a.evidence_digest, &a.pipeline_version) {
            (Some(d), Some(v)) => format!(
                "evidence <code>{}</code>, pipeline v{}",
                escape(&d.short(12)),
                escape(v)
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} <span class=\"muted\">({})</span></td><td>{}</td><td>{}</td><td>{bound}</td></tr>",
            escape(&time(a.at)),
            escape(&a.release_name),
            escape(&a.stage),
            escape(&a.principal),
            escape(&a.groups.join(", ")),
            badge("o", if a.decision == "approved" { "pass" } else { "fail" }, &a.decision),
            escape(&a.comment)
        );
    }
    out.push_str("</table>\n");

    // Overrides.
    let _ = writeln!(
        out,
        "<h3>Break-glass overrides {}</h3>",
        if p.overrides.is_empty() {
            "<span class=\"muted\">(none)</span>".to_owned()
        } else {
            format!(
                "<span class=\"badge override\">{}</span>",
                p.overrides.len()
            )
        }
    );
    if !p.overrides.is_empty() {
        out.push_str("<table class=\"overrides\">\n<tr><th>When</th><th>Release</th><th>Stage</th><th>Gate</th><th>Overridden</th><th>Who</th><th>Justification</th></tr>\n");
        for o in &p.overrides {
            let _ = writeln!(
                out,
                "<tr class=\"override-row\"><td>{}</td><td>{}</td><td>{}</td><td>{} <span class=\"muted\">({})</span></td><td><span class=\"badge override\">OVERRIDE</span> {}</td><td>{} <span class=\"muted\">({})</span></td><td>{}</td></tr>",
                escape(&time(o.at)),
                escape(&o.release_name),
                escape(&o.stage),
                escape(&o.gate),
                escape(&o.phase),
                escape(&o.overridden),
                escape(&o.principal),
                escape(&o.groups.join(", ")),
                escape(&o.justification),
            );
            if let Some(stake) = &o.self_interest {
                let _ = writeln!(
                    out,
                    "<tr class=\"override-row\"><td colspan=\"7\"><span class=\"badge override\">OWN RELEASE</span> {} overrode a gate although {}; the pipeline allows it</td></tr>",
                    escape(&o.principal),
                    escape(stake)
                );
            }
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

const W: f64 = 520.0;
const H: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 16.0;

fn lead_time_chart(out: &mut String, points: &[LeadTimePoint], report: &Report) {
    let span = (report.period.to - report.period.from).num_seconds().max(1) as f64;
    let max_hours = nice_max(
        points
            .iter()
            .map(|p| p.seconds / 3600.0)
            .fold(0.0_f64, f64::max),
    );
    let x = |at: DateTime<Utc>| {
        LEFT + (at - report.period.from).num_seconds() as f64 / span * (W - LEFT - 8.0)
    };
    let y = |hours: f64| TOP + (1.0 - hours / max_hours) * (H - TOP - BOTTOM);
    let _ = write!(
        out,
        "<div class=\"chart\"><div class=\"k muted\">Lead time for changes (hours), per production promotion</div>\
<svg class=\"lead-time\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"lead time chart\">"
    );
    axes(out, max_hours, "h");
    let path: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.at), y(p.seconds / 3600.0)))
        .collect();
    if path.len() > 1 {
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.join(" ")
        );
    }
    for p in points {
        let _ = write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#0969da\"><title>{}: {}</title></circle>",
            x(p.at),
            y(p.seconds / 3600.0),
            escape(&p.release_name),
            escape(&human(p.seconds))
        );
    }
    if points.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{:.0}\" y=\"{:.0}\" fill=\"#57606a\">no production promotion in the period</text>",
            LEFT + 20.0,
            H / 2.0
        );
    }
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"{:.0}\" font-size=\"11\" fill=\"#57606a\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\" fill=\"#57606a\" text-anchor=\"end\">{}</text>",
        H - 8.0,
        escape(&report.period.from.format("%Y-%m-%d").to_string()),
        W - 8.0,
        H - 8.0,
        escape(&report.period.to.format("%Y-%m-%d").to_string())
    );
    out.push_str("</svg></div>\n");
}

/// A round upper bound for an axis (a multiple of 4 hours up to a day, then of whole days),
/// so that the four grid lines fall on round values.
fn nice_max(max: f64) -> f64 {
    [4.0, 8.0, 12.0, 24.0, 48.0, 96.0]
        .into_iter()
        .find(|n| max <= *n)
        .unwrap_or_else(|| (max / 96.0).ceil() * 96.0)
}

fn axes(out: &mut String, max: f64, unit: &str) {
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.0}\" stroke=\"#d0d7de\"/><line x1=\"{LEFT}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#d0d7de\"/>",
        H - BOTTOM,
        H - BOTTOM,
        W - 8.0,
        H - BOTTOM
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let yy = TOP + (1.0 - f64::from(i) / 4.0) * (H - TOP - BOTTOM);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.0}\" y2=\"{yy:.1}\" stroke=\"#eaeef2\"/><text x=\"{:.0}\" y=\"{:.1}\" font-size=\"11\" fill=\"#57606a\" text-anchor=\"end\">{v:.0}{unit}</text>",
            W - 8.0,
            LEFT - 4.0,
            yy + 4.0
        );
    }
}

fn pass_rate_chart(out: &mut String, points: &[PassRatePoint]) {
    let _ = write!(
        out,
        "<div class=\"chart\"><div class=\"k muted\">Gate pass rate (%), per {}</div>\
<svg class=\"pass-rate\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"pass rate chart\">",
        if points.first().is_some_and(|p| p.days == 7) { "week" } else { "day" }
    );
    axes(out, 100.0, "%");
    let n = points.len().max(1) as f64;
    let slot = (W - LEFT - 8.0) / n;
    for (i, p) in points.iter().enumerate() {
        let x0 = LEFT + i as f64 * slot + slot * 0.15;
        let width = slot * 0.7;
        if p.verdicts == 0 {
            continue;
        }
        let rate = p.passed as f64 / p.verdicts as f64;
        let height = rate * (H - TOP - BOTTOM);
        let colour = if rate >= 0.999 {
            "#2da44e"
        } else if rate >= 0.8 {
            "#bf8700"
        } else {
            "#cf222e"
        };
        let _ = write!(
            out,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"{colour}\"><title>{}: {} of {} verdicts passed</title></rect>",
            H - BOTTOM - height,
            escape(&p.day.to_string()),
            p.passed,
            p.verdicts
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            out,
            "<text x=\"{LEFT}\" y=\"{:.0}\" font-size=\"11\" fill=\"#57606a\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\" fill=\"#57606a\" text-anchor=\"end\">{}</text>",
            H - 8.0,
            escape(&first.day.to_string()),
            W - 8.0,
            H - 8.0,
            escape(&last.day.to_string())
        );
    }
    out.push_str("</svg></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
        assert_eq!(escape("ok\u{202E}kO"), "ok\\u{202e}kO");
        assert_eq!(escape("\u{1b}[32mAPPROVED"), "\\u{1b}[32mAPPROVED");
    }

    #[test]
    fn axes_end_on_round_values() {
        assert_eq!(nice_max(0.0), 4.0);
        assert_eq!(nice_max(2.5), 4.0);
        assert_eq!(nice_max(28.0), 48.0);
        assert_eq!(nice_max(100.0), 192.0);
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human(30.0), "30 s");
        assert_eq!(human(600.0), "10 min");
        assert_eq!(human(57_600.0), "16.0 h");
        assert_eq!(human(3.0 * 86_400.0), "3.0 d");
    }

    #[test]
    fn an_empty_report_is_a_complete_page() {
        let period = crate::Period::new(
            "2026-11-01T00:00:00Z".parse().unwrap(),
            "2026-11-08T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let html = render_html(&Report {
            period,
            pipelines: Vec::new(),
            refused_attempts: Vec::new(),
        });
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.ends_with("</html>\n"));
        assert!(html.contains("No release was registered"));
        assert!(!html.contains("<script"));
    }
}
