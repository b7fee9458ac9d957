//! The suite's proof that every check can fail, for the reason it names.
//!
//! Each proof runs one check against a manager broken on purpose and
//! asserts that the check fails with the [`FailureKind`] it is named for,
//! then runs it against the same wrapper without the defect and asserts
//! that it passes. `every_check_has_a_proof` fails when a check in
//! `checks::ALL` has none, so a check added later must come with its
//! proof. A proof that holds prints one line starting with
//! `PROOF_MARKER`; `cargo xtask conformance --prove` reads them to print
//! the table.

mod buffered;
mod streamed;

use std::future::Future;

use buffered::*;
use respcache_conformance::checks::{self, ChildTest};
use respcache_conformance::{CheckResult, FailureKind, Harness, PROOF_MARKER};
use streamed::*;

/// Bytes the memory proof streams: enough that a manager holding them all
/// grows far past the bound, few enough to run in every test run.
const PROOF_STREAMED_BYTES: u64 = 256 << 20;

/// Runs the broken and the control outcome and judges them.
fn prove(
    check: &str,
    defect: &str,
    kind: FailureKind,
    outcomes: impl Future<Output = (CheckResult, CheckResult)>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime for the proof");
    let (broken, control) = runtime.block_on(outcomes);
    let failure = match broken {
        Ok(()) => panic!("{check} passed against a manager that {defect}"),
        Err(failure) => failure,
    };
    assert!(
        failure.kind() == kind,
        "{check} failed against a manager that {defect}, but for another reason than [{kind}]: {failure}"
    );
    if let Err(failure) = control {
        panic!("{check} failed against the faithful control: {failure}");
    }
    println!(
        "{PROOF_MARKER} {check} | {defect} | {kind} | {}",
        failure.message().replace('\n', " ")
    );
}

macro_rules! proofs {
    ($(
        $check:ident {
            $( $defect:ident: $broken:ty, against $control:ty => $kind:ident $(, $child:ident)?; )+
        }
    )+) => {
        /// Every proof: the check, the defect's module, the kind it fails with.
        const PROOFS: &[(&str, &str, FailureKind)] = &[
            $($( (stringify!($check), stringify!($defect), FailureKind::$kind), )+)+
        ];

        $(
            mod $check {
                use super::*;
                $(
                    mod $defect {
                        use super::*;

                        #[test]
                        fn proof() {
                            prove(
                                stringify!($check),
                                stringify!($defect),
                                FailureKind::$kind,
                                async {
                                    let broken = <$broken as Harness>::create().await;
                                    let failed = proofs!(@run $check, broken, "broken_child" $(, $child)?);
                                    drop(broken);
                                    let control = <$control as Harness>::create().await;
                                    let passed = proofs!(@run $check, control, "control_child" $(, $child)?);
                                    (failed, passed)
                                },
                            );
                        }

                        $( proofs!(@children $child, $broken, $control); )?
                    }
                )+
            }
        )+
    };
    (@run $check:ident, $h:ident, $name:literal) => {
        checks::$check(&$h).await
    };
    (@run $check:ident, $h:ident, $name:literal, child_writer_main) => {
        checks::$check(&$h, &ChildTest::in_module(module_path!(), $name)).await
    };
    (@run $check:ident, $h:ident, $name:literal, child_streamer_main) => {
        checks::streaming_memory_stays_flat_with(
            &$h,
            &ChildTest::in_module(module_path!(), $name),
            PROOF_STREAMED_BYTES,
        )
        .await
    };
    (@children $child:ident, $broken:ty, $control:ty) => {
        #[test]
        #[ignore = "a child process of this proof, started by it"]
        fn broken_child() {
            checks::$child::<$broken>();
        }

        #[test]
        #[ignore = "a child process of this proof, started by it"]
        fn control_child() {
            checks::$child::<$control>();
        }
    };
}

type Control = Wrapped<Faithful>;
type StreamControl = Streamed<FaithfulStream>;

