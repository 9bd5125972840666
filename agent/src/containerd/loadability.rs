//! Will containerd load this config at all? The rules that differ by
//! containerd line, each measured on the real daemons (1.6.20, 1.7.24,
//! 2.1.9; `tests/tests/containerd_matrix.rs`):
//!
//! * containerd 1.x parses with go-toml v1, which is stricter than TOML 1.1
//!   and toml_edit: a trailing comma in an inline table, the `\e` and `\xHH`
//!   escapes and a time without seconds are errors, and so is a quoted
//!   table-header key that contains `]` (an IPv6 mirror such as
//!   `"[fd00::10]:5000"`, a go-toml v1 bug) — containerd does not start.
//!   containerd 2.1.9's go-toml v2 accepts all of these.
//! * `version = 3` needs containerd 2.0: 1.7 refuses to start ("unsupported
//!   config version `3`"); 1.6 starts but ignores every table of the file
//!   (its `io.containerd.cri.v1.*` plugins do not exist there).
//!
//! With a containerd binary the daemon's own `config dump` is the judge;
//! these rules stand in when there is none, and name the cause either way.

use super::effective::Version;

/// Something in a config file that some containerd line cannot parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line in the file.
    pub line: usize,
    pub what: &'static str,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Syntax containerd 1.x's parser (go-toml v1) rejects though toml_edit
/// accepts it: TOML 1.1 additions and go-toml v1's `]`-in-quoted-key bug.
/// A lexical scan: strings, comments and brackets are tracked, so text
/// inside a string never counts.
pub fn gotoml_v1_rejects(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut line = 1usize;
    let chars: Vec<char> = text.chars().collect();
    // Open brackets of values: '[' (array) or '{' (inline table).
    let mut stack: Vec<char> = Vec::new();
    let mut at_line_start = true;
    let mut after_equals = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                at_line_start = true;
                if stack.is_empty() {
                    after_equals = false;
                }
                i += 1;
                continue;
            }
            ' ' | '\t' | '\r' => {
                i += 1;
                continue;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        if at_line_start && stack.is_empty() && c == '[' {
            // A table header: `[a."b".c]` or `[[a]]`.
            at_line_start = false;
            let start_line = line;
            i += 1;
            while i < chars.len() && chars[i] != '\n' {
                match chars[i] {
                    q @ ('"' | '\'') => {
                        let mut j = i + 1;
                        let mut has_bracket = false;
                        while j < chars.len() && chars[j] != q && chars[j] != '\n' {
                            if q == '"' && chars[j] == '\\' {
                                j += 1;
                            } else if chars[j] == ']' {
                                has_bracket = true;
                            }
                            j += 1;
                        }
                        if has_bracket {
                            out.push(Finding {
                                line: start_line,
                                what: "a quoted table key contains ']' (go-toml v1: \"table key cannot contain ']'\")",
                            });
                        }
                        i = j + 1;
                    }
                    _ => i += 1,
                }
            }
            continue;
        }
        at_line_start = false;
        match c {
            '=' => {
                after_equals = true;
                i += 1;
            }
            '[' | '{' if after_equals => {
                stack.push(c);
                i += 1;
            }
            ']' | '}' => {
                stack.pop();
                i += 1;
            }
            ',' => {
                // `, }` closes an inline table after a trailing comma.
                let mut j = i + 1;
                while j < chars.len() && matches!(chars[j], ' ' | '\t') {
                    j += 1;
                }
                if stack.last() == Some(&'{') && chars.get(j) == Some(&'}') {
                    out.push(Finding {
                        line,
                        what: "trailing comma at the end of an inline table (TOML 1.1)",
                    });
                }
                i += 1;
            }
            '"' | '\'' => {
                let (end, newlines, bad) = skip_string(&chars, i);
                if let Some(what) = bad {
                    out.push(Finding { line, what });
                }
                line += newlines;
                i = end;
            }
            d if d.is_ascii_digit() && after_equals => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], ':' | '-' | '.' | '+'))
                {
                    i += 1;
                }
                let token: String = chars[start..i].iter().collect();
                if time_without_seconds(&token) {
                    out.push(Finding {
                        line,
                        what: "a time without seconds (TOML 1.1)",
                    });
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Skips the string starting at `chars[start]`; returns the index after it,
/// the newlines inside, and a TOML 1.1-only escape if there is one.
fn skip_string(chars: &[char], start: usize) -> (usize, usize, Option<&'static str>) {
    let q = chars[start];
    let triple = chars.get(start + 1) == Some(&q) && chars.get(start + 2) == Some(&q);
    let mut i = start + if triple { 3 } else { 1 };
    let mut newlines = 0;
    let mut bad = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            newlines += 1;
            if !triple {
                return (i, newlines - 1, bad);
            }
        }
        if q == '"' && c == '\\' {
            match chars.get(i + 1) {
                Some('e') => bad = bad.or(Some("the \\e escape (TOML 1.1)")),
                Some('x') => bad = bad.or(Some("a \\xHH escape (TOML 1.1)")),
                _ => {}
            }
            i += 2;
            continue;
        }
        if c == q {
            if !triple {
                return (i + 1, newlines, bad);
            }
            if chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                let mut end = i + 3;
                // Up to two more quotes belong to the content.
                while chars.get(end) == Some(&q) && end < i + 5 {
                    end += 1;
                }
                return (end, newlines, bad);
            }
        }
        i += 1;
    }
    (i, newlines, bad)
}

