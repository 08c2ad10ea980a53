//! Runtime flags: the optional parts of the service, switchable while it runs.
//!
//! Flags live in one immutable snapshot behind an `ArcSwap`: a request reads the current
//! snapshot without a lock, and a change (a `PUT /admin/flags` or a configuration reload on
//! SIGHUP) builds a new snapshot and swaps it in whole, so no request ever sees half a change.
//! `/play` depends on none of them: switching a flag off degrades only its feature.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// One snapshot of the flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flags {
    /// Write access-log lines.
    pub access_log: bool,
    /// Export spans to the OTLP collector (when one is configured).
    pub trace_export: bool,
}

/// Named degradation levels, from everything on to the bare game.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Everything on.
    Full,
    /// Tracing export off: spans are the most expensive optional output.
    Reduced,
    /// Access log and trace export off: metrics and the game only.
    Minimal,
}

impl Level {
    pub fn flags(self) -> Flags {
        match self {
            Level::Full => Flags {
                access_log: true,
                trace_export: true,
            },
            Level::Reduced => Flags {
                access_log: true,
                trace_export: false,
            },
            Level::Minimal => Flags {
                access_log: false,
                trace_export: false,
            },
        }
    }

    /// The level a snapshot matches, if any.
    pub fn of(flags: Flags) -> Option<Level> {
        [Level::Full, Level::Reduced, Level::Minimal]
            .into_iter()
            .find(|level| level.flags() == flags)
    }
}

/// A change asked for: a level, or individual flags (applied over the current snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagChange {
    pub level: Option<Level>,
    pub access_log: Option<bool>,
    pub trace_export: Option<bool>,
}

/// The shared, swappable flags.
#[derive(Debug)]
pub struct RuntimeFlags(ArcSwap<Flags>);

impl RuntimeFlags {
    pub fn new(initial: Flags) -> Arc<Self> {
        Arc::new(Self(ArcSwap::from_pointee(initial)))
    }

    /// The current snapshot; lock-free.
    pub fn current(&self) -> Flags {
        **self.0.load()
    }

    /// Replaces the whole snapshot.
    pub fn set(&self, flags: Flags) {
        self.0.store(Arc::new(flags));
    }

    /// Applies `change` over the current snapshot (a level first, then individual flags) and
    /// returns the new snapshot.
    pub fn apply(&self, change: FlagChange) -> Flags {
        let mut flags = change.level.map_or_else(|| self.current(), Level::flags);
        if let Some(on) = change.access_log {
            flags.access_log = on;
        }
        if let Some(on) = change.trace_export {
            flags.trace_export = on;
        }
        self.set(flags);
        tracing::info!(?flags, level = ?Level::of(flags), "runtime flags changed");
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_then_single_flags_make_the_new_snapshot() {
        let flags = RuntimeFlags::new(Level::Full.flags());
        let changed = flags.apply(FlagChange {
            level: Some(Level::Minimal),
            trace_export: Some(true),
            ..FlagChange::default()
        });
        assert_eq!(
            changed,
            Flags {
                access_log: false,
                trace_export: true
            }
        );
        assert_eq!(flags.current(), changed);
        assert_eq!(Level::of(changed), None);
        assert_eq!(Level::of(Level::Reduced.flags()), Some(Level::Reduced));
    }

    #[test]
    fn unknown_flags_are_refused() {
        assert!(serde_json::from_str::<FlagChange>(r#"{"acess_log":false}"#).is_err());
        assert!(serde_json::from_str::<FlagChange>(r#"{"level":"off"}"#).is_err());
    }
}
