//! The code's layout, checked (issue R, SPEC.md "Where things are"):
//! - no protocol folder of the core imports `node` (the node composes protocols, never the
//!   reverse; only the test harness, `testing`, sits above the node);
//! - the core's top-level modules import each other without a circle;
//! - no `.rs` file in the workspace is longer than 1,000 lines, not counting its
//!   `#[cfg(test)]` module.
//!
//! The checks read the sources as text: a `crate::X` path outside a comment is an import of
//! top-level module `X` (a `use`, or a path written out in the code).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 1_000;

fn core_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("proto-core has a parent")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name == "target" || name.starts_with('.') || name == "corpus" || name == "artifacts"
            {
                continue;
            }
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of the core belongs to (`membership`, `node`, `time`, ...).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(core_src()).expect("a file of the core");
    let first = rel.components().next().expect("non-empty path");
    let s = first.as_os_str().to_string_lossy();
    s.strip_suffix(".rs").unwrap_or(&s).to_string()
}

/// Lines of code: comments (`//`, `//!`, `///`) dropped.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with("//"))
}

/// Every top-level module `file` names as `crate::X`, or as `super::X` from a file directly
/// under a top-level folder (`super` is then the crate root).
fn imports(file: &Path, text: &str) -> BTreeSet<String> {
    let rel = file.strip_prefix(core_src()).expect("a file of the core");
    let depth = rel.components().count();
    let is_mod_rs = rel.file_name().is_some_and(|n| n == "mod.rs");
    // For src/a/b.rs, `super` is `a`; for src/a/mod.rs, `super` is the crate root.
    let super_is_root = depth == 2 && is_mod_rs;
    let mut out = BTreeSet::new();
    for line in code_lines(text) {
        for (prefix, ok) in [("crate::", true), ("super::", super_is_root)] {
            if !ok {
                continue;
            }
            let mut rest = line;
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                rest = &rest[i + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name.chars().next().is_some_and(|c| c.is_lowercase()) {
                    out.insert(name);
                }
            }
        }
        // `use crate::{a, b::c}` groups.
        if let Some(i) = line.find("crate::{") {
            let group = &line[i + "crate::{".len()..];
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

fn core_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&core_src(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    // Test code may use anything (the harness, other protocols): only what ships counts.
    let tests = test_module_files(&files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        if m == "lib" || tests.contains(f) {
            continue;
        }
        let text = without_tests(&fs::read_to_string(f).expect("readable source"));
        let deps = graph.entry(m.clone()).or_default();
        for d in imports(f, &text) {
            if d != m && modules.contains(&d) && d != "lib" {
                deps.insert(d);
            }
        }
    }
    graph
}

#[test]
fn no_protocol_imports_node() {
    let graph = core_graph();
    let offenders: Vec<&String> = graph
        .iter()
        .filter(|(m, deps)| !["node", "testing"].contains(&m.as_str()) && deps.contains("node"))
        .map(|(m, _)| m)
        .collect();
    assert!(
        offenders.is_empty(),
        "these modules import `node`, which composes them: {offenders:?}"
    );
    // The graph is not empty by accident: the node imports the protocols.
    assert!(graph["node"].contains("membership") && graph["node"].contains("broadcast"));
}

#[test]
fn no_import_circle_between_core_modules() {
    let graph = core_graph();
    // Depth-first search for a back edge; report the circle it closes.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let i = stack.iter().position(|s| s == m).expect("on the stack");
                let mut circle = stack[i..].to_vec();
                circle.push(m.to_string());
                return Some(circle);
            }
            _ => {}
        }
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, graph, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if let Some(circle) = visit(m, &graph, &mut state, &mut Vec::new()) {
            panic!(
                "import circle between the core's modules: {}",
                circle.join(" -> ")
            );
        }
    }
}

/// `#[cfg(test)]`, `#[cfg(all(test, ...))]` and the like.
fn is_test_cfg(line: &str) -> bool {
    line.starts_with("#[cfg(") && line.contains("test")
}

/// Files that are a `#[cfg(test)] mod name;` of another file: test modules in files of their own.
fn test_module_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = fs::read_to_string(f) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for w in lines.windows(2) {
            let Some(name) = w[1].strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else {
                continue;
            };
            if !is_test_cfg(w[0]) {
                continue;
            }
            let dir = f.parent().expect("a file has a folder");
            let stem = f.file_stem().expect("a file has a name").to_string_lossy();
            let base = if stem == "mod" || stem == "lib" || stem == "main" {
                dir.to_path_buf()
            } else {
                dir.join(&*stem)
            };
            out.push(base.join(format!("{name}.rs")));
            out.push(base.join(name).join("mod.rs"));
        }
    }
    out
}

/// Lines of `text` not counting its `#[cfg(test)]` module (the attribute, the `mod` line and
/// everything to the brace that closes it, found by counting braces).
fn lines_without_tests(text: &str) -> usize {
    without_tests(text).lines().count()
}

/// `text` without its `#[cfg(test)]` modules (the attribute, the `mod` line and everything to
/// the brace that closes it, found by counting braces).
fn without_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = String::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        if is_test_cfg(l) && next.starts_with("mod ") && next.ends_with('{') {
            let mut depth = 0i64;
            let mut j = i + 1;
            loop {
                for c in lines[j].chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                j += 1;
                if depth <= 0 || j >= lines.len() {
                    break;
                }
            }
            i = j;
            continue;
        }
        kept.push_str(lines[i]);
        kept.push('\n');
        i += 1;
    }
    kept
}

#[test]
fn no_file_over_a_thousand_lines() {
    let mut files = Vec::new();
    rust_files(&workspace(), &mut files);
    assert!(files.len() > 100, "found only {} files", files.len());
    let tests = test_module_files(&files);
    let mut long: Vec<(usize, String)> = files
        .iter()
        .filter(|f| !tests.contains(f))
        .filter_map(|f| {
            let text = fs::read_to_string(f).ok()?;
            let n = lines_without_tests(&text);
            (n > MAX_LINES).then(|| {
                (
                    n,
                    f.strip_prefix(workspace()).unwrap().display().to_string(),
                )
            })
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (not counting #[cfg(test)] modules): {long:?}"
    );
}

#[test]
fn the_line_counter_skips_test_modules() {
    let text = "fn a() {}\n#[cfg(test)]\nmod tests {\n    fn b() {\n    }\n}\nfn c() {}\n";
    assert_eq!(lines_without_tests(text), 2);
    let text = "fn a() {}\n#[cfg(all(test, feature = \"x\"))]\nmod t {\n}\n";
    assert_eq!(lines_without_tests(text), 1);
    let g = imports(
        &core_src().join("membership").join("mod.rs"),
        "use crate::id::PeerId;\n// crate::node is a comment\nuse super::time::X;\nuse crate::{wire, frame::Frame};",
    );
    assert_eq!(
        g.into_iter().collect::<Vec<_>>(),
        ["frame", "id", "time", "wire"]
    );
}
