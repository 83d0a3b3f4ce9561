//! [`PostgresBackend`] as a [`Backend`]: write transactions under the writer lock, reads, and
//! leases judged by the server's clock.

use chrono::{DateTime, Utc};
use postgres::Row;
use promotion_core::backend::LeaseRow;
use promotion_core::ReplicaId;
use promotion_core::StreamId;

use super::{hash, int, unsigned, PostgresBackend, WRITER_LOCK_CLASS};
use crate::backend::{Backend, Head, LeaseChange};
use crate::entry::{StoredEntry, GENESIS_PREV};
use crate::error::BackendError;
use crate::merkle::Hash;

impl PostgresBackend {
    pub(super) fn update_lease_in(
        &mut self,
        key: &str,
        change: LeaseChange<'_>,
    ) -> Result<(), BackendError> {
        // The placeholder makes sure a row exists to lock, so two replicas taking a lease that
        // was never granted serialise on it instead of racing on an insert.
        self.run("creating a lease row", |s| {
            s.client.execute(&s.st.lease_placeholder, &[&key])
        })?;
        let rows = self.rows("locking a lease", |st| &st.lease_for_update, &[&key])?;
        let row = rows
            .first()
            .ok_or_else(|| BackendError::new("locking a lease: no row"))?;
        let (current, now) = self.lease_of(row)?;
        if let Some(new) = change(current.as_ref(), now) {
            let token = int(new.token);
            let expires = new.expires_at.timestamp_micros();
            let holder = new.holder.as_str();
            self.run("writing a lease", |s| {
                s.client
                    .execute(&s.st.lease_put, &[&key, &holder, &token, &expires])
            })?;
        }
        Ok(())
    }

    /// (lease, server time) from a row of `holder, token, expires_us, now_us`; a missing or
    /// placeholder lease (token 0) is `None`.
    pub(super) fn lease_of(
        &self,
        r: &Row,
    ) -> Result<(Option<LeaseRow>, DateTime<Utc>), BackendError> {
        let get = |e| self.place.err("decoding a lease", e);
        let holder: Option<String> = r.try_get(0).map_err(get)?;
        let token: Option<i64> = r.try_get(1).map_err(get)?;
        let expires: Option<i64> = r.try_get(2).map_err(get)?;
        let now: i64 = r.try_get(3).map_err(get)?;
        let time = |us: i64| {
            DateTime::from_timestamp_micros(us)
                .ok_or_else(|| BackendError::new(format!("a lease time ({us} µs) is out of range")))
        };
        let now = time(now)?;
        let lease = match (holder, token, expires) {
            (Some(holder), Some(token), Some(expires)) if token > 0 => Some(LeaseRow {
                holder: ReplicaId::new(holder)
                    .map_err(|e| BackendError::with("a lease's holder", e))?,
                token: unsigned(token, "a lease token")?,
                expires_at: time(expires)?,
            }),
            _ => None,
        };
        Ok((lease, now))
    }

    pub(super) fn begin_locked(&mut self) -> Result<Head, BackendError> {
        self.in_tx.set(false);
        self.run("starting a write transaction", |s| {
            s.client.batch_execute("BEGIN")
        })?;
        self.in_tx.set(true);
        let key = self.lock_key;
        self.run("taking the writer lock", |s| {
            s.client.execute(&s.st.lock, &[&WRITER_LOCK_CLASS, &key])
        })?;
        let last = self.rows("reading the head", |st| &st.head, &[])?;
        match last.first() {
            Some(r) => {
                let get = |e| self.place.err("reading the head", e);
                let seq: i64 = r.try_get(0).map_err(get)?;
                let h: Vec<u8> = r.try_get(1).map_err(get)?;
                Ok(Head {
                    size: unsigned(seq, "the last sequence number")?.saturating_add(1),
                    last: hash(h, &format!("entry {seq}'s hash"))?,
                })
            }
            None => Ok(Head {
                size: 0,
                last: GENESIS_PREV,
            }),
        }
    }
}

