//! Java regular expressions on top of the Rust `regex` crate.
//!
//! Flink's regex functions use `java.util.regex`. The two syntaxes mostly agree; this
//! rewrites the common differences before compiling, and caches compiled patterns:
//! - `\d`, `\w`, `\s` (and their negations) are ASCII-only in Java, Unicode in Rust;
//! - POSIX classes `\p{Alpha}`, `\p{Digit}`, `\p{Punct}`, ... become `[[:alpha:]]` etc.;
//! - `\Q...\E` quoting, `\e` and octal `\0nn` escapes, escaped punctuation such as `\<`
//!   (a word boundary in Rust, a literal `<` in Java);
//! - possessive quantifiers (`a*+`) and atomic groups (`(?>...)`) fall back to their
//!   greedy forms, which match the same strings in all but backtracking corner cases.
//!
//! What Rust cannot do at all — lookaround and backreferences — fails to compile, and the
//! functions then return NULL, as Flink does for patterns it cannot compile.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use regex::Regex;

use super::common::{LastPattern, PatternCache};

static REGEX_CACHE: LazyLock<PatternCache<Option<Regex>>> = LazyLock::new(|| PatternCache::new(256));

/// A compiled pattern as cached: `None` when it does not compile.
type Compiled = Arc<Option<Regex>>;

/// Most patterns a thread keeps copies of (see `THREAD_COPIES`) before it starts again.
const MAX_THREAD_COPIES: usize = 64;

thread_local! {
    /// This thread's copies of compiled patterns, by the cached `Regex` they copy.
    ///
    /// Why: a `Regex` keeps its matching scratch space in a pool whose fast path serves
    /// only the thread that used it first; every other thread takes a lock per call (3 %
    /// of Nexmark q21, where two subtasks match one pattern). A copy shares the compiled
    /// program and has a pool of its own, which this thread is then the first to use.
    static THREAD_COPIES: RefCell<Vec<(Compiled, Compiled)>> = const { RefCell::new(Vec::new()) };
}

/// Looks up compiled Java patterns during a batch.
pub(crate) struct Regexes<'a> {
    memo: LastPattern<'a, Option<Regex>>,
}

impl<'a> Regexes<'a> {
    pub(crate) fn new() -> Self {
        Self { memo: LastPattern::new() }
    }

    /// The compiled pattern, `None` inside if it does not compile.
    pub(crate) fn get(&mut self, pattern: &'a str) -> Compiled {
        self.memo.get_with(pattern, |p| thread_copy(REGEX_CACHE.get(p, |p| Regex::new(&translate(p)).ok())))
    }
}

/// This thread's copy of `shared` (see `THREAD_COPIES`).
fn thread_copy(shared: Compiled) -> Compiled {
    THREAD_COPIES.with_borrow_mut(|copies| {
        // The entry holds `shared`, so no other pattern can take its address meanwhile.
        if let Some((_, copy)) = copies.iter().find(|(of, _)| Arc::ptr_eq(of, &shared)) {
            return Arc::clone(copy);
        }
        if copies.len() >= MAX_THREAD_COPIES {
            copies.clear();
        }
        let copy = Arc::new((*shared).clone());
        copies.push((shared, Arc::clone(&copy)));
        copy
    })
}

