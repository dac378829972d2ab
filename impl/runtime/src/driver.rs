//! The per-node driver. It makes no protocol decision: it only enforces the order of duties
//! written on [`aver_core::Ready`] — persist and sync BEFORE sending, then apply, then timers.

use aver_core::contract::{Core, NodeId, TimerCmd};

/// The world as one node sees it. The simulator implements it with a virtual clock, a seeded
/// network and a disk that loses unsynced writes on a crash; the real runtime with sockets,
/// a WAL and real timers.
pub trait Environment<K: Core> {
    /// Writes storage operations (not yet durable).
    fn persist(&mut self, ops: &[K::Persist]);
    /// Makes every write so far durable. Called once per `Ready` that has writes, before any
    /// of its messages is sent. Failing to sync is fatal for a node (crash and recover from
    /// disk; never retry — the fsyncgate lesson), so this cannot return an error.
    fn sync(&mut self);
    /// Sends one message (best effort: it may be lost, delayed, duplicated, reordered). It
    /// depends on every write before it: an environment that syncs in the background holds
    /// it until they are durable.
    fn send(&mut self, to: NodeId, msg: K::Msg);
    /// Sends a message the core says does not depend on its pending writes
    /// ([`Core::must_follow_writes`] is false): it may leave before they are durable.
    fn send_independent(&mut self, to: NodeId, msg: K::Msg) {
        self.send(to, msg)
    }
    /// Hands one output to the service above the core (after the writes before it are
    /// durable).
    fn apply(&mut self, output: K::Apply);
    /// Hands one output to the service, which the core says does not depend on its pending
    /// writes ([`Core::applies_follow_writes`] is false).
    fn apply_independent(&mut self, output: K::Apply) {
        self.apply(output)
    }
    /// Starts or restarts a named timer; the environment chooses the duration.
    fn set_timer(&mut self, timer: K::Timer);
    /// Stops a named timer.
    fn cancel_timer(&mut self, timer: K::Timer);
}

/// Runs one core. Every input method drains the core's outputs and carries them out before
/// returning, so no output is ever left behind between inputs.
#[derive(Clone, Debug)]
pub struct Driver<K> {
    core: K,
    /// Number of inputs handled (for traces and statistics).
    inputs: u64,
}

impl<K: Core> Driver<K> {
    /// Wraps a freshly constructed (or restarted) core. Call [`Driver::flush`] once so the
    /// outputs of construction (initial timers, snapshot restore) are carried out.
    pub fn new(core: K) -> Self {
        Driver { core, inputs: 0 }
    }

    /// The core, read-only (for queries and checkers).
    pub fn core(&self) -> &K {
        &self.core
    }

    /// Inputs handled so far.
    pub fn inputs(&self) -> u64 {
        self.inputs
    }

    /// A message arrived.
    pub fn on_message(&mut self, env: &mut impl Environment<K>, from: NodeId, msg: K::Msg) {
        self.core.on_message(from, msg);
        self.finish_input(env);
    }

    /// A timer fired.
    pub fn on_timeout(&mut self, env: &mut impl Environment<K>, timer: K::Timer) {
        self.core.on_timeout(timer);
        self.finish_input(env);
    }

    /// Any other input (a proposal, a snapshot from the service, a client request): `f` calls
    /// the core; its result is returned after the outputs have been carried out.
    pub fn input<R>(&mut self, env: &mut impl Environment<K>, f: impl FnOnce(&mut K) -> R) -> R {
        let result = f(&mut self.core);
        self.finish_input(env);
        result
    }

    fn finish_input(&mut self, env: &mut impl Environment<K>) {
        self.inputs += 1;
        self.flush(env);
    }

    /// Drains the core's outputs and carries them out: persist, sync, send, apply, timers.
    pub fn flush(&mut self, env: &mut impl Environment<K>) {
        let ready = self.core.take_ready();
        if !ready.persist.is_empty() {
            env.persist(&ready.persist);
            env.sync();
        }
        for (to, msg) in ready.messages {
            if self.core.must_follow_writes(&msg) {
                env.send(to, msg);
            } else {
                env.send_independent(to, msg);
            }
        }
        let ordered = self.core.applies_follow_writes();
        for output in ready.apply {
            if ordered {
                env.apply(output);
            } else {
                env.apply_independent(output);
            }
        }
        for cmd in ready.timers {
            match cmd {
                TimerCmd::Set(t) => env.set_timer(t),
                TimerCmd::Cancel(t) => env.cancel_timer(t),
            }
        }
    }

    /// Takes the core out (a crash discards it; the caller keeps only what was synced).
    pub fn into_core(self) -> K {
        self.core
    }
}
