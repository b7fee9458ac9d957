//! The behaviour every respcache backend must show, as reusable checks.
//!
//! Each check is a public async function named for what it proves
//! ([`checks::keys_are_isolated_when_bodies_are_shared`], ...). A backend
//! implements [`Harness`] once in a test file (how to make a fresh location,
//! reopen it, damage an entry, measure storage) and one macro call makes
//! every check a separate test:
//!
//! ```ignore
//! // tests/conformance.rs of a backend crate
//! struct MyHarness { /* temp dir, manager */ }
//!
//! #[async_trait::async_trait]
//! impl respcache_conformance::Harness for MyHarness { /* ... */ }
//!
//! respcache_conformance::buffered_suite!(MyHarness);
//! ```
//!
//! (A shape, not compiled here: a harness needs a backend, which this
//! crate does not have. The smallest complete one, compiled and run by
//! `cargo xtask ci`, is `examples/outside-backend/tests/conformance.rs`
//! in the repository, walked through in the guide's "Writing a backend".)
//!
//! A check that fails says why, as a [`FailureKind`]; a harness declares
//! what its backend can do ([`Capabilities`]), and checks it cannot meet
//! report themselves as not applicable instead of failing.
//!
//! The suite tests itself: its own tests (`tests/proofs`) run every check
//! in [`checks::ALL`] against a manager broken on purpose, and assert that
//! the check fails for its own reason while the same manager without the
//! defect passes it.

#![deny(rustdoc::broken_intra_doc_links)]

pub mod checks;
mod failure;
pub mod fixtures;
mod harness;

pub use failure::{CheckResult, Context, Failure, FailureKind};
pub use harness::{Capabilities, Damage, Harness, bytes_below, damage_file};

/// What [`run_check`] prints for a check that does not apply, followed by
/// the check's name and the reason: `cargo xtask conformance` reads it to
/// show `n/a`.
pub const NOT_APPLICABLE_MARKER: &str = "respcache-conformance n/a:";

/// What each of the suite's own proofs prints when it holds, followed by
/// `check | broken manager | kind | what the check saw`: `cargo xtask
/// conformance --prove` reads it to print the proof table.
#[doc(hidden)]
pub const PROOF_MARKER: &str = "respcache-conformance proof:";

/// Runs one check on a fresh multi-threaded runtime and panics with the
/// failure if it does not hold; a check that does not apply to the
/// harness passes.
pub fn run(check: impl std::future::Future<Output = CheckResult>) {
    run_check("check", check);
}

/// Runs the check `name` on a fresh multi-threaded runtime and panics with
/// the failure if it does not hold: the body of every generated test. A
/// check that does not apply to the harness passes and prints
/// [`NOT_APPLICABLE_MARKER`], its name and why.
pub fn run_check(name: &str, check: impl std::future::Future<Output = CheckResult>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime for the check");
    match runtime.block_on(check) {
        Ok(()) => {}
        Err(failure) if failure.is_not_applicable() => {
            println!("{NOT_APPLICABLE_MARKER} {name}: {}", failure.message());
        }
        Err(failure) => panic!("conformance check {name} failed: {failure}"),
    }
}

