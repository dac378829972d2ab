//! One self-contained HTML file that shows a checked history.
//!
//! The page embeds the history as JSON and draws it with a short script (no network, no
//! external files): per partition, a timeline row per client, each operation a bar from
//! call to return, a dot at the instant the linearization found places it, and the
//! operations of the minimal counterexample highlighted in red. Operations the search could
//! not linearize are hatched. Times are drawn by rank (the order of events), not to scale:
//! only the order matters for linearizability, and ranks keep short operations visible.
//! Hovering an operation shows its description and the state after it.

use crate::counterexample::{Counterexample, replay};
use crate::{Analysis, CheckResult, Model, Operation, PartitionAnalysis};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Renders the page.
pub fn render<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    analysis: &Analysis,
    counterexample: Option<&Counterexample>,
) -> String {
    let highlighted: BTreeSet<usize> = counterexample
        .map(|cx| cx.minimal.iter().copied().collect())
        .unwrap_or_default();
    let mut partitions: Vec<&PartitionAnalysis> = analysis.partitions.iter().collect();
    partitions.sort_by_key(|p| p.result != CheckResult::Illegal);
    let minimal: Vec<Value> = counterexample
        .map(|cx| cx.minimal.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|&i| {
            let op = &history[i];
            let label = model.describe_operation(&op.input, op.output.as_ref());
            json!({ "client": op.client, "call": op.call, "ret": op.ret, "label": label })
        })
        .collect();
    let data = json!({
        "verdict": format!("{:?}", analysis.result),
        "operations": history.len(),
        "counterexample": counterexample.map(|cx| json!({ "partition": cx.partition, "ops": minimal })),
        "partitions": partitions
            .iter()
            .map(|p| partition_json(model, history, p, &highlighted))
            .collect::<Vec<Value>>(),
    });
    // `</` inside the JSON would end the script element early.
    let data = data.to_string().replace("</", "<\\/");
    PAGE.replace("/*DATA*/null", &data)
}

fn partition_json<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    partition: &PartitionAnalysis,
    highlighted: &BTreeSet<usize>,
) -> Value {
    let ranks = ranks(history, &partition.operations);
    let width = ranks.len() as f64 + 1.0;
    let points = points(history, &partition.linearization, &ranks);
    let states = replay(model, history, &partition.linearization);
    let position: BTreeMap<usize, usize> = partition
        .linearization
        .iter()
        .enumerate()
        .map(|(k, &i)| (i, k))
        .collect();
    let ops: Vec<Value> = partition
        .operations
        .iter()
        .map(|&i| {
            let op = &history[i];
            let lin = position.get(&i).copied();
            json!({
                "index": i,
                "client": op.client,
                "call": ranks[&(op.call, false)],
                "ret": op.ret.map(|t| ranks[&(t, true)]),
                "label": model.describe_operation(&op.input, op.output.as_ref()),
                "order": lin.map(|k| k + 1),
                "point": lin.map(|k| points[k]),
                "state": lin.and_then(|k| states.get(k)).map(|s| model.describe_state(s)),
                "illegal": highlighted.contains(&i),
            })
        })
        .collect();
    json!({
        "key": partition.key,
        "result": format!("{:?}", partition.result),
        "stopped": partition.stopped,
        "width": width,
        "linearized": partition.linearization.len(),
        "ops": ops,
    })
}

/// Rank of each distinct (time, is return) event; calls rank before returns at one time.
fn ranks<I, O>(history: &[Operation<I, O>], ops: &[usize]) -> BTreeMap<(u64, bool), f64> {
    let mut events = BTreeSet::new();
    for &i in ops {
        events.insert((history[i].call, false));
        if let Some(ret) = history[i].ret {
            events.insert((ret, true));
        }
    }
    events
        .into_iter()
        .enumerate()
        .map(|(k, e)| (e, k as f64 + 0.5))
        .collect()
}

/// An instant inside each linearized operation's interval, non-decreasing along the order.
fn points<I, O>(
    history: &[Operation<I, O>],
    order: &[usize],
    ranks: &BTreeMap<(u64, bool), f64>,
) -> Vec<f64> {
    let end = ranks.len() as f64 + 0.5;
    let mut at = 0.0f64;
    order
        .iter()
        .map(|&i| {
            let call = ranks[&(history[i].call, false)];
            let ret = history[i].ret.map_or(end, |t| ranks[&(t, true)]);
            at = (at + 0.05).max(call + 0.25).min(ret - 0.05);
            at
        })
        .collect()
}

