//! Unit tests of the vulnerability gate.

use super::*;
use std::fmt;
use std::path::{Path, PathBuf};

use promotion_core::{Gate, GateError, GateKind, Verdict};
use serde_json::{json, Value};

use promotion_core::testing::GateProbe;
use promotion_core::Digest;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vuln")
        .join(rel)
}

fn bytes(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap()
}

fn sarif(rel: &str) -> ScanReport {
    parse_sarif(rel, &bytes(rel)).unwrap()
}

fn audit(rel: &str) -> ScanReport {
    parse_cargo_audit(rel, &bytes(rel), Severity::Low).unwrap()
}

fn find<'a>(report: &'a ScanReport, id: &str) -> &'a Finding {
    report
        .findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no finding {id} in {report:#?}"))
}

fn run(gate: &VulnGate, probe: &GateProbe) -> Result<Verdict, GateError> {
    futures::executor::block_on(probe.evaluate(gate))
}

fn at(time: &str) -> GateProbe {
    GateProbe::new().at(time.parse().unwrap())
}

fn invalid_input<T: fmt::Debug>(result: Result<T, GateError>) -> (String, String) {
    match result {
        Err(GateError::InvalidInput { what, message }) => (what, message),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

fn path(rel: &str) -> String {
    data(rel).display().to_string()
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect()
}

// --- normalisation -------------------------------------------------------------------

#[test]
fn vuln_trivy_sarif_is_normalised() {
    let r = sarif("sarif/trivy-fs.sarif");
    assert_eq!(r.tools, ["Trivy"]);
    assert_eq!(r.findings.len(), 4);
    let f = find(&r, "CVE-2021-25900");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.severity_basis, "security-severity 9.8");
    assert_eq!(f.tool, "Trivy");
    assert_eq!(f.location.as_deref(), Some("Cargo.lock: smallvec@0.6.13"));
    assert_eq!(
        f.title,
        "smallvec: Buffer overflow in SmallVec::insert_many"
    );
    assert_eq!(f.package, None, "SARIF carries no package");
    assert_eq!(find(&r, "CVE-2021-45710").severity, Severity::High);
    assert_eq!(find(&r, "CVE-2023-49092").severity, Severity::Medium);
    let ds002 = find(&r, "DS002");
    assert_eq!(ds002.severity, Severity::High);
    assert_eq!(ds002.location.as_deref(), Some("Dockerfile"));
}

#[test]
fn vuln_codeql_rules_in_tool_extensions() {
    let r = sarif("sarif/codeql-javascript.sarif");
    assert_eq!(r.tools, ["CodeQL"]);
    let ssrf = find(&r, "js/request-forgery");
    assert_eq!(ssrf.severity, Severity::Critical);
    assert_eq!(ssrf.location.as_deref(), Some("src/routes/proxy.js:14"));
    assert_eq!(ssrf.title, "Server-side request forgery");
    // security-severity 7.5 wins over the rule's level `warning`.
    let rate = find(&r, "js/missing-rate-limiting");
    assert_eq!(rate.severity, Severity::High);
    assert_eq!(rate.severity_basis, "security-severity 7.5");
    // No score and no result level: the rule's default level decides.
    let unused = find(&r, "js/unused-local-variable");
    assert_eq!(unused.severity, Severity::Low);
    assert_eq!(unused.severity_basis, "rule default level note");
}

#[test]
fn vuln_semgrep_levels_and_suppressions() {
    let r = sarif("sarif/semgrep-python.sarif");
    assert_eq!(r.tools, ["Semgrep OSS"]);
    assert_eq!(
        r.findings.len(),
        3,
        "a suppressed result is still a finding"
    );
    let shell: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.id.ends_with("subprocess-shell-true"))
        .collect();
    assert_eq!(shell.len(), 2);
    assert!(shell
        .iter()
        .all(|f| f.severity == Severity::High && f.severity_basis == "rule default level error"));
    assert_eq!(shell.iter().filter(|f| f.suppressed).count(), 1);
    assert_eq!(
        find(
            &r,
            "python.flask.security.audit.debug-enabled.debug-enabled"
        )
        .severity,
        Severity::Medium
    );
}

