//! The script on disk: its folder (where `require` looks) and the main file's text.

use mlua::{Lua, Value};
use std::path::{Path, PathBuf};

/// A loaded script, ready to start sessions with.
#[derive(Debug, Clone)]
pub struct ScriptSource {
    folder: PathBuf,
    main_name: String,
    text: String,
}

impl ScriptSource {
    /// Reads the main script. Its folder becomes the module root for `require`.
    pub fn read(path: &Path) -> Result<ScriptSource, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read script {}: {e}", path.display()))?;
        Ok(ScriptSource::from_text(path, text))
    }

    /// A script from text, as if read from `path` (for tests and checks).
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
        ScriptSource {
            folder,
            main_name,
            text,
        }
    }

    /// Where `require` finds modules.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The main file's name, as error messages show it.
    pub fn main_name(&self) -> &str {
        &self.main_name
    }

    /// Runs the main chunk in `lua` (named `@main.lua` so errors say `main.lua:LINE:`).
    pub(crate) fn load_main(&self, lua: &Lua) -> mlua::Result<Value> {
        lua.load(self.text.as_str())
            .set_name(format!("@{}", self.main_name))
            .call(())
    }
}
