//! Reading the audit log: verifying it, exporting a release's evidence pack, verifying a pack
//! offline, and the DORA report.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::json;

use crate::app::App;
use crate::evidence;
use crate::failure::{Failure, OK};
use crate::show;
use crate::store;

impl App {
    pub(crate) async fn export(
        &self,
        reference: &str,
        out: &Path,
        archive: Option<PathBuf>,
        rosters: &[PathBuf],
    ) -> Result<u8, Failure> {
        let loaded = self.load(false)?;
        let rosters = crate::signatures::roster_bytes(&loaded, rosters)?;
        let place = self.place();
        let store = store::open(&place)?;
        let rows = show::releases(&store, loaded.pipeline.name()).await?;
        let row = show::resolve(&rows, reference)?;
        let signer = evidence::signer(&place.dir)?;
        let files = evidence::ServiceFiles::index(&loaded.base_dir, &place.dir);
        let options = promotion_evidence::ExportOptions {
            archive,
            attachments: Some(&files),
            rosters,
            ..promotion_evidence::ExportOptions::default()
        };
        let summary =
            promotion_evidence::EvidencePack::export_with(&store, &row.id, &signer, out, &options)
                .await
                .map_err(|e| Failure::Store(promotion_core::report_chain(&e)))?;
        println!(
            "exported {} ({}): {} entries with inclusion proofs at checkpoint size {}, {} attestations, {} files in {}",
            summary.release_name,
            summary.release.short(),
            summary.entries,
            summary.checkpoint_size,
            summary.attestations.len(),
            summary.files,
            summary.dir.display()
        );
        if let Some(a) = &summary.archive {
            println!("archive: {}", a.display());
        }
        if summary.signed_decisions > 0 {
            println!(
                "{} SSH-signed decisions with their statements, signatures and rosters",
                summary.signed_decisions
            );
        }
        if !summary.attachments_missing.is_empty() {
            println!(
                "{} attachment(s) referenced by evidence are not in the pack (their digests are in the log)",
                summary.attachments_missing.len()
            );
        }
        println!(
            "verify offline: promote evidence verify {} --checkpoint-key {} --attestation-key {}",
            summary.dir.display(),
            place.dir.join(store::VKEY_FILE).display(),
            place.dir.join(evidence::ATTESTATION_PUB_FILE).display()
        );
        Ok(OK)
    }

    pub(crate) fn verify_pack(
        &self,
        pack: &Path,
        checkpoint_key: Option<&Path>,
        attestation_key: Option<&Path>,
        json: bool,
    ) -> Result<u8, Failure> {
        let place = self.place();
        let checkpoint = store::verifier(&place.dir, checkpoint_key)?;
        let attestation = evidence::verifier(&place.dir, attestation_key)?;
        match promotion_evidence::verify_pack(pack, &checkpoint, &attestation) {
            Ok(r) => {
                if json {
                    let mut v = serde_json::to_value(&r)
                        .map_err(|e| Failure::Store(format!("cannot render the report: {e}")))?;
                    if let Some(o) = v.as_object_mut() {
                        o.insert("ok".into(), json!(true));
                    }
                    println!("{v}");
                } else {
                    println!(
                        "ok: {} ({}) in pipeline {}: {} entries proven in the log at checkpoint size {}, {} attestations, {} files",
                        r.release_name,
                        r.release.short(),
                        r.pipeline,
                        r.entries,
                        r.checkpoint.size,
                        r.attestations.len(),
                        r.files
                    );
                    if r.signed_decisions > 0 {
                        println!(
                            "{} SSH-signed decisions re-verified against the rosters in the pack",
                            r.signed_decisions
                        );
                    }
                    for (stage, status) in &r.stages {
                        println!("  {stage:<14} {status}");
                    }
                }
                Ok(OK)
            }
            Err(e) => {
                if json {
                    println!(
                        "{}",
                        json!({ "ok": false, "error": e.to_string(), "files": e.files() })
                    );
                }
                Err(evidence::pack_failure(e))
            }
        }
    }

