//! Deadlines on async I/O with one reusable timer per connection.
//!
//! Creating a timer per request costs a timer-wheel insertion and removal every time. A
//! connection instead keeps one pinned [`Sleep`] and passes the deadline of each wait here: the
//! timer is moved only when the new deadline is earlier than where it stands, and when it fires
//! before the real deadline it is re-armed. In the common case (a wait that ends long before
//! its deadline) that is one comparison. Used by the server's native engine and the load
//! tester's connections.

use std::future::Future;
use std::pin::Pin;

use tokio::time::{Instant, Sleep};

/// How a wait ended.
#[derive(Debug)]
pub enum Wait<T> {
    Done(T),
    TimedOut,
}

/// Runs `operation` until it finishes or `deadline` passes, using the caller's one timer.
pub async fn with_deadline<F: Future>(
    mut timer: Pin<&mut Sleep>,
    deadline: Instant,
    operation: F,
) -> Wait<F::Output> {
    if deadline < timer.deadline() {
        timer.as_mut().reset(deadline);
    }
    tokio::pin!(operation);
    loop {
        tokio::select! {
            biased;
            output = &mut operation => return Wait::Done(output),
            () = &mut timer => {
                if Instant::now() >= deadline {
                    return Wait::TimedOut;
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_operation_that_finishes_in_time_is_done() {
        let timer = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(timer);
        let deadline = Instant::now() + Duration::from_secs(1);
        let waited = with_deadline(
            timer,
            deadline,
            tokio::time::sleep(Duration::from_millis(999)),
        )
        .await;
        assert!(matches!(waited, Wait::Done(())));
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_moves_the_timer() {
        let timer = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(timer);
        let started = Instant::now();
        let waited = with_deadline(
            timer,
            started + Duration::from_secs(2),
            std::future::pending::<()>(),
        )
        .await;
        assert!(matches!(waited, Wait::TimedOut));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_that_fires_early_is_re_armed_for_the_real_deadline() {
        let timer = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(timer);
        let started = Instant::now();
        let waited = with_deadline(
            timer.as_mut(),
            started + Duration::from_secs(5),
            std::future::pending::<()>(),
        )
        .await;
        assert!(matches!(waited, Wait::TimedOut));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
