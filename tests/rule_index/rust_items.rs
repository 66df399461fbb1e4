//! Where a line of Rust sits: in which function, of which type, inside test code or not.
//!
//! The rule index needs two facts about every line that names a rule: the item around it
//! (so that rules.md can say "kept in `Session::handle`") and whether that item is test
//! code (`#[test]`, or anything under `#[cfg(test)]`). Like `tests/layers.rs` and
//! `tests/walkthrough.rs`, this reads the source as text, with no compiler: comments and
//! string contents are blanked by [`code_only`], the rest is split into tokens, and every
//! item (`fn`, `struct`, `impl`, `mod`, `const`, …) is given the span of lines it covers,
//! from its first doc comment or attribute down to its closing `}` or `;`.
//!
//! It is approximate in the same ways as its neighbours (an item made by a macro is not
//! seen), which suits a crate that keeps macros out of its protocol paths (STYLE.md, 7).

use crate::source_text::{code_only, tokens, Token};

/// One item of a file and the lines it covers, doc comments and attributes included.
#[derive(Debug, Clone)]
pub struct Item {
    /// `fn`, `struct`, `enum`, `union`, `trait`, `impl`, `mod`, `const`, `static`, `type`.
    pub keyword: String,
    /// The item's name; for an `impl` block, the type it is for.
    pub name: String,
    /// The first line of its leading comments or attributes (1-based).
    pub first_line: usize,
    /// The line of its closing `}` or `;`.
    pub last_line: usize,
    /// It carries `#[test]`.
    pub is_test: bool,
    /// It carries `#[cfg(test)]`.
    pub is_cfg_test: bool,
    /// It has a `{ … }` body (`mod tests { … }`), rather than ending at `;` (`mod tests;`).
    pub has_body: bool,
}

impl Item {
    pub fn covers(&self, line: usize) -> bool {
        (self.first_line..=self.last_line).contains(&line)
    }
}

/// The items of one file, outermost first where spans nest.
pub struct Items(pub Vec<Item>);

impl Items {
    /// Reads every item of `source`.
    pub fn read(source: &str) -> Self {
        let tokens = tokens(&code_only(source));
        let closing = matching_braces(&tokens);
        let lines: Vec<&str> = source.lines().collect();
        let mut items = Vec::new();
        for (i, token) in tokens.iter().enumerate() {
            let Some(name) = item_name(&tokens, i) else {
                continue;
            };
            let (attributes, first_token) = attributes_before(&tokens, i);
            let first_line = leading_comments_start(&lines, tokens[first_token].line);
            let end = item_end(&tokens, &closing, i);
            let last_line = end.map_or(token.line, |k| tokens[k].line);
            items.push(Item {
                keyword: token.text.clone(),
                name,
                first_line,
                last_line,
                is_test: attributes.iter().any(|a| a == "test"),
                is_cfg_test: attributes.iter().any(|a| a == "cfg(test)"),
                has_body: end.is_some_and(|k| tokens[k].text == "}"),
            });
        }
        items.sort_by_key(|item| (item.first_line, std::cmp::Reverse(item.last_line)));
        Items(items)
    }

    /// The items whose spans contain `line`, outermost first.
    pub fn around(&self, line: usize) -> Vec<&Item> {
        self.0.iter().filter(|item| item.covers(line)).collect()
    }

    /// Whether `line` is test code: inside an item marked `#[test]` or `#[cfg(test)]`.
    pub fn is_test_code(&self, line: usize) -> bool {
        let around = self.around(line);
        around.iter().any(|item| item.is_test || item.is_cfg_test)
    }

    /// How a learner finds `line` in the code: the innermost function, or else the
    /// innermost other item, prefixed by the type of the `impl` block it is in:
    /// `Session::handle`, `validate_connect_flags`, `DecodeError`. `None` at the top of a
    /// file (a `//!` module comment).
    pub fn place(&self, line: usize) -> Option<String> {
        let around = self.around(line);
        let is_fn = |item: &&&Item| item.keyword == "fn";
        let innermost = around
            .iter()
            .rev()
            .find(is_fn)
            .or_else(|| around.iter().rev().find(|item| item.keyword != "mod"))?;
        let owner = around
            .iter()
            .rev()
            .skip_while(|item| !std::ptr::eq(**item, *innermost))
            .skip(1)
            .find(|item| item.keyword == "impl");
        Some(match owner {
            Some(owner) => format!("{}::{}", owner.name, innermost.name),
            None => innermost.name.clone(),
        })
    }

    /// The `#[test]` functions, with their spans.
    pub fn tests(&self) -> impl Iterator<Item = &Item> {
        self.0
            .iter()
            .filter(|item| item.is_test && item.keyword == "fn")
    }
}

/// For every `{` token, the index of the `}` that closes it.
fn matching_braces(tokens: &[Token]) -> Vec<Option<usize>> {
    let mut closing = vec![None; tokens.len()];
    let mut open = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token.text.as_str() {
            "{" => open.push(i),
            "}" => {
                if let Some(start) = open.pop() {
                    closing[start] = Some(i);
                }
            }
            _ => {}
        }
    }
    closing
}