/// Every check for buffered managers that takes only the harness, in the
/// order the macro declares them.
#[macro_export]
#[doc(hidden)]
macro_rules! __each_buffered_check {
    ($($callback:ident)::+!($($args:tt)*)) => {
        $($callback)::+!($($args)*;
            get_of_missing_key_is_none,
            delete_of_missing_key_is_ok,
            put_returns_the_stored_response,
            round_trip_keeps_status_version_headers_body_and_url,
            round_trip_keeps_every_http_version,
            round_trip_keeps_repeated_header_values_in_order,
            round_trip_keeps_non_utf8_header_values,
            round_trip_keeps_an_empty_body,
            round_trip_keeps_a_binary_body_with_every_byte_value,
            round_trip_keeps_a_large_body,
            round_trip_keeps_every_status_class,
            round_trip_keeps_an_equivalent_policy,
            second_put_replaces_the_first_whole,
            update_head_keeps_the_body_or_declines,
            delete_removes_the_entry,
            keys_are_isolated_when_bodies_are_shared,
            overwriting_a_key_that_shares_a_body_leaves_the_other_intact,
            many_keys_do_not_interfere,
            keys_with_path_syntax_are_distinct_entries,
            keys_with_path_syntax_stay_inside_the_root,
            keys_of_64_kib_work,
            keys_differing_only_in_case_are_distinct,
            long_keys_differing_only_in_the_last_byte_are_distinct,
            body_with_a_flipped_byte_is_never_returned,
            truncated_body_is_never_returned,
            extended_body_is_never_returned,
            garbled_metadata_is_a_miss,
            concurrent_tasks_on_overlapping_keys_see_whole_values,
            restart_sees_stored_entries,
            managers_on_one_location_agree,
            deleted_entries_release_their_storage,
            overwrites_do_not_accumulate_storage,
            keys_lists_every_stored_key_by_prefix,
            tagged_lists_the_entries_that_carry_the_tag,
        );
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __harness_tests {
    ($harness:ty; $($check:ident),* $(,)?) => {$(
        #[test]
        fn $check() {
            $crate::run_check(stringify!($check), async {
                let harness = <$harness as $crate::Harness>::create().await;
                $crate::checks::$check(&harness).await
            });
        }
    )*};
}

/// Declares one test per check for a [`Harness`] type: every check for
/// buffered managers, the process checks (crash under SIGKILL, two
/// processes on one location), and the ignored child test those start.
#[macro_export]
macro_rules! buffered_suite {
    ($harness:ty) => {
        $crate::__each_buffered_check!($crate::__harness_tests!($harness));

        #[test]
        fn all_or_nothing_after_sigkill() {
            $crate::run_check("all_or_nothing_after_sigkill", async {
                let harness = <$harness as $crate::Harness>::create().await;
                let child = $crate::checks::ChildTest::writer(module_path!());
                $crate::checks::all_or_nothing_after_sigkill(&harness, &child).await
            });
        }

        #[test]
        fn two_processes_share_one_location() {
            $crate::run_check("two_processes_share_one_location", async {
                let harness = <$harness as $crate::Harness>::create().await;
                let child = $crate::checks::ChildTest::writer(module_path!());
                $crate::checks::two_processes_share_one_location(&harness, &child).await
            });
        }

        #[test]
        #[ignore = "the child process of the process checks, started by them"]
        fn conformance_child_writer() {
            $crate::checks::child_writer_main::<$harness>();
        }
    };
}

/// Every check for streaming managers that takes only the harness.
#[macro_export]
#[doc(hidden)]
macro_rules! __each_streaming_check {
    ($($callback:ident)::+!($($args:tt)*)) => {
        $($callback)::+!($($args)*;
            streamed_put_hands_over_every_byte_and_commits,
            buffered_put_reads_back_as_a_stream,
            stream_response_keeps_head_and_body,
            body_error_midway_commits_nothing,
            dropped_body_commits_nothing,
            first_frame_reaches_the_caller_before_the_origin_sends_the_second,
            streamed_read_of_a_damaged_body_ends_in_an_error,
            concurrent_streamed_puts_of_one_key_leave_one_whole_entry,
        );
    };
}

/// Declares one test per streaming check for a [`Harness`] whose manager
/// is a [`StreamingCacheManager`](respcache_core::StreamingCacheManager),
/// including the flat-memory check (a 1 GiB body through a child process)
/// and the ignored child test it starts. Use it beside
/// [`buffered_suite!`], which a streaming manager must pass too.
#[macro_export]
macro_rules! streaming_suite {
    ($harness:ty) => {
        $crate::__each_streaming_check!($crate::__harness_tests!($harness));

        #[test]
        fn streaming_memory_stays_flat() {
            $crate::run_check("streaming_memory_stays_flat", async {
                let harness = <$harness as $crate::Harness>::create().await;
                let child = $crate::checks::ChildTest::streamer(module_path!());
                $crate::checks::streaming_memory_stays_flat(&harness, &child).await
            });
        }

        #[test]
        #[ignore = "the child process of streaming_memory_stays_flat, started by it"]
        fn conformance_child_streamer() {
            $crate::checks::child_streamer_main::<$harness>();
        }
    };
}
