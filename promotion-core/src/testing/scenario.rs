//! Given/when/then tests of the state machine: a history of events, one command, and what
//! [`decide`] made of it — without an engine, a store or a clock.

// A test helper reports a failed expectation by panicking with a readable message.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::machine::{
    apply_mut, decide, plan, Action, Command, Event, EventBody, EventKind, GateResult, Outcome,
    Refusal, ReleaseState, Waiting,
};
use crate::pipeline::Pipeline;
use crate::principal::Principal;
use crate::release::Release;

/// The most commands [`Scenario::given_advanced`] submits before it gives up: far more than
/// any pipeline needs, so reaching it means the plan never settles.
const MAX_ADVANCE_COMMANDS: usize = 10_000;

/// A given/when/then test of [`decide`]: the events already recorded, the command submitted,
/// and the events (or the refusal) expected.
///
/// The history can be written by hand ([`given`](Self::given)) or produced by the state
/// machine itself ([`given_registered`](Self::given_registered),
/// [`given_command`](Self::given_command), [`given_advanced`](Self::given_advanced)), so a test
/// states only what matters to it. Every command is decided at the scenario's time
/// ([`at`](Self::at); 2026-11-26T09:00:00Z unless set). Expectations that do not hold panic
/// with the command, the stage statuses and the events in their one-line form.
///
/// ```
/// use promotion_core::testing::{sample_release, Scenario, ScriptedGate};
/// use promotion_core::{Command, EventKind, Pipeline, Principal, Refusal, StageName, StageSpec};
///
/// let pipeline = Pipeline::builder("shop", "1")
///     .stage(StageSpec::new("dev").entry_gate(ScriptedGate::passing("unit")))
///     .stage(StageSpec::new("prod").after("dev").manual_start())
///     .build()?;
/// let ci = Principal::new("ci", ["ci"])?;
///
/// // The engine may start `dev` on its own…
/// Scenario::new(&pipeline)
///     .given_registered(&sample_release(), &ci)
///     .when(Command::Start { stage: StageName::new("dev")?, by: None })
///     .then_kinds(&[EventKind::StageStarted]);
///
/// // …but `prod` only once `dev` is promoted, and then only when a principal starts it.
/// Scenario::new(&pipeline)
///     .given_registered(&sample_release(), &ci)
///     .given_advanced()
///     .when(Command::Start { stage: StageName::new("prod")?, by: None })
///     .then_refused(Refusal::ManualStartRequired(StageName::new("prod")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Scenario<'p> {
    pipeline: &'p Pipeline,
    now: DateTime<Utc>,
    history: Vec<Event>,
    state: ReleaseState,
}

impl<'p> Scenario<'p> {
    /// A scenario over `pipeline` with an empty history, at 2026-11-26T09:00:00Z.
    pub fn new(pipeline: &'p Pipeline) -> Self {
        Scenario {
            pipeline,
            now: super::sample_time(),
            history: Vec::new(),
            state: ReleaseState::default(),
        }
    }

    /// Decides the following commands (given ones and the one under test) at `now`.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// Adds `events` to the history as they are, without deciding anything: for histories
    /// the current pipeline would not produce (an older log, another version).
    pub fn given(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        for e in events {
            apply_mut(&mut self.state, &e);
            self.history.push(e);
        }
        self
    }

    /// Registers `release` on behalf of `initiator`: the `registered` event and the
    /// `stage_ready` of every stage without upstreams, as [`decide`] produces them.
    #[track_caller]
    pub fn given_registered(self, release: &Release, initiator: &Principal) -> Self {
        self.given_command(Command::Register {
            release: release.clone(),
            initiator: initiator.clone(),
        })
    }

    /// Decides `command` at the scenario's time and adds its events to the history; panics
    /// when it is refused, since the history it was meant to build does not exist.
    #[track_caller]
    pub fn given_command(self, command: Command) -> Self {
        match decide(self.pipeline, &self.state, &command, self.now) {
            Ok(events) => self.given(events),
            Err(refusal) => {
                let context = self.describe(&command);
                panic!("given command was refused: {refusal}\n{context}")
            }
        }
    }

    /// Decides each of `commands` in turn, as [`given_command`](Self::given_command).
    pub fn given_commands(self, commands: impl IntoIterator<Item = Command>) -> Self {
        commands.into_iter().fold(self, Self::given_command)
    }