#[test]
fn vuln_grype_scores_on_rules_without_levels() {
    let r = sarif("sarif/grype-dir.sarif");
    assert_eq!(r.tools, ["grype"]);
    let f = find(&r, "GHSA-43w2-9j62-hq99-smallvec");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.location.as_deref(), Some("/Cargo.lock:1"));
    assert_eq!(
        find(&r, "GHSA-c38w-74pg-36hr-rsa").severity,
        Severity::Medium
    );
}

#[test]
fn vuln_zero_score_falls_back_to_level_and_absent_results_are_skipped() {
    let r = sarif("sarif/trivy-edge-cases.sarif");
    // The smallvec result is `absent` (fixed since the baseline): not a finding.
    assert_eq!(r.findings.len(), 1);
    let f = find(&r, "CVE-2024-24576");
    assert_eq!(f.severity, Severity::Low);
    assert_eq!(f.severity_basis, "level note");
}

#[test]
fn vuln_cargo_audit_real_report() {
    let r = audit("cargo-audit/vulnerable.json");
    assert_eq!(r.tools, ["cargo-audit"]);
    let smallvec = find(&r, "RUSTSEC-2021-0003");
    assert_eq!(smallvec.severity, Severity::Critical);
    assert_eq!(smallvec.package.as_deref(), Some("smallvec"));
    assert_eq!(smallvec.version.as_deref(), Some("0.6.13"));
    assert_eq!(smallvec.subject(), "smallvec 0.6.13");
    assert!(smallvec.aliases.iter().any(|a| a == "CVE-2021-25900"));
    assert_eq!(
        smallvec.severity_basis,
        "CVSS 9.8 (CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H)"
    );
    assert_eq!(find(&r, "RUSTSEC-2020-0071").severity, Severity::Medium);
    assert_eq!(find(&r, "RUSTSEC-2023-0071").severity, Severity::Medium);
    let tokio = find(&r, "RUSTSEC-2021-0124");
    assert_eq!(tokio.severity, Severity::High);
    assert_eq!(
        tokio.severity_basis,
        "no CVSS in the advisory: treated as high"
    );
    let unmaintained = find(&r, "RUSTSEC-2020-0016");
    assert_eq!(unmaintained.severity, Severity::Low);
    assert_eq!(unmaintained.package.as_deref(), Some("net2"));
    assert_eq!(find(&r, "RUSTSEC-2023-0005").severity, Severity::Low);
    assert_eq!(r.findings.len(), 6);

    let info = parse_cargo_audit(
        "a.json",
        &bytes("cargo-audit/vulnerable.json"),
        Severity::Info,
    )
    .unwrap();
    assert_eq!(find(&info, "RUSTSEC-2020-0016").severity, Severity::Info);
    assert!(audit("cargo-audit/clean.json").findings.is_empty());
}

#[test]
fn vuln_cvss_scores_match_cargo_audit_own_sarif() {
    // cargo-audit's SARIF output carries the score its `cvss` crate computed.
    let json: Value = serde_json::from_slice(&bytes("cargo-audit/vulnerable.json")).unwrap();
    let log: Value = serde_json::from_slice(&bytes("cargo-audit/vulnerable.sarif")).unwrap();
    let mut compared = 0;
    for vuln in json["vulnerabilities"]["list"].as_array().unwrap() {
        let id = vuln["advisory"]["id"].as_str().unwrap();
        let rule = log["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap();
        match vuln["advisory"]["cvss"].as_str() {
            Some(vector) => {
                let ours = cvss_v3_base_score(vector).unwrap().unwrap();
                let theirs: f64 = rule["properties"]["security-severity"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(ours, theirs, "{id} {vector}");
                compared += 1;
            }
            None => assert!(rule["properties"].get("security-severity").is_none()),
        }
    }
    assert_eq!(compared, 3);
    // Both readings of the same run agree on every vulnerability's severity.
    let from_sarif = sarif("cargo-audit/vulnerable.sarif");
    for f in audit("cargo-audit/vulnerable.json")
        .findings
        .iter()
        .filter(|f| !f.severity_basis.starts_with("cargo-audit warning"))
    {
        assert_eq!(find(&from_sarif, &f.id).severity, f.severity, "{}", f.id);
    }
}

#[test]
fn vuln_cvss_v3_known_vectors() {
    let known = [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 6.2),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        // Temporal metrics do not change the base score.
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C",
            9.8,
        ),
    ];
    for (vector, score) in known {
        assert_eq!(cvss_v3_base_score(vector), Ok(Some(score)), "{vector}");
    }
    assert_eq!(
        cvss_v3_base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
        Ok(None)
    );
    for bad in [
        "CVSS:3.1/AV:N/AC:L",
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/garbage",
    ] {
        assert!(cvss_v3_base_score(bad).is_err(), "{bad}");
    }
}

