//! Locks that stay usable after a panic.
//!
//! Every lock in Chronicle guards data that each holder leaves whole (whole entries taken or
//! put, counters, maps of a few inserts and removals), so a holder that panicked leaves
//! nothing half-written: the lock is taken again instead of spreading the panic.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, poisoned or not.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `lock`, poisoned or not.
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `lock`, poisoned or not.
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_lock_poisoned_by_a_panic_is_still_usable() {
        let counter = Arc::new(Mutex::new(1));
        let shared = Arc::new(RwLock::new(1));
        let (c, s) = (counter.clone(), shared.clone());
        let panicked = std::thread::spawn(move || {
            let _m = c.lock();
            let _w = s.write();
            panic!("a holder panics");
        })
        .join();
        assert!(panicked.is_err());
        assert!(counter.is_poisoned() && shared.is_poisoned());
        *lock(&counter) += 1;
        *write(&shared) += 2;
        assert_eq!((*lock(&counter), *read(&shared)), (2, 3));
    }
}
