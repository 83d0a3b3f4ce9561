//! `promote`: promotion pipelines from templates, driven from a terminal or CI.
//!
//! See `promote --help` and the crate README. The audit log is SQLite in a state directory
//! (`.promotion` beside the service file) unless `--database postgres://…` is given.

mod anchors;
mod app;
mod args;
mod audit;
mod deployer;
mod drive;
mod evidence;
mod failure;
mod files;
mod identity;
mod init;
mod inspect;
mod jsonl;
mod manifest;
mod show;
mod signatures;
mod store;
mod whatif;

use std::process::ExitCode;

use clap::Parser;

use crate::app::App;
use crate::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("promote: cannot start the runtime: {e}");
            return ExitCode::from(failure::STORE);
        }
    };
    let app = App { g: cli.global };
    match runtime.block_on(app.run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("promote: {f}");
            ExitCode::from(f.code())
        }
    }
}
