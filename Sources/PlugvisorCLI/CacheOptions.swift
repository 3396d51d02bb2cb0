import ArgumentParser
import Plugvisor

/// Where plugins built from Swift sources are cached: `start`, `validate` and `inspect` share it.
struct CacheOptions: ParsableArguments {
    @Option(
        name: .customLong("cache-dir"),
        help: ArgumentHelp(
            "Where modules built from Swift sources are kept (default: $XDG_CACHE_HOME/plugvisor, or ~/.cache/plugvisor).",
            valueName: "dir"))
    var cacheDirectory: String?
}
