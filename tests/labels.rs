//! Every class name equals the tutorial's index_to_name.json label.

mod common;

use densenet_lambda::labels::Labels;

#[test]
fn builtin_labels_equal_the_tutorials_file_for_all_1000_classes() {
    let builtin = Labels::imagenet();
    let from_file = Labels::from_json_file(&common::sample("index_to_name.json")).unwrap();
    let text = std::fs::read_to_string(common::sample("index_to_name.json")).unwrap();
    let raw: std::collections::HashMap<String, (String, String)> =
        serde_json::from_str(&text).unwrap();
    assert_eq!(raw.len(), 1000);
    for i in 0..1000 {
        let want = &raw[&i.to_string()].1;
        assert_eq!(builtin.name(i), want, "index {i}");
        assert_eq!(from_file.name(i), want, "index {i} via LABELS_PATH");
    }
    assert_eq!(builtin.name(1000), "Unknown");
}
