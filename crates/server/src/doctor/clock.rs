//! Clock synchronisation, as the kernel sees it (`adjtimex`).
//!
//! Access tokens and sessions expire by the wall clock, and with a Redis store every instance
//! judges tokens another instance issued: instances whose clocks disagree end sessions early
//! or late by the difference. Redis's own expiries (node leases) are on Redis's clock and do
//! not depend on ours.

use super::Check;

/// An error estimate above this is no longer "in sync" for token lifetimes measured in
/// minutes; NTP daemons keep it in the low milliseconds.
const MAX_ERROR_US: i64 = 100_000;

/// What `adjtimex` reports, reduced to what the check needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct KernelClock {
    /// The call's result: `TIME_OK`, ..., `TIME_ERROR` (5) when unsynchronised.
    pub state: i32,
    /// `STA_*` bits; `STA_UNSYNC` is set until a time daemon disciplines the clock.
    pub status: i32,
    /// The kernel's bound on the clock's error, in microseconds (16 s when unsynchronised).
    pub max_error_us: i64,
}

/// Reads the kernel clock's state without changing it (`modes = 0` needs no privilege, so it
/// works in containers too).
pub(super) fn read_kernel_clock() -> std::io::Result<KernelClock> {
    // SAFETY: `timex` is a plain C struct for which all zeroes is a valid value (modes = 0:
    // read only).
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: adjtimex writes only into the struct we pass, which outlives the call. There is
    // no safe interface to the kernel's synchronisation state.
    let state = unsafe { libc::adjtimex(&mut timex) };
    if state == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(KernelClock {
        state,
        status: timex.status,
        max_error_us: timex.maxerror,
    })
}

pub(super) fn check_clock(reading: &std::io::Result<KernelClock>) -> Check {
    const NAME: &str = "clock";
    let expected = format!(
        "synchronised (STA_UNSYNC clear), maxerror <= {} ms",
        MAX_ERROR_US / 1000
    );
    const FIX: &str = "timedatectl set-ntp true (or apt-get install chrony)";
    let clock = match reading {
        Ok(clock) => clock,
        Err(error) => {
            return Check::warn(NAME, format!("adjtimex failed: {error}"), expected, FIX);
        }
    };
    let unsynchronised = clock.status & libc::STA_UNSYNC != 0 || clock.state == libc::TIME_ERROR;
    let measured = format!(
        "{}, maxerror {} ms",
        if unsynchronised {
            "unsynchronised"
        } else {
            "synchronised"
        },
        clock.max_error_us / 1000
    );
    if unsynchronised || clock.max_error_us > MAX_ERROR_US {
        return Check::warn(NAME, measured, expected, FIX).with_note(
            "instances with different clocks end access tokens and sessions early or late by \
             the difference",
        );
    }
    Check::pass(NAME, measured, expected)
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn clock(state: i32, status: i32, max_error_us: i64) -> std::io::Result<KernelClock> {
        Ok(KernelClock {
            state,
            status,
            max_error_us,
        })
    }

    #[test]
    fn a_disciplined_clock_passes() {
        let check = check_clock(&clock(libc::TIME_OK, libc::STA_PLL, 2_500));
        assert_eq!(check.status, Status::Pass, "{check:?}");
        assert_eq!(check.measured, "synchronised, maxerror 2 ms");
    }

    #[test]
    fn an_unsynchronised_or_drifting_clock_warns() {
        for reading in [
            clock(libc::TIME_ERROR, libc::STA_UNSYNC, 16_000_000),
            clock(libc::TIME_OK, libc::STA_UNSYNC, 1_000),
            clock(libc::TIME_ERROR, 0, 1_000),
            clock(libc::TIME_OK, 0, 250_000),
        ] {
            let check = check_clock(&reading);
            assert_eq!(check.status, Status::Warn, "{reading:?}");
            assert!(check.fix.unwrap().contains("timedatectl"));
        }
    }

    #[test]
    fn a_refused_call_is_a_warning() {
        let refused = Err(std::io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(check_clock(&refused).status, Status::Warn);
    }

    #[test]
    fn the_kernel_clock_can_be_read_without_privilege() {
        let clock = read_kernel_clock().unwrap();
        assert!((0..=5).contains(&clock.state), "{clock:?}");
        assert!(clock.max_error_us >= 0, "{clock:?}");
    }
}