proofs! {
    get_of_missing_key_is_none {
        missing_key_is_an_error: Wrapped<MissingKeyIsAnError>, against Control => MissingKey;
    }
    delete_of_missing_key_is_ok {
        missing_key_is_an_error: Wrapped<MissingKeyIsAnError>, against Control => MissingKey;
    }
    put_returns_the_stored_response {
        drops_repeated_header_values: Wrapped<DropsRepeatedHeaderValues>, against Control => PutResult;
    }
    round_trip_keeps_status_version_headers_body_and_url {
        truncates_bodies: Wrapped<TruncatesBodies>, against Control => RoundTrip;
    }
    round_trip_keeps_every_http_version {
        stores_versions_as_http11: Wrapped<StoresVersionsAsHttp11>, against Control => RoundTrip;
    }
    round_trip_keeps_repeated_header_values_in_order {
        drops_repeated_header_values: Wrapped<DropsRepeatedHeaderValues>, against Control => RoundTrip;
    }
    round_trip_keeps_non_utf8_header_values {
        stores_header_values_as_utf8_lossy: Wrapped<StoresHeaderValuesAsUtf8Lossy>, against Control => RoundTrip;
    }
    round_trip_keeps_an_empty_body {
        empty_body_reads_as_missing: Wrapped<EmptyBodyReadsAsMissing>, against Control => RoundTrip;
    }
    round_trip_keeps_a_binary_body_with_every_byte_value {
        stores_bodies_as_utf8_lossy: Wrapped<StoresBodiesAsUtf8Lossy>, against Control => RoundTrip;
    }
    round_trip_keeps_a_large_body {
        caps_bodies_at_1_mib: Wrapped<CapsBodiesAt1Mib>, against Control => RoundTrip;
    }
    round_trip_keeps_every_status_class {
        clamps_unknown_statuses: Wrapped<ClampsUnknownStatuses>, against Control => RoundTrip;
    }
    round_trip_keeps_an_equivalent_policy {
        rebuilds_the_policy_on_read: Wrapped<RebuildsThePolicyOnRead>, against Control => RoundTrip;
    }
    second_put_replaces_the_first_whole {
        keeps_the_first_put: Wrapped<KeepsTheFirstPut>, against Control => Replace;
    }
    update_head_keeps_the_body_or_declines {
        update_head_drops_the_body: Streamed<UpdateHeadDropsTheBody>, against StreamControl => UpdateHead;
        always_declines_update_head: Streamed<AlwaysDeclinesUpdateHead>, against StreamControl => UpdateHead;
        update_head_keeps_the_old_policy: Streamed<UpdateHeadKeepsTheOldPolicy>, against StreamControl => UpdateHead;
    }
    keys_lists_every_stored_key_by_prefix {
        lists_deleted_keys: Wrapped<ListsDeletedKeys>, against Control => Listing;
    }
    tagged_lists_the_entries_that_carry_the_tag {
        tag_index_never_forgets: Wrapped<TagIndexNeverForgets>, against Control => Tags;
    }
    delete_removes_the_entry {
        ignores_delete: Wrapped<IgnoresDelete>, against Control => Delete;
    }
    keys_are_isolated_when_bodies_are_shared {
        dedup_with_unsafe_delete: Wrapped<DedupWithUnsafeDelete>, against Control => Isolation;
    }
    overwriting_a_key_that_shares_a_body_leaves_the_other_intact {
        dedup_with_unsafe_delete: Wrapped<DedupWithUnsafeDelete>, against Control => Isolation;
    }
    many_keys_do_not_interfere {
        deletes_by_prefix: Wrapped<DeletesByPrefix>, against Control => Isolation;
    }
    keys_with_path_syntax_are_distinct_entries {
        normalises_path_syntax: Wrapped<NormalisesPathSyntax>, against Control => KeyCollision;
    }
    keys_with_path_syntax_stay_inside_the_root {
        joins_keys_onto_root: Wrapped<JoinsKeysOntoRoot>, against Control => KeyEscape;
    }
    keys_of_64_kib_work {
        hex_keys_as_file_names: Wrapped<HexKeysAsFileNames>, against Control => LongKey;
    }
    keys_differing_only_in_case_are_distinct {
        folds_key_case: Wrapped<FoldsKeyCase>, against Control => KeyCollision;
    }
    long_keys_differing_only_in_the_last_byte_are_distinct {
        cuts_keys_at_1_kib: Wrapped<CutsKeysAt1Kib>, against Control => KeyCollision;
    }
    body_with_a_flipped_byte_is_never_returned {
        checks_integrity_only_by_length: Wrapped<ChecksIntegrityOnlyByLength>, against Control => Integrity;
    }
    truncated_body_is_never_returned {
        no_integrity_check: Wrapped<NoIntegrityCheck>, against Control => Integrity;
    }
    extended_body_is_never_returned {
        no_integrity_check: Wrapped<NoIntegrityCheck>, against Control => Integrity;
    }
    garbled_metadata_is_a_miss {
        garbled_metadata_is_an_error: Wrapped<GarbledMetadataIsAnError>, against Control => Integrity;
    }
    concurrent_tasks_on_overlapping_keys_see_whole_values {
        lock_free_racer: Wrapped<LockFreeRacer>, against Control => Concurrency;
    }
    restart_sees_stored_entries {
        index_only_in_memory: Wrapped<IndexOnlyInMemory>, against Control => Restart;
    }
    managers_on_one_location_agree {
        keeps_entries_in_process: Wrapped<KeepsEntriesInProcess>, against Control => Restart;
    }
    deleted_entries_release_their_storage {
        deletes_only_the_index: Wrapped<DeletesOnlyTheIndex>, against Control => Storage;
    }
    overwrites_do_not_accumulate_storage {
        leaks_on_overwrite: Wrapped<LeaksOnOverwrite>, against Control => Storage;
    }
    all_or_nothing_after_sigkill {
        writes_in_place: Wrapped<WritesInPlace>, against Control => CrashAtomicity, child_writer_main;
    }
    two_processes_share_one_location {
        rewrites_a_shared_index: Wrapped<RewritesASharedIndex>, against Control => SharedLocation, child_writer_main;
    }
    streamed_put_hands_over_every_byte_and_commits {
        never_commits_streams: Streamed<NeverCommitsStreams>, against StreamControl => Commit;
    }
    buffered_put_reads_back_as_a_stream {
        streamed_reads_stop_after_one_frame: Streamed<StreamedReadsStopAfterOneFrame>, against StreamControl => StreamContent;
        stream_response_reads_drop_the_body: Streamed<StreamResponseReadsDropTheBody>, against StreamControl => StreamContent;
    }
    stream_response_keeps_head_and_body {
        stream_response_keeps_one_value_per_header: Streamed<StreamResponseKeepsOneValuePerHeader>, against StreamControl => StreamContent;
    }
    body_error_midway_commits_nothing {
        commits_failed_bodies: Streamed<CommitsFailedBodies>, against StreamControl => Commit;
        leaves_temp_files_on_error: Streamed<LeavesTempFilesOnError>, against StreamControl => Storage;
    }
    dropped_body_commits_nothing {
        commits_dropped_bodies: Streamed<CommitsDroppedBodies>, against StreamControl => Commit;
    }
    first_frame_reaches_the_caller_before_the_origin_sends_the_second {
        buffers_before_answering: Streamed<BuffersBeforeAnswering>, against StreamControl => FirstByte;
    }
    streamed_read_of_a_damaged_body_ends_in_an_error {
        skips_checks_on_streamed_reads: Streamed<SkipsChecksOnStreamedReads>, against StreamControl => Integrity;
    }
    concurrent_streamed_puts_of_one_key_leave_one_whole_entry {
        shares_one_temp_file: Streamed<SharesOneTempFile>, against StreamControl => Concurrency;
    }
    streaming_memory_stays_flat {
        buffers_streams_in_memory: Streamed<BuffersStreamsInMemory>, against StreamControl => Memory, child_streamer_main;
    }
}

