//! The command line: global options, who acts, and every command with its flags. The doc
//! comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use promotion_core::Principal;

use crate::failure::{Failure, EXIT_CODES};

/// Multi-stage release promotion from pipeline templates, recorded in a tamper-evident log.
#[derive(Debug, Parser)]
#[command(name = "promote", version, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The service file (or a template used on its own).
    #[arg(
        short = 'f',
        long,
        global = true,
        env = "PROMOTION_FILE",
        default_value = "promotion.toml"
    )]
    pub(crate) file: PathBuf,
    /// State directory: the SQLite audit log and the checkpoint signing key
    /// [default: .promotion beside the service file].
    #[arg(long, global = true, env = "PROMOTION_DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// A PostgreSQL URL (postgres://user:password@host/db) for the audit log instead of SQLite.
    #[arg(long, global = true, env = "PROMOTION_DATABASE")]
    pub(crate) database: Option<String>,
    /// The PostgreSQL schema of the audit log.
    #[arg(long, global = true, default_value = "public")]
    pub(crate) schema: String,
    /// A directory of templates named by `name` and `version` (repeatable).
    #[arg(long = "templates", global = true)]
    pub(crate) templates: Vec<PathBuf>,
}

/// Who acts. With a roster (`roster = "FILE"` in the service file) `--as` must name a person
/// it lists and the groups are the roster's; with `identity = "unverified"` both are believed.
#[derive(Debug, Args)]
pub(crate) struct Who {
    /// The person acting: with a roster, an id it lists.
    #[arg(long = "as", env = "PROMOTION_AS")]
    pub(crate) id: String,
    /// Their groups, comma-separated; only with `identity = "unverified"` (with a roster the
    /// groups are the roster's, and this is refused).
    #[arg(long, value_delimiter = ',', env = "PROMOTION_GROUPS")]
    pub(crate) groups: Vec<String>,
    /// Sign the decision with this OpenSSH private key (unencrypted Ed25519 or ECDSA); the
    /// roster must list its public key for the --as person. The signed statement and the
    /// signature are recorded with the decision (see `promote signatures`).
    #[arg(long, value_name = "FILE", env = "PROMOTION_KEY")]
    pub(crate) key: Option<PathBuf>,
}

impl Who {
    pub(crate) fn principal(&self) -> Result<Principal, Failure> {
        Principal::new(
            &self.id,
            self.groups.iter().filter(|g| !g.is_empty()).cloned(),
        )
        .map_err(|e| Failure::Usage(e.to_string()))
    }
}

