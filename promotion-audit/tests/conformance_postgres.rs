//! The conformance suite against the PostgreSQL backend: a fresh schema per check in the
//! database at `PROMOTION_TEST_POSTGRES_URL`. Without it each check says loudly that it was
//! skipped, and fails under CI (see `promotion_audit::postgres::harness::test_url`).

use promotion_audit::conformance::Harness;
use promotion_audit::postgres::harness::{postgres_harness, test_url};

fn harness() -> Option<Harness> {
    test_url().map(|url| postgres_harness(&url))
}

promotion_audit::audit_conformance!(optional: harness);
