//! The server's layering, checked: the file graph of `src/`'s `crate::`,
//! `super::` and `self::` paths (and `use child::…` of a module's own
//! children), test modules left out, must hold no circle of more than two
//! files, and no more imports running from a lower layer to a higher one
//! than [`UPWARD_CEILING`]. The layers are `ARCHITECTURE.md`'s.
//!
//! Run `cargo test -p latchkey-server --lib layering -- --nocapture` to see
//! the figures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first: a file may use its own layer and those below.
/// A path is matched by its longest listed prefix.
const LAYERS: &[(&str, &[&str])] = &[
    ("app", &["lib.rs", "cli.rs", "cli/", "startup.rs"]),
    (
        "http",
        &["http/", "routes/", "openapi/", "authn.rs", "origin.rs"],
    ),
    ("flows", &["flows/", "email/sender.rs"]),
    ("forms", &["forms.rs", "forms/", "body.rs"]),
    ("state", &["state.rs"]),
    ("settings", &["settings/"]),
    (
        "services",
        &[
            "throttle.rs",
            "throttle/",
            "cache.rs",
            "cache/",
            "email/",
            "telemetry/",
        ],
    ),
    ("base", &["error.rs", "views.rs", "net/"]),
];

/// Imports allowed to run from a lower layer to a higher one.
const UPWARD_CEILING: usize = 0;
/// The largest circle (strongly connected files) allowed.
const LARGEST_CIRCLE: usize = 2;

fn layer_of(file: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (index, (_, prefixes)) in LAYERS.iter().enumerate() {
        for prefix in *prefixes {
            let matches = if prefix.ends_with('/') {
                file.starts_with(prefix)
            } else {
                file == *prefix
            };
            if matches && best.is_none_or(|(len, _)| prefix.len() > len) {
                best = Some((prefix.len(), index));
            }
        }
    }
    best.map(|(_, index)| index)
}

/// The source with comments, string and char literals blanked out.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Path,
    Punct(char),
}

fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token::Path);
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// Drops every item under `#[cfg(test)]`: up to its `;`, or its block.
fn without_test_items(tokens: Vec<Token>) -> Vec<Token> {
    let attribute: Vec<Token> = tokens_of("#[cfg(test)]");
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i..].starts_with(&attribute) {
            i += attribute.len();
            let mut depth = 0usize;
            while i < tokens.len() {
                match &tokens[i] {
                    Token::Punct('{') => depth += 1,
                    Token::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    Token::Punct(';') if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            out.push(tokens[i].clone());
            i += 1;
        }
    }
    out
}

fn tokens_of(text: &str) -> Vec<Token> {
    tokens(text)
}

/// A module path (`["flows", "login"]`) and the file that holds it.
struct Module {
    file: String,
    children: BTreeSet<String>,
}

/// Every `.rs` file under `dir`, relative to `root`.
fn files(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(root, &path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
}

fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file.split('/').map(str::to_owned).collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// The import graph: for each file, the files its paths name.
struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
    lines: BTreeMap<String, usize>,
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    files(&root, &root, &mut found);
    let mut sources = BTreeMap::new();
    let mut modules: BTreeMap<Vec<String>, Module> = BTreeMap::new();
    let mut lines = BTreeMap::new();
    for path in found {
        let file = path.to_string_lossy().replace('\\', "/");
        // main.rs is the binary: a crate of its own.
        if file == "main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(root.join(&path)).unwrap();
        lines.insert(file.clone(), text.lines().count());
        let tokens = without_test_items(tokens(&strip(&text)));
        modules.insert(
            module_path(&file),
            Module {
                file: file.clone(),
                children: BTreeSet::new(),
            },
        );
        sources.insert(file, tokens);
    }
    // Only the files reachable through non-test `mod` declarations count.
    let mut declared: BTreeSet<Vec<String>> = BTreeSet::from([Vec::new()]);
    let mut queue = vec![Vec::new()];
    while let Some(module) = queue.pop() {
        let Some(file) = modules.get(&module).map(|m| m.file.clone()) else {
            continue;
        };
        let tokens = &sources[&file];
        for window in tokens.windows(3) {
            if let [Token::Ident(kw), Token::Ident(name), Token::Punct(';')] = window
                && kw == "mod"
            {
                let mut child = module.clone();
                child.push(name.clone());
                if modules.contains_key(&child) && declared.insert(child.clone()) {
                    queue.push(child);
                }
                if let Some(m) = modules.get_mut(&module) {
                    m.children.insert(name.clone());
                }
            }
        }
    }
    modules.retain(|path, _| declared.contains(path));
    sources.retain(|file, _| modules.values().any(|m| &m.file == file));
    lines.retain(|file, _| sources.contains_key(file));

    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, module) in &modules {
        let named = paths(&sources[&module.file]);
        // Modules a `use` brings into scope by name (`use crate::routes;`,
        // `use crate::flows::email as flows;`), for the paths through them.
        let mut aliases = BTreeMap::new();
        for _ in 0..2 {
            for use_ in named.iter().filter(|n| n.name.is_some()) {
                if let Some((target, true)) =
                    resolve(path, &module.children, &aliases, &use_.path, &modules)
                    && let Some(name) = &use_.name
                {
                    aliases.insert(name.clone(), target);
                }
            }
        }
        let targets = edges.entry(module.file.clone()).or_default();
        for named in &named {
            let Some((target, _)) =
                resolve(path, &module.children, &aliases, &named.path, &modules)
            else {
                continue;
            };
            let file = &modules[&target].file;
            if *file != module.file {
                targets.insert(file.clone());
            }
        }
    }
    Graph { edges, lines }
}

