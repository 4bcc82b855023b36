//! Combining the switch's generated rules with the user's. A built-in chain
//! the user's text declares (`:FORWARD DROP [0:0]`) is the user's alone, as
//! iptables-restore replaces what it declares: policy and rules, the
//! generated rules for it dropped. In every other chain both define, the
//! user's rules run first. The result is finalized as a whole (a user rule
//! may jump to a generated chain it declared with `:NAME - [0:0]`). Errors
//! keep the position of the text they came from.

use super::{check, next_generation, RuleErrors, Ruleset, Table};

pub(crate) fn layered(generated: Ruleset, user: Ruleset) -> Result<Ruleset, RuleErrors> {
    let mut out = generated;
    let mut errors = Vec::new();
    for table in Table::ALL {
        let u = &user.tables[table as usize];
        let g = &mut out.tables[table as usize];
        if !u.present {
            continue;
        }
        g.present = true;
        for uc in &u.chains {
            match g.find(&uc.name) {
                Some(i) => {
                    let gc = &mut g.chains[i];
                    let mut rules = uc.rules.clone();
                    if gc.hook.is_some() && uc.declared {
                        gc.policy = uc.policy;
                        gc.counters = uc.counters;
                        gc.declared = true;
                    } else {
                        rules.append(&mut gc.rules);
                    }
                    gc.rules = rules;
                }
                None => g.add_user(uc.clone()),
            }
        }
        errors.extend(check::finalize(g));
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.path, a.line, a.col).cmp(&(&b.path, b.line, b.col)));
        return Err(RuleErrors(errors));
    }
    out.generation = next_generation();
    Ok(out)
}
