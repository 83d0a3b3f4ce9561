//! The macros that turn the conformance checks into tests, one `#[test]` per check, named
//! after it. See the [module](super) documentation for how to call them.

/// One `#[test]` per [event-store check](crate::conformance::event_store), named after the
/// check, for any `promotion_core::EventStore`.
///
/// - `event_store_conformance!(make_store)`: `make_store()` returns a fresh, empty store; the
///   checks `ordering_and_versions`, `conflicts`, `concurrent_appends` and `leases` run.
/// - `event_store_conformance!(reopen: make_opener)`: `make_opener()` prepares fresh, empty
///   storage and returns a function (`Fn() -> S`) that opens a store over it, each call a new
///   one, as another process would; `reopen`, `two_writers` and `leases_survive_reopening`
///   run as well.
///
/// Invoke it in a module of its own (see the [`conformance`](crate::conformance) example).
#[macro_export]
macro_rules! event_store_conformance {
    (@store $store:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let store = $store;
                $crate::conformance::block_on($crate::conformance::event_store::$check(&store));
            }
        )*
    };
    (@open $opener:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let open = $opener;
                $crate::conformance::block_on($crate::conformance::event_store::$check(&open));
            }
        )*
    };
    (reopen: $make:expr) => {
        $crate::event_store_conformance!(
            @store ($make)()();
            ordering_and_versions, conflicts, concurrent_appends, leases
        );
        $crate::event_store_conformance!(
            @open ($make)();
            reopen, two_writers, leases_survive_reopening
        );
    };
    ($make:expr) => {
        $crate::event_store_conformance!(
            @store ($make)();
            ordering_and_versions, conflicts, concurrent_appends, leases
        );
    };
}

/// One `#[test]` per [audit check](crate::conformance::audit), named after the check, for an
/// audit backend: the event-store checks through an [`AuditStore`](crate::AuditStore) on it,
/// with what they leave verified as a log, then proofs, tamper detection and export/import.
///
/// - `audit_conformance!(make_harness)`: `make_harness()` returns a
///   [`Harness`](crate::conformance::Harness) for a fresh, empty log.
/// - `audit_conformance!(optional: make_harness)`: `make_harness()` returns an
///   `Option<Harness>`; `None` skips the check (the maker says why, as the PostgreSQL tests do
///   when no database was given).
///
/// Invoke it in a module of its own (see the [`conformance`](crate::conformance) example).
#[macro_export]
macro_rules! audit_conformance {
    (@checks $make:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let make = $make;
                let ::std::option::Option::Some(harness) = make() else {
                    return;
                };
                $crate::conformance::block_on($crate::conformance::audit::$check(harness));
            }
        )*
    };
    (optional: $make:expr) => {
        $crate::audit_conformance!(
            @checks $make;
            ordering_and_versions, conflicts, concurrent_appends, leases, reopen, two_writers,
            leases_survive_reopening, proofs, export_import, rewrite_without_checkpoints,
            checkpoints_pinpoint_a_rewrite, every_checkpoint_verified,
            anchors_refuse_rollback_and_fork, cosignatures_stored_beside_checkpoints
        );

        #[test]
        fn tamper_detection() {
            let make = $make;
            // The check takes a harness for each kind of damage; the first says whether the
            // backend is there at all.
            if make().is_none() {
                return;
            }
            let again = || make().expect("the harness was there for the first damage");
            $crate::conformance::block_on($crate::conformance::audit::tamper_detection(&again));
        }
    };
    ($make:expr) => {
        $crate::audit_conformance!(optional: || ::std::option::Option::Some(($make)()));
    };
}
