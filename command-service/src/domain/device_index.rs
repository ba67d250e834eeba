//! Per device, the deployments that target it: an entry for every device any deployment
//! names, so a million of them must stay small. Each id is kept once, back to back with the
//! others in one string; an entry is its place there and its deployments (inline when there is
//! one, as there usually is); a hash table of four-byte entry numbers finds a device. About
//! sixty bytes a device, against six hundred for a map of strings to sets.

use std::hash::BuildHasher;

use chrono::{DateTime, Utc};
use events::DeploymentId;
use hashbrown::HashTable;

/// A deployment targeting a device, ordered by when it was created.
pub type Target = (DateTime<Utc>, DeploymentId);

#[derive(Debug, Clone)]
enum Targets {
    One(Target),
    /// Sorted, oldest first.
    Many(Vec<Target>),
}

impl Targets {
    fn as_slice(&self) -> &[Target] {
        match self {
            Targets::One(target) => std::slice::from_ref(target),
            Targets::Many(targets) => targets,
        }
    }

    fn add(&mut self, target: Target) {
        match self {
            Targets::One(only) if *only == target => {}
            Targets::One(only) => {
                let mut both = vec![*only, target];
                both.sort();
                *self = Targets::Many(both);
            }
            Targets::Many(targets) => {
                if let Err(at) = targets.binary_search(&target) {
                    targets.insert(at, target);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Where the device's id is in [`DeviceIndex::names`].
    start: u32,
    len: u32,
    targets: Targets,
}

#[derive(Debug, Default)]
pub struct DeviceIndex {
    names: String,
    entries: Vec<Entry>,
    table: HashTable<u32>,
    hasher: std::hash::RandomState,
}

fn name_of<'a>(names: &'a str, entry: &Entry) -> &'a str {
    &names[entry.start as usize..(entry.start + entry.len) as usize]
}

impl DeviceIndex {
    fn find(&self, device: &str, hash: u64) -> Option<usize> {
        self.table
            .find(hash, |&index| {
                name_of(&self.names, &self.entries[index as usize]) == device
            })
            .map(|&index| index as usize)
    }

    /// The deployments targeting `device`, oldest first.
    pub fn get(&self, device: &str) -> &[Target] {
        match self.find(device, self.hasher.hash_one(device)) {
            Some(index) => self.entries[index].targets.as_slice(),
            None => &[],
        }
    }

    /// Records that `target` targets `device` (again is no change).
    pub fn add(&mut self, device: &str, target: Target) {
        let hash = self.hasher.hash_one(device);
        if let Some(index) = self.find(device, hash) {
            self.entries[index].targets.add(target);
            return;
        }
        let start = u32::try_from(self.names.len()).expect("device ids fit in 4 GiB");
        let len = u32::try_from(device.len()).expect("a device id fits in 4 GiB");
        let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 devices");
        self.names.push_str(device);
        self.entries.push(Entry {
            start,
            len,
            targets: Targets::One(target),
        });
        let (names, entries, hasher) = (&self.names, &self.entries, &self.hasher);
        self.table.insert_unique(hash, index, |&index| {
            hasher.hash_one(name_of(names, &entries[index as usize]))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn each_device_lists_its_deployments_oldest_first_once_each() {
        let (a, b, c) = (
            DeploymentId::new(),
            DeploymentId::new(),
            DeploymentId::new(),
        );
        let mut index = DeviceIndex::default();
        index.add("d1", (at(20), b));
        index.add("d1", (at(10), a));
        index.add("d1", (at(20), b));
        index.add("d1", (at(30), c));
        index.add("d2", (at(30), c));
        index.add("", (at(10), a));
        assert_eq!(index.get("d1"), [(at(10), a), (at(20), b), (at(30), c)]);
        assert_eq!(index.get("d2"), [(at(30), c)]);
        assert_eq!(index.get(""), [(at(10), a)]);
        assert!(index.get("d3").is_empty());
        assert!(index.get("d").is_empty(), "a prefix of an id is not the id");
        // Many devices: every one still found, through the table's growth.
        for n in 0..10_000 {
            index.add(&format!("fleet-{n}"), (at(n), a));
        }
        for n in (0..10_000).step_by(997) {
            assert_eq!(index.get(&format!("fleet-{n}")), [(at(n), a)]);
        }
        assert_eq!(index.get("d2"), [(at(30), c)]);
    }
}
