//! A bound on the pixel work that runs at once: rendering, frame
//! extraction and transcoding each read a whole instance and decode its
//! pixels (tens to hundreds of MB for a large radiograph or a multi-frame
//! instance). Without a bound, a viewer (or anyone with a token) asking for
//! a few hundred renderings at once holds all of them in memory together,
//! on actix's blocking pool of up to 512 threads. A request waits for a slot
//! before it fetches the instance, so a waiting request holds nothing but
//! its connection; a request whose client goes away leaves the queue.

use std::sync::LazyLock;

use tokio::sync::{Semaphore, SemaphorePermit};

/// Slots: twice the CPUs, at least 2 and at most 32.
fn slots() -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (2 * cpus).clamp(2, 32)
}

static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(slots()));

/// Waits for a decoding slot; the slot is free again when the permit drops.
pub(super) async fn acquire() -> SemaphorePermit<'static> {
    SLOTS
        .acquire()
        .await
        .unwrap_or_else(|_| unreachable!("the decoding semaphore is never closed"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn no_more_than_the_slots_run_at_once() {
        let n = super::slots();
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(super::acquire().await);
        }
        let waiting = tokio::time::timeout(Duration::from_millis(50), super::acquire()).await;
        assert!(waiting.is_err(), "slot {} of {n} was granted", n + 1);
        held.pop();
        let granted = tokio::time::timeout(Duration::from_secs(5), super::acquire()).await;
        assert!(granted.is_ok(), "a freed slot is granted");
    }
}
