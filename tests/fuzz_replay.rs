//! Replays, on stable, every checked-in fuzz seed (`fuzz/corpus/<target>/seed-*`) and every
//! regression input (`fuzz/regressions/<target>/*`, named after the bug it caught) through
//! the same property checks the fuzz targets run. The published crate does not ship `fuzz/`;
//! there the test has nothing to replay and says so.
#![cfg(all(feature = "http", feature = "diagnose"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::path::Path;

use countersign_test_support::fuzz_properties as properties;

fn replay(folder: &Path, only_seeds: bool, run: fn(&[u8])) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if only_seeds && !name.starts_with("seed-") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{} fails its property", path.display());
        }
        count += 1;
    }
    count
}

#[test]
fn every_seed_and_regression_input_holds_its_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    if !root.exists() {
        eprintln!("NOTICE: no fuzz/ folder (the published crate): no corpus to replay");
        return;
    }
    for (target, run) in properties::TARGETS {
        let seeds = replay(&root.join("corpus").join(target), true, run);
        assert!(seeds > 0, "no seed corpus for {target}");
        replay(&root.join("regressions").join(target), false, run);
    }
    assert!(
        root.join("regressions/signature_hex/swar-decode-borrow-on-non-ascii-byte")
            .exists()
    );
}
