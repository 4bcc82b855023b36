//! Reads iptables-restore text: `*table` sections closed by `COMMIT`,
//! `:CHAIN POLICY [packets:bytes]` declarations, and the commands
//! iptables-restore accepts on its lines (-A -I -D -R -N -X -F -Z -P), each
//! rule optionally prefixed by `[packets:bytes]` as `iptables-save -c`
//! writes. Every problem is collected with its line and column; nothing is
//! skipped silently.
//!
//! Jump targets are resolved when the table is committed, so a rule may
//! name a chain declared further down (iptables-restore wants it first).
//! A table given twice is refused rather than flushed and replaced.

use std::sync::Arc;

use super::lex::{tokenize, Cursor, Tok};
use super::matches::{parse_proto, Match, MODULES};
use super::targets::{ChainRef, Target, TARGETS};
use super::types::{did_you_mean, Cidr, IfSet, Neg, PResult, Perr};
use super::{
    check, next_generation, Chain, Counters, Hook, Interfaces, Origin, Policy, Pos, Rule,
    RuleError, RuleErrors, Ruleset, Table, TableRules,
};

/// General options, for suggestions.
const GENERAL: &[&str] = &[
    "--source",
    "--destination",
    "--protocol",
    "--in-interface",
    "--out-interface",
    "--fragment",
    "--match",
    "--jump",
    "--goto",
    "--set-counters",
];

/// The longest chain name iptables accepts.
const CHAIN_NAME_MAX: usize = 28;

pub(crate) fn parse(
    text: &str,
    origin: &Origin,
    ifaces: &Interfaces,
) -> Result<Ruleset, RuleErrors> {
    let mut p = Parser {
        origin: Arc::new(origin.clone()),
        ifaces,
        errors: Vec::new(),
        tables: Table::ALL.map(TableRules::new),
        current: None,
        first_seen: [None; 4],
    };
    for (i, line) in text.lines().enumerate() {
        p.line(i + 1, line);
    }
    if let Some((t, line)) = p.current {
        p.err(line, 1, format!("table {} has no COMMIT", t.name()));
    }
    if !p.errors.is_empty() {
        p.errors.sort_by_key(|e| (e.line, e.col));
        return Err(RuleErrors(p.errors));
    }
    Ok(Ruleset {
        tables: p.tables,
        ports: ifaces.ports.clone().into(),
        generation: next_generation(),
    })
}

struct Parser<'a> {
    origin: Arc<Origin>,
    ifaces: &'a Interfaces,
    errors: Vec<RuleError>,
    tables: [TableRules; 4],
    /// The open `*table` section and its line.
    current: Option<(Table, usize)>,
    first_seen: [Option<usize>; 4],
}

enum Cmd {
    Append,
    Insert,
    Delete,
    Replace,
    New,
    DeleteChain,
    Flush,
    Zero,
    Policy,
}

