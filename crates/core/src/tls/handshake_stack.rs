//! Stacks lent to handshakes. The deepest calls of a TLS handshake are aws-lc's key exchange and
//! signature (frames of 9 to 13 KiB: ML-KEM encapsulation, ECDSA signing), which take a handshake
//! to about 24 KiB of stack. A thread keeps resident every stack page it ever touched, and httpd
//! keeps tens to hundreds of worker threads, any of which may run a handshake: each would hold
//! those pages for good. Run on a stack from this pool instead, the handshake leaves the worker's
//! stack as shallow as request processing keeps it, and the pool holds one deep stack per
//! handshake running at the same time, not one per thread. The stack most recently given back is
//! lent next, so a handshake finds its stack in cache instead of the cold one of a thread woken
//! for the first time in a while.
//!
//! Process-wide and not per configuration: a stack holds nothing between handshakes.

use std::sync::{Mutex, PoisonError};

use corosensei::stack::DefaultStack;

/// Address space reserved for each stack (with a guard page below it); only the pages a handshake
/// touches become memory. Generous as a thread's: the handshake calls back into httpd (session
/// cache, logging, a client certificate's revocation checks).
const STACK_SIZE: usize = 1 << 20;

/// The stacks not lent at the moment; the most recently given back is last.
static IDLE: Mutex<Vec<DefaultStack>> = Mutex::new(Vec::new());

/// Runs `step` on a pooled stack, or on the caller's own if none can be mapped. A panic in `step`
/// reaches the caller as if `step` had run there (its stack is then unmapped, not pooled).
pub fn run<R>(step: impl FnOnce() -> R) -> R {
    let pooled = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let mut stack = match pooled {
        Some(s) => s,
        None => match DefaultStack::new(STACK_SIZE) {
            Ok(s) => s,
            Err(_) => return step(),
        },
    };
    let r = corosensei::on_stack(&mut stack, step);
    IDLE.lock().unwrap_or_else(PoisonError::into_inner).push(stack);
    r
}

/// How many stacks the pool holds (for tests).
pub fn pooled() -> usize {
    IDLE.lock().unwrap_or_else(PoisonError::into_inner).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address on the stack of whoever calls this.
    #[inline(never)]
    fn stack_address() -> usize {
        let marker = 0u8;
        std::hint::black_box(std::ptr::addr_of!(marker) as usize)
    }

    #[test]
    fn a_step_runs_on_a_lent_stack_and_the_stack_is_lent_again() {
        let own = stack_address();
        let first = run(stack_address);
        // Not on the caller's stack: a lent one lies in its own mapping, far from the thread's.
        assert!(own.abs_diff(first) > STACK_SIZE, "ran at {first:#x}, the caller's stack is at {own:#x}");
        // Other tests may borrow stacks meanwhile; from this thread alone, one lent and given
        // back is lent again at the same depth.
        let again = run(stack_address);
        assert!(pooled() >= 1);
        assert!(
            again.abs_diff(first) < STACK_SIZE || pooled() > 1,
            "the stack given back was not lent again: {first:#x} then {again:#x}"
        );
    }

    #[test]
    fn a_panic_reaches_the_caller_and_the_pool_still_lends() {
        let caught = std::panic::catch_unwind(|| run(|| panic!("broken step")));
        let message = caught.expect_err("the panic reached the caller");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"broken step"));
        assert_eq!(run(|| 41 + 1), 42);
    }
}
