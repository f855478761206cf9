import Foundation

/// Notices changes under some folders by comparing snapshots of every file's size and
/// modification time (polling: portable, no inotify binding, cheap for a package's sources).
struct SourceWatcher: Sendable {
    /// One file's identity for change detection.
    struct Stamp: Equatable, Sendable {
        var size: Int
        var modified: Date
    }

    /// The folders watched.
    let folders: [String]

    /// Every regular file under the folders, skipping hidden files and `.build*` folders.
    func snapshot() -> [String: Stamp] {
        var stamps: [String: Stamp] = [:]
        let manager = FileManager.default
        for folder in folders {
            guard let walker = manager.enumerator(atPath: folder) else { continue }
            while let relative = walker.nextObject() as? String {
                let name = (relative as NSString).lastPathComponent
                if name.hasPrefix(".") {
                    if name.hasPrefix(".build") || (walker.fileAttributes?[.type] as? FileAttributeType) == .typeDirectory {
                        walker.skipDescendants()
                    }
                    continue
                }
                let path = folder + "/" + relative
                guard let attributes = try? manager.attributesOfItem(atPath: path),
                    attributes[.type] as? FileAttributeType == .typeRegular
                else { continue }
                stamps[path] = Stamp(size: (attributes[.size] as? Int) ?? 0,
                                     modified: (attributes[.modificationDate] as? Date) ?? .distantPast)
            }
        }
        return stamps
    }

    /// The files added, removed or changed between two snapshots, sorted.
    static func changes(from old: [String: Stamp], to new: [String: Stamp]) -> [String] {
        Set(old.keys).union(new.keys).filter { old[$0] != new[$0] }.sorted()
    }
}