impl Backend for PostgresBackend {
    fn begin(&mut self) -> Result<Head, BackendError> {
        let head = self.begin_locked();
        if head.is_err() && self.in_tx.get() {
            // The store does not roll back after a failed begin: end what was started.
            self.rollback();
        }
        head
    }

    fn stream_version(&mut self, stream: &StreamId) -> Result<u64, BackendError> {
        let rows = self.rows(
            "reading a stream version",
            |st| &st.stream_version,
            &[&stream.as_str()],
        )?;
        let v: i64 = rows
            .first()
            .ok_or_else(|| BackendError::new("reading a stream version: no row"))?
            .try_get(0)
            .map_err(|e| self.place.err("reading a stream version", e))?;
        unsigned(v, "a stream version")
    }

    fn insert_entries(&mut self, entries: &[StoredEntry]) -> Result<(), BackendError> {
        let seqs: Vec<i64> = entries.iter().map(|e| int(e.seq)).collect();
        let streams: Vec<&str> = entries.iter().map(|e| e.stream.as_str()).collect();
        let versions: Vec<i64> = entries.iter().map(|e| int(e.version)).collect();
        let bytes: Vec<&[u8]> = entries.iter().map(|e| &e.bytes[..]).collect();
        let hashes: Vec<&[u8]> = entries.iter().map(|e| &e.hash[..]).collect();
        self.run("inserting entries", |s| {
            s.client.execute(
                &s.st.insert_entries,
                &[&seqs, &streams, &versions, &bytes, &hashes],
            )
        })
        .map(|_| ())
    }

    fn insert_nodes(&mut self, nodes: &[(u8, u64, Hash)]) -> Result<(), BackendError> {
        let levels: Vec<i16> = nodes.iter().map(|(l, _, _)| i16::from(*l)).collect();
        let idx: Vec<i64> = nodes.iter().map(|(_, i, _)| int(*i)).collect();
        let hashes: Vec<&[u8]> = nodes.iter().map(|(_, _, h)| &h[..]).collect();
        self.run("inserting Merkle nodes", |s| {
            s.client
                .execute(&s.st.insert_nodes, &[&levels, &idx, &hashes])
        })
        .map(|_| ())
    }

    fn insert_checkpoint(&mut self, size: u64, note: &str) -> Result<(), BackendError> {
        let size = int(size);
        self.run("inserting a checkpoint", |s| {
            s.client.execute(&s.st.insert_checkpoint, &[&size, &note])
        })
        .map(|_| ())
    }

    fn commit(&mut self) -> Result<(), BackendError> {
        let done = self.run("committing", |s| s.client.batch_execute("COMMIT"));
        self.in_tx.set(false);
        done
    }

    fn rollback(&mut self) {
        let session = self.session.get_mut();
        if !session.client.is_closed() {
            // A failed rollback means a lost connection: the server rolls back on its own.
            let _ = session.client.batch_execute("ROLLBACK");
        }
        self.in_tx.set(false);
    }

    fn size(&self) -> Result<u64, BackendError> {
        let rows = self.rows("counting entries", |st| &st.size, &[])?;
        let v: i64 = rows
            .first()
            .ok_or_else(|| BackendError::new("counting entries: no row"))?
            .try_get(0)
            .map_err(|e| self.place.err("counting entries", e))?;
        unsigned(v, "the entry count")
    }

    fn read_stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StoredEntry>, BackendError> {
        let after = int(after);
        self.rows(
            "reading a stream",
            |st| &st.read_stream,
            &[&stream.as_str(), &after],
        )?
        .iter()
        .map(|r| self.row_entry(r))
        .collect()
    }

    fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, BackendError> {
        let (from, limit) = (int(from), int(limit as u64));
        self.rows("reading entries", |st| &st.read_range, &[&from, &limit])?
            .iter()
            .map(|r| self.row_entry(r))
            .collect()
    }

