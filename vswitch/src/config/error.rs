//! Errors that point at a place in topo.toml.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a config file, at a 1-based line and column.
///
/// `line == 0` means the error has no position (the file could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Turns byte offsets from the TOML parser into line and column numbers.
/// Columns count characters, not bytes, as editors do.
pub(crate) struct Locator<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Locator { text, line_starts }
    }

    /// 1-based (line, column) of a byte offset; offsets past the end clamp to it.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let idx = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(idx).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (idx + 1, col + 1)
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }
}

/// Collects errors during validation so the user sees all of them at once.
pub(crate) struct Errors<'a> {
    path: &'a Path,
    loc: Locator<'a>,
    list: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Errors {
            path,
            loc: Locator::new(text),
            list: Vec::new(),
        }
    }

    pub(crate) fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = self.loc.line_col(span.start);
        self.list.push(ConfigError {
            path: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        });
    }

    pub(crate) fn line(&self, span: &Range<usize>) -> usize {
        self.loc.line(span.start)
    }

    /// The file being validated, to resolve relative paths it names.
    pub(crate) fn path(&self) -> &'a Path {
        self.path
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The errors sorted by position; validation runs in passes, the user reads top to bottom.
    pub(crate) fn into_errors(mut self) -> ConfigErrors {
        self.list.sort_by_key(|e| (e.line, e.col));
        ConfigErrors(self.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let l = Locator::new("ab\ncdé\n\nx");
        assert_eq!(l.line_col(0), (1, 1));
        assert_eq!(l.line_col(1), (1, 2));
        assert_eq!(l.line_col(2), (1, 3));
        assert_eq!(l.line_col(3), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(l.line_col(7), (2, 4));
        assert_eq!(l.line_col(8), (3, 1));
        assert_eq!(l.line_col(9), (4, 1));
        assert_eq!(l.line_col(100), (4, 2));
    }

    #[test]
    fn display() {
        let e = ConfigError {
            path: "topo.toml".into(),
            line: 3,
            col: 9,
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "topo.toml:3:9: bad");
        let unpositioned = ConfigError {
            line: 0,
            col: 0,
            ..e.clone()
        };
        assert_eq!(unpositioned.to_string(), "topo.toml: bad");
        assert_eq!(
            ConfigErrors(vec![e.clone(), e]).to_string(),
            "topo.toml:3:9: bad\ntopo.toml:3:9: bad"
        );
    }
}
