import CPlugvisorLinux

/// How the process's malloc hands memory back.
public enum MallocTuning {
    /// Frames run up to 16 MiB and come in bursts. glibc raises its mmap threshold to the
    /// largest block freed so far (up to 32 MiB); after that such buffers come from the heap,
    /// and their pages stay with the process once freed, in as many arenas as threads touched
    /// them: a burst of 9 MiB results left the supervisor tens of MiB larger for good. A fixed
    /// threshold keeps every buffer of 128 KiB or more in a mapping of its own, returned to the
    /// system when it is freed; a mapping costs far less than filling 128 KiB.
    public static func returnLargeBuffersWhenFreed(threshold bytes: Int32 = 128 * 1024) {
        _ = pv_set_mmap_threshold(bytes)
    }
}
