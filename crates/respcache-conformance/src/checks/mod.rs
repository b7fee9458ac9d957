//! Every check, one public async function per behaviour, and [`ALL`], the
//! list of them with the reasons each may fail for.

mod concurrency;
mod integrity;
mod isolation;
mod keys;
mod listing;
mod memory;
mod process;
mod round_trip;
mod storage;
mod streaming;

pub use concurrency::*;
pub use integrity::*;
pub use isolation::*;
pub use keys::*;
pub use listing::*;
pub use memory::*;
pub use process::*;
pub use round_trip::*;
pub use storage::*;
pub use streaming::*;

use respcache_core::{CacheManager, HttpResponse};

use crate::failure::{Context, Failure, FailureKind};
use crate::{Capabilities, Harness, fixtures};

/// Which macro declares a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// [`buffered_suite!`](crate::buffered_suite): every backend.
    Buffered,
    /// [`streaming_suite!`](crate::streaming_suite): backends that
    /// implement `StreamingCacheManager`.
    Streaming,
}

/// One check: its name (the function's and the generated test's) and the
/// kinds of failure that are its own reason to fail.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// The check's function in this module, and its test's name.
    pub name: &'static str,
    /// The macro that declares it.
    pub suite: Suite,
    /// The reasons it is named for. It may fail for others too (a
    /// precondition that did not hold, an error), but a broken manager
    /// proves the check only by failing it for one of these.
    pub kinds: &'static [FailureKind],
}

macro_rules! catalogue {
    ($($suite:ident: $($name:ident => [$($kind:ident),+]),+ $(,)?;)+) => {
        /// Every check the suite declares, in the order the macros declare
        /// them, each with the reasons it is named for.
        pub const ALL: &[Check] = &[$($(Check {
            name: stringify!($name),
            suite: Suite::$suite,
            kinds: &[$(FailureKind::$kind),+],
        }),+),+];
    };
}

catalogue! {
    Buffered:
        get_of_missing_key_is_none => [MissingKey],
        delete_of_missing_key_is_ok => [MissingKey],
        put_returns_the_stored_response => [PutResult],
        round_trip_keeps_status_version_headers_body_and_url => [RoundTrip],
        round_trip_keeps_every_http_version => [RoundTrip],
        round_trip_keeps_repeated_header_values_in_order => [RoundTrip],
        round_trip_keeps_non_utf8_header_values => [RoundTrip],
        round_trip_keeps_an_empty_body => [RoundTrip],
        round_trip_keeps_a_binary_body_with_every_byte_value => [RoundTrip],
        round_trip_keeps_a_large_body => [RoundTrip],
        round_trip_keeps_every_status_class => [RoundTrip],
        round_trip_keeps_an_equivalent_policy => [RoundTrip],
        second_put_replaces_the_first_whole => [Replace],
        update_head_keeps_the_body_or_declines => [UpdateHead],
        delete_removes_the_entry => [Delete],
        keys_are_isolated_when_bodies_are_shared => [Isolation],
        overwriting_a_key_that_shares_a_body_leaves_the_other_intact => [Isolation],
        many_keys_do_not_interfere => [Isolation],
        keys_with_path_syntax_are_distinct_entries => [KeyCollision],
        keys_with_path_syntax_stay_inside_the_root => [KeyEscape],
        keys_of_64_kib_work => [LongKey],
        keys_differing_only_in_case_are_distinct => [KeyCollision],
        long_keys_differing_only_in_the_last_byte_are_distinct => [KeyCollision],
        body_with_a_flipped_byte_is_never_returned => [Integrity],
        truncated_body_is_never_returned => [Integrity],
        extended_body_is_never_returned => [Integrity],
        garbled_metadata_is_a_miss => [Integrity],
        concurrent_tasks_on_overlapping_keys_see_whole_values => [Concurrency],
        restart_sees_stored_entries => [Restart],
        managers_on_one_location_agree => [Restart],
        deleted_entries_release_their_storage => [Storage],
        overwrites_do_not_accumulate_storage => [Storage],
        keys_lists_every_stored_key_by_prefix => [Listing],
        tagged_lists_the_entries_that_carry_the_tag => [Tags],
        all_or_nothing_after_sigkill => [CrashAtomicity],
        two_processes_share_one_location => [SharedLocation];
    Streaming:
        streamed_put_hands_over_every_byte_and_commits => [StreamContent, Commit],
        buffered_put_reads_back_as_a_stream => [StreamContent],
        stream_response_keeps_head_and_body => [StreamContent],
        body_error_midway_commits_nothing => [Commit, Storage],
        dropped_body_commits_nothing => [Commit, Storage],
        first_frame_reaches_the_caller_before_the_origin_sends_the_second => [FirstByte],
        streamed_read_of_a_damaged_body_ends_in_an_error => [Integrity],
        concurrent_streamed_puts_of_one_key_leave_one_whole_entry => [Concurrency],
        streaming_memory_stays_flat => [Memory];
}

