//! Splits one line of iptables-restore text into tokens, keeping each
//! token's column so errors can point at it.
//!
//! Quoting follows iptables-restore: `"..."` or `'...'` groups words into
//! one token (`--log-prefix "X: "`); a backslash escapes the quote character
//! or itself inside quotes. A `#` at the
//! start of a token outside quotes begins a comment, as iptables-restore
//! treats it.

/// One word of a rule line; `col` is 1-based and counts characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tok {
    pub text: String,
    pub col: usize,
    /// Written inside quotes: never an option or `!`, whatever it says.
    pub quoted: bool,
}

impl Tok {
    /// An unquoted `!`.
    pub fn is_bang(&self) -> bool {
        !self.quoted && self.text == "!"
    }

    /// An unquoted word starting with `-` that is not a negative number.
    pub fn is_option(&self) -> bool {
        !self.quoted
            && self.text.len() > 1
            && self.text.starts_with('-')
            && !self.text[1..].starts_with(|c: char| c.is_ascii_digit())
    }
}

/// A lexing failure at a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub col: usize,
    pub message: String,
}

use super::types::{PResult, Perr};

pub(crate) fn tokenize(line: &str) -> Result<Vec<Tok>, LexError> {
    let mut toks = Vec::new();
    let mut chars = line.chars().enumerate().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let col = i + 1;
        let mut text = String::new();
        let mut quoted = false;
        // A token runs to the next unquoted whitespace; quoted stretches
        // may sit inside it (`--comment="a b"` is not iptables syntax, but
        // `"a b"c` is one word to a shell and to iptables-restore).
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c != '"' && c != '\'' {
                text.push(c);
                continue;
            }
            let q = c;
            quoted = true;
            loop {
                match chars.next() {
                    None => {
                        return Err(LexError {
                            col,
                            message: "unterminated quote".into(),
                        })
                    }
                    Some((_, c)) if c == q => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, e @ ('"' | '\'' | '\\'))) => text.push(e),
                        Some((_, e)) => {
                            text.push('\\');
                            text.push(e);
                        }
                        None => {
                            return Err(LexError {
                                col,
                                message: "unterminated quote".into(),
                            })
                        }
                    },
                    Some((_, c)) => text.push(c),
                }
            }
        }
        toks.push(Tok { text, col, quoted });
    }
    Ok(toks)
}

/// Walks the tokens of a rule after its command and chain.
pub(crate) struct Cursor<'a> {
    toks: &'a [Tok],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(toks: &'a [Tok]) -> Cursor<'a> {
        Cursor { toks, pos: 0 }
    }

    pub fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos)
    }

    pub fn next(&mut self) -> Option<&'a Tok> {
        let t = self.toks.get(self.pos);
        self.pos += usize::from(t.is_some());
        t
    }

    /// The value of option `opt`. A `!` here is iptables' old placement
    /// (`--dport ! 80`), refused with the modern spelling.
    pub fn value(&mut self, opt: &Tok) -> PResult<&'a Tok> {
        match self.peek() {
            Some(t) if t.is_bang() => Err(Perr::at(
                t,
                format!(
                    "\"{0} ! ...\" is the old placement of '!'; write \"! {0} ...\"",
                    opt.text
                ),
            )),
            Some(t) if !t.is_option() => {
                self.pos += 1;
                Ok(t)
            }
            _ => Err(Perr::at(opt, format!("option {} needs a value", opt.text))),
        }
    }
}

/// Writes ` value`, quoted the way iptables-save quotes strings: bare when
/// only letters, digits, `_` and `-`, otherwise in double quotes with `"`
/// and `\` escaped.
pub(crate) fn push_quoted(out: &mut String, value: &str) {
    out.push(' ');
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !value.starts_with('-');
    if bare {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<(String, usize)> {
        tokenize(line)
            .unwrap()
            .into_iter()
            .map(|t| (t.text, t.col))
            .collect()
    }

    #[test]
    fn quotes_and_columns() {
        assert_eq!(
            words(r#"-A X -m comment --comment "a \"b\" c" -j LOG"#),
            vec![
                ("-A".into(), 1),
                ("X".into(), 4),
                ("-m".into(), 6),
                ("comment".into(), 9),
                ("--comment".into(), 17),
                ("a \"b\" c".into(), 27),
                ("-j".into(), 39),
                ("LOG".into(), 42),
            ]
        );
        assert_eq!(
            words("-A X # trailing"),
            vec![("-A".into(), 1), ("X".into(), 4)]
        );
        assert!(tokenize("-A \"open").is_err());
        assert_eq!(
            words("--log-prefix 'a b' x"),
            vec![
                ("--log-prefix".into(), 1),
                ("a b".into(), 14),
                ("x".into(), 20)
            ]
        );
    }

    #[test]
    fn quoting_for_save() {
        let mut s = String::new();
        push_quoted(&mut s, "plain-word_1");
        push_quoted(&mut s, "X: ");
        push_quoted(&mut s, "-x");
        push_quoted(&mut s, "");
        assert_eq!(s, r#" plain-word_1 "X: " "-x" """#);
    }
}
