//! The filesystem lookup table: rows per key from the whole file, NULL keys never matching,
//! and the file read again once `lookup.join.cache.ttl` has passed.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array};

use super::tests::{fs_table, write};
use crate::LookupTable;

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_csv_file_is_looked_up_by_key_and_read_again_after_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("side.csv");
    write(&path, "1,one\n2,two\n2,deux\n,nobody\n");
    let t = fs_table(&path, "csv", &[("lookup.join.cache.ttl", "200 ms")]);
    let mut lookup = LookupTable::new(&t, &cols(&["name", "id"]), &cols(&["id"])).unwrap();
    // Keys of another integer type than the column's match by value.
    let keys: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(vec![Some(2), Some(3), Some(1)]))];
    let found = lookup.lookup(&keys, &[0, 1, 2]).unwrap();
    let text = |i: usize| -> Vec<Vec<Option<String>>> { found[i].as_ref().clone() };
    let row = |name: &str, id: &str| vec![Some(name.to_string()), Some(id.to_string())];
    assert_eq!(text(0), vec![row("two", "2"), row("deux", "2")]);
    assert!(text(1).is_empty());
    assert_eq!(text(2), vec![row("one", "1")]);

    // Within the TTL the file is not read again; after it, it is.
    write(&path, "3,three\n");
    let keys: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![3]))];
    assert!(lookup.lookup(&keys, &[0]).unwrap()[0].is_empty());
    std::thread::sleep(std::time::Duration::from_millis(250));
    assert_eq!(lookup.lookup(&keys, &[0]).unwrap()[0].as_ref(), &vec![row("three", "3")]);
}

#[test]
fn only_jdbc_and_filesystem_tables_are_lookup_tables() {
    let t = crate::test_util::table(super::tests::cols(), &[("connector", "datagen")]);
    let err = LookupTable::new(&t, &cols(&["id"]), &cols(&["id"])).err().unwrap().to_string();
    assert!(err.contains("cannot be a lookup table") && err.contains("jdbc, filesystem"), "{err}");
    let err = fs_table(std::path::Path::new("/x"), "csv", &[("lookup.join.cache.ttl", "soon")]);
    assert!(LookupTable::new(&err, &cols(&["id"]), &cols(&["id"])).is_err());
}