/// Every check has a proof, each proof's kind is one its check is named
/// for, and every proof names a real check: a check added to the suite
/// without a broken manager that fails it fails this test.
#[test]
fn every_check_has_a_proof() {
    let unproven: Vec<&str> = checks::ALL
        .iter()
        .map(|check| check.name)
        .filter(|name| !PROOFS.iter().any(|(proved, _, _)| proved == name))
        .collect();
    assert!(unproven.is_empty(), "checks without a proof: {unproven:?}");
    for (check, defect, kind) in PROOFS {
        let found = checks::find(check).unwrap_or_else(|| panic!("{check} is not in checks::ALL"));
        assert!(
            found.kinds.contains(kind),
            "{defect} proves {check} by a [{kind}] failure, which is not a reason {check} is named for ({:?})",
            found.kinds
        );
    }
}

macro_rules! names {
    (; $($name:ident),* $(,)?) => {
        &[$(stringify!($name)),*]
    };
}

/// `checks::ALL` lists exactly what the macros declare, in their order.
#[test]
fn the_list_of_checks_is_what_the_macros_declare() {
    let buffered: &[&str] = respcache_conformance::__each_buffered_check!(names!());
    let streaming: &[&str] = respcache_conformance::__each_streaming_check!(names!());
    let declared: Vec<&str> = buffered
        .iter()
        .chain(&[
            "all_or_nothing_after_sigkill",
            "two_processes_share_one_location",
        ])
        .chain(streaming)
        .chain(&["streaming_memory_stays_flat"])
        .copied()
        .collect();
    let listed: Vec<&str> = checks::ALL.iter().map(|check| check.name).collect();
    assert_eq!(listed, declared);
}