/// A path a file names: in a `use` (with the name it brings into scope)
/// or inline (`crate::a::b(..)`, `child::c`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    path: Vec<String>,
    /// The name a `use` brings in: its `as` alias or its last segment.
    name: Option<String>,
}

/// Every path a file names (use trees expanded).
fn paths(tokens: &[Token]) -> Vec<Named> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == Token::Ident("use".into()) {
            let mut end = i + 1;
            while end < tokens.len() && tokens[end] != Token::Punct(';') {
                end += 1;
            }
            use_tree(&tokens[i + 1..end], Vec::new(), &mut out);
            i = end + 1;
            continue;
        }
        let starts_path = matches!(&tokens[i], Token::Ident(_))
            && tokens.get(i + 1) == Some(&Token::Path)
            && (i == 0 || tokens[i - 1] != Token::Path);
        if starts_path {
            let mut path = Vec::new();
            let mut j = i;
            while let Some(Token::Ident(segment)) = tokens.get(j) {
                path.push(segment.clone());
                if tokens.get(j + 1) == Some(&Token::Path) {
                    j += 2;
                } else {
                    j += 1;
                    break;
                }
            }
            out.push(Named { path, name: None });
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// Expands one use tree (`a::{b, c::{d as e}}`) under `prefix`.
fn use_tree(tokens: &[Token], prefix: Vec<String>, out: &mut Vec<Named>) {
    let mut path = prefix;
    let mut alias = None;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) if word == "as" => {
                if let Some(Token::Ident(name)) = tokens.get(i + 1) {
                    alias = Some(name.clone());
                }
                break;
            }
            Token::Ident(segment) => path.push(segment.clone()),
            Token::Path => {}
            Token::Punct('{') => {
                let mut depth = 0;
                let mut start = i + 1;
                for j in i..tokens.len() {
                    match tokens[j] {
                        Token::Punct('{') => depth += 1,
                        Token::Punct('}') => {
                            depth -= 1;
                            if depth == 0 {
                                use_tree(&tokens[start..j], path.clone(), out);
                                return;
                            }
                        }
                        Token::Punct(',') if depth == 1 => {
                            use_tree(&tokens[start..j], path.clone(), out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            Token::Punct(_) => {}
        }
        i += 1;
    }
    if path.last().is_some_and(|s| s == "self") {
        path.pop();
    }
    if !path.is_empty() {
        let name = alias.or_else(|| path.last().cloned());
        out.push(Named { path, name });
    }
}

/// The module a path leads to, seen from the module `from` (the deepest
/// module it names), and whether it names nothing past that module.
fn resolve(
    from: &[String],
    children: &BTreeSet<String>,
    aliases: &BTreeMap<String, Vec<String>>,
    named: &[String],
    modules: &BTreeMap<Vec<String>, Module>,
) -> Option<(Vec<String>, bool)> {
    let first = named.first()?.as_str();
    let (mut base, mut rest): (Vec<String>, &[String]) = match first {
        "crate" => (Vec::new(), &named[1..]),
        "self" => (from.to_vec(), &named[1..]),
        "super" => (from.to_vec(), named),
        first if children.contains(first) => (from.to_vec(), named),
        first => match aliases.get(first) {
            Some(module) => (module.clone(), &named[1..]),
            None => return None,
        },
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop()?;
        rest = &rest[1..];
    }
    modules.get(&base)?;
    let mut whole = true;
    for segment in rest {
        base.push(segment.clone());
        if !modules.contains_key(&base) {
            base.pop();
            whole = false;
            break;
        }
    }
    Some((base, whole))
}

/// Strongly connected components of more than one file (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            self.index.insert(node, self.next);
            self.low.insert(node, self.next);
            self.next += 1;
            self.stack.push(node);
            self.on_stack.insert(node);
            let edges = self.edges;
            for target in edges.get(node).into_iter().flatten() {
                let target = target.as_str();
                if !self.index.contains_key(target) {
                    self.visit(target);
                    let low = self.low[node].min(self.low[target]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(target) {
                    let low = self.low[node].min(self.index[target]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.to_owned());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found.sort_by_key(|c| std::cmp::Reverse(c.len()));
    walk.found
}

fn upward(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (from, targets) in edges {
        let low = layer_of(from);
        for to in targets {
            if let (Some(low), Some(high)) = (low, layer_of(to))
                && high < low
            {
                found.push(format!(
                    "{from} ({}) -> {to} ({})",
                    LAYERS[low].0, LAYERS[high].0
                ));
            }
        }
    }
    found
}

#[test]
fn every_file_has_a_layer() {
    let graph = graph();
    let unplaced: Vec<_> = graph
        .edges
        .keys()
        .filter(|file| layer_of(file).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "files in no layer of LAYERS: {unplaced:?}"
    );
}

#[test]
fn layering_holds_no_circle_and_few_upward_imports() {
    let graph = graph();
    let circles = circles(&graph.edges);
    let upward = upward(&graph.edges);
    let mut largest: Vec<_> = graph.lines.iter().collect();
    largest.sort_by_key(|(file, lines)| (std::cmp::Reverse(**lines), *file));
    let imports: usize = graph.edges.values().map(BTreeSet::len).sum();
    eprintln!(
        "{} files, {} file-to-file imports",
        graph.edges.len(),
        imports
    );
    eprintln!(
        "circles (sizes {:?}):",
        circles.iter().map(Vec::len).collect::<Vec<_>>()
    );
    for circle in &circles {
        eprintln!("  {circle:?}");
    }
    eprintln!("upward imports: {}", upward.len());
    for import in &upward {
        eprintln!("  {import}");
    }
    eprintln!("largest files:");
    for (file, lines) in largest.iter().take(8) {
        eprintln!("  {lines:5} {file}");
    }
    let too_large: Vec<_> = circles
        .iter()
        .filter(|c| c.len() > LARGEST_CIRCLE)
        .collect();
    assert!(
        too_large.is_empty(),
        "import circles of more than {LARGEST_CIRCLE} files: {too_large:?}"
    );
    let excess = upward.len().saturating_sub(UPWARD_CEILING);
    assert_eq!(
        excess,
        0,
        "{} imports run from a lower layer to a higher one (ceiling {UPWARD_CEILING}): {upward:#?}",
        upward.len()
    );
}

#[test]
fn the_parser_reads_grouped_uses_and_skips_tests() {
    let source = "use crate::{a, b::{c, d as e}};\nuse super::f;\n\
        fn g() { crate::h::i(); let s = \"crate::x::y\"; }\n\
        #[cfg(test)]\nmod tests { use crate::z; }\n";
    let found: Vec<_> = paths(&without_test_items(tokens(&strip(source))))
        .into_iter()
        .map(|n| (n.path.join("::"), n.name))
        .collect();
    let name = |n: &str| Some(n.to_owned());
    assert_eq!(
        found,
        vec![
            ("crate::a".to_owned(), name("a")),
            ("crate::b::c".to_owned(), name("c")),
            ("crate::b::d".to_owned(), name("e")),
            ("super::f".to_owned(), name("f")),
            ("crate::h::i".to_owned(), None),
        ]
    );
}