    pub(crate) async fn report(
        &self,
        days: u32,
        html: Option<&Path>,
        production: Vec<String>,
        json: bool,
    ) -> Result<u8, Failure> {
        let store = store::open_existing(&self.place())?;
        let period = promotion_evidence::Period::days_until(Utc::now(), days)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let mut options = promotion_evidence::ReportOptions::default();
        if !production.is_empty() {
            options.production_stages = production.into_iter().collect();
        }
        let report = promotion_evidence::Report::from_store_with(&store, period, &options)
            .await
            .map_err(|e| Failure::Store(promotion_core::report_chain(&e)))?;
        if let Some(path) = html {
            crate::files::write_state(path, promotion_evidence::render_html(&report).as_bytes())?;
            if !json {
                println!("wrote {}", path.display());
            }
        }
        if json {
            let v = serde_json::to_value(&report)
                .map_err(|e| Failure::Store(format!("cannot render the report: {e}")))?;
            println!("{v}");
            return Ok(OK);
        }
        println!(
            "report from {} to {} ({days} days)",
            report.period.from.format("%Y-%m-%d %H:%M"),
            report.period.to.format("%Y-%m-%d %H:%M")
        );
        let secs = |s: Option<f64>| {
            s.map_or_else(
                || "-".to_owned(),
                |s| {
                    promotion_config::format_duration(std::time::Duration::from_secs(
                        s.max(0.0) as u64
                    ))
                },
            )
        };
        for p in &report.pipelines {
            let d = &p.dora;
            println!("pipeline {}: {} releases", p.pipeline, p.releases_total);
            println!(
                "  deployment frequency  {} production promotions ({:.2}/day)",
                d.production_promotions, d.deployments_per_day
            );
            println!(
                "  lead time for changes median {}",
                secs(d.lead_time.as_ref().map(|l| l.median_seconds))
            );
            println!(
                "  change failure rate   {}",
                d.change_failure_rate
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
            );
            println!(
                "  time to restore       median {}",
                secs(d.time_to_restore.as_ref().map(|l| l.median_seconds))
            );
            println!(
                "  approvals pending     {}; overrides {}",
                p.approvals_pending,
                p.overrides.len()
            );
        }
        if report.pipelines.is_empty() {
            println!("(no release in the log)");
        }
        Ok(OK)
    }

    pub(crate) async fn verify(
        &self,
        vkey: Option<&Path>,
        anchors: &crate::anchors::Anchors,
        rosters: &[PathBuf],
        json: bool,
    ) -> Result<u8, Failure> {
        let place = self.place();
        let verifier = store::verifier(&place.dir, vkey)?;
        let anchors = anchors.open()?;
        let reverifier = self.log_reverifier(rosters)?;
        let store = store::open_existing(&place)?;
        match store.verify_anchored(Some(&verifier), anchors).await {
            Ok(r) => {
                let signed = crate::signatures::reverify_log(&store, &reverifier).await?;
                if !signed.failures.is_empty() {
                    let message = format!(
                        "{} of {} signed decisions do not re-verify: {}",
                        signed.failures.len(),
                        signed.signed,
                        signed
                            .failures
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                    if json {
                        println!("{}", json!({ "ok": false, "error": message }));
                    }
                    return Err(Failure::Refused(message));
                }
                let rosters: Vec<String> = reverifier.digests().map(ToString::to_string).collect();
                let root: String = r.root.iter().map(|b| format!("{b:02x}")).collect();
                let size = r.checkpoint.as_ref().map_or(0, |c| c.size);
                let anchor = r.anchor.as_ref().map(|a| a.size);
                if json {
                    println!(
                        "{}",
                        json!({
                            "ok": true, "entries": r.entries, "bytes": r.bytes, "streams": r.streams,
                            "root": root, "checkpoint_size": size, "checkpoints": r.checkpoints,
                            "signature_checked": r.signature_checked, "key": verifier.name(),
                            "trusted_checkpoint_size": anchor,
                            "witness_cosignatures": r.cosignatures,
                            "signed_decisions": signed.signed, "rosters": rosters,
                        })
                    );
                } else {
                    println!(
                        "ok: {} entries ({} bytes) in {} streams; root {root}; {} checkpoints signed by {}, the latest at size {size}",
                        r.entries, r.bytes, r.streams, r.checkpoints, verifier.name()
                    );
                    if let Some(a) = anchor {
                        println!("the log extends the trusted checkpoint at size {a}");
                    }
                    if r.cosignatures > 0 {
                        println!("{} witness cosignatures verified", r.cosignatures);
                    }
                    if signed.signed > 0 {
                        println!(
                            "{} SSH-signed decisions re-verified against roster {}",
                            signed.signed,
                            rosters.join(", ")
                        );
                    }
                }
                Ok(OK)
            }
            Err(
                e @ (promotion_audit::AuditError::Tampered(_)
                | promotion_audit::AuditError::Checkpoint(_)
                | promotion_audit::AuditError::StoredCheckpoint { .. }
                | promotion_audit::AuditError::NoCheckpoint { .. }
                | promotion_audit::AuditError::UnsignedTail { .. }
                | promotion_audit::AuditError::RolledBack { .. }
                | promotion_audit::AuditError::Forked { .. }
                | promotion_audit::AuditError::TrustedCheckpoint(_)
                | promotion_audit::AuditError::Anchor(_)),
            ) => {
                let message = promotion_core::report_chain(&e);
                if json {
                    println!("{}", json!({ "ok": false, "error": message }));
                }
                Err(Failure::Refused(message))
            }
            Err(e) => Err(e.into()),
        }
    }
}
