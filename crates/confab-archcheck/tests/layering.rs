//! The layering rule of ARCHITECTURE.md, checked against `cargo metadata`.
//!
//! For every workspace crate: it must be listed in exactly one tier; its normal (non-dev,
//! non-build) dependencies on workspace crates must be in tiers its tier `may_use`; and every
//! external crate reachable through normal dependencies must be allowed by its tier and not
//! denied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tier {
    crates: Vec<String>,
    may_use: Vec<String>,
    allow: Vec<String>,
    deny: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    tier: BTreeMap<String, Tier>,
}

/// The dependency graph restricted to what the checks need. Nodes are package ids (two
/// versions of one crate are two nodes); `name` maps an id to its crate name.
#[derive(Debug, Default)]
struct Graph {
    /// Workspace member ids.
    members: BTreeSet<String>,
    /// package id -> ids of its normal dependencies (for the target platform).
    normal: BTreeMap<String, BTreeSet<String>>,
    /// package id -> crate name.
    name: BTreeMap<String, String>,
}

impl Graph {
    fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.name.get(id).map_or(id, String::as_str)
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn load_rules(architecture_md: &str) -> Result<Rules, String> {
    let start_tag = "```toml layering\n";
    let start = architecture_md
        .find(start_tag)
        .ok_or("ARCHITECTURE.md has no ```toml layering block")?
        + start_tag.len();
    let end = architecture_md[start..]
        .find("```")
        .ok_or("ARCHITECTURE.md: the layering block is not closed")?;
    toml::from_str(&architecture_md[start..start + end])
        .map_err(|e| format!("ARCHITECTURE.md layering block: {e}"))
}

fn load_graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap();
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &host,
        ])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut g = Graph {
        name: name_of
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Graph::default()
    };
    for id in meta["workspace_members"].as_array().unwrap() {
        g.members.insert(id.as_str().unwrap().to_owned());
    }
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let from = node["id"].as_str().unwrap().to_owned();
        let entry = g.normal.entry(from).or_default();
        for dep in node["deps"].as_array().unwrap() {
            let is_normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if is_normal {
                entry.insert(dep["pkg"].as_str().unwrap().to_owned());
            }
        }
    }
    g
}

/// Expands `@tier` references in an allow-list.
fn allowed(rules: &Rules, tier: &str, seen: &mut BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if !seen.insert(tier.to_owned()) {
        return out;
    }
    for a in &rules.tier[tier].allow {
        match a.strip_prefix('@') {
            Some(other) => out.extend(allowed(rules, other, seen)),
            None => {
                out.insert(a.clone());
            }
        }
    }
    out
}

/// Returns every violation of the rules in the graph, as readable sentences.
fn violations(rules: &Rules, g: &Graph) -> Vec<String> {
    let mut errors = Vec::new();
    let mut tier_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (tname, tier) in &rules.tier {
        for c in &tier.crates {
            if let Some(prev) = tier_of.insert(c, tname) {
                errors.push(format!(
                    "crate {c} is listed in two tiers: {prev} and {tname}"
                ));
            }
        }
    }
    let member_ids: BTreeMap<&str, &str> = g
        .members
        .iter()
        .map(|id| (g.name(id), id.as_str()))
        .collect();
    for m in member_ids.keys() {
        if !tier_of.contains_key(m) {
            errors.push(format!(
                "workspace crate {m} is not listed in any tier of ARCHITECTURE.md's layering block"
            ));
        }
    }
    for (member, tname) in &tier_of {
        let Some(member_id) = member_ids.get(member) else {
            continue; // planned crate that does not exist yet
        };
        let tier = &rules.tier[*tname];
        let allow = allowed(rules, tname, &mut BTreeSet::new());
        let any = allow.contains("*");
        // Direct workspace dependencies: tier rule.
        for dep_id in g.normal.get(*member_id).into_iter().flatten() {
            let dep = g.name(dep_id);
            if let Some(dep_tier) = tier_of.get(dep)
                && !tier.may_use.iter().any(|t| t == dep_tier)
            {
                errors.push(format!(
                    "{member} ({tname}) depends on {dep} ({dep_tier}), which {tname} may not use"
                ));
            }
        }
        // Transitive external dependencies: allow/deny lists.
        let mut stack: Vec<&str> = vec![member_id];
        let mut seen = BTreeSet::new();
        while let Some(p_id) = stack.pop() {
            let p = g.name(p_id);
            for dep_id in g.normal.get(p_id).into_iter().flatten() {
                if !seen.insert(dep_id.as_str()) {
                    continue;
                }
                stack.push(dep_id);
                if g.members.contains(dep_id) {
                    continue; // checked by the tier rule of its own crate
                }
                let dep = g.name(dep_id).to_owned();
                if tier.deny.contains(&dep) {
                    errors.push(format!(
                        "{member} ({tname}) reaches {dep} (via {p}), which {tname} denies"
                    ));
                } else if !any && !allow.contains(&dep) {
                    errors.push(format!(
                        "{member} ({tname}) reaches {dep} (via {p}), which is not in the {tname} allow-list"
                    ));
                }
            }
        }
    }
    errors
}

#[test]
fn workspace_follows_the_layering_rule() {
    let md = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).unwrap();
    let rules = load_rules(&md).unwrap();
    let errors = violations(&rules, &load_graph());
    assert!(
        errors.is_empty(),
        "layering violations:\n  {}",
        errors.join("\n  ")
    );
}

/// The checker itself must catch what it is for: a protocol crate pulling tokio through an
/// allowed-looking dependency, a role using an adapter, and an unlisted crate.
#[test]
fn checker_reports_violations_in_a_synthetic_graph() {
    let md = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).unwrap();
    let mut rules = load_rules(&md).unwrap();
    rules
        .tier
        .get_mut("roles")
        .unwrap()
        .crates
        .push("role-x".into());
    let mut g = Graph::default();
    for m in ["confab-sip", "confab-store", "role-x", "stray"] {
        g.members.insert(m.into());
    }
    // In the synthetic graph an id is the crate name.
    let edges: &[(&str, &[&str])] = &[
        ("confab-sip", &["bytes", "helper-lib"]),
        ("helper-lib", &["tokio"]),
        ("role-x", &["confab-store", "confab-sip"]),
        ("confab-store", &["sqlx"]),
    ];
    for (from, to) in edges {
        g.normal
            .insert((*from).into(), to.iter().map(|s| (*s).to_owned()).collect());
    }
    let errors = violations(&rules, &g);
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("confab-sip (protocol) reaches tokio (via helper-lib), which protocol denies"),
        "{errors:#?}"
    );
    assert!(
        has("confab-sip (protocol) reaches helper-lib"),
        "{errors:#?}"
    );
    assert!(
        has("role-x (roles) depends on confab-store (adapters)"),
        "{errors:#?}"
    );
    assert!(has("role-x (roles) reaches sqlx"), "{errors:#?}");
    assert!(has("workspace crate stray is not listed"), "{errors:#?}");
    assert!(!has("confab-sip (protocol) reaches bytes"), "{errors:#?}");
}
