//! The conformance suite against the stores that keep everything in memory: core's
//! `InMemoryStore` (core cannot depend on this crate, so its checks live here) and the
//! in-memory audit backend.

/// `promotion_core::InMemoryStore`: the event-store checks, leases included. It cannot be
/// reopened (nothing outlives it), so the checks of reopening do not apply.
mod core_in_memory_store {
    promotion_audit::event_store_conformance!(promotion_core::InMemoryStore::new);
}

/// The in-memory audit backend: every check, through `AuditStore::memory_on`; a clone of the
/// backend reopens the same rows.
mod audit_memory_backend {
    promotion_audit::audit_conformance!(promotion_audit::conformance::memory_harness);
}
