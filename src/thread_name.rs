//! Thread names that change while the thread runs.
//!
//! Every thread of mqttd is named after its job, and the log prints that name on each line
//! (`[rx:sensor-1]`), as debuggers and `top -H` show it. A handshake thread (`hs:<peer>`)
//! is kept for the next connection when its handshake is done, so its name must change
//! with each connection it takes. std names a thread once, when it is spawned, and has no
//! call to rename a running thread; so [`rename`] writes the new name where Linux keeps it
//! (`/proc/thread-self/comm`, what gdb and `top` read, 15 bytes at most) and in a
//! thread-local the log reads through [`with_current`], in full.

use std::cell::RefCell;

thread_local! {
    /// The name given by [`rename`], if any: it overrides the name given at spawn.
    static RENAMED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Linux keeps at most 15 bytes of a thread's name (16 with the final NUL).
const COMM_LEN: usize = 15;

/// Gives the calling thread a new name. Elsewhere than Linux, or without `/proc`, only the
/// log sees it: nothing else depends on the name.
pub fn rename(name: &str) {
    let mut end = name.len().min(COMM_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let _ = std::fs::write("/proc/thread-self/comm", &name[..end]);
    RENAMED.with(|renamed| {
        let mut renamed = renamed.borrow_mut();
        let kept = renamed.get_or_insert_with(String::new);
        kept.clear();
        kept.push_str(name);
    });
}

/// Calls `f` with the calling thread's name: the last one given by [`rename`], or else
/// the one it was spawned with, or `?` for a thread without a name.
pub fn with_current<R>(f: impl FnOnce(&str) -> R) -> R {
    RENAMED.with(|renamed| match renamed.borrow().as_deref() {
        Some(name) => f(name),
        None => f(std::thread::current().name().unwrap_or("?")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_thread_is_known_by_its_new_name() {
        std::thread::Builder::new()
            .name("first".into())
            .spawn(|| {
                assert_eq!(with_current(str::to_owned), "first");
                rename("hs:127.0.0.1:50312");
                assert_eq!(with_current(str::to_owned), "hs:127.0.0.1:50312");
                if let Ok(comm) = std::fs::read_to_string("/proc/thread-self/comm") {
                    assert_eq!(comm.trim_end(), "hs:127.0.0.1:50", "15 bytes at most");
                }
                rename("hs:[::1]:4");
                assert_eq!(with_current(str::to_owned), "hs:[::1]:4");
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
