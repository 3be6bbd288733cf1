//! config.toml states each key's allowed range in its comment ("At least N", "A to B", "At least
//! twice max_frame_bytes"); the server enforces exactly those ranges.

use moonrt::config::Config;

const SHIPPED: &str = include_str!("../config.toml");

/// (section, key, comment text above it) for every key of the shipped file.
fn keys() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut comment = String::new();
    for line in SHIPPED.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            comment.clear();
        } else if let Some(text) = line.strip_prefix('#') {
            comment.push_str(text);
            comment.push(' ');
        } else if let Some((key, _)) = line.split_once('=') {
            out.push((section.clone(), key.trim().to_owned(), comment.clone()));
            comment.clear();
        }
    }
    out
}

/// The shipped file with one key set to `value` (and the output buffer raised to hold two
/// frames when the frame limit is the key, so only the key under test can be wrong).
fn with(section: &str, key: &str, value: u64) -> String {
    let text = set(SHIPPED, section, key, value);
    if key == "max_frame_bytes" {
        set(
            &text,
            "limits",
            "max_output_buffer_bytes",
            (2 * value).max(1 << 20),
        )
    } else {
        text
    }
}

fn set(text: &str, section: &str, key: &str, value: u64) -> String {
    let mut current = String::new();
    text.lines()
        .map(|line| {
            let t = line.trim();
            if let Some(name) = t.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = name.to_owned();
            }
            if current == section && t.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                format!("{key} = {value}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn number_after(text: &str, marker: &str) -> Option<u64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn every_minimum_and_maximum_in_config_toml_is_the_one_enforced() {
    let mut checked = 0;
    for (section, key, comment) in keys() {
        let dotted = format!("{section}.{key}");
        let range = comment.split(". ").find_map(|sentence| {
            let s = sentence.trim();
            if let Some(min) = number_after(s, "At least") {
                return Some((Some(min), None));
            }
            let (a, b) = s.split_once(" to ")?;
            let min: u64 = a.rsplit(' ').next()?.parse().ok()?;
            let max = number_after(b, "")?;
            Some((Some(min), Some(max)))
        });
        let Some((min, max)) = range else { continue };
        if let Some(min) = min {
            assert!(
                Config::from_toml(&with(&section, &key, min)).is_ok(),
                "{dotted} = {min} is documented as allowed"
            );
            let err = Config::from_toml(&with(&section, &key, min - 1))
                .err()
                .unwrap_or_else(|| panic!("{dotted} = {} is documented as refused", min - 1));
            assert!(err.to_string().contains(&dotted), "{err}");
            checked += 1;
        }
        if let Some(max) = max {
            assert!(
                Config::from_toml(&with(&section, &key, max)).is_ok(),
                "{dotted} = {max}"
            );
            let err = Config::from_toml(&with(&section, &key, max + 1))
                .err()
                .unwrap_or_else(|| panic!("{dotted} = {} is documented as refused", max + 1));
            assert!(err.to_string().contains(&dotted), "{err}");
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} documented limits found");
}

#[test]
fn the_output_buffer_must_hold_two_frames_as_config_toml_says() {
    let comment = keys()
        .into_iter()
        .find(|(_, k, _)| k == "max_output_buffer_bytes")
        .unwrap()
        .2;
    assert!(
        comment.contains("At least twice max_frame_bytes"),
        "{comment}"
    );
    let ok = with("limits", "max_output_buffer_bytes", 2 * 65536);
    assert!(Config::from_toml(&ok).is_ok());
    let err = Config::from_toml(&with("limits", "max_output_buffer_bytes", 2 * 65536 - 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.max_output_buffer_bytes"), "{err}");
}
