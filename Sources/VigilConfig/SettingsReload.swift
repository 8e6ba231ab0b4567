/// What a reload changes: every reloadable setting takes its new value (and the monitor targets,
/// `tls_certificates` and `routes` their new lists); any other setting that changed keeps its running value until a restart.
public struct SettingsReload: Sendable {
    /// The configuration to run with from now on.
    public var updated: ResolvedSettings
    /// Reloadable keys whose values changed: they apply now.
    public var applied: [(key: String, old: String, new: String)]
    /// Keys that changed but keep their running values until a restart.
    public var needRestart: [(key: String, old: String, new: String)]

    /// Compares `running` with `fresh`, key by key, in the catalog's order.
    public init(running: ResolvedSettings, fresh: ResolvedSettings) {
        var updated = running
        updated.settings.targets = fresh.settings.targets  // reconciled as a whole list
        updated.settings.tlsCertificates = fresh.settings.tlsCertificates  // re-read as a whole, like the files
        updated.settings.routes = fresh.settings.routes  // replaced as a whole list
        var applied: [(key: String, old: String, new: String)] = []
        var needRestart: [(key: String, old: String, new: String)] = []
        for definition in SettingCatalog.all {
            let old = running.text(forKey: definition.key) ?? ""
            let new = fresh.text(forKey: definition.key) ?? ""
            if definition.reloadable {
                updated.adopt(definition, from: fresh)
                if old != new { applied.append((definition.key, old, new)) }
            } else if old != new {
                needRestart.append((definition.key, old, new))
            }
        }
        self.updated = updated
        self.applied = applied
        self.needRestart = needRestart
    }

    /// The keys a reload applies, in the catalog's order (the docs list them from here).
    public static var reloadableKeys: [String] {
        SettingCatalog.all.filter(\.reloadable).map(\.key)
    }
}
