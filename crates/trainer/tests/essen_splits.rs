//! Over the whole Essen collection (both forms, every collection): ERK's 168
//! test songs stay exactly those of ERK prepared alone, every song keeps the
//! split its own collection gives it alone, and no training or validation song
//! has the tokens of a test song.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use trainer::source::{load_collection, read_sources};
use trainer::{PrepareOptions, Split, prepare, prepare_named};

fn essen() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/essen");
    assert!(
        dir.is_dir(),
        "the Essen data is expected at {}",
        dir.display()
    );
    dir
}

#[test]
fn splits_stay_put_and_no_song_is_both_studied_and_tested() {
    let named = read_sources(&[essen()]).unwrap();
    assert!(named.len() >= 25, "{} collections", named.len());
    let options = PrepareOptions::default();
    let all = prepare_named(&named, &options).unwrap();

    // ERK's test songs are exactly those of ERK prepared on its own.
    let erk_alone = prepare(
        &load_collection(&essen().join("deutschl/erk")).unwrap(),
        &options,
    )
    .unwrap();
    let test_of = |songs: &[trainer::SongRecord], collection: &str| -> Vec<(String, String)> {
        songs
            .iter()
            .filter(|s| s.collection == collection && s.split == Split::Test)
            .map(|s| (s.id.clone(), s.tokens.clone()))
            .collect()
    };
    let erk_test = test_of(&all.songs, "deutschl/erk");
    assert_eq!(erk_test.len(), 168);
    assert_eq!(erk_test, test_of(&erk_alone.songs, ""));

    // Every kept song has the split its collection gives it alone.
    for (name, songs) in &named {
        let alone = prepare(songs, &options).unwrap();
        let split_alone: HashMap<(&str, &str), Split> = alone
            .songs
            .iter()
            .map(|s| ((s.file.as_str(), s.tokens.as_str()), s.split))
            .collect();
        for song in all.songs.iter().filter(|s| &s.collection == name) {
            assert_eq!(
                split_alone.get(&(song.file.as_str(), song.tokens.as_str())),
                Some(&song.split),
                "{name} {} moved",
                song.id
            );
        }
    }

    // No song is in training or validation and in test.
    let test: HashSet<&str> = all
        .songs
        .iter()
        .filter(|s| s.split == Split::Test)
        .map(|s| s.tokens.as_str())
        .collect();
    let leaked: Vec<&str> = all
        .songs
        .iter()
        .filter(|s| s.split != Split::Test && test.contains(s.tokens.as_str()))
        .map(|s| s.id.as_str())
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    // And every song is there once.
    let distinct: HashSet<&str> = all.songs.iter().map(|s| s.tokens.as_str()).collect();
    assert_eq!(distinct.len(), all.songs.len());
    assert_eq!(all.report.duplicates, all.report.on_grid - all.songs.len());
}
