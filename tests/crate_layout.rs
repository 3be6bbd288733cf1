//! The crate docs' `# Layout` section (src/lib.rs) names every file under `src/`, so a newcomer
//! finds each module's job in one place: a file added without a line there fails here.

use std::path::Path;

/// The `# Layout` section's text.
fn layout() -> String {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let docs: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    let start = docs.find("# Layout").expect("a # Layout section");
    docs[start..].replace('\n', " ")
}

/// How the layout names a file: `core::frames` for src/core/frames.rs, `core` for a folder's
/// mod.rs, `moonrt-bench/load.rs` and `main.rs` for binaries, the file name for the rest.
fn name_of(relative: &Path) -> Option<String> {
    let text = relative.to_string_lossy().replace('\\', "/");
    if text == "lib.rs" {
        return None;
    }
    if let Some(rest) = text.strip_prefix("bin/") {
        return Some(rest.to_owned());
    }
    if text == "main.rs" || !text.ends_with(".rs") {
        return Some(relative.file_name()?.to_string_lossy().into_owned());
    }
    let module = text.trim_end_matches(".rs").trim_end_matches("/mod");
    Some(module.replace('/', "::"))
}

fn files(dir: &Path, root: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, root, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
}

#[test]
fn the_crate_layout_names_every_file_under_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&root, &root, &mut all);
    let layout = layout();
    let missing: Vec<String> = all
        .iter()
        .filter_map(|f| name_of(f))
        .filter(|name| {
            !layout.contains(&format!("`{name}`")) && !layout.contains(&format!("[`{name}`]"))
        })
        .collect();
    assert!(all.len() > 60, "found only {} files", all.len());
    assert!(
        missing.is_empty(),
        "src/lib.rs's # Layout does not name: {missing:?}"
    );
}