impl Parser<'_> {
    fn err(&mut self, line: usize, col: usize, message: impl Into<String>) {
        self.errors.push(RuleError {
            path: self.origin.path.clone(),
            line: self.origin.line_offset + line,
            col,
            message: message.into(),
        });
    }

    fn line(&mut self, n: usize, line: &str) {
        let toks = match tokenize(line) {
            Ok(t) => t,
            Err(e) => return self.err(n, e.col, e.message),
        };
        let Some(first) = toks.first() else { return };
        let text = first.text.as_str();
        let r = if first.quoted {
            Err(Perr::at(first, format!("unexpected {text:?}")))
        } else if let Some(name) = text.strip_prefix('*') {
            self.start_table(n, first, name, &toks[1..])
        } else if text == "COMMIT" {
            self.commit(n, first, &toks[1..])
        } else if let Some(name) = text.strip_prefix(':') {
            self.declare(first, name, &toks[1..])
        } else if text.starts_with('[') {
            match parse_counters(first) {
                Ok(c) => self.command(n, &toks[1..], Some(c)),
                Err(e) => Err(e),
            }
        } else if text.starts_with('-') {
            self.command(n, &toks, None)
        } else {
            Err(Perr::at(
                first,
                format!("unexpected {text:?}: expected *table, :CHAIN, a command like -A, COMMIT or a # comment"),
            ))
        };
        if let Err(e) = r {
            self.err(n, e.col, e.message);
        }
    }

    fn start_table(&mut self, n: usize, tok: &Tok, name: &str, rest: &[Tok]) -> PResult<()> {
        let table = Table::from_name(name).ok_or_else(|| {
            Perr::at(
                tok,
                format!(
                    "unknown table {name:?} (filter, nat, mangle, raw){}",
                    did_you_mean(name, Table::ALL.iter().map(|t| t.name()))
                ),
            )
        })?;
        if let Some((open, line)) = self.current {
            self.err(
                n,
                tok.col,
                format!(
                    "*{name} before COMMIT of table {} (line {line})",
                    open.name()
                ),
            );
        }
        self.current = Some((table, n));
        if let Some(first) = self.first_seen[table as usize] {
            self.tables[table as usize] = TableRules::new(table);
            self.tables[table as usize].present = true;
            return Err(Perr::at(
                tok,
                format!(
                    "table {name} given twice (first at line {})",
                    self.origin.line_offset + first
                ),
            ));
        }
        self.first_seen[table as usize] = Some(n);
        self.tables[table as usize].present = true;
        extra(rest)
    }

    fn commit(&mut self, _n: usize, tok: &Tok, rest: &[Tok]) -> PResult<()> {
        let Some((table, _)) = self.current.take() else {
            return Err(Perr::at(tok, "COMMIT outside a table"));
        };
        let errs = check::finalize(&mut self.tables[table as usize]);
        self.errors.extend(errs);
        extra(rest)
    }

    fn open_table(&self, tok: &Tok) -> PResult<Table> {
        self.current.map(|(t, _)| t).ok_or_else(|| {
            Perr::at(
                tok,
                "outside a table: start the section with *filter, *nat, *mangle or *raw",
            )
        })
    }

    fn declare(&mut self, tok: &Tok, name: &str, rest: &[Tok]) -> PResult<()> {
        let table = self.open_table(tok)?;
        let t = &mut self.tables[table as usize];
        let name_tok = Tok {
            text: name.to_string(),
            col: tok.col + 1,
            quoted: false,
        };
        let policy = rest
            .first()
            .ok_or_else(|| Perr::at(tok, format!("expected :{name} POLICY [packets:bytes]")))?;
        let counters = match rest.get(1) {
            Some(c) => parse_counters(c)?,
            None => Counters::default(),
        };
        extra(rest.get(2..).unwrap_or_default())?;
        match t.find(name) {
            Some(i) if t.chains[i].hook.is_some() => {
                let c = &mut t.chains[i];
                if c.declared {
                    return Err(Perr::at(tok, format!("chain {name} declared twice")));
                }
                c.policy = Some(match policy.text.as_str() {
                    "ACCEPT" | "-" => Policy::Accept,
                    "DROP" => Policy::Drop,
                    p => {
                        return Err(Perr::at(
                            policy,
                            format!("bad policy {p:?}: ACCEPT or DROP"),
                        ))
                    }
                });
                c.counters = counters;
                c.declared = true;
            }
            Some(_) => return Err(Perr::at(tok, format!("chain {name} declared twice"))),
            None => {
                check_chain_name(&name_tok)?;
                if policy.text != "-" {
                    return Err(Perr::at(
                        policy,
                        format!("user chain {name} has no policy: write :{name} - [0:0]"),
                    ));
                }
                let mut c = Chain::user(name);
                c.counters = counters;
                t.add_user(c);
            }
        }
        Ok(())
    }

    fn command(&mut self, n: usize, toks: &[Tok], counters: Option<Counters>) -> PResult<()> {
        let Some(cmd_tok) = toks.first() else {
            return Err(Perr {
                col: 1,
                message: "expected a command after the counters".into(),
            });
        };
        let cmd = match cmd_tok.text.as_str() {
            "-A" | "--append" => Cmd::Append,
            "-I" | "--insert" => Cmd::Insert,
            "-D" | "--delete" => Cmd::Delete,
            "-R" | "--replace" => Cmd::Replace,
            "-N" | "--new-chain" | "--new" => Cmd::New,
            "-X" | "--delete-chain" => Cmd::DeleteChain,
            "-F" | "--flush" => Cmd::Flush,
            "-Z" | "--zero" => Cmd::Zero,
            "-P" | "--policy" => Cmd::Policy,
            "-t" | "--table" => {
                return Err(Perr::at(
                    cmd_tok,
                    "-t is not used in restore text: start a section with *table",
                ))
            }
            other => {
                let cmds = [
                    "-A", "-I", "-D", "-R", "-N", "-X", "-F", "-Z", "-P", "--append", "--insert",
                    "--delete",
                ];
                return Err(Perr::at(
                    cmd_tok,
                    format!("unknown command {other:?}: expected -A, -I, -D, -R, -N, -X, -F, -Z or -P{}", did_you_mean(other, cmds.into_iter())),
                ));
            }
        };
        let table = self.open_table(cmd_tok)?;
        if counters.is_some() && !matches!(cmd, Cmd::Append | Cmd::Insert | Cmd::Replace) {
            return Err(Perr::at(
                cmd_tok,
                "[packets:bytes] only goes before -A, -I or -R",
            ));
        }
        let chain_tok = toks.get(1);
        let rest = toks.get(2..).unwrap_or_default();
        let need_chain = || {
            chain_tok
                .ok_or_else(|| Perr::at(cmd_tok, format!("{} needs a chain name", cmd_tok.text)))
        };
        match cmd {
            Cmd::New => {
                let c = need_chain()?;
                check_chain_name(c)?;
                extra(rest)?;
                let t = &mut self.tables[table as usize];
                if t.find(&c.text).is_some() {
                    return Err(Perr::at(c, format!("chain {} already exists", c.text)));
                }
                t.add_user(Chain::user(&c.text));
                Ok(())
            }
            Cmd::Policy => {
                let c = need_chain()?;
                let p = rest
                    .first()
                    .ok_or_else(|| Perr::at(c, "-P needs a policy: ACCEPT or DROP"))?;
                extra(&rest[1..])?;
                let i = self.chain_index(table, c)?;
                let chain = &mut self.tables[table as usize].chains[i];
                if chain.hook.is_none() {
                    return Err(Perr::at(
                        c,
                        format!(
                            "{} is a user chain: only built-in chains have a policy",
                            c.text
                        ),
                    ));
                }
                chain.policy = Some(match p.text.as_str() {
                    "ACCEPT" => Policy::Accept,
                    "DROP" => Policy::Drop,
                    other => {
                        return Err(Perr::at(p, format!("bad policy {other:?}: ACCEPT or DROP")))
                    }
                });
                Ok(())
            }
            Cmd::Flush | Cmd::Zero => {
                extra(rest)?;
                let targets: Vec<usize> = match chain_tok {
                    Some(c) => vec![self.chain_index(table, c)?],
                    None => (0..self.tables[table as usize].chains.len()).collect(),
                };
                let t = &mut self.tables[table as usize];
                for i in targets {
                    let c = &mut t.chains[i];
                    if matches!(cmd, Cmd::Flush) {
                        c.rules.clear();
                    } else {
                        c.counters = Counters::default();
                        c.rules
                            .iter_mut()
                            .for_each(|r| r.counters = Counters::default());
                    }
                }
                Ok(())
            }
            Cmd::DeleteChain => {
                extra(rest)?;
                self.delete_chain(table, cmd_tok, chain_tok)
            }
            Cmd::Append | Cmd::Insert | Cmd::Delete | Cmd::Replace => {
                let c = need_chain()?;
                let ci = self.chain_index(table, c)?;
                let len = self.tables[table as usize].chains[ci].rules.len();
                // -I and -R take a 1-based index; -D takes one or a rule.
                let (index, spec) = match (rest.first(), &cmd) {
                    (Some(t), Cmd::Insert | Cmd::Replace | Cmd::Delete)
                        if !t.is_option() && !t.is_bang() =>
                    {
                        let n = t.text.parse::<usize>().map_err(|_| {
                            Perr::at(
                                t,
                                format!("expected a rule number or an option, not {:?}", t.text),
                            )
                        })?;
                        let max = if matches!(cmd, Cmd::Insert) {
                            len + 1
                        } else {
                            len
                        };
                        if n == 0 || n > max {
                            return Err(Perr::at(
                                t,
                                format!(
                                    "rule number {n} out of range: chain {} has {len} rules",
                                    c.text
                                ),
                            ));
                        }
                        (Some(n - 1), &rest[1..])
                    }
                    (_, Cmd::Replace) => return Err(Perr::at(cmd_tok, "-R needs a rule number")),
                    _ => (None, rest),
                };
                if let (Cmd::Delete, Some(i)) = (&cmd, index) {
                    extra(spec)?;
                    self.tables[table as usize].chains[ci].rules.remove(i);
                    return Ok(());
                }
                let hook = self.tables[table as usize].chains[ci].hook;
                let mut rule = self.rule(n, table, hook, cmd_tok, spec)?;
                if let Some(c) = counters {
                    rule.counters = c;
                }
                let rules = &mut self.tables[table as usize].chains[ci].rules;
                match cmd {
                    Cmd::Append => rules.push(rule),
                    Cmd::Insert => rules.insert(index.unwrap_or(0), rule),
                    Cmd::Replace => {
                        if let Some(slot) = index.and_then(|i| rules.get_mut(i)) {
                            *slot = rule;
                        }
                    }
                    _ => {
                        let found = rules
                            .iter()
                            .position(|r| r.matches == rule.matches && r.target == rule.target);
                        match found {
                            Some(i) => {
                                rules.remove(i);
                            }
                            None => {
                                return Err(Perr::at(
                                    cmd_tok,
                                    format!("-D: no such rule in chain {}", c.text),
                                ))
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn chain_index(&self, table: Table, c: &Tok) -> PResult<usize> {
        let t = &self.tables[table as usize];
        t.find(&c.text).ok_or_else(|| {
            let names = t.chains.iter().map(|c| c.name.as_str());
            Perr::at(
                c,
                format!(
                    "no chain {:?} in table {} (declare it with :{} - [0:0]){}",
                    c.text,
                    table.name(),
                    c.text,
                    did_you_mean(&c.text, names)
                ),
            )
        })
    }

    fn delete_chain(&mut self, table: Table, cmd: &Tok, chain: Option<&Tok>) -> PResult<()> {
        let t = &self.tables[table as usize];
        let doomed: Vec<String> = match chain {
            Some(c) => {
                let i = self.chain_index(table, c)?;
                let ch = &t.chains[i];
                if ch.hook.is_some() {
                    return Err(Perr::at(
                        c,
                        format!("{} is built in and cannot be deleted", c.text),
                    ));
                }
                if !ch.rules.is_empty() {
                    return Err(Perr::at(
                        c,
                        format!("chain {} is not empty: flush it first", c.text),
                    ));
                }
                vec![ch.name.clone()]
            }
            None => t
                .chains
                .iter()
                .filter(|c| c.hook.is_none())
                .map(|c| c.name.clone())
                .collect(),
        };
        let referenced = t
            .chains
            .iter()
            .filter(|c| !doomed.contains(&c.name))
            .find_map(|c| {
                c.rules.iter().find_map(|r| match &r.target {
                    Target::Jump(j) | Target::Goto(j) if doomed.contains(&j.name) => {
                        Some((c.name.clone(), j.name.clone()))
                    }
                    _ => None,
                })
            });
        if let Some((from, to)) = referenced {
            return Err(Perr::at(
                chain.unwrap_or(cmd),
                format!("chain {to} is still used by a rule in {from}"),
            ));
        }
        self.tables[table as usize]
            .chains
            .retain(|c| !doomed.contains(&c.name));
        Ok(())
    }

    /// One rule's options, in any order iptables accepts, stored in the
    /// order iptables-save prints them.
    fn rule(
        &self,
        line: usize,
        table: Table,
        hook: Option<Hook>,
        cmd: &Tok,
        toks: &[Tok],
    ) -> PResult<Rule> {
        let mut cur = Cursor::new(toks);
        // -s -d -i -o -p -f, in iptables-save's order.
        let mut general: [Option<Match>; 6] = Default::default();
        let mut general_given = [false; 6];
        let mut proto: Option<Neg<u8>> = None;
        let mut modules: Vec<(Match, &Tok)> = Vec::new();
        let mut target: Option<(Target, &Tok)> = None;
        let mut target_seen: Vec<&str> = Vec::new();
        let mut counters = None;
        let mut bang: Option<&Tok> = None;
        while let Some(t) = cur.next() {
            if t.is_bang() {
                if bang.is_some() {
                    return Err(Perr::at(t, "two '!' in a row"));
                }
                bang = Some(t);
                continue;
            }
            if !t.is_option() {
                return Err(Perr::at(
                    t,
                    format!("unexpected {:?}: expected an option", t.text),
                ));
            }
            let neg = bang.take().is_some();
            let o = t.text.as_str();
            let slot = match o {
                "-s" | "--source" | "--src" => Some(0),
                "-d" | "--destination" | "--dst" => Some(1),
                "-i" | "--in-interface" => Some(2),
                "-o" | "--out-interface" => Some(3),
                "-p" | "--protocol" => Some(4),
                "-f" | "--fragment" => Some(5),
                _ => None,
            };
            if let Some(i) = slot {
                if std::mem::replace(&mut general_given[i], true) {
                    return Err(Perr::at(t, format!("{o} given twice")));
                }
                general[i] = match i {
                    0 | 1 => {
                        let c = Cidr::parse(cur.value(t)?)?;
                        // 0.0.0.0/0 tests nothing; iptables stores and prints it as absent.
                        (neg || !c.is_any()).then(|| {
                            if i == 0 {
                                Match::Src(Neg::new(neg, c))
                            } else {
                                Match::Dst(Neg::new(neg, c))
                            }
                        })
                    }
                    2 | 3 => {
                        let s = Neg::new(neg, IfSet::parse(cur.value(t)?, self.ifaces, false)?);
                        Some(if i == 2 { Match::In(s) } else { Match::Out(s) })
                    }
                    4 => {
                        let v = cur.value(t)?;
                        let p = parse_proto(v)?;
                        if p == 0 {
                            if neg {
                                return Err(Perr::at(v, "! -p all would never match"));
                            }
                            None
                        } else {
                            proto = Some(Neg::new(neg, p));
                            Some(Match::Proto(Neg::new(neg, p)))
                        }
                    }
                    _ => Some(Match::Frag(Neg::new(neg, ()))),
                };
                continue;
            }
            match o {
                "-m" | "--match" => {
                    no_bang(neg, t)?;
                    let v = cur.value(t)?;
                    let m = Match::load(&v.text).ok_or_else(|| {
                        Perr::at(
                            v,
                            format!(
                                "unknown match {:?}{}",
                                v.text,
                                did_you_mean(&v.text, MODULES.iter().copied())
                            ),
                        )
                    })?;
                    modules.push((m, v));
                }
                "-j" | "--jump" | "-g" | "--goto" => {
                    no_bang(neg, t)?;
                    if target.is_some() {
                        return Err(Perr::at(t, "a rule has one target"));
                    }
                    let v = cur.value(t)?;
                    let goto = matches!(o, "-g" | "--goto");
                    let chain = || ChainRef {
                        name: v.text.clone(),
                        idx: 0,
                    };
                    let tg = match Target::load(&v.text) {
                        Some(_) if goto => {
                            return Err(Perr::at(
                                v,
                                format!("-g needs a user chain, not {}", v.text),
                            ))
                        }
                        Some(tg) => tg,
                        None if goto => Target::Goto(chain()),
                        None => Target::Jump(chain()),
                    };
                    if let Some(tbl) = tg.table() {
                        if tbl != table {
                            return Err(Perr::at(
                                v,
                                format!("{} is only valid in the {} table", v.text, tbl.name()),
                            ));
                        }
                    }
                    target = Some((tg, v));
                }
                "-t" | "--table" => {
                    return Err(Perr::at(
                        t,
                        "-t is not used in restore text: start a section with *table",
                    ))
                }
                "-c" | "--set-counters" => {
                    no_bang(neg, t)?;
                    let p = cur.value(t)?;
                    let b = cur.value(t)?;
                    let num = |x: &Tok| {
                        x.text
                            .parse::<u64>()
                            .map_err(|_| Perr::at(x, format!("bad counter {:?}", x.text)))
                    };
                    counters = Some(Counters {
                        packets: num(p)?,
                        bytes: num(b)?,
                    });
                }
                _ => {
                    if let Some((tg, _)) = &mut target {
                        if tg.option(t, &mut cur, &target_seen)? {
                            no_bang(neg, t)?;
                            target_seen.push(o);
                            continue;
                        }
                    }
                    let mut taken = false;
                    for (m, _) in modules.iter_mut().rev() {
                        if m.option(t, neg, &mut cur, self.ifaces)? {
                            taken = true;
                            break;
                        }
                    }
                    if taken {
                        continue;
                    }
                    // `-p tcp --dport 80`: iptables loads the protocol's match itself.
                    let implicit = proto.filter(|p| !p.neg).and_then(|p| match p.v {
                        6 => Match::load("tcp"),
                        17 => Match::load("udp"),
                        1 => Match::load("icmp"),
                        _ => None,
                    });
                    if let Some(mut m) = implicit {
                        if m.option(t, neg, &mut cur, self.ifaces)? {
                            modules.push((m, t));
                            continue;
                        }
                    }
                    return Err(self.unknown_option(
                        t,
                        &modules,
                        target.as_ref().map(|(tg, _)| tg),
                        proto,
                    ));
                }
            }
        }
        if let Some(b) = bang {
            return Err(Perr::at(b, "'!' at the end of the rule negates nothing"));
        }
        let proto_is = |allowed: &[u8]| proto.is_some_and(|p| !p.neg && allowed.contains(&p.v));
        for (m, at) in &modules {
            let name = m.module().unwrap_or_default();
            if let Some(what) = m.missing() {
                return Err(Perr::at(at, format!("-m {name} {what}")));
            }
            if let Some(protos) = m.needs_proto() {
                if !proto_is(protos) {
                    let need = if protos.len() == 1 {
                        format!("-p {name}")
                    } else {
                        "-p tcp, udp, sctp or udplite".into()
                    };
                    return Err(Perr::at(at, format!("-m {name} needs {need}")));
                }
            }
        }
        let (target, target_tok) = match target {
            Some((t, tok)) => (t, tok),
            None => (Target::None, cmd),
        };
        if let Some(what) = target.missing(&target_seen) {
            return Err(Perr::at(target_tok, what));
        }
        if target.has_ports() && !proto_is(&[6, 17, 132, 33]) {
            return Err(Perr::at(
                target_tok,
                "ports in a NAT target need -p tcp, udp, sctp or dccp",
            ));
        }
        if target == Target::Reject(super::RejectWith::TcpReset) && !proto_is(&[6]) {
            return Err(Perr::at(target_tok, "--reject-with tcp-reset needs -p tcp"));
        }
        // As iptables checks by chain name: no in-interface on the way out
        // and no out-interface on the way in.
        match hook {
            Some(h @ (Hook::Output | Hook::Postrouting)) if general_given[2] => {
                return Err(Perr::at(
                    cmd,
                    format!("-i cannot be used in {}", h.chain_name()),
                ))
            }
            Some(h @ (Hook::Prerouting | Hook::Input)) if general_given[3] => {
                return Err(Perr::at(
                    cmd,
                    format!("-o cannot be used in {}", h.chain_name()),
                ))
            }
            _ => {}
        }
        let matches = general
            .into_iter()
            .flatten()
            .chain(modules.into_iter().map(|(m, _)| m))
            .collect();
        Ok(Rule {
            matches,
            target,
            counters: counters.unwrap_or_default(),
            pos: Pos {
                origin: self.origin.clone(),
                line,
                col: target_tok.col,
            },
        })
    }

    fn unknown_option(
        &self,
        t: &Tok,
        modules: &[(Match, &Tok)],
        target: Option<&Target>,
        proto: Option<Neg<u8>>,
    ) -> Perr {
        let implicit = proto.and_then(|p| match p.v {
            6 => Match::load("tcp"),
            17 => Match::load("udp"),
            1 => Match::load("icmp"),
            _ => None,
        });
        let mut known: Vec<&str> = GENERAL.to_vec();
        for m in modules.iter().map(|(m, _)| m).chain(implicit.as_ref()) {
            known.extend_from_slice(m.option_names());
        }
        if let Some(tg) = target {
            known.extend_from_slice(tg.option_names());
        }
        let mut msg = format!(
            "unknown option {:?}{}",
            t.text,
            did_you_mean(&t.text, known.into_iter())
        );
        if !msg.contains("did you mean")
            && matches!(
                t.text.as_str(),
                "--dport" | "--sport" | "--destination-port" | "--source-port"
            )
        {
            msg.push_str(" (ports need -p tcp or -p udp first)");
        }
        Perr::at(t, msg)
    }
}

fn no_bang(neg: bool, t: &Tok) -> PResult<()> {
    if neg {
        return Err(Perr::at(
            t,
            format!("{} cannot be negated with '!'", t.text),
        ));
    }
    Ok(())
}

fn extra(rest: &[Tok]) -> PResult<()> {
    match rest.first() {
        Some(t) => Err(Perr::at(t, format!("unexpected {:?}", t.text))),
        None => Ok(()),
    }
}

/// `[packets:bytes]`
fn parse_counters(tok: &Tok) -> PResult<Counters> {
    let bad = || {
        Perr::at(
            tok,
            format!("bad counters {:?}: expected [packets:bytes]", tok.text),
        )
    };
    let inner = tok
        .text
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(bad)?;
    let (p, b) = inner.split_once(':').ok_or_else(bad)?;
    Ok(Counters {
        packets: p.parse().map_err(|_| bad())?,
        bytes: b.parse().map_err(|_| bad())?,
    })
}

fn check_chain_name(tok: &Tok) -> PResult<()> {
    let s = tok.text.as_str();
    if s.is_empty() || s.len() > CHAIN_NAME_MAX {
        return Err(Perr::at(
            tok,
            format!("bad chain name {s:?}: 1 to {CHAIN_NAME_MAX} characters"),
        ));
    }
    if s.starts_with(['-', '!']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Perr::at(tok, format!("bad chain name {s:?}")));
    }
    if Target::load(s).is_some() || TARGETS.contains(&s) {
        return Err(Perr::at(
            tok,
            format!("chain name {s:?} clashes with a target"),
        ));
    }
    Ok(())
}
