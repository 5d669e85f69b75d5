//! The safetensors/config checkpoint loader.
#![no_main]
#[path = "../entry.rs"]
#[allow(dead_code, reason = "each target calls one of the shared entry points")]
mod entry;
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    // safetensors keeps a file's tensors in std hash maps, whose keys std
    // seeds per thread and then steps for every new map, so one input takes
    // different paths from run to run (one corpus replayed four times gave
    // 2,096 to 2,102 edges). A fresh thread draws its seed anew, and
    // fixed-random.c makes that draw the same every time.
    if cfg!(feature = "fixed-hash-keys") {
        // Joined before the scope ends, so that the spawning thread never
        // races the spawned one through the scope's bookkeeping (edges too).
        std::thread::scope(|scope| {
            if let Err(panic) = scope.spawn(|| entry::checkpoint(bytes)).join() {
                std::panic::resume_unwind(panic);
            }
        });
    } else {
        entry::checkpoint(bytes);
    }
});