/// Runs the check against a fresh harness; the kind it failed with.
macro_rules! kind_of {
    ($harness:ty, $check:ident) => {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async {
                let harness = <$harness as Harness>::create().await;
                checks::$check(&harness).await.err().map(|f| f.kind())
            })
    };
}

/// A manager that loses bytes fails the checks built on entries that read
/// back whole as a round trip, never for the reason they are named for:
/// truncation cannot stand in for isolation, restarts or races.
#[test]
fn truncation_is_never_taken_for_another_reason() {
    type H = Wrapped<TruncatesBodies>;
    let round_trip = Some(FailureKind::RoundTrip);
    assert_eq!(
        kind_of!(H, keys_are_isolated_when_bodies_are_shared),
        round_trip
    );
    assert_eq!(
        kind_of!(
            H,
            overwriting_a_key_that_shares_a_body_leaves_the_other_intact
        ),
        round_trip
    );
    assert_eq!(kind_of!(H, many_keys_do_not_interfere), round_trip);
    assert_eq!(kind_of!(H, second_put_replaces_the_first_whole), round_trip);
    assert_eq!(
        kind_of!(H, keys_differing_only_in_case_are_distinct),
        round_trip
    );
    assert_eq!(
        kind_of!(H, keys_with_path_syntax_stay_inside_the_root),
        round_trip
    );
    assert_eq!(
        kind_of!(H, concurrent_tasks_on_overlapping_keys_see_whole_values),
        round_trip
    );
    assert_eq!(kind_of!(H, restart_sees_stored_entries), round_trip);
    assert_eq!(
        kind_of!(H, deleted_entries_release_their_storage),
        round_trip
    );
}

/// The racer is caught only when operations overlap: one call at a time,
/// it keeps entries as well as the control does.
#[test]
fn the_racer_fails_only_when_operations_overlap() {
    type H = Wrapped<LockFreeRacer>;
    assert_eq!(kind_of!(H, second_put_replaces_the_first_whole), None);
    assert_eq!(kind_of!(H, many_keys_do_not_interfere), None);
    assert_eq!(kind_of!(H, restart_sees_stored_entries), None);
    assert_eq!(kind_of!(H, managers_on_one_location_agree), None);
    assert_eq!(
        kind_of!(H, round_trip_keeps_status_version_headers_body_and_url),
        None
    );
    assert_eq!(
        kind_of!(H, concurrent_tasks_on_overlapping_keys_see_whole_values),
        Some(FailureKind::Concurrency)
    );
    type S = Streamed<SharesOneTempFile>;
    assert_eq!(
        kind_of!(S, streamed_put_hands_over_every_byte_and_commits),
        None
    );
}

/// A harness that counts a tenth of what its backend holds: what a
/// `stored_bytes` that sees only metadata would report.
struct Undercounting(Control);

#[async_trait::async_trait]
impl Harness for Undercounting {
    type Manager = <Control as Harness>::Manager;

    async fn create() -> Self {
        Self(Control::create().await)
    }
    fn manager(&self) -> std::sync::Arc<Self::Manager> {
        self.0.manager()
    }
    async fn reopen(&self) -> Self::Manager {
        self.0.reopen().await
    }
    fn location(&self) -> String {
        self.0.location()
    }
    async fn open_location(location: &str) -> Self::Manager {
        Control::open_location(location).await
    }
    async fn damage(
        &self,
        key: &str,
        how: respcache_conformance::Damage,
    ) -> Result<(), respcache_core::BoxError> {
        self.0.damage(key, how).await
    }
    async fn stored_bytes(&self) -> Result<u64, respcache_core::BoxError> {
        Ok(self.0.stored_bytes().await? / 10)
    }
}

/// The storage checks measure one entry first and refuse a harness that
/// reports less than half its body: an undercount cannot make a leak
/// look small.
#[test]
fn an_undercounting_harness_fails_the_storage_checks() {
    let harness = Some(FailureKind::Harness);
    assert_eq!(
        kind_of!(Undercounting, deleted_entries_release_their_storage),
        harness
    );
    assert_eq!(
        kind_of!(Undercounting, overwrites_do_not_accumulate_storage),
        harness
    );
}

/// A manager that answers from its own memory first keeps what it stored
/// across a restart: only the check that managers agree catches it.
#[test]
fn a_manager_with_a_private_copy_fails_only_the_agreement_check() {
    type H = Wrapped<KeepsEntriesInProcess>;
    assert_eq!(kind_of!(H, restart_sees_stored_entries), None);
    assert_eq!(
        kind_of!(H, managers_on_one_location_agree),
        Some(FailureKind::Restart)
    );
}
