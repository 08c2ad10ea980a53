//! Rebuilding a match from its log, on resume or on another instance.
//!
//! Replay does not trust the log's claims about state. Each entry that starts a call's batch
//! (a sealed move, a commitment, a deadline's reveal, a departure...) names the one command that
//! could have produced it; replay applies that command at the entry's time and requires the
//! match to produce exactly the entries that follow. The derived entries (scores, the next
//! round, the end) are therefore recomputed, not read, and the rebuilt state is the state the
//! original instance had, by construction rather than by a second implementation of the rules.

use super::Match;
use super::command::{Command, MatchError};
use super::config::{MatchConfig, SeatKind};
use super::event::{EndReason, Event, EventKind};

/// Why a log could not be replayed, and at which entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("log entry {index}: {reason}")]
pub struct ReplayError {
    /// Index into the log (not the entry's `seq`).
    pub index: usize,
    pub reason: ReplayFault,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayFault {
    #[error("the log does not start with the match's configuration")]
    MissingStart,
    #[error("the log is of a match with another configuration")]
    ConfigMismatch,
    #[error("the entry cannot start a batch: it only ever follows another entry")]
    NotACommand,
    #[error("the entry's command is refused: {0}")]
    Rejected(MatchError),
    #[error("the entry differs from what the match produces at this point")]
    Diverged,
    #[error("the log ends in the middle of a batch")]
    Truncated,
}

impl Match {
    /// Rebuilds the match that wrote `log`, which must be a whole log (server-only entries
    /// included) of a match with this `config`.
    pub fn replay(config: MatchConfig, log: &[Event]) -> Result<Match, ReplayError> {
        let fault = |index, reason| ReplayError { index, reason };
        let Some(first) = log.first() else {
            return Err(fault(0, ReplayFault::MissingStart));
        };
        match &first.kind {
            EventKind::MatchStarted { config: logged } if *logged == config => {}
            EventKind::MatchStarted { .. } => return Err(fault(0, ReplayFault::ConfigMismatch)),
            _ => return Err(fault(0, ReplayFault::MissingStart)),
        }
        let (mut rebuilt, batch) = Match::new(config, first.at_ms)
            .map_err(|error| fault(0, ReplayFault::Rejected(error)))?;
        let mut index = expect_batch(log, 0, &batch)?;
        while let Some(entry) = log.get(index) {
            let command = rebuilt
                .command_for(&entry.kind)
                .ok_or(fault(index, ReplayFault::NotACommand))?;
            let batch = rebuilt
                .apply(command, entry.at_ms)
                .map_err(|error| fault(index, ReplayFault::Rejected(error)))?;
            index = expect_batch(log, index, &batch)?;
        }
        Ok(rebuilt)
    }

    /// The command whose batch begins with an entry of this kind, if such an entry can begin
    /// one. Which command a sealed move came from depends on how its seat plays.
    fn command_for(&self, kind: &EventKind) -> Option<Command> {
        Some(match *kind {
            EventKind::MoveSealed {
                seat,
                round,
                choice,
                salt,
            } => match (self.config.seats[seat], salt) {
                (SeatKind::Sealed, None) => Command::Lock {
                    seat,
                    round,
                    choice,
                },
                (SeatKind::CommitReveal, Some(salt)) => Command::Reveal {
                    seat,
                    round,
                    choice,
                    salt,
                },
                (SeatKind::Bot, Some(salt)) => Command::BotMove {
                    seat,
                    round,
                    choice,
                    salt,
                },
                _ => return None,
            },
            EventKind::Committed {
                seat,
                round,
                commitment,
            } => Command::Commit {
                seat,
                round,
                commitment,
            },
            // A reveal that starts a batch is a deadline's: the moves' own batches end in theirs.
            EventKind::RoundRevealed { .. } => Command::Tick,
            EventKind::MatchEnded { reason, .. } => match reason {
                EndReason::Left(seat) => Command::Leave { seat },
                EndReason::GraceExpired(seat) => Command::GraceExpired { seat },
                EndReason::Drained => Command::NoContest,
                EndReason::Decided | EndReason::Abandoned | EndReason::RoundLimit => return None,
            },
            EventKind::OpponentDisconnected { seat } => Command::Disconnect { seat },
            EventKind::OpponentReconnected { seat } => Command::Reconnect { seat },
            EventKind::MatchStarted { .. }
            | EventKind::RoundOpened { .. }
            | EventKind::Locked { .. } => {
                return None;
            }
        })
    }
}

/// Checks that `log` holds exactly `batch` from `start`, and returns the index after it.
fn expect_batch(log: &[Event], start: usize, batch: &[Event]) -> Result<usize, ReplayError> {
    if batch.is_empty() {
        // The entry's command changed nothing, so the entry cannot have come from it.
        return Err(ReplayError {
            index: start,
            reason: ReplayFault::Diverged,
        });
    }
    for (offset, expected) in batch.iter().enumerate() {
        let index = start + offset;
        match log.get(index) {
            Some(logged) if logged == expected => {}
            Some(_) => {
                return Err(ReplayError {
                    index,
                    reason: ReplayFault::Diverged,
                });
            }
            None => {
                return Err(ReplayError {
                    index,
                    reason: ReplayFault::Truncated,
                });
            }
        }
    }
    Ok(start + batch.len())
}
