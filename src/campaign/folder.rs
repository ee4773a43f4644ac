//! The campaigns folder: one `{id}.json` document per campaign.

use super::{Campaign, ValidationRules, parse_campaign_bytes};
use crate::validation::Detail;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in one file of the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderError {
    pub file: PathBuf,
    pub detail: Detail,
}

impl fmt::Display for FolderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.path.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.detail.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.detail.path,
                self.detail.message
            )
        }
    }
}

/// Every campaign of a folder, in file-name order.
#[derive(Debug, Default)]
pub struct LoadedFolder {
    pub campaigns: Vec<Campaign>,
}

/// Reads and validates every `*.json` file directly in `dir` (hidden files and
/// sub-folders such as `.deleted/` are skipped). Either every file is valid and all
/// campaigns are returned, or every problem in every file is: a folder with one bad
/// file is never half-loaded.
pub fn load_folder(dir: &Path, rules: ValidationRules) -> Result<LoadedFolder, Vec<FolderError>> {
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            return Err(vec![FolderError {
                file: dir.to_path_buf(),
                detail: Detail::new("", format!("cannot read campaigns folder: {e}")),
            }]);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && name.ends_with(".json") && p.is_file()
        })
        .collect();
    files.sort();

    let mut campaigns = Vec::with_capacity(files.len());
    let mut by_id: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                errors.push(FolderError {
                    file,
                    detail: Detail::new("", format!("cannot read: {e}")),
                });
                continue;
            }
        };
        match parse_campaign_bytes(&bytes, false, rules) {
            Ok(c) => {
                // Uploads are written as `{id}.json`; a hand-written file under another
                // name would shadow or be shadowed by one, so the name must agree.
                let expected = format!("{}.json", c.id);
                if file.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
                    errors.push(FolderError {
                        file: file.clone(),
                        detail: Detail::new(
                            "id",
                            format!("the file of campaign {:?} must be named {expected}", c.id),
                        ),
                    });
                }
                if let Some(first) = by_id.get(&c.id) {
                    errors.push(FolderError {
                        file: file.clone(),
                        detail: Detail::new(
                            "id",
                            format!("duplicate campaign id, also in {}", first.display()),
                        ),
                    });
                }
                by_id.insert(c.id.clone(), file);
                campaigns.push(c);
            }
            Err(problems) => {
                errors.extend(problems.0.into_iter().map(|detail| FolderError {
                    file: file.clone(),
                    detail,
                }));
            }
        }
    }
    if errors.is_empty() {
        Ok(LoadedFolder { campaigns })
    } else {
        Err(errors)
    }
}