    /// Does what the engine would do with gates that always pass and a deployer that always
    /// succeeds: follows [`plan`] until it only waits for people or everything is finished.
    /// A timed wait moves the scenario's time forward to it, as a
    /// [`ManualClock`](crate::ManualClock) in auto-advance mode would.
    #[track_caller]
    pub fn given_advanced(mut self) -> Self {
        for _ in 0..MAX_ADVANCE_COMMANDS {
            let next = plan(self.pipeline, &self.state, self.now);
            if let Some(action) = next.actions.into_iter().next() {
                for command in commands_for(action) {
                    self = self.given_command(command);
                }
                continue;
            }
            let wake = next.waiting.iter().find_map(|w| match w {
                Waiting::Until { at, .. } => Some(*at),
                _ => None,
            });
            match wake {
                Some(at) if at > self.now => self.now = at,
                _ => return self,
            }
        }
        panic!("the plan did not settle after {MAX_ADVANCE_COMMANDS} commands")
    }

    /// The time commands are decided at.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The events recorded so far.
    pub fn history(&self) -> &[Event] {
        &self.history
    }

    /// The state the history folds into.
    pub fn state(&self) -> &ReleaseState {
        &self.state
    }

    /// Decides `command` on the history, for the `then_…` expectations.
    pub fn when(self, command: Command) -> Then<'p> {
        let result = decide(self.pipeline, &self.state, &command, self.now);
        Then {
            scenario: self,
            command,
            result,
        }
    }

    fn describe(&self, command: &Command) -> String {
        let mut out = format!("command: {command:?}\nat: {}\nstages:", self.now);
        for spec in self.pipeline.stages() {
            let _ = write!(
                out,
                " {}={}",
                spec.name,
                self.state.status(spec.name.as_str())
            );
        }
        out.push_str("\nhistory:");
        out.push_str(&lines(&self.history));
        out
    }
}

/// The commands that perform `action` with passing gates and a succeeding deployer.
fn commands_for(action: Action) -> Vec<Command> {
    match action {
        Action::Start { stage } => vec![Command::Start { stage, by: None }],
        Action::Tick { stage } => vec![Command::Tick { stage }],
        Action::Evaluate {
            stage,
            phase,
            gates,
        } => vec![Command::RecordRound {
            stage,
            phase,
            results: gates.into_iter().map(pass).collect(),
        }],
        Action::Deploy { stage, step, .. } => vec![
            Command::BeginDeployment {
                stage: stage.clone(),
                step,
            },
            Command::RecordDeployment {
                stage,
                step,
                result: Ok(()),
            },
        ],
        Action::RollBack { stage } => vec![Command::RecordRollback {
            stage,
            result: Ok(()),
        }],
    }
}

fn pass(gate: crate::GateName) -> GateResult {
    GateResult {
        gate,
        outcome: Outcome::Pass,
        evidence: None,
        attempts: 1,
    }
}

fn lines(events: &[Event]) -> String {
    if events.is_empty() {
        return " (none)".to_owned();
    }
    let mut out = String::new();
    for e in events {
        let stage = e.body.stage().map_or(String::new(), |s| format!("{s}: "));
        let _ = write!(out, "\n  - {}{} — {}", stage, e.body.kind(), e.body);
    }
    out
}

/// A decided command of a [`Scenario`], waiting for its expectations.
#[derive(Debug)]
#[must_use = "a `when` without a `then_…` checks nothing"]
pub struct Then<'p> {
    scenario: Scenario<'p>,
    command: Command,
    result: Result<Vec<Event>, Refusal>,
}

