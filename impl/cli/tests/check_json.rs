//! `aver check --json` as a CI system reads it, and a counterexample opened in Stateright
//! Explorer as a person would: the printed `aver explore` command serves the model, and the
//! printed link's `/.states/...` endpoint returns the violating state (RAFT-1 Election Safety:
//! two leaders in one term, under the seeded `vote-twice` bug with the servers' own step
//! checks off, so only what a user loses can fail).

use aver_models::raft::{PROPERTIES, RaftModelCfg};
use aver_models::search::replay_indices;
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `aver check ARGS --json`; returns the exit code and the parsed stdout.
fn check_json(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_aver"))
        .arg("check")
        .args(args)
        .args(["--json", "--threads", "1"])
        .output()
        .expect("aver runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON summary ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exited"), summary)
}

/// A passing run (the Raft model's `ci` configuration): exit 0, `ok`, every property with its
/// kind and a passing verdict, the counts, no failures.
#[test]
fn passing_check_json_summary() {
    let (code, s) = check_json(&[
        "raft",
        "--out",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/aver-check-json-pass"),
    ]);
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["ok"], true);
    assert_eq!(s["exit_code"], 0);
    let c = &s["configurations"][0];
    assert_eq!(c["model"], "raft");
    assert_eq!(c["configuration"], "ci");
    assert!(c["bounds"].as_str().unwrap().contains("servers=3"), "{c}");
    assert!(c["unique_states"].as_u64().unwrap() > 100, "{c}");
    assert!(c["states"].as_u64() >= c["unique_states"].as_u64(), "{c}");
    assert!(c["max_depth"].as_u64().unwrap() > 5, "{c}");
    assert!(c["time_s"].as_f64().is_some(), "{c}");
    let props = c["properties"].as_array().unwrap();
    let always = props.iter().filter(|p| p["kind"] == "always").count();
    let sometimes = props.iter().filter(|p| p["kind"] == "sometimes").count();
    assert!(always >= 5 && sometimes >= 3, "{c}");
    assert!(props.iter().all(|p| p["ok"] == true), "{c}");
    assert!(props.iter().any(|p| p["verdict"] == "holds"), "{c}");
    assert_eq!(c["failures"].as_array().unwrap().len(), 0);
}

/// The failing run of the module docs: exit 1; RAFT-1 violated, with the shortest trace
/// (breadth-first after the depth-first search found one), the counterexample file, and the
/// Explorer command and link.
fn failing_run() -> (Value, Value) {
    let args = [
        "raft",
        "--bug",
        "vote-twice",
        "--no-step-checks",
        "--dfs",
        "--out",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/aver-check-json-fail"),
    ];
    let (code, s) = check_json(&args);
    assert_eq!(code, 1, "{s}");
    assert_eq!(s["ok"], false);
    let c = s["configurations"][0].clone();
    let raft1 = c["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "RAFT-1 Election Safety")
        .cloned()
        .expect("RAFT-1 has a row");
    assert_eq!(raft1["verdict"], "VIOLATED", "{c}");
    let f = c["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["property"] == "RAFT-1 Election Safety")
        .cloned()
        .expect("RAFT-1's counterexample is listed");
    (c, f)
}

#[test]
fn failing_check_json_lists_the_counterexample_and_how_to_explore_it() {
    let (_, f) = failing_run();
    let len = f["trace_length"].as_u64().unwrap();
    let dfs = f["first_found_length"].as_u64().unwrap();
    assert!(len >= 1 && len <= dfs, "BFS is never longer than DFS: {f}");
    let file = f["counterexample_file"].as_str().unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(file).expect("the file exists"))
        .expect("the counterexample file is JSON");
    assert_eq!(written["steps"].as_array().unwrap().len() as u64, len);
    let cmd = f["explore_command"].as_str().unwrap();
    assert!(
        cmd.contains("explore raft --config ci --bug vote-twice --no-step-checks --path "),
        "{cmd}"
    );
    let path = f["explorer_path"].as_str().unwrap();
    assert_eq!(path.split('/').count() as u64, len + 1, "{f}");
    assert!(
        f["explore_link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("#/steps/{path}"))
    );
}

/// Kills the Explorer server when the test ends, passing or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET `path` from 127.0.0.1:`port`: the status line and the body.
fn get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    // HTTP/1.0: the body comes whole, not chunked.
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    Ok((status, body.to_string()))
}

#[test]
fn printed_explorer_link_serves_the_violating_state() {
    let (_, f) = failing_run();
    let cmd = f["explore_command"].as_str().unwrap();
    let args: Vec<&str> = cmd
        .split_once(" -- ")
        .expect("cargo run --release -- explore ...")
        .1
        .split_whitespace()
        .collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_aver"))
        .args(&args)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("aver explore starts");
    let mut server = Server(child);
    // It says which property the path's last state violates, then that it listens.
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let mut said = String::new();
    while !said.contains("Stateright Explorer on") {
        said.push_str(&lines.next().expect("aver explore prints").unwrap());
        said.push('\n');
    }
    assert!(said.contains("violates: RAFT-1 Election Safety"), "{said}");
    let link = f["explore_link"].as_str().unwrap();
    assert!(
        said.contains(&link.replace(":3000", &format!(":{port}"))),
        "{said}"
    );
    // The page at `#/steps/P/a` asks for `/.states/P`: the successors of the state P reaches,
    // each with the index of its action.
    let path: Vec<usize> = f["explorer_path"]
        .as_str()
        .unwrap()
        .split('/')
        .map(|i| i.parse().unwrap())
        .collect();
    let (last, prefix) = path.split_last().unwrap();
    let prefix: Vec<String> = prefix.iter().map(|i| i.to_string()).collect();
    let url = format!("/.states/{}", prefix.join("/"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        match get(port, &url) {
            Ok(response) => break response,
            Err(e) => assert!(Instant::now() < deadline, "Explorer did not answer: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.contains(" 200"), "{status}: {body}");
    let states: Value = serde_json::from_str(&body).expect("/.states returns JSON");
    let step = states
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["actionIndex"].as_u64() == Some(*last as u64))
        .unwrap_or_else(|| panic!("no action {last} in {states}"));
    // The same model, replayed here: the served state is the path's last, and it has two
    // leaders in one term.
    let mut cfg = RaftModelCfg::ci();
    cfg.bugs = cfg.bugs.with("vote-twice".parse().unwrap());
    cfg.step_checks = false;
    let model = cfg.into_model();
    let replayed = replay_indices(&model, &path).expect("the path replays");
    let violating = &replayed.last().unwrap().0;
    assert_eq!(step["state"].as_str().unwrap(), format!("{violating:#?}"));
    let raft1 = PROPERTIES
        .iter()
        .find(|p| p.name == "RAFT-1 Election Safety")
        .unwrap();
    assert!(
        !(raft1.condition)(&model, violating),
        "the served state violates RAFT-1"
    );
}
