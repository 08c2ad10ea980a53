//! A connection's outgoing messages: filled by whoever has news for the player (the hub, under
//! its lock, from any worker thread), emptied by the connection's task, which encodes and
//! writes them.
//!
//! Bounded: a client that stops reading fills its socket buffer, then this queue; past
//! `capacity` messages the connection is marked to close as a slow consumer (1013) instead of
//! the queue growing. Holds no allocation while empty, so an idle connection costs only the
//! `Arc` and the lock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use protocol::ServerMessage;

/// Why the connection is to close, decided by someone other than its task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseOrder {
    pub code: u16,
    pub reason: &'static str,
}

#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<ServerMessage>,
    close: Option<CloseOrder>,
}

#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    notify: Notify,
    capacity: usize,
    /// Set when a greeting answered later (by another instance, through Redis) went out:
    /// the connection counts as greeted from then on.
    greeted: std::sync::atomic::AtomicBool,
}

/// What [`Outbox::take`] hands the connection's task.
#[derive(Debug, Default)]
pub struct Taken {
    pub messages: VecDeque<ServerMessage>,
    pub close: Option<CloseOrder>,
}

thread_local! {
    /// How many [`WakeLater`]s this thread holds, and the outboxes pushed to meanwhile.
    static HELD: RefCell<(u32, Vec<Arc<Outbox>>)> = const { RefCell::new((0, Vec::new())) };
}

/// Holds back, on this thread, the wake-ups of the outboxes pushed to until it is dropped
/// (the last one, when nested). The hub holds one with its lock: a connection task on another
/// worker, woken by the first of the messages one hub operation queues for it (the opponent's
/// `locked`, say), would otherwise write that one alone and the rest (the reveal, the next
/// round's opening, the result) in a second write, or more. Woken after the lock is let go,
/// it finds them all and writes them at once (docs/BENCHMARKS.md, "One write per hub
/// operation").
pub struct WakeLater {
    // Per thread: must be dropped where it was made.
    _not_send: PhantomData<*const ()>,
}

impl WakeLater {
    pub fn begin() -> Self {
        HELD.with_borrow_mut(|(depth, _)| *depth += 1);
        WakeLater {
            _not_send: PhantomData,
        }
    }
}

impl Drop for WakeLater {
    fn drop(&mut self) {
        let woken = HELD.with_borrow_mut(|(depth, held)| {
            *depth -= 1;
            (*depth == 0 && !held.is_empty()).then(|| std::mem::take(held))
        });
        let Some(mut woken) = woken else {
            return;
        };
        for outbox in woken.drain(..) {
            outbox.notify.notify_one();
        }
        // The list's allocation is kept for the next operation on this thread.
        HELD.with_borrow_mut(|(_, held)| {
            if held.capacity() < woken.capacity() {
                *held = woken;
            }
        });
    }
}

impl Outbox {
    /// Wakes the connection's task now, or, under a [`WakeLater`], when it is dropped.
    fn wake(self: &Arc<Self>) {
        let now = HELD.with_borrow_mut(|(depth, held)| {
            if *depth == 0 {
                return true;
            }
            // Only the latest is compared: a search of the whole list would be quadratic in
            // an operation that pushes to every connection (a drain's notice). A repeat wakes
            // its task twice, which costs a stored permit and no more.
            if !held.last().is_some_and(|last| Arc::ptr_eq(last, self)) {
                held.push(Arc::clone(self));
            }
            false
        });
        if now {
            self.notify.notify_one();
        }
    }

    pub fn new(capacity: usize) -> Self {
        Outbox {
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            capacity,
            greeted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Queues `message`; false (and the connection ordered closed as a slow consumer) when
    /// the queue is full. Messages after a close order are dropped.
    pub fn push(self: &Arc<Self>, message: ServerMessage) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.close.is_some() {
            return false;
        }
        if queue.messages.len() >= self.capacity {
            queue.close = Some(CloseOrder {
                code: protocol::close::SLOW_CONSUMER,
                reason: "too many messages unread",
            });
            drop(queue);
            self.wake();
            return false;
        }
        queue.messages.push_back(message);
        drop(queue);
        self.wake();
        true
    }

    /// Queues a replayed match event whatever the queue's length: a replay is bounded by the
    /// match's log (at most 100 rounds and [`super::hub`]'s drop limit), and refusing it would
    /// lock a player with a long match out of it.
    pub fn push_replayed(self: &Arc<Self>, message: ServerMessage) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.close.is_some() {
            return;
        }
        queue.messages.push_back(message);
        drop(queue);
        self.wake();
    }

