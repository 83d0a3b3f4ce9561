//! `promote init`: a starter template, a service file using it, the roster it names, and a
//! release manifest.

use crate::app::{base_dir, App};
use crate::failure::{Failure, OK};

/// The starter template, written to `templates/web-service.toml`.
pub(crate) const TEMPLATE: &str = r#"# A pipeline template: one definition for many services.
# Parameters are typed; `{{ name }}` in any string value is replaced by their values, and
# `{{ service }}` by the service's name.

[template]
name = "web-service"
version = "1.0.0"
description = "build, staging and production, with approvals and a soak"

[params.approvers]
type = "string"
default = "qa"
description = "the group whose member approves staging"

[params.soak]
type = "duration"
default = "1m"
description = "how long production must stay healthy before the release counts as promoted"

[params.weights]
type = "list"
items = "integer"
default = [50, 100]
description = "production rollout steps, in percent"

[[stages]]
name = "build"

[[stages.gates]]
kind = "process"
name = "{{ service }}-smoke"
program = "sh"
args = ["-c", "test -n \"$PROMOTION_COMMIT\" && echo \"release {PROMOTION_RELEASE_NAME} built from $PROMOTION_COMMIT\""]
timeout = "1m"

[[stages]]
name = "staging"
after = ["build"]
approval = "1 of {{ approvers }}"

[[stages]]
name = "production"
after = ["staging"]
soak = "{{ soak }}"
rollout = { weights = "{{ weights }}" }

[stages.approval]
rule = "1 of sre AND 1 of security"
expires = "24h"

[stages.window]
windows = [{ name = "any time", days = ["mon-sun"], start = "00:00", end = "24:00", zone = "UTC" }]
"#;

/// The starter service file.
pub(crate) fn service(name: &str) -> String {
    format!(
        r#"# Which template this service uses, with which parameters, deployed how.

# Record only: nothing is deployed. For a real deployment, replace this line with
#   [deploy]
#   command = ["./deploy.sh"]   # runs per rollout step with PROMOTION_STAGE, PROMOTION_WEIGHT, …
#   timeout = "15m"
deploy = "none"

[service]
name = "{name}"
version = "1"
# Who may act (`--as`) and in which groups: the roster, beside this file. Groups come from it,
# never from the command line. (`identity = "unverified"` instead believes --as and --groups,
# and marks every decision made that way UNVERIFIED.)
roster = "roster.toml"

[template]
name = "web-service"
version = "1.0.0"
dir = "templates"

[params]
approvers = "qa"
soak = "1m"
"#
    )
}

/// The starter roster: the people the starter template's approvals need (qa for staging, sre
/// and security for production), written to `roster.toml` beside the service file.
pub(crate) const ROSTER: &str = r#"# Who may act on releases, and their groups. Keep this file in version control: a change
# to it changes its digest, which every decision records.
#
# ssh_keys (OpenSSH public key lines, as in ~/.ssh/id_ed25519.pub) are the keys whose
# signatures count as the person's.

[[people]]
id = "alice"
name = "Alice"
groups = ["sre"]
ssh_keys = []

[[people]]
id = "bob"
name = "Bob"
groups = ["security"]
ssh_keys = []

[[people]]
id = "carol"
name = "Carol"
groups = ["qa"]
ssh_keys = []

# The CI system that registers releases: `register --as ci-bot`, or, from a GitHub Actions job,
# `register --id-token FILE --jwks FILE` with the job's OIDC token, whose claims must all match.
[[machines]]
id = "ci-bot"
groups = ["ci"]
issuer = "https://token.actions.githubusercontent.com"
audience = "promotion"
[machines.claims]
repository = "example/app"
ref = "refs/heads/main"
"#;

/// A release manifest to start from.
pub(crate) fn manifest(name: &str) -> String {
    format!(
        r#"# A release: `promote register --manifest release.toml`.
name = "{name} 1.0.0"
repository = "git@example.com:{name}"
commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"
builder = "ci"
contributors = ["dana"]

[[artifacts]]
name = "image"
digest = "sha256:6a1f0e1c53b1d6e0b0c1c3e6c8f3b1f7a1a4c2d9e8f7b6a5c4d3e2f1a0b9c8d7"
"#
    )
}

impl App {
    pub(crate) fn init(&self, service: Option<String>, force: bool) -> Result<u8, Failure> {
        let dir = base_dir(&self.g.file);
        let name = match service {
            Some(s) => s,
            None => std::fs::canonicalize(&dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
                .unwrap_or_else(|| "my-service".to_owned()),
        };
        let files = [
            (
                dir.join("templates").join("web-service.toml"),
                TEMPLATE.to_owned(),
            ),
            (self.g.file.clone(), crate::init::service(&name)),
            (dir.join("roster.toml"), ROSTER.to_owned()),
            (dir.join("release.toml"), manifest(&name)),
        ];
        if !force {
            if let Some((p, _)) = files.iter().find(|(p, _)| p.exists()) {
                return Err(Failure::Usage(format!(
                    "{} exists; use --force to overwrite",
                    p.display()
                )));
            }
        }
        for (path, text) in &files {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Failure::Store(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            crate::files::tidy(
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new(".")),
            );
            crate::files::write_state(path, text.as_bytes())?;
            println!("wrote {}", path.display());
        }
        println!(
            "next: promote validate; promote register --manifest {}; promote run latest",
            dir.join("release.toml").display()
        );
        Ok(OK)
    }
}
