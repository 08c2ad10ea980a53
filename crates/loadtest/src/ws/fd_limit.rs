//! The tester's open-file limit: thousands of WebSocket connections need as many descriptors,
//! and a shell's soft limit (often 1024) is far below the hard one. The soft limit is raised
//! to the hard limit; a run that would still not fit is refused before it starts.

/// Descriptors kept for the runtime, the guest-creation connections and the tester's files.
const RESERVED: u64 = 128;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit in force.
pub fn raise_to_hard() -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    if limit.rlim_cur >= limit.rlim_max {
        return Ok(limit.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads only the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(format!(
            "cannot raise the open-file limit from {} to {}: {}",
            limit.rlim_cur,
            limit.rlim_max,
            std::io::Error::last_os_error()
        ));
    }
    Ok(raised.rlim_cur)
}

/// Refuses `connections` that an open-file limit of `limit` cannot hold.
pub fn check(connections: usize, limit: u64) -> Result<(), String> {
    let needed = connections as u64 + RESERVED;
    if needed > limit {
        return Err(format!(
            "{connections} connections need about {needed} open files, but the hard limit is \
             {limit}: raise it (ulimit -Hn, LimitNOFILE=) or run several testers"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_reaches_the_hard_one_and_too_many_connections_are_refused() {
        let limit = raise_to_hard().unwrap();
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes only into the struct we pass.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(now.rlim_cur, now.rlim_max);
        assert_eq!(limit, now.rlim_cur);
        assert!(check(15_000, 20_000).is_ok());
        assert!(
            check(19_950, 20_000)
                .unwrap_err()
                .contains("hard limit is 20000")
        );
    }
}