    /// Whether a close was ordered (nothing more is queued).
    pub fn is_closed(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .close
            .is_some()
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .messages
            .len()
    }

    /// Queues `message` at `index` (clamped to the queue's length), ahead of what was queued
    /// after it: how an answer goes out before the events its request caused. Only the
    /// connection's own task (which alone empties the queue) may use an index it read.
    pub fn insert(self: &Arc<Self>, index: usize, message: ServerMessage) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.close.is_some() {
            return;
        }
        let index = index.min(queue.messages.len());
        queue.messages.insert(index, message);
        drop(queue);
        self.wake();
    }

    /// Orders the connection closed once what is queued before the order is written.
    pub fn close(self: &Arc<Self>, order: CloseOrder) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.close.get_or_insert(order);
        drop(queue);
        self.wake();
    }

    /// Everything queued, and the close order if one was given.
    pub fn take(&self) -> Taken {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        Taken {
            messages: std::mem::take(&mut queue.messages),
            close: queue.close,
        }
    }

    /// Marks the connection greeted by an answer that came later.
    pub fn mark_greeted(&self) {
        self.greeted
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether a later answer greeted the connection.
    pub fn greeted(&self) -> bool {
        self.greeted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves once something was pushed since the last wait (or a close was ordered).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pong() -> ServerMessage {
        ServerMessage::Pong {
            id: None,
            server_time_ms: 0,
        }
    }

    #[test]
    fn a_full_outbox_orders_a_slow_consumer_closed() {
        let outbox = Arc::new(Outbox::new(2));
        assert!(outbox.push(pong()));
        assert!(outbox.push(pong()));
        assert!(!outbox.push(pong()));
        let taken = outbox.take();
        assert_eq!(taken.messages.len(), 2);
        assert_eq!(taken.close.map(|c| c.code), Some(1013));
        assert!(!outbox.push(pong()), "nothing is queued after the order");
    }

    #[tokio::test]
    async fn a_push_wakes_the_waiting_task_even_if_it_came_first() {
        let outbox = Arc::new(Outbox::new(4));
        outbox.push(pong());
        // The permit was stored: the wait returns at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), outbox.wait())
            .await
            .unwrap();
        assert_eq!(outbox.take().messages.len(), 1);
        assert!(
            outbox.take().messages.capacity() == 0,
            "an empty take holds nothing"
        );
    }

    /// Under a `WakeLater` (nested, as a hub operation may be) nothing is woken until the
    /// outer one is dropped; then each outbox pushed to is woken, and pushes after it wake at
    /// once again.
    #[tokio::test]
    async fn pushes_under_wake_later_wake_their_task_when_it_is_dropped() {
        let short = std::time::Duration::from_millis(50);
        let first = Arc::new(Outbox::new(8));
        let second = Arc::new(Outbox::new(8));
        let outer = WakeLater::begin();
        {
            let _inner = WakeLater::begin();
            first.push(pong());
            first.push(pong());
        }
        second.close(CloseOrder {
            code: 1000,
            reason: "bye",
        });
        assert!(tokio::time::timeout(short, first.wait()).await.is_err());
        assert!(tokio::time::timeout(short, second.wait()).await.is_err());
        drop(outer);
        tokio::time::timeout(short, first.wait()).await.unwrap();
        tokio::time::timeout(short, second.wait()).await.unwrap();
        assert_eq!(first.take().messages.len(), 2);
        first.push(pong());
        tokio::time::timeout(short, first.wait()).await.unwrap();
    }
}
