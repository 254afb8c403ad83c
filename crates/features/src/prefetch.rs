//! A hint to start loading memory that a later step will read, so a batch's independent cache
//! misses overlap instead of each stalling the thread in turn.

/// Starts loading the cache line holding `ptr` into every cache level. A hint only: it never
/// faults, whatever the address (dangling, null, unmapped), and changes nothing the program
/// can observe except timing. Nothing on other architectures.
#[inline(always)]
pub fn read<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 (SSE, baseline on x86_64) dereferences nothing: the CPU drops the
    // request for an address it cannot load, and no architectural state changes.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// [`read`] of each cache line of the first `bytes` bytes at `ptr`.
#[inline(always)]
pub fn read_bytes(ptr: *const u8, bytes: usize) {
    let mut at = 0;
    while at < bytes {
        read(ptr.wrapping_add(at));
        at += 64;
    }
}

/// [`read`] of the cache lines of `items`, up to `max_bytes` of them.
#[inline(always)]
pub fn read_slice<T>(items: &[T], max_bytes: usize) {
    read_bytes(
        items.as_ptr().cast(),
        std::mem::size_of_val(items).min(max_bytes),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_on_any_address_neither_faults_nor_changes_the_data() {
        let data = vec![7u8; 1000];
        read_bytes(data.as_ptr(), data.len());
        read_slice(&data, 4096);
        read(std::ptr::null::<u64>());
        read(usize::MAX as *const u64);
        read(data.as_ptr().wrapping_add(1 << 40));
        assert!(data.iter().all(|&b| b == 7));
    }
}
