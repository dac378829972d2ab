//! Counterexamples in Stateright Explorer: the path encoding, the link and command `aver check`
//! prints for each violation, and the server `aver explore` starts for every model.
//!
//! Stateright 0.31's Explorer names a state by the path that reaches it: the initial state's
//! index in `Model::init_states`, then, for each step, the index of the action taken in
//! `Model::actions` of the state it is taken from. The web page opens `#/steps/0/3/1` and asks
//! the server for `/.states/0/3` (the successors of the state that path reaches, each with its
//! `actionIndex`). So a counterexample opens in Explorer exactly when the server runs the same
//! model (same configuration, bounds and seeded bugs) — which is what the printed command does.

use super::args::ExploreArgs;
use anyhow::Context as _;
use stateright::{Expectation, Model};
use std::fmt::Debug;
use std::hash::Hash;
use std::io::Write as _;

/// The port the printed commands and links use (`aver explore`'s default).
pub const PORT: u16 = 3000;

/// Where a counterexample opens in Stateright Explorer.
#[derive(Clone, Debug)]
pub struct ExploreLink {
    /// The one command that serves the model the counterexample belongs to.
    pub command: String,
    /// The page that opens on the counterexample's last state once the command runs.
    pub link: String,
    /// The Explorer path, `0/3/1/...`.
    pub path: String,
}

/// A path's Explorer encoding (see the module docs); `None` if the path is not one of
/// `model`'s (an initial state or action it does not have).
pub fn encode<M: Model>(model: &M, path: &[(M::State, Option<M::Action>)]) -> Option<Vec<usize>>
where
    M::State: PartialEq,
    M::Action: PartialEq,
{
    let first = &path.first()?.0;
    let mut out = vec![model.init_states().iter().position(|s| s == first)?];
    let mut actions = Vec::new();
    for (state, action) in path {
        let Some(action) = action else { break };
        actions.clear();
        model.actions(state, &mut actions);
        out.push(actions.iter().position(|a| a == action)?);
    }
    Some(out)
}

/// The command and link for `indices` in `aver explore PROTOCOL FLAGS` (flags with leading
/// spaces, e.g. ` --config deep --bug figure8-commit`).
pub fn link(protocol: &str, flags: &str, indices: &[usize]) -> ExploreLink {
    let path: Vec<String> = indices.iter().map(|i| i.to_string()).collect();
    let path = path.join("/");
    ExploreLink {
        command: format!("cargo run --release -- explore {protocol}{flags} --path {path}"),
        link: format!("http://127.0.0.1:{PORT}/#/steps/{path}"),
        path,
    }
}

/// [`encode`] then [`link`]: where `path` of `model` opens in `aver explore PROTOCOL FLAGS`.
pub fn locate<M: Model>(
    model: &M,
    path: &[(M::State, Option<M::Action>)],
    protocol: &str,
    flags: &str,
) -> Option<ExploreLink>
where
    M::State: PartialEq,
    M::Action: PartialEq,
{
    Some(link(protocol, flags, &encode(model, path)?))
}

/// Prints the command and link under a counterexample.
pub fn print(l: &ExploreLink) {
    println!("  explore: {}", l.command);
    println!("           then open {}", l.link);
}

/// Parses an Explorer path (`0/3/1`, a leading `/` or `#/steps/` allowed).
fn parse_path(path: &str) -> anyhow::Result<Vec<usize>> {
    let trimmed = path.trim_start_matches("#/steps").trim_matches('/');
    trimmed
        .split('/')
        .enumerate()
        .map(|(k, s)| {
            s.parse::<usize>().with_context(|| {
                format!("--path {path}: component {} (`{s}`) is not an index", k + 1)
            })
        })
        .collect()
}

/// Serves Stateright Explorer for `model` on 127.0.0.1 (blocks until interrupted). With
/// `--path`, first checks the path replays in `model`, says which `always` properties its
/// last state violates, and prints the link that opens it.
pub fn serve<M>(name: &str, description: &str, model: M, args: &ExploreArgs) -> anyhow::Result<u8>
where
    M: Model + Send + Sync + 'static,
    M::State: Debug + Hash + Send + Sync + Clone + PartialEq,
    M::Action: Debug + Send + Sync + Clone + PartialEq,
{
    let addr = format!("127.0.0.1:{}", args.port);
    println!("explore {name}: {description}");
    let mut url = format!("http://{addr}/");
    if let Some(p) = &args.path {
        let indices = parse_path(p)?;
        let states = aver_models::search::replay_indices(&model, &indices).with_context(|| {
            format!(
                "--path {p} is not a path of {name} with these bounds (use the configuration \
                 and flags `aver check` printed with it)"
            )
        })?;
        let last = &states.last().expect("a replayed path has a state").0;
        let violated: Vec<&str> = model
            .properties()
            .iter()
            .filter(|q| matches!(q.expectation, Expectation::Always))
            .filter(|q| !(q.condition)(&model, last))
            .map(|q| q.name)
            .collect();
        println!(
            "path of {} steps; its last state violates: {}",
            indices.len() - 1,
            if violated.is_empty() {
                "no `always` property".to_string()
            } else {
                violated.join(", ")
            }
        );
        let joined: Vec<String> = indices.iter().map(|i| i.to_string()).collect();
        url = format!("http://{addr}/#/steps/{}", joined.join("/"));
    }
    // Stateright's server panics if it cannot listen: say so clearly first.
    drop(std::net::TcpListener::bind(&addr).with_context(|| format!("cannot listen on {addr}"))?);
    println!("Stateright Explorer on {url} (Ctrl-C to stop)");
    let _ = std::io::stdout().flush();
    model.checker().serve(addr);
    Ok(0)
}