#[test]
fn vuln_severity_bands_and_names() {
    let bands = [
        (0.0, Severity::Info),
        (0.1, Severity::Low),
        (3.9, Severity::Low),
        (4.0, Severity::Medium),
        (6.9, Severity::Medium),
        (7.0, Severity::High),
        (8.9, Severity::High),
        (9.0, Severity::Critical),
        (10.0, Severity::Critical),
    ];
    for (score, sev) in bands {
        assert_eq!(Severity::from_cvss(score), Some(sev), "{score}");
    }
    assert_eq!(Severity::from_cvss(-0.1), None);
    assert_eq!(Severity::from_cvss(f64::NAN), None);
    assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
    assert!("severe".parse::<Severity>().is_err());
    assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
    assert_eq!(serde_json::to_value(Severity::Medium).unwrap(), "medium");
}

// --- the gate -------------------------------------------------------------------------

#[test]
fn vuln_clean_reports_pass() {
    let gate = VulnGate::builder()
        .sarif(data("sarif/trivy-clean.sarif"))
        .cargo_audit(data("cargo-audit/clean.json"))
        .build()
        .unwrap();
    let verdict = run(&gate, &GateProbe::new()).unwrap();
    let Verdict::Pass(ev) = verdict else {
        panic!("expected a pass: {verdict:?}")
    };
    assert_eq!(
        ev.summary,
        "no unaccepted finding at or above high; found 0 critical, 0 high, 0 medium in 2 \
         reports (Trivy, cargo-audit)"
    );
    assert_eq!(ev.facts["critical"], "0");
    assert_eq!(ev.facts["high"], "0");
    assert_eq!(ev.producer, "vulnerabilities");
    let names: Vec<&str> = ev.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            path("sarif/trivy-clean.sarif"),
            path("cargo-audit/clean.json")
        ]
    );
    assert_eq!(
        ev.attachments[1].digest,
        Digest::of(&bytes("cargo-audit/clean.json"))
    );
}

#[test]
fn vuln_high_finding_fails() {
    let gate = VulnGate::builder()
        .sarif(data("sarif/trivy-fs.sarif"))
        .build()
        .unwrap();
    let verdict = run(&gate, &GateProbe::new()).unwrap();
    let Verdict::Fail(ev) = verdict else {
        panic!("expected a fail: {verdict:?}")
    };
    assert_eq!(
        ev.summary,
        "3 findings at or above high not accepted: CVE-2021-25900 critical in Cargo.lock: \
         smallvec@0.6.13 (Trivy), CVE-2021-45710 high in Cargo.lock: tokio@1.13.0 (Trivy), \
         DS002 high in Dockerfile (Trivy); found 1 critical, 2 high, 1 medium in 1 report \
         (Trivy)"
    );
    assert_eq!(ev.facts["critical"], "1");
    assert_eq!(ev.facts["high"], "2");
    assert_eq!(ev.facts["blocking"], "3");
    assert_eq!(ev.data["blocking_total"], 3);
    assert_eq!(
        ids(&ev.data["blocking"]),
        ["CVE-2021-25900", "CVE-2021-45710", "DS002"]
    );
    assert_eq!(ev.data["threshold"], "high");
    assert_eq!(ev.data["counts"]["Trivy"]["medium"], 1);
    assert_eq!(ev.attachments.len(), 1);
    assert_eq!(
        ev.attachments[0].digest,
        Digest::of(&bytes("sarif/trivy-fs.sarif"))
    );
}

fn accepted_gate() -> VulnGate {
    VulnGate::builder()
        .sarif(data("sarif/trivy-fs.sarif"))
        .cargo_audit(data("cargo-audit/vulnerable.json"))
        .accepted_risks(data("accept/accepted.toml"))
        .build()
        .unwrap()
}

