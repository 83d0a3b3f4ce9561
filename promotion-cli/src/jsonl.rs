//! `promote log export` and `log import`: the log as JSON Lines
//! ([`promotion_audit::jsonl`]), and back into a new SQLite log, verified line by line.

use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use promotion_audit::durable::{self, Existing};
use promotion_audit::{jsonl, AuditError, BackendError, SqliteBackend};

use crate::app::App;
use crate::failure::{Failure, OK};
use crate::files::io;
use crate::store;

impl App {
    pub(crate) async fn log_export(&self, out: Option<PathBuf>) -> Result<u8, Failure> {
        let store = store::open_existing(&self.place())?;
        let shown = out.clone();
        let entries = store
            .with_reader(move |b| match &out {
                None => {
                    let stdout = std::io::stdout();
                    let mut w = BufWriter::new(stdout.lock());
                    let n = jsonl::export(b, &mut w)?;
                    w.flush()
                        .map_err(|e| BackendError::with("cannot write the export", e))?;
                    Ok(n)
                }
                Some(path) => {
                    let mut n = Ok(0);
                    durable::write_with(path, durable::SHARED, Existing::Replace, |f| {
                        let mut w = BufWriter::new(f);
                        n = jsonl::export(b, &mut w);
                        w.flush()
                    })
                    .map_err(|e| {
                        AuditError::Backend(BackendError::new(promotion_core::report_chain(&e)))
                    })?;
                    n
                }
            })
            .await?;
        if let Some(path) = shown {
            println!("exported {entries} entries to {}", path.display());
        }
        Ok(OK)
    }

    pub(crate) fn log_import(
        &self,
        file: &Path,
        into: &Path,
        vkey: Option<&Path>,
    ) -> Result<u8, Failure> {
        let verifier = store::verifier(&self.place().dir, vkey)?;
        if into.exists() {
            return Err(Failure::Usage(format!(
                "{} exists; an import goes into a new log",
                into.display()
            )));
        }
        let input = std::fs::File::open(file).map_err(|e| io("cannot read", file, e))?;
        let (mut writer, reader) = SqliteBackend::open_pair(into)?;
        let result = jsonl::import(&mut BufReader::new(input), &mut writer, Some(&verifier));
        drop((writer, reader));
        match result {
            Ok(r) => {
                println!(
                    "imported {} entries into {}; root {}; checkpoint signed by {}",
                    r.entries,
                    into.display(),
                    r.root
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>(),
                    verifier.name()
                );
                Ok(OK)
            }
            Err(e) => {
                // Nothing was imported: leave no empty log behind.
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = into.as_os_str().to_owned();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
                Err(Failure::Refused(format!(
                    "{}: {}",
                    file.display(),
                    promotion_core::report_chain(&e)
                )))
            }
        }
    }
}
