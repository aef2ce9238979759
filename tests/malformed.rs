//! Every file in `tests/malformed/` must fail to load with a message that names the file and
//! contains the substring listed for it in `tests/malformed/expected.txt`, without panicking.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

fn expectations() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(corpus_dir().join("expected.txt")).expect("expected.txt");
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, want) =
            line.split_once(" | ").unwrap_or_else(|| panic!("expected.txt:{}: write `<file> | <substring>`", n + 1));
        assert!(map.insert(file.trim().to_owned(), want.trim().to_owned()).is_none(), "duplicate entry {file}");
    }
    map
}

#[test]
fn every_malformed_scenario_is_rejected_with_a_useful_message() {
    let expected = expectations();
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    assert!(on_disk.len() >= 30, "the corpus should hold at least 30 files, has {}", on_disk.len());

    let mut failures = Vec::new();
    for name in &on_disk {
        if !expected.contains_key(name) {
            failures.push(format!("{name}: no entry in expected.txt"));
        }
    }
    for name in expected.keys() {
        if !on_disk.contains(name) {
            failures.push(format!("{name}: listed in expected.txt but missing"));
        }
    }

    for (name, want) in &expected {
        let path = corpus_dir().join(name);
        let result = catch_unwind(AssertUnwindSafe(|| servesim::scenario::load(&path, &[])));
        match result {
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: PANICKED: {msg}"));
            }
            Ok(Ok(_)) => failures.push(format!("{name}: loaded successfully, but it is malformed")),
            Ok(Err(e)) => {
                let msg = e.to_string();
                if !msg.contains(&path.display().to_string()) {
                    failures.push(format!("{name}: message does not name the file: {msg}"));
                }
                if !msg.contains(want.as_str()) {
                    failures.push(format!("{name}: message lacks `{want}`: {msg}"));
                }
                if e.file() != path {
                    failures.push(format!("{name}: error.file() is {}", e.file().display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn messages_carry_line_numbers_where_the_parser_knows_them() {
    for (name, line) in [("unknown_top_level.yaml", 6), ("unknown_in_arrival.yaml", 11), ("duplicate_key.yaml", 7)] {
        let path = corpus_dir().join(name);
        let e = servesim::scenario::load(&path, &[]).unwrap_err();
        assert_eq!(e.line(), Some(line), "{name}: {e}");
        assert!(e.to_string().starts_with(&format!("{}:{line}: ", path.display())), "{e}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let path = corpus_dir().join("does_not_exist.yaml");
    let e = servesim::scenario::load(&path, &[]).unwrap_err();
    assert!(matches!(e, servesim::scenario::ScenarioError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("does_not_exist.yaml"), "{e}");
}