#[test]
fn vuln_accepted_high_findings_pass() {
    let verdict = run(&accepted_gate(), &GateProbe::new()).unwrap();
    let Verdict::Pass(ev) = verdict else {
        panic!("expected a pass: {verdict:?}")
    };
    assert_eq!(
        ev.summary,
        "no unaccepted finding at or above high; found 2 critical (2 accepted), 3 high (3 \
         accepted), 3 medium, 2 low in 2 reports (Trivy, cargo-audit)"
    );
    assert_eq!(ev.data["accepted_total"], 5);
    let smallvec = ev.data["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "RUSTSEC-2021-0003")
        .unwrap();
    // Accepted through its alias CVE-2021-25900.
    assert_eq!(smallvec["acceptance"]["id"], "CVE-2021-25900");
    assert_eq!(smallvec["acceptance"]["owner"], "dana@example.com");
    assert_eq!(smallvec["acceptance"]["expires"], "2027-01-31T00:00:00Z");
    assert_eq!(smallvec["acceptance"]["entry"], 1);
    assert_eq!(ev.data["expired_acceptances"], json!([]));
    // Accepted findings still count in the facts.
    assert_eq!(ev.facts["critical"], "2");
    assert_eq!(ev.facts["blocking"], "0");
    let names: Vec<&str> = ev.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            path("sarif/trivy-fs.sarif"),
            path("cargo-audit/vulnerable.json"),
            path("accept/accepted.toml")
        ]
    );
    assert_eq!(
        ev.attachments[2].digest,
        Digest::of(&bytes("accept/accepted.toml"))
    );
    assert_eq!(ev.data["accepted_risks"]["entries"], 4);
}

#[test]
fn vuln_acceptance_expires_on_the_context_clock() {
    let gate = accepted_gate();
    // One second before expiry the acceptances hold ...
    let probe = at("2027-01-30T23:59:59Z");
    assert!(matches!(run(&gate, &probe), Ok(Verdict::Pass(_))));
    // ... and once the clock reaches the expiry they waive nothing.
    probe.clock().advance(std::time::Duration::from_secs(1));
    let verdict = run(&gate, &probe).unwrap();
    let Verdict::Fail(ev) = verdict else {
        panic!("expected a fail: {verdict:?}")
    };
    assert_eq!(ev.data["blocking_total"], 5);
    assert!(
        ev.summary.starts_with(
            "5 findings at or above high not accepted: CVE-2021-25900 critical in Cargo.lock: \
             smallvec@0.6.13 (Trivy; acceptance expired 2027-01-31T00:00:00Z, owner \
             dana@example.com)"
        ),
        "{}",
        ev.summary
    );
    let expired = ev.data["expired_acceptances"].as_array().unwrap();
    assert_eq!(expired.len(), 4);
    assert_eq!(expired[0]["id"], "CVE-2021-25900");
    assert_eq!(expired[0]["matching_findings"], 2);
    assert_eq!(expired[3]["owner"], "lee@example.com");
    let first = &ev.data["blocking"][0];
    assert_eq!(first["expired_acceptances"][0]["owner"], "dana@example.com");
}

#[test]
fn vuln_one_expired_acceptance_fails_the_gate() {
    let gate = VulnGate::builder()
        .sarif(data("sarif/trivy-fs.sarif"))
        .accepted_risks(data("accept/partly-expired.toml"))
        .build()
        .unwrap();
    let verdict = run(&gate, &GateProbe::new()).unwrap();
    let Verdict::Fail(ev) = verdict else {
        panic!("expected a fail: {verdict:?}")
    };
    assert_eq!(ids(&ev.data["blocking"]), ["CVE-2021-45710"]);
    assert!(
        ev.summary.starts_with(
            "1 finding at or above high not accepted: CVE-2021-45710 high in Cargo.lock: \
             tokio@1.13.0 (Trivy; acceptance expired 2026-10-31T00:00:00Z, owner \
             sam@example.com)"
        ),
        "{}",
        ev.summary
    );
    let expired = ev.data["expired_acceptances"].as_array().unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["owner"], "sam@example.com");
    assert_eq!(expired[0]["entry"], 2);
    assert_eq!(expired[0]["matching_findings"], 1);
    assert_eq!(ev.data["accepted_total"], 2);
}