impl<'p> Then<'p> {
    /// Expects the command to be accepted with events whose bodies are `expected`, in order.
    /// Returns the events.
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = EventBody>) -> Vec<Event> {
        let expected: Vec<EventBody> = expected.into_iter().collect();
        let events = self.events_or_fail();
        let actual: Vec<&EventBody> = events.iter().map(|e| &e.body).collect();
        if actual.len() != expected.len() || actual.iter().zip(&expected).any(|(a, e)| *a != e) {
            let first = actual
                .iter()
                .zip(&expected)
                .position(|(a, e)| *a != e)
                .map_or(String::new(), |i| {
                    format!(
                        "\nfirst difference, event {i}:\n  expected {:?}\n  actual   {:?}",
                        expected.get(i),
                        actual.get(i)
                    )
                });
            let want: Vec<Event> = expected
                .iter()
                .map(|b| Event {
                    at: self.scenario.now,
                    actor: crate::machine::Actor::Engine,
                    request: None,
                    body: b.clone(),
                })
                .collect();
            self.fail(&format!(
                "expected events:{}\nbut got:{}{first}",
                lines(&want),
                lines(&events)
            ));
        }
        events
    }

    /// Expects the command to be accepted with events of these kinds, in order. Returns the
    /// events.
    #[track_caller]
    pub fn then_kinds(self, expected: &[EventKind]) -> Vec<Event> {
        let events = self.events_or_fail();
        let actual: Vec<EventKind> = events.iter().map(|e| e.body.event_kind()).collect();
        if actual != expected {
            let want: Vec<&str> = expected.iter().map(|k| k.as_str()).collect();
            self.fail(&format!(
                "expected kinds [{}]\nbut got:{}",
                want.join(", "),
                lines(&events)
            ));
        }
        events
    }

    /// Expects the command to be refused with `expected`.
    #[track_caller]
    pub fn then_refused(self, expected: Refusal) {
        match &self.result {
            Err(refusal) if *refusal == expected => {}
            Err(refusal) => self.fail(&format!(
                "expected refusal: {expected}\n  ({expected:?})\nbut got: {refusal}\n  ({refusal:?})"
            )),
            Ok(events) => self.fail(&format!(
                "expected refusal: {expected}\nbut it was accepted with:{}",
                lines(events)
            )),
        }
    }

    /// Expects the command to be refused, and returns the refusal for checks of its own.
    #[track_caller]
    pub fn refusal(self) -> Refusal {
        match self.result {
            Err(refusal) => refusal,
            Ok(ref events) => self.fail(&format!(
                "expected a refusal, but it was accepted with:{}",
                lines(events)
            )),
        }
    }

    /// Expects the command to be accepted and hands its events to `check`.
    #[track_caller]
    pub fn then(self, check: impl FnOnce(&[Event])) -> Vec<Event> {
        let events = self.events_or_fail();
        check(&events);
        events
    }

    /// Expects the command to be accepted and hands `check` the state after its events.
    #[track_caller]
    pub fn then_state(self, check: impl FnOnce(&ReleaseState)) -> ReleaseState {
        let events = self.events_or_fail();
        let mut state = self.scenario.state.clone();
        for e in &events {
            apply_mut(&mut state, e);
        }
        check(&state);
        state
    }

    /// Expects the command to be accepted and continues the scenario with its events in the
    /// history, for a next `when`.
    #[track_caller]
    pub fn then_continue(self) -> Scenario<'p> {
        let events = self.events_or_fail();
        self.scenario.given(events)
    }

    #[track_caller]
    fn events_or_fail(&self) -> Vec<Event> {
        match &self.result {
            Ok(events) => events.clone(),
            Err(refusal) => self.fail(&format!("expected events, but it was refused: {refusal}")),
        }
    }

    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n{}", self.scenario.describe(&self.command))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::machine::StageStatus;
    use crate::name::StageName;
    use crate::pipeline::StageSpec;
    use crate::testing::{sample_release, ScriptedGate};

    fn pipeline() -> Pipeline {
        Pipeline::builder("shop", "1")
            .stage(
                StageSpec::new("dev")
                    .entry_gate(ScriptedGate::passing("unit"))
                    .soak(Duration::from_secs(600)),
            )
            .build()
            .unwrap()
    }

    fn ci() -> Principal {
        Principal::new("ci", ["ci"]).unwrap()
    }

    fn start_dev() -> Command {
        Command::Start {
            stage: StageName::new("dev").unwrap(),
            by: None,
        }
    }

    #[test]
    fn given_advanced_follows_the_plan_and_the_clock_to_the_end() {
        let p = pipeline();
        let s = Scenario::new(&p)
            .given_registered(&sample_release(), &ci())
            .given_advanced();
        assert_eq!(s.state().status("dev"), StageStatus::Promoted);
        assert_eq!(
            s.now(),
            crate::clock::add(super::super::sample_time(), Duration::from_secs(600))
        );
        assert_eq!(s.history().len() as u64, s.state().version);
    }

    #[test]
    fn then_continue_keeps_the_accepted_events() {
        let p = pipeline();
        let s = Scenario::new(&p)
            .given_registered(&sample_release(), &ci())
            .when(start_dev())
            .then_continue();
        assert_eq!(s.state().status("dev"), StageStatus::Checking);
        let refusal = s.when(start_dev()).refusal();
        assert!(matches!(refusal, Refusal::WrongStatus { .. }));
    }

    #[test]
    #[should_panic(expected = "expected kinds [stage_ready]\nbut got:\n  - dev: stage_started")]
    fn a_wrong_expectation_names_the_events_that_came_instead() {
        let p = pipeline();
        Scenario::new(&p)
            .given_registered(&sample_release(), &ci())
            .when(start_dev())
            .then_kinds(&[EventKind::StageReady]);
    }

    #[test]
    #[should_panic(expected = "but it was accepted with:\n  - dev: stage_started")]
    fn an_expected_refusal_that_was_accepted_says_so() {
        let p = pipeline();
        Scenario::new(&p)
            .given_registered(&sample_release(), &ci())
            .when(start_dev())
            .then_refused(Refusal::NotRegistered);
    }

    #[test]
    #[should_panic(expected = "given command was refused: the release is not registered")]
    fn a_refused_given_command_stops_the_test() {
        let p = pipeline();
        let _ = Scenario::new(&p).given_command(start_dev());
    }
}