/// The stage of a release that a person's command acts on.
#[derive(Debug, Args)]
pub(crate) struct OnStage {
    /// The release.
    pub(crate) release: String,
    /// The stage.
    pub(crate) stage: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Write a starter template, a service file and a release manifest.
    Init {
        /// The service's name [default: the directory's name].
        #[arg(long)]
        service: Option<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Check the service file and its template; print the pipeline.
    Validate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register a release from a manifest (TOML or JSON: name, repository, commit,
    /// artifacts with digests).
    Register {
        /// The manifest file.
        #[arg(long)]
        manifest: PathBuf,
        /// Who registers it: with a roster, an id it lists (recorded as verified by the
        /// roster); with `identity = "unverified"`, anyone [default: promote].
        #[arg(long = "as", env = "PROMOTION_AS", conflicts_with = "id_token")]
        id: Option<String>,
        /// Their groups, comma-separated; only with `identity = "unverified"`.
        #[arg(long, value_delimiter = ',', env = "PROMOTION_GROUPS")]
        groups: Vec<String>,
        /// A CI system's OIDC ID token (a JWT) in FILE: the registrant is the roster machine
        /// whose claim rules it matches, recorded as OIDC-verified. Needs --jwks and a roster.
        #[arg(long = "id-token", value_name = "FILE", requires = "jwks")]
        id_token: Option<PathBuf>,
        /// The token issuer's public keys (a JWKS, JSON) in FILE.
        #[arg(long, value_name = "FILE", requires = "id_token")]
        jwks: Option<PathBuf>,
    },
    /// Drive a release as far as its gates allow, waiting through pauses and soaks.
    Run {
        /// The release: `latest`, its id or an id prefix, or its name.
        release: String,
        /// Stop with exit code 5 instead of waiting longer than this (`10m`).
        #[arg(long)]
        max_wait: Option<String>,
    },
    /// One pass: as far as the release can go now, without waiting.
    Advance {
        /// The release.
        release: String,
    },
    /// Releases and their stages; with a release, its stages in detail.
    Status {
        /// A release to show in detail.
        release: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a stage.
    Approve {
        #[command(flatten)]
        on: OnStage,
        #[command(flatten)]
        who: Who,
        /// A comment, recorded with the approval.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject a stage.
    Reject {
        #[command(flatten)]
        on: OnStage,
        #[command(flatten)]
        who: Who,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Break glass: count a failed entry gate as passed.
    Override {
        #[command(flatten)]
        on: OnStage,
        /// The gate.
        gate: String,
        #[command(flatten)]
        who: Who,
        /// The written justification, recorded loudly.
        #[arg(long)]
        justification: String,
    },
    /// Judge an inconclusive gate.
    Judge {
        #[command(flatten)]
        on: OnStage,
        /// The gate.
        gate: String,
        /// Judge it as passed (otherwise failed).
        #[arg(long)]
        pass: bool,
        #[command(flatten)]
        who: Who,
        /// A comment.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Start a manual-start stage.
    Start {
        #[command(flatten)]
        on: OnStage,
        #[command(flatten)]
        who: Who,
    },
    /// Abort the promotion into a stage (a deployed stage is rolled back by the next run).
    Abort {
        #[command(flatten)]
        on: OnStage,
        #[command(flatten)]
        who: Who,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Roll a stage back (performed by the next run or advance).
    Rollback {
        #[command(flatten)]
        on: OnStage,
        #[command(flatten)]
        who: Who,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Write a release's SSH-signed decisions for an auditor into a directory: for the Nth,
    /// `N.statement.json` (the exact bytes signed) and `N.statement.json.sig`, with the
    /// roster's keys as `allowed_signers`; print the `ssh-keygen -Y verify` command for each.
    /// Each is checked too (the statement against its log entry, the signature against the
    /// roster); a mismatch prints FAILED and exits 1.
    Signatures {
        /// The release.
        release: String,
        /// The directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// The audit log.
    Log {
        #[command(subcommand)]
        command: LogCmd,
    },
    /// Cosign a log's checkpoint as a witness (C2SP tlog-cosignature v1), after checking its
    /// signature and that it extends the last checkpoint this witness cosigned for that log.
    /// Prints the cosigned checkpoint (or writes it to --out); refuses a rollback or a fork.
    Witness {
        /// The witness's state directory: the last checkpoint it cosigned, per log origin.
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
        /// The witness's private key (created on first use, its verifier key beside it as
        /// FILE.vkey).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The witness's name, for a key created on first use (a schema-less URL).
        #[arg(long, default_value = "witness.local/promote")]
        name: String,
        /// The log's checkpoint verifier key.
        #[arg(long, value_name = "FILE")]
        log_vkey: PathBuf,
        /// The signed checkpoint to cosign (`promote log checkpoint --out`); not with
        /// --from-log.
        #[arg(required_unless_present = "from_log")]
        checkpoint: Option<PathBuf>,
        /// A consistency proof from the last cosigned checkpoint's size to this one's
        /// (`promote log proof consistency OLD NEW`). It is checked against the witness's own
        /// saved checkpoint, never trusted; --from-log computes it from the log instead.
        #[arg(long, value_name = "FILE", conflicts_with = "from_log")]
        proof: Option<PathBuf>,
        /// Read the log itself (the service's --dir or --database): cosign its latest
        /// checkpoint after computing the consistency proof from the log and checking it
        /// against the witness's saved state, and store the cosignature beside the checkpoint
        /// in the log.
        #[arg(long, conflicts_with = "checkpoint")]
        from_log: bool,
        /// Write the cosigned checkpoint here instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Replay the recorded history under another template version: which past promotions
    /// would it have blocked, and by which gate or rule?
    WhatIf {
        /// The new template file.
        #[arg(long, conflicts_with = "template_version")]
        template: Option<PathBuf>,
        /// Another version of the service's template, found where the service's is.
        #[arg(long)]
        template_version: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evidence packs for auditors.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCmd,
    },
    /// DORA metrics, gate pass rates and approvals over a period; an HTML readiness page.
    Report {
        /// The days up to now the report covers.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Write the HTML page to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        /// A stage that counts as production (repeatable) [default: production, prod].
        #[arg(long = "production-stage")]
        production: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EvidenceCmd {
    /// Export a release's evidence pack: every log entry with its inclusion proof against the
    /// signed checkpoint, and signed in-toto attestations (key: attestation.key in the state
    /// directory, created on first use).
    Export {
        /// The release.
        release: String,
        /// The directory to write the pack into.
        #[arg(long)]
        out: PathBuf,
        /// Also write the pack as one tar archive.
        #[arg(long)]
        archive: Option<PathBuf>,
        /// A roster file SSH-signed decisions may have been made under, besides the service's
        /// (repeatable); the pack carries each roster a decision names.
        #[arg(long = "roster", value_name = "FILE")]
        rosters: Vec<PathBuf>,
    },
    /// Verify a pack (directory or tar archive) offline, with the public keys alone.
    Verify {
        /// The pack.
        pack: PathBuf,
        /// The log's checkpoint verifier key [default: checkpoint.vkey in the state directory].
        #[arg(long)]
        checkpoint_key: Option<PathBuf>,
        /// The attestation public key [default: attestation.pub in the state directory].
        #[arg(long)]
        attestation_key: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LogCmd {
    /// Recompute every hash, Merkle node and root, and check the signed checkpoint.
    Verify {
        /// The verifier key [default: checkpoint.vkey in the state directory].
        #[arg(long)]
        vkey_file: Option<PathBuf>,
        /// A signed checkpoint saved earlier (`promote log checkpoint --out`): the log must
        /// extend it, or verification fails (a rollback or a fork).
        #[arg(long, value_name = "FILE")]
        trusted_checkpoint: Option<PathBuf>,
        /// A witness's verifier key (repeatable): its cosignatures count toward
        /// --min-witnesses.
        #[arg(long = "witness-vkey", value_name = "FILE")]
        witness_vkeys: Vec<PathBuf>,
        /// Cosignatures required on the trusted checkpoint (or, without one, on the latest
        /// stored checkpoint, with the cosignatures stored beside it by `witness --from-log`).
        #[arg(long, default_value_t = 0)]
        min_witnesses: usize,
        /// With a trusted key, accept an empty log that has no checkpoint yet (a new log).
        /// Without it an empty, unsigned log is refused: it is what deleting every entry and
        /// checkpoint leaves.
        #[arg(long)]
        expect_empty: bool,
        /// A roster file SSH-signed decisions may have been made under, besides the service's
        /// (repeatable): the roster as it was then, e.g. `git show REV:roster.toml`.
        #[arg(long = "roster", value_name = "FILE")]
        rosters: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish the latest signed checkpoint: print it, or write it to a file, or to a
    /// directory as `<size>.checkpoint` and `latest` (each written whole).
    Checkpoint {
        /// A file, or an existing directory.
        #[arg(long, value_name = "FILE|DIR")]
        out: Option<PathBuf>,
    },
    /// Export the log as JSON Lines: every entry's stored bytes with its hash, then the
    /// latest signed checkpoint.
    Export {
        /// Write here (whole, replacing it) instead of printing.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Import a JSON Lines export into a new SQLite log, checking every hash, the chain, the
    /// tree and the checkpoint's signature; nothing is imported if any line fails.
    Import {
        /// The export.
        file: PathBuf,
        /// The new SQLite log (it must not exist yet).
        #[arg(long, value_name = "FILE")]
        into: PathBuf,
        /// The verifier key [default: checkpoint.vkey in the state directory].
        #[arg(long)]
        vkey_file: Option<PathBuf>,
    },
    /// Print a Merkle proof, one base64 hash per line.
    Proof {
        #[command(subcommand)]
        proof: ProofCmd,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProofCmd {
    /// That entry SEQ is in the tree of --size entries [default: the latest checkpoint's].
    Inclusion {
        /// The entry's sequence number.
        seq: u64,
        /// The tree size.
        #[arg(long)]
        size: Option<u64>,
    },
    /// That the tree of OLD entries (or of --from's size) is a prefix of the tree of NEW
    /// entries [default: the latest checkpoint's size].
    Consistency {
        /// The earlier tree size.
        #[arg(required_unless_present = "from")]
        old: Option<u64>,
        /// The later tree size.
        new: Option<u64>,
        /// Take the earlier size from this signed checkpoint (one a witness or auditor kept).
        #[arg(long, value_name = "FILE", conflicts_with = "old")]
        from: Option<PathBuf>,
    },
}
