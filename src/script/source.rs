//! A script version: an immutable snapshot of the main file and every `.lua` module in its folder.
//!
//! Sessions keep the version they started with for their whole life (the GameSparks re-cache
//! rule), so `require` reads modules from the snapshot, never from disk: a module edited on disk
//! reaches only sessions started after the edit became current.

use mlua::{Lua, Value};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Most `.lua` files a version may hold.
const MAX_FILES: usize = 1_000;
/// Most bytes of Lua source a version may hold.
const MAX_BYTES: usize = 16 << 20;

/// One loaded version of the script.
#[derive(Debug, Clone)]
pub struct ScriptSource {
    folder: PathBuf,
    main_name: String,
    text: String,
    /// Module path relative to the folder (`a/b.lua`) -> source.
    modules: BTreeMap<PathBuf, String>,
    hash: u64,
    /// Set by the registry when the version becomes current (0 before).
    pub generation: u64,
    /// When the version was read.
    pub loaded_at: SystemTime,
}

impl ScriptSource {
    /// Reads the main script and snapshots every `.lua` file under its folder.
    ///
    /// Only regular files are read (a FIFO or a device, even behind a symlink, is refused for
    /// the main file and skipped as a module), never more than [`MAX_BYTES`] in all; symlinked
    /// folders are not followed (they could loop).
    pub fn read(path: &Path) -> Result<ScriptSource, String> {
        let text = read_regular(path, MAX_BYTES)
            .map_err(|e| format!("cannot read script {}: {e}", path.display()))?;
        let mut source = ScriptSource::from_text(path, text);
        let mut total = source.text.len();
        let mut stack = vec![source.folder.clone()];
        let mut folders = 0;
        while let Some(dir) = stack.pop() {
            folders += 1;
            if folders > MAX_FILES {
                return Err(format!(
                    "{} holds more than {MAX_FILES} folders",
                    source.folder.display()
                ));
            }
            // An unreadable sub-folder holds nothing `require` could load: skip it.
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let p = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue; // .git, editor swap folders
                }
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "lua") {
                    let relative = p.strip_prefix(&source.folder).unwrap_or(&p).to_path_buf();
                    // A file being replaced may vanish between listing and reading, and a module
                    // that is not a regular file cannot be one: skip it, loudly.
                    let module = match read_regular(&p, MAX_BYTES - total) {
                        Ok(module) => module,
                        Err(e) if e.contains("over the limit") => {
                            return Err(format!(
                                "{} holds more than {MAX_BYTES} bytes of .lua files",
                                source.folder.display()
                            ));
                        }
                        Err(e) => {
                            log::warn!("script module {} skipped: {e}", p.display());
                            continue;
                        }
                    };
                    total += module.len();
                    if source.modules.len() >= MAX_FILES {
                        return Err(format!(
                            "{} holds more than {MAX_FILES} .lua files",
                            source.folder.display()
                        ));
                    }
                    source.modules.insert(relative, module);
                }
            }
        }
        source.hash = source.compute_hash();
        Ok(source)
    }

    /// A script from text, as if read from `path`, with no modules (for tests and checks).
    pub fn from_text(path: &Path, text: String) -> ScriptSource {
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let main_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "main.lua".into());
        let mut source = ScriptSource {
            folder,
            main_name,
            text,
            modules: BTreeMap::new(),
            hash: 0,
            generation: 0,
            loaded_at: SystemTime::now(),
        };
        source.hash = source.compute_hash();
        source
    }

    fn compute_hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.text.hash(&mut h);
        self.modules.hash(&mut h);
        h.finish()
    }

    /// The script's folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The main file's name, as error messages show it.
    pub fn main_name(&self) -> &str {
        &self.main_name
    }

    /// A hash of every file's content: equal hashes mean nothing changed.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The files the version was built from, relative to its folder.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.modules.keys().map(PathBuf::as_path)
    }

    /// A module's source by its path relative to the folder.
    pub(crate) fn module(&self, relative: &Path) -> Option<&str> {
        self.modules.get(relative).map(String::as_str)
    }

    /// Runs the main chunk in `lua` (named `@main.lua` so errors say `main.lua:LINE:`).
    pub(crate) fn load_main(&self, lua: &Lua) -> mlua::Result<Value> {
        lua.load(self.text.as_str())
            .set_name(format!("@{}", self.main_name))
            .call(())
    }
}

/// Reads a regular file of at most `cap` bytes as UTF-8. The file is opened without blocking
/// (a FIFO would otherwise wait for a writer forever) and checked *after* opening, so a file
/// swapped for a FIFO or a device in between is refused too; reading stops past `cap` (a
/// symlink to /dev/zero never fills memory).
fn read_regular(path: &Path, cap: usize) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file (a FIFO, device or folder is never read)".into());
    }
    if meta.len() > cap as u64 {
        return Err(format!("{} bytes is over the limit of {cap}", meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > cap {
        return Err(format!("grew while read: over the limit of {cap}"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}