const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>aver lin</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; }
h2 { font-size: 1.05em; margin-top: 1.6em; }
.legend span { margin-right: 1.5em; }
.row { display: flex; align-items: center; height: 26px; }
.client { width: 7em; font-size: 12px; color: #555; flex: none; }
.track { position: relative; flex: 1; height: 22px; border-bottom: 1px solid #eee; }
.op { position: absolute; top: 3px; height: 16px; background: #9ec5fe; border: 1px solid #3d7bd9;
      border-radius: 3px; box-sizing: border-box; font-size: 10px; overflow: hidden;
      white-space: nowrap; }
.op.unlinearized { background: repeating-linear-gradient(45deg, #ddd, #ddd 4px, #f4f4f4 4px, #f4f4f4 8px);
                   border-color: #888; }
.op.illegal { background: #f8a5a5; border: 2px solid #c00; }
.op.open { border-right-style: dashed; }
.point { position: absolute; top: 7px; width: 8px; height: 8px; margin-left: -4px;
         border-radius: 50%; background: #000; z-index: 2; }
.verdict-Ok { color: #176d2a; } .verdict-Illegal { color: #b00; } .verdict-Unknown { color: #a60; }
</style>
</head>
<body>
<h1 id="title">aver lin</h1>
<p class="legend"><span>bar: call to return</span><span>&#9679; linearization point</span>
<span style="color:#c00">red: minimal non-linearizable sub-history</span>
<span>hatched: not linearized</span></p>
<div id="counterexample"></div>
<div id="partitions"></div>
<script>
const data = /*DATA*/null;
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function renderPartition(p) {
  const section = el("section", "partition");
  section.dataset.key = p.key;
  const head = el("h2", "verdict-" + p.result,
    "partition " + JSON.stringify(p.key) + ": " + p.result + (p.stopped ? " (stopped early)" : "") +
    " \u2014 " + p.linearized + " of " + p.ops.length + " operations linearized");
  section.appendChild(head);
  const clients = [...new Set(p.ops.map(o => o.client))].sort((a, b) => a - b);
  for (const c of clients) {
    const row = el("div", "row");
    row.appendChild(el("div", "client", "client " + c));
    const track = el("div", "track");
    for (const o of p.ops.filter(o => o.client === c)) track.appendChild(renderOp(o, p));
    row.appendChild(track);
    section.appendChild(row);
  }
  return section;
}
function renderOp(o, p) {
  const ret = o.ret === null ? p.width : o.ret;
  const bar = el("div", "op", o.label);
  if (o.order === null) bar.classList.add("unlinearized");
  if (o.illegal) bar.classList.add("illegal");
  if (o.ret === null) bar.classList.add("open");
  bar.style.left = (100 * o.call / p.width) + "%";
  bar.style.width = (100 * (ret - o.call) / p.width) + "%";
  bar.title = o.label + (o.order !== null ? "\nlinearized #" + o.order + ", state after: " + o.state : "\nnot linearized");
  const frag = document.createDocumentFragment();
  frag.appendChild(bar);
  if (o.point !== null) {
    const dot = el("div", "point");
    dot.style.left = (100 * o.point / p.width) + "%";
    dot.title = "#" + o.order + " " + o.label;
    frag.appendChild(dot);
  }
  return frag;
}
document.getElementById("title").textContent =
  "aver lin: " + data.verdict + " (" + data.operations + " operations, " + data.partitions.length + " partitions)";
document.getElementById("title").className = "verdict-" + data.verdict;
if (data.counterexample) {
  const cx = document.getElementById("counterexample");
  cx.appendChild(el("h2", "verdict-Illegal",
    "minimal non-linearizable sub-history of partition " + JSON.stringify(data.counterexample.partition)));
  const list = el("ol");
  for (const o of data.counterexample.ops) {
    const ret = o.ret === null ? "never" : o.ret;
    list.appendChild(el("li", "cx-op", "client " + o.client + ": " + o.label + "  [call " + o.call + ", return " + ret + "]"));
  }
  cx.appendChild(list);
}
const root = document.getElementById("partitions");
for (const p of data.partitions) root.appendChild(renderPartition(p));
</script>
</body>
</html>
"##;