/// The keywords that begin an item worth naming.
const ITEM_KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "union", "trait", "impl", "mod", "const", "static", "type",
];

/// The name of the item whose keyword is `tokens[i]`, if one starts there: `fn name`,
/// `struct Name`, `impl<T> Trie<T>` (the type). `const fn` is left to its `fn`, and a
/// type such as `fn(u8)` or `impl Trait` in a signature names nothing.
fn item_name(tokens: &[Token], i: usize) -> Option<String> {
    let keyword = tokens[i].text.as_str();
    if !ITEM_KEYWORDS.contains(&keyword) {
        return None;
    }
    let before = i.checked_sub(1).map_or("", |k| tokens[k].text.as_str());
    let starts_item = matches!(before, "" | ";" | "{" | "}" | "]" | ")")
        || matches!(before, "pub" | "const" | "async" | "unsafe" | "extern");
    if !starts_item {
        return None;
    }
    if keyword == "impl" {
        return impl_target(&tokens[i + 1..]).map(str::to_owned);
    }
    let name = tokens.get(i + 1)?.text.as_str();
    let is_name = name.starts_with(|c: char| c.is_alphabetic() || c == '_');
    (is_name && !ITEM_KEYWORDS.contains(&name)).then(|| name.to_owned())
}

/// The type an `impl` block is for, from the tokens after `impl`: `<T> Trie<T> {` gives
/// `Trie`, `fmt::Display for DecodeError {` gives `DecodeError`.
fn impl_target(tokens: &[Token]) -> Option<&str> {
    let mut depth = 0;
    let mut target = None;
    for (i, token) in tokens.iter().enumerate() {
        match token.text.as_str() {
            "<" => depth += 1,
            ">" if i == 0 || tokens[i - 1].text != "-" => depth -= 1,
            "{" | ";" | "where" if depth == 0 => break,
            "for" if depth == 0 => target = None,
            word if depth == 0 && word.starts_with(char::is_alphabetic) => target = Some(word),
            _ => {}
        }
    }
    target
}

/// The attributes written before the item whose keyword is at `i` (each as its tokens
/// joined: `test`, `cfg(test)`), and the index of the item's first token: its first
/// attribute's `#`, or its visibility and qualifiers (`pub(crate) const`).
fn attributes_before(tokens: &[Token], i: usize) -> (Vec<String>, usize) {
    let mut start = i;
    let qualifiers = ["pub", "const", "async", "unsafe", "extern"];
    while start > 0 {
        let before = tokens[start - 1].text.as_str();
        if qualifiers.contains(&before) {
            start -= 1;
        } else if let Some(visibility) = visibility_ending_at(tokens, start - 1) {
            start = visibility;
        } else {
            break;
        }
    }
    let mut attributes = Vec::new();
    while start >= 2 && tokens[start - 1].text == "]" {
        let Some(open) = (0..start - 1).rev().find(|&k| tokens[k].text == "[") else {
            break;
        };
        if open == 0 || tokens[open - 1].text != "#" {
            break;
        }
        let words: Vec<&str> = tokens[open + 1..start - 1]
            .iter()
            .map(|t| t.text.as_str())
            .collect();
        attributes.push(words.concat());
        start = open - 1;
    }
    (attributes, start)
}

/// If `tokens[close]` is the `)` of a visibility (`pub(crate)`, `pub(in a::b)`), the
/// index of its `pub`.
fn visibility_ending_at(tokens: &[Token], close: usize) -> Option<usize> {
    if tokens[close].text != ")" {
        return None;
    }
    let open = (0..close).rev().find(|&k| tokens[k].text == "(")?;
    (open > 0 && tokens[open - 1].text == "pub").then(|| open - 1)
}

/// The first line of the comments directly above `line` (no blank line between), or
/// `line` itself. `//!` lines describe the enclosing module, not the item, and stop it.
fn leading_comments_start(lines: &[&str], line: usize) -> usize {
    let mut first = line;
    while first > 1 {
        let above = lines.get(first - 2).map_or("", |l| l.trim_start());
        if above.starts_with("//") && !above.starts_with("//!") {
            first -= 1;
        } else {
            break;
        }
    }
    first
}

/// The token that ends the item whose keyword is at `i`: the `}` closing its body, or
/// the `;` of an item without one (`mod tests;`, `struct Id(u16);`, a `const`). For a
/// `const` or `static`, braces in the value (`[A { x: 1 }]`) belong to the item.
fn item_end(tokens: &[Token], closing: &[Option<usize>], i: usize) -> Option<usize> {
    let is_value = matches!(tokens[i].text.as_str(), "const" | "static" | "type");
    let mut nesting = 0usize;
    let mut k = i + 1;
    while k < tokens.len() {
        match tokens[k].text.as_str() {
            "(" | "[" => nesting += 1,
            ")" | "]" => nesting = nesting.saturating_sub(1),
            ";" if nesting == 0 => return Some(k),
            "{" if nesting == 0 && !is_value => return closing[k],
            "{" if is_value => {
                k = closing[k]?;
            }
            _ => {}
        }
        k += 1;
    }
    None
}
