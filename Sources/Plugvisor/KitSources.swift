/// The author kits and their greeter examples, as kits/ has them (compiled in: Package.swift).
package enum KitSources {
    package static let cHeader = PackageResources.plugvisor_h
    package static let cGreeter = PackageResources.greeter_c
    package static let swiftKit = PackageResources.Plugvisor_swift
    package static let swiftGreeter = PackageResources.greeter_swift
    package static let rustKit = PackageResources.plugvisor_rs
    package static let rustGreeter = PackageResources.greeter_rs
    package static let watGreeter = PackageResources.greeter_wat
}