#[test]
fn vuln_below_threshold_findings_pass() {
    // Only a low finding.
    let gate = VulnGate::builder()
        .sarif(data("sarif/trivy-edge-cases.sarif"))
        .build()
        .unwrap();
    let verdict = run(&gate, &GateProbe::new()).unwrap();
    assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
    assert_eq!(verdict.evidence().data["totals"]["low"], 1);
    // High and medium findings under a critical threshold.
    let gate = VulnGate::builder()
        .sarif(data("sarif/semgrep-python.sarif"))
        .threshold(Severity::Critical)
        .build()
        .unwrap();
    let verdict = run(&gate, &GateProbe::new()).unwrap();
    assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
    assert_eq!(verdict.evidence().data["suppressed_in_reports"], 1);
    assert_eq!(verdict.evidence().facts["high"], "2");
}

#[test]
fn vuln_lower_threshold_blocks_medium() {
    let gate = VulnGate::builder()
        .sarif(data("sarif/trivy-fs.sarif"))
        .accepted_risks(data("accept/accepted.toml"))
        .threshold(Severity::Medium)
        .build()
        .unwrap();
    let verdict = run(&gate, &GateProbe::new()).unwrap();
    assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
    assert_eq!(
        ids(&verdict.evidence().data["blocking"]),
        ["CVE-2023-49092"]
    );
    assert_eq!(verdict.evidence().data["threshold"], "medium");
}

#[test]
fn vuln_package_scoped_acceptance_covers_only_that_package() {
    let gate = VulnGate::builder()
        .cargo_audit(data("cargo-audit/vulnerable.json"))
        .accepted_risks(data("accept/wrong-package.toml"))
        .build()
        .unwrap();
    let verdict = run(&gate, &GateProbe::new()).unwrap();
    assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
    let ev = verdict.evidence();
    assert_eq!(ids(&ev.data["blocking"]), ["RUSTSEC-2021-0124"]);
    assert_eq!(ids(&ev.data["accepted"]), ["RUSTSEC-2021-0003"]);
}

#[test]
fn vuln_cargo_audit_warnings_can_be_made_to_block() {
    let gate = accepted_gate();
    assert!(matches!(
        run(&gate, &GateProbe::new()),
        Ok(Verdict::Pass(_))
    ));
    let gate = VulnGate::builder()
        .cargo_audit(data("cargo-audit/vulnerable.json"))
        .accepted_risks(data("accept/accepted.toml"))
        .cargo_audit_warnings(Severity::High)
        .build()
        .unwrap();
    let verdict = run(&gate, &GateProbe::new()).unwrap();
    assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
    let mut blocking = ids(&verdict.evidence().data["blocking"]);
    blocking.sort_unstable();
    assert_eq!(blocking, ["RUSTSEC-2020-0016", "RUSTSEC-2023-0005"]);
}

#[test]
fn vuln_reports_combine_with_counts_per_tool_and_bounded_lists() {
    let gate = VulnGate::builder()
        .name("supply-chain")
        .sarif(data("sarif/trivy-fs.sarif"))
        .sarif(data("sarif/codeql-javascript.sarif"))
        .cargo_audit(data("cargo-audit/vulnerable.json"))
        .max_listed(2)
        .build()
        .unwrap();
    let verdict = run(&gate, &GateProbe::new()).unwrap();
    let ev = verdict.evidence();
    assert!(matches!(verdict, Verdict::Fail(_)));
    assert_eq!(ev.producer, "supply-chain");
    assert_eq!(ev.attachments.len(), 3);
    let counts = &ev.data["counts"];
    assert_eq!(counts["Trivy"]["critical"], 1);
    assert_eq!(counts["CodeQL"]["critical"], 1);
    assert_eq!(counts["CodeQL"]["high"], 1);
    assert_eq!(counts["CodeQL"]["low"], 1);
    assert_eq!(counts["cargo-audit"]["critical"], 1);
    assert_eq!(counts["cargo-audit"]["low"], 2);
    assert_eq!(ev.data["totals"]["critical"], 3);
    assert_eq!(ev.data["findings"], 13);
    // 2 Trivy high+, + DS002, 2 CodeQL, 2 cargo-audit = 7, but only 2 listed.
    assert_eq!(ev.data["blocking_total"], 7);
    assert_eq!(ev.data["blocking"].as_array().unwrap().len(), 2);
    assert!(ev.summary.contains("and 4 more"), "{}", ev.summary);
    assert_eq!(ev.data["reports"][1]["tools"], json!(["CodeQL"]));
    assert_eq!(ev.data["reports"][2]["format"], "cargo-audit");
}

