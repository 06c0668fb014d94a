//! A journal given a relative directory stays where that directory was when the meter was built. Alone in its
//! own test binary: it changes the process's working directory.

use tokenmeter::TokenMeter;
use tokenmeter::journal::{FsyncPolicy, JournalConfig};
use tracing_subscriber::prelude::*;

#[test]
fn a_relative_journal_directory_is_resolved_when_the_meter_is_built() {
    let (built_in, moved_to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::env::set_current_dir(built_in.path()).unwrap();
    let meter = TokenMeter::builder()
        .with_journal(JournalConfig::new("journal").with_fsync(FsyncPolicy::EveryRecord))
        .try_build()
        .unwrap();
    // The application moves on; the writer opens its day file only now, with the first record.
    std::env::set_current_dir(moved_to.path()).unwrap();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        drop(tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 10u64).entered());
    });
    meter.flush().unwrap();
    let mut calls = 0;
    tokenmeter::journal::read(built_in.path().join("journal"), |_| calls += 1).unwrap();
    assert_eq!(calls, 1, "the call is in the journal the meter was built with");
    assert!(!moved_to.path().join("journal").exists(), "no second journal where the application moved to");
}
