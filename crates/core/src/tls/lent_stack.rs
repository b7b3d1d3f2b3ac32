//! Stacks lent to the TLS work of a connection. A thread keeps resident every stack page it ever
//! touched, and httpd keeps tens to hundreds of worker threads, any of which may serve any
//! connection. rustls and aws-lc go deeper than httpd's own request processing: a handshake's key
//! exchange and signature to about 24 KiB of stack (frames of 9 to 13 KiB: ML-KEM encapsulation,
//! ECDSA signing), a record's decryption or encryption a page beyond what serving the request
//! takes. Run on a stack from this pool instead, that work leaves a worker's own stack as deep
//! as httpd keeps it (8 KiB on a thread that served HTTP/1.1 requests, against 12 KiB, and
//! 24 KiB after a handshake), and the pool holds one deep stack per connection being worked on
//! at the same time, not one per thread. The stack most recently given back is lent next, so
//! the work finds it in cache, where a thread woken for the first time in a while brings a cold
//! one.
//!
//! Process-wide and not per configuration: a stack holds nothing between two calls.

use std::cell::Cell;
use std::sync::{Mutex, PoisonError};

use corosensei::stack::DefaultStack;

/// Address space reserved for each stack (with a guard page below it); only the pages the work
/// touches become memory. Generous, as a thread's: a handshake calls back into httpd (session
/// cache, logging, a client certificate's revocation checks).
const STACK_SIZE: usize = 1 << 20;

/// The stacks not lent at the moment; the most recently given back is last.
static IDLE: Mutex<Vec<DefaultStack>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread runs on a lent stack now: a nested `run` stays on it.
    static ON_LENT_STACK: Cell<bool> = const { Cell::new(false) };
}

/// Clears `ON_LENT_STACK` when the step ends, a panic included.
struct BackOnOwnStack;

impl Drop for BackOnOwnStack {
    fn drop(&mut self) {
        ON_LENT_STACK.set(false);
    }
}

/// Runs `step` on a lent stack: the one this thread is on already, or one from the pool (or, if
/// none can be mapped, the thread's own). A panic in `step` reaches the caller as if `step` had
/// run there (its stack is then unmapped, not pooled).
pub fn run<R>(step: impl FnOnce() -> R) -> R {
    if ON_LENT_STACK.get() {
        return step();
    }
    let pooled = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let mut stack = match pooled {
        Some(s) => s,
        None => match DefaultStack::new(STACK_SIZE) {
            Ok(s) => s,
            Err(_) => return step(),
        },
    };
    let r = corosensei::on_stack(&mut stack, || {
        ON_LENT_STACK.set(true);
        let _back = BackOnOwnStack;
        step()
    });
    IDLE.lock().unwrap_or_else(PoisonError::into_inner).push(stack);
    r
}

/// How many stacks the pool holds.
#[cfg(test)]
fn pooled() -> usize {
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
    fn a_nested_step_stays_on_the_stack_lent_to_the_outer_one() {
        let (outer, inner) = run(|| (stack_address(), run(stack_address)));
        assert!(outer.abs_diff(inner) < 4096, "outer step at {outer:#x}, inner one at {inner:#x}");
        // Back on the thread's own stack, the next step is lent one again.
        let own = stack_address();
        assert!(own.abs_diff(run(stack_address)) > STACK_SIZE);
    }

    #[test]
    fn a_panic_reaches_the_caller_and_the_pool_still_lends() {
        let caught = std::panic::catch_unwind(|| run(|| panic!("broken step")));
        let message = caught.expect_err("the panic reached the caller");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"broken step"));
        // The thread is known to be back on its own stack: the next step is lent one again.
        let own = stack_address();
        assert!(own.abs_diff(run(stack_address)) > STACK_SIZE);
    }
}