#[test]
fn vuln_builder_validates() {
    assert!(matches!(
        VulnGate::builder().build(),
        Err(GateError::Misconfigured(m)) if m.contains("reads no report")
    ));
    assert!(matches!(
        VulnGate::builder().name(" ").sarif("x.sarif").build(),
        Err(GateError::Misconfigured(_))
    ));
    assert!(matches!(
        VulnGate::builder().sarif("x.sarif").max_listed(0).build(),
        Err(GateError::Misconfigured(_))
    ));
    let gate = VulnGate::builder()
        .name("vuln-scan")
        .sarif("x.sarif")
        .build()
        .unwrap();
    assert_eq!(gate.name(), "vuln-scan");
    assert_eq!(gate.kind(), GateKind::Compliance);
    assert_eq!(gate.threshold(), Severity::High);
}

// --- malformed input ------------------------------------------------------------------

fn sarif_error(rel: &str) -> (String, String) {
    let gate = VulnGate::builder().sarif(data(rel)).build().unwrap();
    invalid_input(run(&gate, &GateProbe::new()))
}

#[test]
fn vuln_missing_report_is_invalid_input() {
    let (what, message) = sarif_error("sarif/no-such-report.sarif");
    assert_eq!(what, path("sarif/no-such-report.sarif"));
    assert!(message.starts_with("cannot read"), "{message}");
}

#[test]
fn vuln_sarif_not_json() {
    let (what, message) = sarif_error("sarif/broken/not-json.sarif");
    assert_eq!(
        what,
        format!("{} line 1", path("sarif/broken/not-json.sarif"))
    );
    assert!(message.starts_with("not valid JSON"), "{message}");
}

#[test]
fn vuln_sarif_truncated_names_the_line() {
    let (what, message) = sarif_error("sarif/broken/truncated.sarif");
    assert!(
        what.starts_with(&path("sarif/broken/truncated.sarif")),
        "{what}"
    );
    // The file ends mid-document: the error is on its last line.
    let text = String::from_utf8(bytes("sarif/broken/truncated.sarif")).unwrap();
    let last = text.lines().count();
    assert!(what.ends_with(&format!(" line {last}")), "{what}");
    assert!(message.contains("EOF"), "{message}");
}

#[test]
fn vuln_sarif_wrong_version() {
    let (what, message) = sarif_error("sarif/broken/wrong-version.sarif");
    assert_eq!(what, path("sarif/broken/wrong-version.sarif"));
    assert_eq!(
        message,
        "SARIF version \"2.0.0\" is not supported: this gate reads SARIF 2.1.0"
    );
}

