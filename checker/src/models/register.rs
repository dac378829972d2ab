//! Registers holding an `i64`, initially absent (`nil`): Jepsen's etcd histories read `nil`
//! before the first write, so absence is a value of its own.

use super::show;
use crate::{Model, Operation};

/// A register operation's input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Overwrite the value.
    Write(i64),
    /// Set to `new` if the value is `expected` (only [`CasRegister`] has it).
    Cas {
        /// The value the register must hold for the swap to happen.
        expected: i64,
        /// The value written when it does.
        new: i64,
    },
}

/// A register operation's output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// The value read (`None`: never written).
    Read(Option<i64>),
    /// The write completed.
    Write,
    /// Whether the compare-and-set swapped.
    Cas(bool),
}

/// A read/write register. A `Cas` input is not part of its vocabulary and is never legal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Register;

/// A read/write/compare-and-set register, as in Jepsen's etcd tests.
///
/// A cas with an unknown outcome that is linearized takes effect when `expected` matches
/// (Porcupine's etcd model); one that never returned may also never take effect.
#[derive(Clone, Copy, Debug, Default)]
pub struct CasRegister;

fn step_register(
    state: &Option<i64>,
    input: &RegisterInput,
    output: Option<&RegisterOutput>,
    with_cas: bool,
) -> Option<Option<i64>> {
    use RegisterInput as In;
    use RegisterOutput as Out;
    match (input, output) {
        (In::Read, None) => Some(*state),
        (In::Read, Some(Out::Read(v))) => (v == state).then_some(*state),
        (In::Write(v), None | Some(Out::Write)) => Some(Some(*v)),
        (In::Cas { expected, new }, out) if with_cas => {
            let swaps = *state == Some(*expected);
            match out {
                None => Some(if swaps { Some(*new) } else { *state }),
                Some(Out::Cas(ok)) if *ok == swaps => Some(if swaps { Some(*new) } else { *state }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether `op` is a write that never returned (outcome unknown).
fn pending_write(op: &Operation<RegisterInput, RegisterOutput>) -> Option<i64> {
    match (&op.input, op.ret, &op.output) {
        (RegisterInput::Write(v), None, None) => Some(*v),
        _ => None,
    }
}

/// Never-returned writes of a value that no read returned and no cas expects.
///
/// Sound when every cas of the partition returned `true` (a plain register has none): in a
/// linearization containing such a write w(v), every operation between w and the next
/// write sees v, so none is a read with a known output (none returned v) and none is a cas
/// (a cas that returned true would need v, which no cas expects); dropping w changes only
/// the state in that span, which then nobody observes.
fn unneeded_writes(ops: &[&Operation<RegisterInput, RegisterOutput>]) -> Vec<bool> {
    let observed: std::collections::BTreeSet<i64> = ops
        .iter()
        .filter_map(|o| match (&o.input, &o.output) {
            (RegisterInput::Read, Some(RegisterOutput::Read(Some(v)))) => Some(*v),
            (RegisterInput::Cas { expected, .. }, _) => Some(*expected),
            _ => None,
        })
        .collect();
    let cas_all_true = ops.iter().all(|o| {
        !matches!(o.input, RegisterInput::Cas { .. }) || o.output == Some(RegisterOutput::Cas(true))
    });
    ops.iter()
        .map(|o| cas_all_true && pending_write(o).is_some_and(|v| !observed.contains(&v)))
        .collect()
}

fn describe(input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
    let call = match input {
        RegisterInput::Read => "read()".to_string(),
        RegisterInput::Write(v) => format!("write({v})"),
        RegisterInput::Cas { expected, new } => format!("cas({expected}, {new})"),
    };
    let ret = match output {
        None => "?".to_string(),
        Some(RegisterOutput::Read(v)) => show(*v),
        Some(RegisterOutput::Write) => "ok".to_string(),
        Some(RegisterOutput::Cas(ok)) => if *ok { "ok" } else { "fail" }.to_string(),
    };
    format!("{call} -> {ret}")
}

impl Model for Register {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        s: &Option<i64>,
        i: &RegisterInput,
        o: Option<&RegisterOutput>,
    ) -> Option<Option<i64>> {
        step_register(s, i, o, false)
    }

    fn is_read_only(&self, input: &RegisterInput, _output: Option<&RegisterOutput>) -> bool {
        *input == RegisterInput::Read
    }

    fn unneeded(&self, ops: &[&Operation<RegisterInput, RegisterOutput>]) -> Vec<bool> {
        unneeded_writes(ops)
    }

    fn describe_operation(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        describe(input, output)
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        show(*state)
    }
}

impl Model for CasRegister {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        s: &Option<i64>,
        i: &RegisterInput,
        o: Option<&RegisterOutput>,
    ) -> Option<Option<i64>> {
        step_register(s, i, o, true)
    }

    /// Reads, and compare-and-sets that failed (they only observe the value).
    fn is_read_only(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> bool {
        match input {
            RegisterInput::Read => true,
            RegisterInput::Cas { .. } => output == Some(&RegisterOutput::Cas(false)),
            RegisterInput::Write(_) => false,
        }
    }

    fn unneeded(&self, ops: &[&Operation<RegisterInput, RegisterOutput>]) -> Vec<bool> {
        unneeded_writes(ops)
    }

    fn describe_operation(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        describe(input, output)
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        show(*state)
    }
}

/// A register model started from `value` instead of nil, as Knossos's `(register 0)` and
/// `(cas-register 0)` are (`aver lin --init 0`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Initial<M> {
    /// The register model: [`Register`] or [`CasRegister`].
    pub model: M,
    /// The value before any write.
    pub value: Option<i64>,
}

impl<M: Model<State = Option<i64>>> Model for Initial<M> {
    type State = Option<i64>;
    type Input = M::Input;
    type Output = M::Output;

    fn init(&self) -> Option<i64> {
        self.value
    }

    fn step(&self, s: &Option<i64>, i: &M::Input, o: Option<&M::Output>) -> Option<Option<i64>> {
        self.model.step(s, i, o)
    }

    fn is_read_only(&self, input: &M::Input, output: Option<&M::Output>) -> bool {
        self.model.is_read_only(input, output)
    }

    /// As the model's: the argument does not depend on the initial value.
    fn unneeded(&self, ops: &[&Operation<M::Input, M::Output>]) -> Vec<bool> {
        self.model.unneeded(ops)
    }

    fn describe_operation(&self, input: &M::Input, output: Option<&M::Output>) -> String {
        self.model.describe_operation(input, output)
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        self.model.describe_state(state)
    }
}
