//! Rust source read as text, shared by `tests/layers.rs`, `tests/walkthrough.rs` and
//! `tests/rules.rs`: all look for names in code, and none must be fooled by a name in a
//! comment or a string.
//! (A directory module, so that cargo does not build it as a test of its own.)

/// `source` with comments turned into spaces and the contents of string and character
/// literals removed. Every newline is kept, so line numbers stay true.
pub fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let end = skip_comment_or_literal(&chars, i);
        if end == i {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let newlines = chars[i..end].iter().filter(|&&c| c == '\n').count();
        // A literal stays a token (`""`) so that the code around it keeps its shape.
        out.push_str(if chars[i] == '/' { " " } else { "\"\"" });
        out.extend(std::iter::repeat_n('\n', newlines));
        i = end;
    }
    out
}

/// Where the comment or literal starting at `i` ends, or `i` itself if none starts there.
/// Lifetimes (`'a`) are not literals; raw strings (`r#"…"#`) are.
fn skip_comment_or_literal(chars: &[char], i: usize) -> usize {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    match (at(i), at(i + 1)) {
        ('/', '/') => (i..chars.len())
            .find(|&k| chars[k] == '\n')
            .unwrap_or(chars.len()),
        ('/', '*') => block_comment_end(chars, i),
        ('"', _) => string_end(chars, i + 1),
        ('r', '"' | '#') if !ident_before => raw_string_end(chars, i + 1).unwrap_or(i),
        ('\'', '\\') => (i + 3..chars.len())
            .find(|&k| chars[k] == '\'')
            .map_or(i, |k| k + 1),
        ('\'', _) if at(i + 2) == '\'' => i + 3,
        _ => i,
    }
}

/// The end of a `/* … */` comment starting at `i`, nested comments included.
fn block_comment_end(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < chars.len() {
        match (chars[i], chars[i + 1]) {
            ('/', '*') => depth += 1,
            ('*', '/') => depth -= 1,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
        if depth == 0 {
            return i;
        }
    }
    chars.len()
}

/// The end of a `"…"` string whose contents start at `i`, skipping `\"` escapes.
fn string_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The end of a raw string whose hashes (or opening quote) start at `i`; `None` when
/// this is not a raw string after all (a raw identifier such as `r#type`).
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    if chars.get(i + hashes) != Some(&'"') {
        return None;
    }
    let closing: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    let body = i + hashes + 1;
    let end = (body..chars.len()).find(|&k| chars[k..].starts_with(&closing));
    Some(end.map_or(chars.len(), |k| k + closing.len()))
}

/// One token of code: an identifier (keywords included), `::`, or one punctuation mark.
#[derive(Debug)]
#[allow(dead_code)] // tests/walkthrough.rs reads code without tokens
pub struct Token {
    pub text: String,
    pub line: usize,
}

/// Splits code (already through [`code_only`]) into tokens, each with its line number.
#[allow(dead_code)] // as above
pub fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_alphanumeric() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
            line += usize::from(c == '\n');
            if c.is_whitespace() {
                continue;
            }
        }
        let text = chars[start..i].iter().collect();
        out.push(Token { text, line });
    }
    out
}