/// Rewrites a Java regex into the Rust `regex` crate's syntax.
pub(crate) fn translate(java: &str) -> String {
    let chars: Vec<char> = java.chars().collect();
    let mut out = String::with_capacity(java.len() + 8);
    let mut depth = 0usize; // character class nesting
    let mut after_quantifier = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let was_quantifier = std::mem::take(&mut after_quantifier);
        match c {
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    out.push('\\');
                    break;
                };
                i += 2;
                let in_class = depth > 0;
                match e {
                    'd' => out.push_str(if in_class { "0-9" } else { "[0-9]" }),
                    'w' => out.push_str(if in_class { "0-9A-Za-z_" } else { "[0-9A-Za-z_]" }),
                    's' => out.push_str(if in_class { r"\t\n\x0B\x0C\r " } else { r"[\t\n\x0B\x0C\r ]" }),
                    'D' if !in_class => out.push_str("[^0-9]"),
                    'W' if !in_class => out.push_str("[^0-9A-Za-z_]"),
                    'S' if !in_class => out.push_str(r"[^\t\n\x0B\x0C\r ]"),
                    'Q' => {
                        let mut lit = String::new();
                        while i < chars.len() && !(chars[i] == '\\' && chars.get(i + 1) == Some(&'E')) {
                            lit.push(chars[i]);
                            i += 1;
                        }
                        i = (i + 2).min(chars.len().max(i));
                        out.push_str(&regex::escape(&lit));
                    }
                    'e' => out.push_str(r"\x1B"),
                    '0' => {
                        let mut v = 0u32;
                        let mut n = 0;
                        while n < 3 && i < chars.len() && ('0'..='7').contains(&chars[i]) {
                            v = v * 8 + (chars[i] as u32 - '0' as u32);
                            i += 1;
                            n += 1;
                        }
                        out.push_str(&format!(r"\x{{{v:X}}}"));
                    }
                    'p' | 'P' if chars.get(i) == Some(&'{') => {
                        let end = chars[i..].iter().position(|&ch| ch == '}').map(|p| i + p);
                        let Some(end) = end else {
                            out.push('\\');
                            out.push(e);
                            continue;
                        };
                        let name: String = chars[i + 1..end].iter().collect();
                        i = end + 1;
                        match posix_class(&name) {
                            Some(class) => {
                                let neg = if e == 'P' { "^" } else { "" };
                                if in_class {
                                    out.push_str(&format!("[:{neg}{class}:]"));
                                } else {
                                    out.push_str(&format!("[[:{neg}{class}:]]"));
                                }
                            }
                            None => {
                                out.push('\\');
                                out.push(e);
                                out.push('{');
                                out.push_str(name.strip_prefix("Is").unwrap_or(&name));
                                out.push('}');
                            }
                        }
                    }
                    e if e.is_ascii_alphanumeric() => {
                        out.push('\\');
                        out.push(e);
                    }
                    // Java lets any other character be escaped to stand for itself.
                    e => out.push_str(&regex::escape(&e.to_string())),
                }
                continue;
            }
            '[' => {
                out.push('[');
                depth += 1;
                i += 1;
                // A `]` right after `[` or `[^` is a literal.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
                continue;
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(']');
            }
            '+' if depth == 0 && was_quantifier => {
                // Possessive quantifier: keep the greedy one.
            }
            '?' if depth == 0 && was_quantifier => out.push('?'), // lazy modifier
            '*' | '+' | '?' | '}' if depth == 0 => {
                out.push(c);
                after_quantifier = true;
            }
            '(' if depth == 0 && chars.get(i + 1) == Some(&'?') && chars.get(i + 2) == Some(&'>') => {
                out.push_str("(?:");
                i += 3;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn posix_class(name: &str) -> Option<&'static str> {
    Some(match name {
        "Lower" => "lower",
        "Upper" => "upper",
        "ASCII" => "ascii",
        "Alpha" => "alpha",
        "Digit" => "digit",
        "Alnum" => "alnum",
        "Punct" => "punct",
        "Graph" => "graph",
        "Print" => "print",
        "Blank" => "blank",
        "Cntrl" => "cntrl",
        "XDigit" => "xdigit",
        "Space" => "space",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(java: &str, s: &str) -> bool {
        Regex::new(&translate(java)).unwrap().is_match(s)
    }

    /// Each thread matches with a copy of its own, kept from batch to batch.
    #[test]
    fn each_thread_has_its_own_copy() {
        let pattern = "(&|^)channel_id=([^&]*)";
        let mine = Regexes::new().get(pattern);
        assert!(Arc::ptr_eq(&mine, &Regexes::new().get(pattern)), "kept on this thread");
        let theirs = std::thread::spawn(move || {
            let theirs = Regexes::new().get(pattern);
            let found = theirs.as_ref().as_ref().map(|re| re.is_match("a=1&channel_id=7"));
            (Arc::as_ptr(&theirs) as usize, found)
        })
        .join()
        .unwrap();
        assert_ne!(theirs.0, Arc::as_ptr(&mine) as usize, "another thread's copy");
        assert_eq!(theirs.1, Some(true));
        assert_eq!(mine.as_ref().as_ref().map(|re| re.is_match("a=1&channel=7")), Some(false));
    }

    #[test]
    fn translates_java_syntax() {
        assert!(matches(r"^\d+$", "123"));
        assert!(!matches(r"^\d+$", "١٢٣")); // Arabic-Indic digits are not \d in Java
        assert!(matches(r"^[\w.]+$", "a_b.c"));
        assert!(matches(r"^\p{Alpha}+$", "abc"));
        assert!(!matches(r"^\p{Alpha}+$", "ab1"));
        assert!(matches(r"^[\p{Digit}x]+$", "1x2"));
        assert!(matches(r"\Qa.b\E", "a.b"));
        assert!(!matches(r"^\Qa.b\E$", "axb"));
        assert!(matches(r"^a\<b$", "a<b"));
        assert!(matches(r"^a*+b$", "aaab"));
        assert!(matches(r"^a{2}+b+?$", "aab"));
        assert!(matches(r"^x\p{Alpha}+$", "xab"));
        assert!(matches(r"^(?>ab)c$", "abc"));
        assert!(matches(r"^[]a]+$", "]a"));
        assert!(matches(r"^\0101$", "A"));
        assert!(matches(r"^\p{L}+$", "éa"));
    }

    #[test]
    fn unsupported_features_do_not_compile() {
        assert!(Regex::new(&translate(r"a(?=b)")).is_err());
        assert!(Regex::new(&translate(r"(a)\1")).is_err());
    }
}