#[test]
fn vuln_sarif_missing_runs() {
    let (what, message) = sarif_error("sarif/broken/missing-runs.sarif");
    assert_eq!(what, path("sarif/broken/missing-runs.sarif"));
    assert!(message.starts_with("no `runs`"), "{message}");
    let (_, message) = invalid_input(parse_sarif(
        "empty.sarif",
        br#"{"version": "2.1.0", "runs": []}"#,
    ));
    assert!(message.starts_with("`runs` is empty"), "{message}");
    let (_, message) = invalid_input(parse_sarif("plain.json", br#"{"runs": []}"#));
    assert!(message.starts_with("no `version`"), "{message}");
}

#[test]
fn vuln_sarif_run_defects() {
    let (_, message) = sarif_error("sarif/broken/missing-results.sarif");
    assert_eq!(
        message,
        "runs[0] has no `results`: Trivy did not report an analysis"
    );
    let (_, message) = sarif_error("sarif/broken/failed-invocation.sarif");
    assert_eq!(
        message,
        "runs[0]: Semgrep OSS reports that its run failed (invocations[0].executionSuccessful \
         is false)"
    );
    let (_, message) = sarif_error("sarif/broken/bad-security-severity.sarif");
    assert_eq!(
        message,
        "runs[0].results[1] (CVE-2021-45710): security-severity `HIGH` is not a number"
    );
    let (_, message) = sarif_error("sarif/broken/bad-rule-index.sarif");
    assert_eq!(
        message,
        "runs[0].results[0]: rule index 7 is out of range: codeql/javascript-queries \
         declares 3 rule(s)"
    );
}

#[test]
fn vuln_sarif_unknown_level_names_the_line() {
    let log = b"{\"version\": \"2.1.0\", \"runs\": [{\"tool\": {\"driver\": {\"name\": \"x\"}},\n\
                \"results\": [{\"ruleId\": \"r\", \"level\": \"fatal\"}]}]}";
    let (what, message) = invalid_input(parse_sarif("x.sarif", log));
    assert_eq!(what, "x.sarif line 2");
    assert!(message.contains("unknown variant `fatal`"), "{message}");
}

fn audit_error(rel: &str) -> (String, String) {
    let gate = VulnGate::builder().cargo_audit(data(rel)).build().unwrap();
    invalid_input(run(&gate, &GateProbe::new()))
}

#[test]
fn vuln_cargo_audit_malformed() {
    let (what, message) = audit_error("cargo-audit/broken/truncated.json");
    assert!(
        what.starts_with(&path("cargo-audit/broken/truncated.json")),
        "{what}"
    );
    assert!(what.contains(" line "), "{what}");
    assert!(message.starts_with("not valid JSON"), "{message}");

    // A SARIF log handed over as a cargo-audit report.
    let gate = VulnGate::builder()
        .cargo_audit(data("sarif/trivy-fs.sarif"))
        .build()
        .unwrap();
    let (what, message) = invalid_input(run(&gate, &GateProbe::new()));
    assert!(what.starts_with(&path("sarif/trivy-fs.sarif")), "{what}");
    assert!(
        message.contains("missing field `vulnerabilities`"),
        "{message}"
    );

    let (what, message) = audit_error("cargo-audit/broken/count-mismatch.json");
    assert_eq!(what, path("cargo-audit/broken/count-mismatch.json"));
    assert_eq!(
        message,
        "inconsistent report: vulnerabilities.found is true and count is 4, but the list \
         holds 3 entries"
    );

    let (_, message) = audit_error("cargo-audit/broken/bad-cvss.json");
    assert!(
        message.starts_with("vulnerabilities.list[1] (RUSTSEC-2021-0003): CVSS vector"),
        "{message}"
    );

    let (what, message) = audit_error("cargo-audit/broken/list-not-array.json");
    assert_eq!(
        what,
        format!("{} line 24", path("cargo-audit/broken/list-not-array.json"))
    );
    assert!(
        message.contains("invalid type: map, expected a sequence"),
        "{message}"
    );
}

fn acceptance_error(rel: &str) -> (String, String) {
    let gate = VulnGate::builder()
        .sarif(data("sarif/trivy-fs.sarif"))
        .accepted_risks(data(rel))
        .build()
        .unwrap();
    invalid_input(run(&gate, &GateProbe::new()))
}

#[test]
fn vuln_acceptance_missing_owner_names_the_entry() {
    let (what, message) = acceptance_error("accept/broken/missing-owner.toml");
    assert_eq!(
        what,
        format!("{} line 7", path("accept/broken/missing-owner.toml"))
    );
    assert_eq!(
        message,
        "accepted risk #2 (id `CVE-2021-45710`): missing `owner`; every accepted risk \
         needs an id, a justification, an owner and an expiry date"
    );
}

#[test]
fn vuln_acceptance_defects() {
    let cases = [
        (
            "missing-expiry",
            1,
            "accepted risk #1 (id `DS002`): missing `expires`",
        ),
        (
            "blank-justification",
            1,
            "accepted risk #1 (id `DS002`): `justification` is empty",
        ),
        (
            "bad-date",
            1,
            "accepted risk #1 (id `DS002`): `expires` = end of next quarter is neither",
        ),
        (
            "local-time",
            1,
            "accepted risk #1 (id `DS002`): `expires` = 2027-01-31T18:00:00 is neither",
        ),
        (
            "unknown-field",
            4,
            "not a valid accepted-risk file: unknown field `ownr`",
        ),
        ("not-toml", 1, "not a valid accepted-risk file"),
    ];
    for (file, line, start) in cases {
        let rel = format!("accept/broken/{file}.toml");
        let (what, message) = acceptance_error(&rel);
        assert_eq!(
            what,
            format!("{} line {line}", path(&rel)),
            "{file}: {message}"
        );
        assert!(message.starts_with(start), "{file}: {message}");
    }
}
