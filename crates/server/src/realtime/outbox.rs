//! A connection's outgoing messages: filled by whoever has news for the player (the hub, under
//! its lock, from any worker thread), emptied by the connection's task, which encodes and
//! writes them.
//!
//! Bounded: a client that stops reading fills its socket buffer, then this queue; past
//! `capacity` messages the connection is marked to close as a slow consumer (1013) instead of
//! the queue growing. Holds no allocation while empty, so an idle connection costs only the
//! `Arc` and the lock.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

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

impl Outbox {
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
    pub fn push(&self, message: ServerMessage) -> bool {
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
            self.notify.notify_one();
            return false;
        }
        queue.messages.push_back(message);
        drop(queue);
        self.notify.notify_one();
        true
    }

    /// Queues a replayed match event whatever the queue's length: a replay is bounded by the
    /// match's log (at most 100 rounds and [`super::hub`]'s drop limit), and refusing it would
    /// lock a player with a long match out of it.
    pub fn push_replayed(&self, message: ServerMessage) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.close.is_some() {
            return;
        }
        queue.messages.push_back(message);
        drop(queue);
        self.notify.notify_one();
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
    pub fn insert(&self, index: usize, message: ServerMessage) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.close.is_some() {
            return;
        }
        let index = index.min(queue.messages.len());
        queue.messages.insert(index, message);
        drop(queue);
        self.notify.notify_one();
    }

    /// Orders the connection closed once what is queued before the order is written.
    pub fn close(&self, order: CloseOrder) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.close.get_or_insert(order);
        drop(queue);
        self.notify.notify_one();
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
        let outbox = Outbox::new(2);
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
        let outbox = Outbox::new(4);
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
}