/// `07:32` or `1979-05-27T07:32Z`: a time part with hours and minutes only.
fn time_without_seconds(token: &str) -> bool {
    let time = match token.find(['T', 't']) {
        Some(i) if token[..i].contains('-') => &token[i + 1..],
        _ => token,
    };
    let b = time.as_bytes();
    b.len() >= 5
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b':'
        && b[3..5].iter().all(u8::is_ascii_digit)
        && b.get(5) != Some(&b':')
}

/// What containerd `version` does with a file of config schema
/// `file_version`; `None` when it is fine.
pub fn schema_problem(file_version: i64, containerd: Version) -> Option<SchemaProblem> {
    match (file_version, containerd) {
        (v, Version(1, minor, _)) if v >= 3 && minor >= 7 => Some(SchemaProblem::Refused),
        (v, Version(1, ..)) if v >= 3 => Some(SchemaProblem::Ignored),
        _ => None,
    }
}

/// How a containerd 1.x treats a `version = 3` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaProblem {
    /// 1.7: "unsupported config version `3`"; the daemon does not start.
    Refused,
    /// 1.6: starts, but every table of the file is for plugins it does not
    /// have (`io.containerd.cri.v1.*`): the settings are silently ignored.
    Ignored,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<usize> {
        gotoml_v1_rejects(text).iter().map(|f| f.line).collect()
    }

    /// Each case was run through `containerd config dump` of 1.6.20 and
    /// 1.7.24 (rejected) and 2.1.9 (accepted).
    #[test]
    fn what_go_toml_v1_rejects() {
        assert_eq!(lines("version = 2\nx = { a = 1, }\n"), vec![2]);
        assert_eq!(lines("version = 2\nx = \"\\e\"\n"), vec![2]);
        assert_eq!(lines("version = 2\nx = \"\\x41\"\n"), vec![2]);
        assert_eq!(lines("version = 2\nx = 07:32\n"), vec![2]);
        assert_eq!(lines("x = 1979-05-27T07:32Z\n"), vec![1]);
        assert_eq!(
            lines("version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry.mirrors.\"[fd00::10]:5000\"]\n  endpoint = [\"https://[fd00::10]:5000\"]\n"),
            vec![2]
        );
        assert_eq!(lines("[\"a]b\"]\nx = 1\n"), vec![1]);
        assert_eq!(lines("[[ 'a]b' ]]\n"), vec![1]);
    }

    /// Accepted by all three lines (1.6.20, 1.7.24, 2.1.9).
    #[test]
    fn what_all_lines_accept() {
        for ok in [
            "version = 2\nx = {\n  a = 1 }\n",
            "x = 'a]b'\n",
            "x = \"a]b\\\\e\"\n",
            "[a]\n  mirrors = { \"[fd00::10]:5000\" = { endpoint = [\"https://[fd00::10]:5000\"] } }\n",
            "x = [1, 2,]\n",
            "t = 07:32:00\nd = 1979-05-27T07:32:00Z\nn = 1_000\nf = 1.5e3\n",
            "s = \"\"\"\n{ a = 1, }\n\"\"\"\n",
            "# x = { a = 1, }\nk = '\\e'\n",
        ] {
            let found = gotoml_v1_rejects(ok);
            assert!(found.is_empty(), "{ok:?}: {found:?}");
        }
        // A multi-line string counts its lines; its escapes are checked too.
        assert_eq!(lines("s = \"\"\"\na\nb\"\"\"\nx = { a = 1, }\n"), vec![4]);
        assert_eq!(lines("s = \"\"\"\n\\e\"\"\"\n"), vec![1]);
    }

    #[test]
    fn version_3_by_line() {
        assert_eq!(
            schema_problem(3, Version(1, 7, 24)),
            Some(SchemaProblem::Refused)
        );
        assert_eq!(
            schema_problem(3, Version(1, 6, 20)),
            Some(SchemaProblem::Ignored)
        );
        assert_eq!(schema_problem(3, Version(2, 1, 9)), None);
        assert_eq!(schema_problem(2, Version(1, 6, 20)), None);
    }
}
