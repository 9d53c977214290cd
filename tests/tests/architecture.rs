//! The workspace's shape, checked on its sources (issue #13): no import
//! cycle between the modules of any crate, and no source file over 800
//! lines outside tests and generated code.
//!
//! The cycle check reads every crate of the workspace from its roots
//! (`src/lib.rs`, `src/main.rs`, `src/bin/*.rs`), following `mod`
//! declarations (both `foo/mod.rs` and `foo.rs` + `foo/`, and inline
//! modules), and collects the paths each module names: `use` trees and
//! paths in code that start with `crate::`, `super::`, `self::`, a child
//! module, or a name brought in by `use`. Each path is resolved to the
//! deepest module it reaches, following `use` re-exports of the modules it
//! passes through (`super::Layout` where the parent re-exports
//! `session::Layout` names `session`).
//!
//! For every module M, the graph of M's child modules gets an edge X → Y
//! when code in X (or below X) names something in Y (or below Y). A cycle
//! in any of these graphs fails the test, which names the modules and the
//! line of each reference. `#[cfg(test)]` items (unit-test modules and
//! their imports) are left out: tests may reach anywhere.
//!
//! A name that `lib.rs` re-exports (`crate::AppState`, `crate::State`) is
//! followed to the module that defines it (see [`RESOLVE_ROOT_REEXPORTS`]),
//! so a cycle cannot hide behind the crate root's façade.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Whether names re-exported by a crate root are followed to the module
/// that defines them. Off: the root's re-exports are its public face, and
/// modules that use them depend on the root. On, the check also sees the
/// dependencies hidden behind `crate::AppState`.
const RESOLVE_ROOT_REEXPORTS: bool = true;

/// Longest source file, lines (issue #13: "no source file over ~800 lines
/// outside generated code and tests").
const MAX_LINES: usize = 800;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The `members` of the workspace's `Cargo.toml`.
fn members(root: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = manifest
        .find("members")
        .expect("a [workspace] members list");
    let list = &manifest[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    list.split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|m| root.join(m))
        .collect()
}