/// The check named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Check> {
    ALL.iter().find(|check| check.name == name)
}

/// `Ok` when the harness declares `needed`, else a
/// [`FailureKind::NotApplicable`] saying which capability is missing.
pub(crate) fn require<H: Harness>(
    needed: fn(&Capabilities) -> bool,
    what: &str,
) -> Result<(), Failure> {
    if needed(&H::capabilities()) {
        Ok(())
    } else {
        Err(Failure::not_applicable(format!(
            "the harness does not declare that {what}"
        )))
    }
}

/// Stores `response` under `key` with a fitting policy; an error is a
/// failure of `kind`.
pub(crate) async fn store_as<M: CacheManager + ?Sized>(
    kind: FailureKind,
    manager: &M,
    key: &str,
    response: HttpResponse,
) -> Result<(), Failure> {
    let policy = fixtures::policy_for(&response);
    manager
        .put(key.to_owned(), response, policy)
        .await
        .context_as(
            kind,
            &format!("put of {}", respcache_core::abbreviate_key(key)),
        )?;
    Ok(())
}

/// Stores `response` under `key` with a fitting policy.
pub(crate) async fn store<M: CacheManager + ?Sized>(
    manager: &M,
    key: &str,
    response: HttpResponse,
) -> Result<(), Failure> {
    store_as(FailureKind::Operation, manager, key, response).await
}

/// Reads `key`; an error is a failure of `kind`.
pub(crate) async fn fetch_as<M: CacheManager + ?Sized>(
    kind: FailureKind,
    manager: &M,
    key: &str,
) -> Result<Option<HttpResponse>, Failure> {
    Ok(manager
        .get(key)
        .await
        .context_as(
            kind,
            &format!("get of {}", respcache_core::abbreviate_key(key)),
        )?
        .map(|(response, _)| response))
}

/// Reads `key`, failing on an error.
pub(crate) async fn fetch<M: CacheManager + ?Sized>(
    manager: &M,
    key: &str,
) -> Result<Option<HttpResponse>, Failure> {
    fetch_as(FailureKind::Operation, manager, key).await
}

/// The entry stored under `key` reads as missing.
pub(crate) fn missing(kind: FailureKind, key: &str) -> Failure {
    Failure::new(
        kind,
        format!(
            "entry {} was stored but reads as missing",
            respcache_core::abbreviate_key(key)
        ),
    )
}

/// Checks that `response` is a whole [`fixtures::generated`] entry of
/// `key_index`; anything else is a failure of `kind`. Returns its
/// generation.
pub(crate) fn verify(
    kind: FailureKind,
    key_index: u32,
    response: &HttpResponse,
    what: &str,
) -> Result<u64, Failure> {
    fixtures::verify_generated(key_index, response)
        .map_err(|err| Failure::new(kind, format!("{what}: {err}")))
}

/// Stores a [`fixtures::generated`] entry and reads it back whole: the
/// round trip most checks build on, so a backend that cannot keep one
/// entry fails them as [`FailureKind::RoundTrip`] and not for the reason
/// they are named for.
pub(crate) async fn store_and_verify<M: CacheManager + ?Sized>(
    manager: &M,
    key: &str,
    key_index: u32,
    response: HttpResponse,
) -> Result<u64, Failure> {
    store(manager, key, response).await?;
    let back = fetch(manager, key)
        .await?
        .ok_or_else(|| missing(FailureKind::RoundTrip, key))?;
    verify(
        FailureKind::RoundTrip,
        key_index,
        &back,
        &format!(
            "{} read back right after its put",
            respcache_core::abbreviate_key(key)
        ),
    )
}