    fn read_nodes(
        &self,
        level: u8,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Hash)>, BackendError> {
        let (level, from, limit) = (i16::from(level), int(from), int(limit as u64));
        self.rows(
            "reading Merkle nodes",
            |st| &st.read_nodes,
            &[&level, &from, &limit],
        )?
        .iter()
        .map(|r| {
            let get = |e| self.place.err("decoding a Merkle node", e);
            let idx: i64 = r.try_get(0).map_err(get)?;
            let h: Vec<u8> = r.try_get(1).map_err(get)?;
            Ok((
                unsigned(idx, "a node index")?,
                hash(h, &format!("node ({level}, {idx})'s hash"))?,
            ))
        })
        .collect()
    }

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, BackendError> {
        let (level, index) = (i16::from(level), int(index));
        let rows = self.rows("reading a Merkle node", |st| &st.node, &[&level, &index])?;
        match rows.first() {
            Some(r) => {
                let h: Vec<u8> = r
                    .try_get(0)
                    .map_err(|e| self.place.err("decoding a Merkle node", e))?;
                Ok(Some(hash(h, &format!("node ({level}, {index})'s hash"))?))
            }
            None => Ok(None),
        }
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, BackendError> {
        let rows = self.rows(
            "reading the latest checkpoint",
            |st| &st.latest_checkpoint,
            &[],
        )?;
        match rows.first() {
            Some(r) => {
                let get = |e| self.place.err("decoding a checkpoint", e);
                let size: i64 = r.try_get(0).map_err(get)?;
                let note: String = r.try_get(1).map_err(get)?;
                Ok(Some((unsigned(size, "a checkpoint size")?, note)))
            }
            None => Ok(None),
        }
    }

    fn read_checkpoints(
        &self,
        from_size: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, BackendError> {
        let (from, limit) = (int(from_size), int(limit as u64));
        self.rows(
            "reading checkpoints",
            |st| &st.read_checkpoints,
            &[&from, &limit],
        )?
        .iter()
        .map(|r| {
            let get = |e| self.place.err("decoding a checkpoint", e);
            let size: i64 = r.try_get(0).map_err(get)?;
            let note: String = r.try_get(1).map_err(get)?;
            Ok((unsigned(size, "a checkpoint size")?, note))
        })
        .collect()
    }

    fn streams(&self) -> Result<Vec<StreamId>, BackendError> {
        self.rows("listing streams", |st| &st.streams, &[])?
            .iter()
            .map(|r| {
                let s: String = r
                    .try_get(0)
                    .map_err(|e| self.place.err("listing streams", e))?;
                StreamId::new(s).map_err(|e| BackendError::with("a stored stream name", e))
            })
            .collect()
    }

    fn update_lease(
        &mut self,
        key: &str,
        _now: DateTime<Utc>,
        change: LeaseChange<'_>,
    ) -> Result<(), BackendError> {
        self.in_tx.set(false);
        self.run("starting a lease transaction", |s| {
            s.client.batch_execute("BEGIN")
        })?;
        self.in_tx.set(true);
        let done = self.update_lease_in(key, change);
        match done {
            Ok(()) => {
                let committed =
                    self.run("committing a lease", |s| s.client.batch_execute("COMMIT"));
                self.in_tx.set(false);
                committed
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    fn lease_in_transaction(
        &mut self,
        key: &str,
        _now: DateTime<Utc>,
    ) -> Result<(Option<LeaseRow>, DateTime<Utc>), BackendError> {
        let rows = self.rows("reading a lease", |st| &st.lease_for_share, &[&key])?;
        let row = rows
            .first()
            .ok_or_else(|| BackendError::new("reading a lease: no row"))?;
        self.lease_of(row)
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::{raw_client, test_url as url, SchemaGuard};
    use super::super::PostgresBackend;
    use crate::conformance::stage_ready_event as event;

    #[test]
    fn the_writer_lock_excludes_writers_of_other_connections() {
        use crate::Backend;
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        let (mut a, _) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        let (mut b, _) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        assert_eq!(a.begin().unwrap().size, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let head = b.begin().unwrap();
            tx.send(head.size).unwrap();
            b.rollback();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "a second writer began while the first held the lock"
        );
        let entry = crate::entry::encode(
            0,
            &promotion_core::StreamId::new("s").unwrap(),
            1,
            "2026-11-26T09:00:00Z".parse().unwrap(),
            &crate::entry::GENESIS_PREV,
            &event(0),
        )
        .unwrap();
        a.insert_entries(&[entry]).unwrap();
        a.commit().unwrap();
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(),
            1,
            "the second writer sees the first one's commit"
        );
        t.join().unwrap();
    }

    #[test]
    fn a_writer_behind_a_stuck_lock_fails_after_lock_timeout_instead_of_hanging() {
        use crate::Backend;
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        drop(PostgresBackend::open_pair_in(&url, &g.schema).unwrap());
        // Someone holds the writer lock and never lets go (a session-level lock this time).
        let mut stuck = raw_client(&url, &g.schema);
        stuck
            .execute(
                "SELECT pg_advisory_lock($1::int4, (SELECT oid FROM pg_namespace WHERE nspname = $2)::int4)",
                &[&super::WRITER_LOCK_CLASS, &g.schema],
            )
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let short = format!("{url}{sep}options=-c%20lock_timeout%3D300");
        let (mut w, _r) = PostgresBackend::open_pair_in(&short, &g.schema).unwrap();
        let started = std::time::Instant::now();
        let err = w.begin().unwrap_err().to_string();
        assert!(err.contains("lock timeout"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // The defaults apply where the URL says nothing.
        let (d, _) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        let setting = |name: &str| -> String {
            d.run("reading a setting", |s| {
                s.client
                    .query_one("SELECT current_setting($1)", &[&name])
                    .and_then(|r| r.try_get(0))
            })
            .unwrap()
        };
        assert_eq!(setting("lock_timeout"), super::super::DEFAULT_LOCK_TIMEOUT);
        assert_eq!(setting("statement_timeout"), "2min");
        assert_eq!(setting("idle_in_transaction_session_timeout"), "5s");
        drop(stuck);
        w.begin().unwrap();
        w.rollback();
    }

    #[test]
    fn a_writer_stalled_inside_its_transaction_is_cut_off_and_the_others_append() {
        use crate::Backend;
        let Some(url) = url() else { return };
        let g = SchemaGuard::new(&url);
        drop(PostgresBackend::open_pair_in(&url, &g.schema).unwrap());
        // `a` takes the writer lock and then stalls (its process is paused) inside the
        // transaction; the server cuts it off after its idle bound (here 500 ms).
        let sep = if url.contains('?') { '&' } else { '?' };
        let stalling = format!("{url}{sep}options=-c%20idle_in_transaction_session_timeout%3D500");
        let (mut a, _) = PostgresBackend::open_pair_in(&stalling, &g.schema).unwrap();
        assert_eq!(a.begin().unwrap().size, 0);
        // `b` would wait out its whole lock timeout (30 s by default) behind a stuck lock
        // and fail; it gets the lock once the server has cut `a` off.
        let (mut b, _) = PostgresBackend::open_pair_in(&url, &g.schema).unwrap();
        assert_eq!(b.begin().unwrap().size, 0);
        let entry = |n| {
            crate::entry::encode(
                0,
                &promotion_core::StreamId::new("s").unwrap(),
                1,
                "2026-11-26T09:00:00Z".parse().unwrap(),
                &crate::entry::GENESIS_PREV,
                &event(n),
            )
            .unwrap()
        };
        b.insert_entries(&[entry(1)]).unwrap();
        b.commit().unwrap();
        // `a` resumes: its transaction is gone, and nothing of it is appended.
        let resumed = a
            .insert_entries(&[entry(2)])
            .and_then(|()| a.commit())
            .unwrap_err()
            .to_string();
        assert!(
            resumed.contains("idle-in-transaction") || resumed.contains("connection"),
            "{resumed}"
        );
        a.rollback();
        assert_eq!(a.begin().unwrap().size, 1, "only b's entry is in the log");
        a.rollback();
    }
}