// ------------------------------------------------------------------ tokens

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Rust source as identifiers, `::` and punctuation, each with its line;
/// comments, string and character literals and lifetimes dropped.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == '"' || ((ch == 'b' || ch == 'c') && at(i + 1) == '"') {
            i += if ch == '"' { 1 } else { 2 };
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                line += usize::from(at(i) == '\n');
                i += 1;
            }
            i += 1;
        } else if (ch == 'r' || ((ch == 'b' || ch == 'c') && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(ch != 'r')), '"' | '#')
            && {
                // A raw string `r#"…"#`, not an identifier `r#type`.
                let mut j = i + 1 + usize::from(ch != 'r');
                while at(j) == '#' {
                    j += 1;
                }
                at(j) == '"'
            }
        {
            i += 1 + usize::from(ch != 'r');
            let mut hashes = 0;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                line += usize::from(c[i] == '\n');
                i += 1;
            }
        } else if ch == '\'' {
            // A character literal ('a', '\n', '\u{1F600}'), else a lifetime.
            if at(i + 1) == '\\' {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let mut word: String = c[start..i].iter().collect();
            if word == "r" && at(i) == '#' && (at(i + 1).is_alphabetic() || at(i + 1) == '_') {
                let s = i + 1;
                i += 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                word = c[s..i].iter().collect();
            }
            out.push((Tok::Ident(word), line));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                if c[i] == '.' && !at(i + 1).is_ascii_digit() {
                    break;
                }
                i += 1;
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

// ------------------------------------------------------------------ modules

/// One module of a crate: its path from the root, where it is written, its
/// child modules, and the names its `use` declarations bind.
#[derive(Debug, Default)]
struct Module {
    file: PathBuf,
    children: BTreeSet<String>,
    /// Name → the path it was imported from, as written (relative to this
    /// module), with the line.
    uses: BTreeMap<String, Vec<String>>,
    /// Paths named in code or `use`, as written, with their lines.
    refs: Vec<(Vec<String>, usize)>,
}

/// A crate: its modules by path (the root is `[]`).
type Crate = BTreeMap<Vec<String>, Module>;

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

fn punct(t: Option<&(Tok, usize)>, c: char) -> bool {
    matches!(t, Some((Tok::Punct(p), _)) if *p == c)
}

/// Index just past the item that starts at `i` (to its `;` or the end of
/// its first block, brackets balanced).
fn skip_item(t: &[(Tok, usize)], mut i: usize) -> usize {
    let is_use = ident(t.get(i)) == Some("use")
        || (ident(t.get(i)) == Some("pub")
            && t[i..]
                .iter()
                .take(8)
                .any(|x| x.0 == Tok::Ident("use".into())));
    let mut depth = 0i32;
    while i < t.len() {
        match &t[i].0 {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => {
                depth -= 1;
                if depth == 0 && !is_use && t[i].0 == Tok::Punct('}') {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Parses a `use` tree from `i` under `prefix`; pushes (bound name, path)
/// and returns the index past the tree.
fn use_tree(
    t: &[(Tok, usize)],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<(String, Vec<String>)>,
) -> usize {
    let mut path = prefix;
    loop {
        match t.get(i).map(|x| &x.0) {
            Some(Tok::Path) => i += 1,
            Some(Tok::Ident(s)) => {
                i += 1;
                if t.get(i).map(|x| &x.0) == Some(&Tok::Path) {
                    path.push(s.clone());
                    i += 1;
                    continue;
                }
                // The last segment: `x`, `self` (the prefix itself), `x as y`.
                let mut bound = if s == "self" {
                    path.last().cloned().unwrap_or_default()
                } else {
                    path.push(s.clone());
                    s.clone()
                };
                if ident(t.get(i)) == Some("as") {
                    bound = ident(t.get(i + 1)).unwrap_or("_").to_owned();
                    i += 2;
                }
                out.push((bound, path));
                return i;
            }
            Some(Tok::Punct('*')) => {
                out.push(("*".into(), path));
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while i < t.len() && !punct(t.get(i), '}') {
                    let next = use_tree(t, i, path.clone(), out);
                    i = if next == i { i + 1 } else { next };
                    if punct(t.get(i), ',') {
                        i += 1;
                    }
                }
                return i + 1;
            }
            _ => return i,
        }
    }
}

/// Whether the attribute tokens `#[…]` starting at `i` are `cfg(test)` (or
/// a `cfg` that needs `test`); returns that and the index past the `]`.
fn attribute(t: &[(Tok, usize)], i: usize) -> (bool, usize) {
    let mut j = i + 2;
    let mut depth = 1;
    let mut words = Vec::new();
    while j < t.len() && depth > 0 {
        match &t[j].0 {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => depth -= 1,
            Tok::Ident(w) => words.push(w.as_str()),
            _ => {}
        }
        j += 1;
    }
    let test = words.first() == Some(&"cfg") && words.contains(&"test") && !words.contains(&"not");
    (test, j)
}

/// Reads the module at `path` written in `file`, and its children.
fn read_module(krate: &mut Crate, path: Vec<String>, file: &Path, dir: &Path) {
    let src = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let t = tokens(&src);
    // Stack of inline modules: (path, brace depth at which it closes).
    let mut stack: Vec<(Vec<String>, i32)> = vec![(path.clone(), -1)];
    let mut depth = 0i32;
    let mut i = 0;
    krate.entry(path.clone()).or_default().file = file.to_path_buf();
    let mut to_read: Vec<(Vec<String>, PathBuf)> = Vec::new();
    while i < t.len() {
        let here = stack.last().unwrap().0.clone();
        // `dir` of the module being read: where its `mod x;` files live.
        let subdir = |p: &[String]| dir.join(p[path.len()..].join("/"));
        match &t[i].0 {
            Tok::Punct('#') if punct(t.get(i + 1), '!') => {
                i = attribute(t.as_slice(), i + 1).1;
            }
            Tok::Punct('#') if punct(t.get(i + 1), '[') => {
                let (test, next) = attribute(&t, i);
                i = next;
                if test {
                    // Further attributes of the same item, then the item.
                    while punct(t.get(i), '#') {
                        i = attribute(&t, i).1;
                    }
                    i = skip_item(&t, i);
                }
            }
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                depth -= 1;
                if stack.len() > 1 && stack.last().unwrap().1 == depth {
                    stack.pop();
                }
                i += 1;
            }
            Tok::Ident(w) if w == "mod" && ident(t.get(i + 1)).is_some() => {
                let name = ident(t.get(i + 1)).unwrap().to_owned();
                let mut child = here.clone();
                child.push(name.clone());
                krate
                    .entry(here.clone())
                    .or_default()
                    .children
                    .insert(name.clone());
                if punct(t.get(i + 2), ';') {
                    let base = subdir(&here);
                    let candidates = [
                        base.join(format!("{name}.rs")),
                        base.join(&name).join("mod.rs"),
                    ];
                    let found = candidates
                        .iter()
                        .find(|p| p.is_file())
                        .unwrap_or_else(|| panic!("{}: `mod {name};` has no file", file.display()));
                    to_read.push((child, found.clone()));
                    i += 3;
                } else {
                    krate.entry(child.clone()).or_default().file = file.to_path_buf();
                    stack.push((child, depth));
                    depth += 1;
                    i += 3;
                }
            }
            Tok::Ident(w) if w == "use" => {
                let mut bound = Vec::new();
                let line = t[i].1;
                let end = use_tree(&t, i + 1, Vec::new(), &mut bound);
                let m = krate.entry(here.clone()).or_default();
                for (name, p) in bound {
                    m.refs.push((p.clone(), line));
                    if name != "*" && name != "_" {
                        m.uses.insert(name, p);
                    }
                }
                i = end;
            }
            Tok::Ident(first)
                if t.get(i + 1).map(|x| &x.0) == Some(&Tok::Path)
                    && !punct(i.checked_sub(1).and_then(|k| t.get(k)), '$')
                    && i.checked_sub(1).and_then(|k| t.get(k)).map(|x| &x.0)
                        != Some(&Tok::Path) =>
            {
                let line = t[i].1;
                let mut p = vec![first.clone()];
                let mut j = i + 1;
                while t.get(j).map(|x| &x.0) == Some(&Tok::Path) {
                    match ident(t.get(j + 1)) {
                        Some(s) => p.push(s.to_owned()),
                        None => break,
                    }
                    j += 2;
                }
                krate.entry(here.clone()).or_default().refs.push((p, line));
                i = j;
            }
            _ => i += 1,
        }
    }
    for (child, f) in to_read {
        // `foo/mod.rs` and `foo.rs` both keep their children in `foo/`.
        let child_dir = f.parent().unwrap().to_path_buf();
        let child_dir = if f.file_name().unwrap() == "mod.rs" {
            child_dir
        } else {
            child_dir.join(child.last().unwrap())
        };
        read_module(krate, child, &f, &child_dir);
    }
}

/// The module a path written in module `here` names (the deepest module it
/// reaches), or `None` for another crate's or a local item.
fn resolve(krate: &Crate, here: &[String], written: &[String]) -> Option<Vec<String>> {
    resolve_with(krate, here, written, 16)
}

/// [`resolve`], following at most `fuel` re-exports.
fn resolve_with(
    krate: &Crate,
    here: &[String],
    written: &[String],
    fuel: u32,
) -> Option<Vec<String>> {
    let fuel = fuel.checked_sub(1)?;
    let (mut module, rest): (Vec<String>, &[String]) = match written.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &written[1..]),
        Some("self") => (here.to_vec(), &written[1..]),
        Some("super") => {
            let mut m = here.to_vec();
            let mut k = 0;
            while written.get(k).map(String::as_str) == Some("super") {
                m.pop()?;
                k += 1;
            }
            (m, &written[k..])
        }
        Some(first) => {
            let m = krate.get(here)?;
            if m.children.contains(first) {
                (here.to_vec(), written)
            } else if let Some(target) = m.uses.get(first) {
                if target.first().map(String::as_str) == Some(first) && !m.children.contains(first)
                {
                    return None; // `use serde;` and the like
                }
                let mut full = target.clone();
                full.extend_from_slice(&written[1..]);
                return resolve_with(krate, here, &full, fuel);
            } else {
                return None;
            }
        }
        None => return None,
    };
    let mut rest = rest.to_vec();
    while let Some(seg) = rest.first().cloned() {
        let m = krate.get(&module)?;
        if m.children.contains(&seg) {
            module.push(seg);
            rest.remove(0);
        } else if let Some(target) = m.uses.get(&seg)
            && (RESOLVE_ROOT_REEXPORTS || !module.is_empty())
        {
            let mut full = target.clone();
            full.extend_from_slice(&rest[1..]);
            let here = module.clone();
            return resolve_with(krate, &here, &full, fuel).or(Some(module));
        } else {
            break;
        }
    }
    Some(module)
}

/// Edges of the graphs of child modules: parent → (from → to → lines).
type Graphs = BTreeMap<Vec<String>, BTreeMap<String, BTreeMap<String, Vec<String>>>>;

fn graphs(krate: &Crate) -> Graphs {
    let mut g = Graphs::new();
    for (here, m) in krate {
        for (written, line) in &m.refs {
            let Some(target) = resolve(krate, here, written) else {
                continue;
            };
            let k = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if k < here.len() && k < target.len() {
                let evidence = format!("{}:{line} `{}`", m.file.display(), written.join("::"));
                g.entry(here[..k].to_vec())
                    .or_default()
                    .entry(here[k].clone())
                    .or_default()
                    .entry(target[k].clone())
                    .or_default()
                    .push(evidence);
            }
        }
    }
    g
}

/// A cycle through `start`, if any (depth-first search).
fn cycle_from(
    edges: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    start: &str,
) -> Option<Vec<String>> {
    fn dfs(
        edges: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
        node: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in edges.get(node).into_iter().flat_map(|e| e.keys()) {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if dfs(edges, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    let mut seen = BTreeSet::new();
    dfs(edges, start, start, &mut path, &mut seen).then_some(path)
}

/// The crates of the workspace: (name for messages, root files).
fn crate_roots(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for member in members(root) {
        let src = member.join("src");
        for name in ["lib.rs", "main.rs"] {
            if src.join(name).is_file() {
                out.push((format!("{}/src/{name}", rel(root, &member)), src.join(name)));
            }
        }
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            for b in bins.flatten() {
                let p = b.path();
                if p.extension().is_some_and(|e| e == "rs") {
                    out.push((rel(root, &p), p));
                }
            }
        }
    }
    out.sort();
    out
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// Strongly connected sets of modules (Tarjan), each with more than one
/// member, sorted.
fn cyclic_sets(edges: &BTreeMap<String, BTreeMap<String, Vec<String>>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, Vec<String>>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let i = w.index.len();
        w.index.insert(v, i);
        w.low.insert(v, i);
        w.stack.push(v);
        w.on_stack.insert(v);
        let edges = w.edges;
        for next in edges.get(v).into_iter().flat_map(|e| e.keys()) {
            let next = next.as_str();
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[v].min(w.low[next]);
                w.low.insert(v, low);
            } else if w.on_stack.contains(next) {
                let low = w.low[v].min(w.index[next]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut set = Vec::new();
            while let Some(x) = w.stack.pop() {
                w.on_stack.remove(x);
                set.push(x.to_owned());
                if x == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                w.found.push(set);
            }
        }
    }
    let mut w = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found.sort();
    w.found
}

/// The cycles of one crate: for each set of modules caught in one, its key
/// (`crate::parent::{a, b}`) and one cycle through it with the reference
/// behind each step.
fn cycles_of(root_file: &Path) -> Vec<(String, String)> {
    let mut krate = Crate::new();
    read_module(
        &mut krate,
        Vec::new(),
        root_file,
        root_file.parent().unwrap(),
    );
    let mut found = Vec::new();
    for (parent, edges) in graphs(&krate) {
        let prefix = std::iter::once("crate")
            .chain(parent.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("::");
        for set in cyclic_sets(&edges) {
            let key = format!("{prefix}::{{{}}}", set.join(", "));
            // One cycle through the set's first member, within the set.
            let within: BTreeMap<String, BTreeMap<String, Vec<String>>> = set
                .iter()
                .map(|m| {
                    let out = edges[m]
                        .iter()
                        .filter(|(to, _)| set.contains(to))
                        .map(|(to, why)| (to.clone(), why.clone()))
                        .collect();
                    (m.clone(), out)
                })
                .collect();
            let cycle = cycle_from(&within, &set[0]).expect("a strongly connected set has a cycle");
            let mut text = cycle.join(" → ");
            text.push_str(&format!(" → {}", cycle[0]));
            for (k, from) in cycle.iter().enumerate() {
                let to = &cycle[(k + 1) % cycle.len()];
                let why = &within[from][to];
                text.push_str(&format!("\n      {from} → {to}: {}", why[0]));
                if why.len() > 1 {
                    text.push_str(&format!(" (and {} more)", why.len() - 1));
                }
            }
            found.push((key, text));
        }
    }
    found
}

/// Cycles that other parts of issue #13 are removing, as
/// `root file: crate::parent::{modules}`. The test fails on any cycle not
/// listed here, and on a listed one that is gone (take it off the list).
const KNOWN_CYCLES: &[&str] = &[];

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = workspace_root();
    let roots = crate_roots(&root);
    assert!(
        roots.iter().any(|(n, _)| n.starts_with("services/api/")),
        "the scan found the workspace's crates: {roots:?}"
    );
    let mut new = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, file) in &roots {
        for (key, cycle) in cycles_of(file) {
            let key = format!("{name}: {key}");
            if !KNOWN_CYCLES.contains(&key.as_str()) {
                new.push(format!("{key}\n    {cycle}"));
            }
            seen.insert(key);
        }
    }
    let gone: Vec<&&str> = KNOWN_CYCLES
        .iter()
        .filter(|k| !seen.contains(**k))
        .collect();
    assert!(
        new.is_empty(),
        "import cycles between modules:\n  {}",
        new.join("\n  ")
    );
    assert!(
        gone.is_empty(),
        "these cycles are gone: take them off KNOWN_CYCLES: {gone:?}"
    );
}

/// The checker itself, on a made-up crate with a known cycle.
#[test]
fn the_checker_finds_a_cycle_through_a_reexport() {
    let dir = tempfile::tempdir().unwrap();
    let w = |p: &str, s: &str| {
        let f = dir.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, s).unwrap();
    };
    w("lib.rs", "mod a;\nmod b;\nmod web;\npub use a::A;\n");
    // a → b through a nested path; b → a through the root's re-export of
    // `A`, which the check follows to `a` (RESOLVE_ROOT_REEXPORTS).
    w("a.rs", "use crate::b::B;\npub struct A;\n");
    w(
        "b.rs",
        "pub struct B(crate::A);\n#[cfg(test)]\nmod tests { use crate::a::A; }\n",
    );
    // Inside web/: gate → routes, and routes → gate through web's re-export.
    w(
        "web/mod.rs",
        "mod gate;\nmod routes;\npub(crate) use gate::{Gate, self as g};\n",
    );
    w(
        "web/gate.rs",
        "use super::routes::{self, Table};\npub struct Gate;\n",
    );
    w(
        "web/routes.rs",
        "/* super::gate */ pub struct Table; fn f() { let _ = super::Gate; let _ = \"crate::a\"; }\n",
    );
    let keys = |c: &[(String, String)]| c.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    let cycles = cycles_of(&dir.path().join("lib.rs"));
    assert_eq!(
        keys(&cycles),
        ["crate::{a, b}", "crate::web::{gate, routes}"],
        "{cycles:#?}"
    );
    assert!(cycles[0].1.contains("b.rs:1 `crate::A`"), "{}", cycles[0].1);
    assert!(
        cycles[1].1.starts_with("gate → routes → gate"),
        "{}",
        cycles[1].1
    );
    assert!(
        cycles[1].1.contains("web/routes.rs:1 `super::Gate`"),
        "{}",
        cycles[1].1
    );
    // With `b.rs` naming `a` directly, the root level has its cycle too.
    w("b.rs", "pub struct B(crate::a::A);\n");
    let cycles = cycles_of(&dir.path().join("lib.rs"));
    assert_eq!(
        keys(&cycles),
        ["crate::{a, b}", "crate::web::{gate, routes}"],
        "{cycles:#?}"
    );
}

#[test]
fn no_source_file_is_over_800_lines() {
    let root = workspace_root();
    let mut long = Vec::new();
    let mut stack: Vec<PathBuf> = members(&root);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                // Tests (the `tests` crate and each crate's `tests/`), build
                // output and vendored or generated trees are exempt.
                if !matches!(
                    name.as_str(),
                    "tests" | "target" | "generated" | "node_modules"
                ) && !name.starts_with('.')
                    && p != root.join("tests")
                {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                if text.contains("@generated") {
                    continue;
                }
                let lines = text.lines().count();
                if lines > MAX_LINES {
                    long.push(format!("{} ({lines} lines)", rel(&root, &p)));
                }
            }
        }
    }
    long.sort();
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines:\n  {}",
        long.join("\n  ")
    );
}
