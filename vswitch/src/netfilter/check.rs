//! Finalizing a table after its edits: jump targets resolved to chain
//! indices, then what the kernel refuses at load refused here too: jump
//! loops, jumps nested deeper than evaluation's fixed stack, and targets or
//! matches reached from hooks they are not valid in (a user chain inherits
//! the hooks of every built-in chain that reaches it). A table that passes
//! gets its long chains indexed.

use std::collections::HashMap;

use super::index::RuleIndex;
use super::targets::{Target, TARGETS};
use super::types::did_you_mean;
use super::{Hook, RuleError, TableRules};

/// Nested jumps evaluation follows; its return stack is this deep.
pub(crate) const MAX_DEPTH: usize = 32;

pub(crate) fn finalize(t: &mut TableRules) -> Vec<RuleError> {
    let mut errors = Vec::new();
    let builtin: Vec<bool> = t.chains.iter().map(|c| c.hook.is_some()).collect();
    let index: HashMap<String, usize> = t
        .chains
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect();
    for c in &mut t.chains {
        for r in &mut c.rules {
            let (Target::Jump(j) | Target::Goto(j)) = &mut r.target else {
                continue;
            };
            match index.get(&j.name) {
                Some(&i) if builtin[i] => {
                    errors.push(
                        r.pos
                            .error(format!("cannot jump to built-in chain {}", j.name)),
                    );
                }
                Some(&i) => j.idx = i,
                None => {
                    let names = index
                        .keys()
                        .map(String::as_str)
                        .chain(TARGETS.iter().copied());
                    errors.push(r.pos.error(format!(
                        "unknown target or chain {:?}{}",
                        j.name,
                        did_you_mean(&j.name, names)
                    )));
                }
            }
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    let edges: Vec<Vec<(usize, usize, bool)>> = t
        .chains
        .iter()
        .map(|c| {
            c.rules
                .iter()
                .enumerate()
                .filter_map(|(ri, r)| match &r.target {
                    Target::Jump(j) => Some((j.idx, ri, false)),
                    Target::Goto(j) => Some((j.idx, ri, true)),
                    _ => None,
                })
                .collect()
        })
        .collect();

    // Depth-first over every chain, iteratively so a long chain of jumps
    // cannot exhaust the thread's stack. `depth` is the most return frames
    // evaluation may push below a chain (a goto pushes none).
    let n = t.chains.len();
    let mut state = vec![0u8; n];
    let mut depth = vec![0usize; n];
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        state[start] = 1;
        let mut stack = vec![(start, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (c, e) = *top;
            if let Some(&(to, ri, _)) = edges[c].get(e) {
                top.1 += 1;
                match state[to] {
                    0 => {
                        state[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&(s, _)| s == to).unwrap_or(0);
                        let mut path: Vec<&str> = stack[from..]
                            .iter()
                            .map(|&(s, _)| t.chains[s].name.as_str())
                            .collect();
                        path.push(&t.chains[to].name);
                        errors.push(
                            t.chains[c].rules[ri]
                                .pos
                                .error(format!("jump loop: {}", path.join(" -> "))),
                        );
                    }
                    _ => {}
                }
            } else {
                depth[c] = edges[c]
                    .iter()
                    .map(|&(to, _, goto)| depth[to] + usize::from(!goto))
                    .max()
                    .unwrap_or(0);
                state[c] = 2;
                stack.pop();
            }
        }
    }
    if !errors.is_empty() {
        return errors;
    }

    // Hooks each chain is reached from.
    let mut hooks = vec![0u8; n];
    let mut work: Vec<usize> = Vec::new();
    for (i, c) in t.chains.iter().enumerate() {
        if let Some(h) = c.hook {
            hooks[i] = h.bit();
            work.push(i);
            if depth[i] > MAX_DEPTH {
                let at = c.rules.first().map(|r| {
                    r.pos.error(format!(
                        "jumps from {} nest deeper than {MAX_DEPTH} chains",
                        c.name
                    ))
                });
                errors.extend(at);
            }
        }
    }
    while let Some(c) = work.pop() {
        for &(to, _, _) in &edges[c] {
            if hooks[to] | hooks[c] != hooks[to] {
                hooks[to] |= hooks[c];
                work.push(to);
            }
        }
    }
    for (c, chain) in t.chains.iter().enumerate() {
        for r in &chain.rules {
            let limits =
                std::iter::once(r.target.hooks()).chain(r.matches.iter().map(|m| m.hooks()));
            for (allowed, msg) in limits {
                let bad = hooks[c] & !allowed;
                if bad != 0 {
                    let names: Vec<&str> = Hook::ALL
                        .iter()
                        .filter(|h| bad & h.bit() != 0)
                        .map(|h| h.chain_name())
                        .collect();
                    let how = if chain.hook.is_some() {
                        format!("here in {}", chain.name)
                    } else {
                        format!("chain {} is reached from {}", chain.name, names.join(", "))
                    };
                    errors.push(r.pos.error(format!("{msg} ({how})")));
                }
            }
        }
    }
    if errors.is_empty() {
        for c in &mut t.chains {
            c.index = RuleIndex::build(&c.rules);
        }
    }
    errors
}
