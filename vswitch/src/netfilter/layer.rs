//! Combining the switch's generated rules with the user's: the user's rules
//! run first in every chain both define, the user's policy wins for a
//! built-in chain the user's text declared, and the result is finalized as
//! a whole (a user rule may jump to a generated chain it declared with
//! `:NAME - [0:0]`). Errors keep the position of the text they came from.

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
                    rules.append(&mut gc.rules);
                    gc.rules = rules;
                    if gc.hook.is_some() && uc.declared {
                        gc.policy = uc.policy;
                        gc.counters = uc.counters;
                        gc.declared = true;
                    }
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
