//! Resident memory of a process and of every process it started, read
//! from `/proc` (Linux only): nginx and Varnish are a master and its
//! workers, and their memory is the whole tree's.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the tree's resident memory is summed while a load runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// How often the tree itself is looked up again (workers may be started
/// late, or restarted).
const TREE_EVERY: Duration = Duration::from_secs(1);

/// `root` and all its descendants, alive now.
pub fn tree(root: u32) -> Vec<u32> {
    let children = children();
    let mut found = vec![root];
    let mut next = 0;
    while let Some(&pid) = found.get(next) {
        if let Some(kids) = children.get(&pid) {
            found.extend(kids);
        }
        next += 1;
    }
    found
}

/// Every process's children, from the parent field of `/proc/PID/stat`.
fn children() -> HashMap<u32, Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(parent) = parent(&stat) {
            children.entry(parent).or_default().push(pid);
        }
    }
    children
}

/// The parent pid in a `/proc/PID/stat` line: `pid (comm) state ppid ...`,
/// where `comm` may hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn parent(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is a process that has not exited (a zombie has).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// `VmRSS` of one process, in bytes; `None` once it has exited.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_rss(&status)
}

fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The resident memory of `root`'s tree now, in bytes: the sum of each
/// process's `VmRSS` (pages shared between workers count once per worker,
/// as `ps` shows them).
pub fn tree_rss(root: u32) -> u64 {
    tree(root).into_iter().filter_map(rss).sum()
}

/// Samples a tree's resident memory on a thread of its own until
/// [`Sampler::peak`].
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Sampler {
    /// Starts sampling `root`'s tree.
    pub fn start(root: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut pids = tree(root);
                let mut looked_up = Instant::now();
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    if looked_up.elapsed() >= TREE_EVERY {
                        pids = tree(root);
                        looked_up = Instant::now();
                    }
                    peak = peak.max(pids.iter().copied().filter_map(rss).sum());
                    std::thread::sleep(SAMPLE_EVERY);
                }
                peak
            }
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the highest sum seen, in bytes.
    pub fn peak(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or(0)
    }
}

impl Drop for Sampler {
    /// A run interrupted mid-load (Ctrl-C) drops its sampler: the thread
    /// stops too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parent_past_a_command_name_with_parentheses() {
        assert_eq!(parent("42 (nginx) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent("43 (a (b) c) R 1 43"), Some(1));
        assert_eq!(parent("garbage"), None);
    }

    #[test]
    fn reads_vm_rss_in_bytes() {
        let status = "Name:\tnginx\nVmHWM:\t  9000 kB\nVmRSS:\t  8192 kB\nThreads:\t1\n";
        assert_eq!(vm_rss(status), Some(8192 * 1024));
        assert_eq!(vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_is_in_its_own_tree_and_has_memory() {
        let me = std::process::id();
        assert_eq!(tree(me)[0], me);
        assert!(alive(me));
        assert!(tree_rss(me) > 0);
        let sampler = Sampler::start(me);
        std::thread::sleep(Duration::from_millis(50));
        assert!(sampler.peak() > 0);
    }
}
