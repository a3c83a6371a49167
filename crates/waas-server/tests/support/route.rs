//! Where a test client's requests go: one server, or several replicas of one database taken in
//! turn, a request each, as a load balancer in front of stateless replicas sends them. Each
//! address follows its server's restarts (a restart picks a new port).
//!
//! A [`Trap`] kills a replica (SIGKILL) right after a chosen request is answered and takes it
//! out of the rotation: the next request of the same operation goes to another replica, so a test
//! can stop a replica in the middle of any operation without driving its rounds by hand. The
//! route also keeps which server answered what ([`Route::served_where`]), so a test can check
//! that an operation's rounds really went to different replicas.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A server's address, `http://127.0.0.1:PORT`, rewritten when it restarts.
pub type Address = Arc<RwLock<String>>;

/// The servers a client sends to, in turn. Cheap to clone: clones share the rotation.
#[derive(Clone)]
pub struct Route {
    inner: Arc<Inner>,
}

struct Inner {
    servers: RwLock<Vec<Address>>,
    next: AtomicUsize,
    trap: Mutex<Option<Trap>>,
    served: Mutex<Vec<(Address, String)>>,
}

/// Kill the server at `victim` (process `pid`) once `count` more requests whose path contains
/// `path` have been answered, by any server of the route.
pub struct Trap {
    /// The server to kill.
    pub victim: Address,
    /// Its process id.
    pub pid: u32,
    /// A part of the path the counted requests have, e.g. `:exchange`.
    pub path: String,
    /// How many such answers are still given before the kill (1: right after the next one).
    pub count: usize,
}

impl Route {
    /// Every request to the server at `address`.
    pub fn to(address: Address) -> Self {
        Self::across(vec![address])
    }

    /// Requests to each of `servers` in turn.
    pub fn across(servers: Vec<Address>) -> Self {
        assert!(!servers.is_empty(), "a route needs a server");
        Self {
            inner: Arc::new(Inner {
                servers: RwLock::new(servers),
                next: AtomicUsize::new(0),
                trap: Mutex::new(None),
                served: Mutex::new(Vec::new()),
            }),
        }
    }

    /// From now on, requests go to `servers` in turn (a replica leaves or joins).
    pub fn set(&self, servers: Vec<Address>) {
        assert!(!servers.is_empty(), "a route needs a server");
        *self.inner.servers.write().unwrap() = servers;
    }

    /// Sets the trap (replacing any).
    pub fn set_trap(&self, trap: Trap) {
        assert!(trap.count > 0);
        *self.inner.trap.lock().unwrap() = Some(trap);
    }

    /// Whether the trap has been sprung (or none was set).
    pub fn trap_sprung(&self) -> bool {
        self.inner.trap.lock().unwrap().is_none()
    }

    /// The server for the next request: its address now (the server is chosen by its place in
    /// the rotation, and the address it has at this moment).
    pub(super) fn pick(&self) -> (Address, String) {
        let servers = self.inner.servers.read().unwrap();
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed) % servers.len();
        let address = servers[n].clone();
        let url = address.read().unwrap().clone();
        (address, url)
    }

    /// The servers that answered the requests whose path contains `path`, in order.
    pub fn served_where(&self, path: &str) -> Vec<Address> {
        let served = self.inner.served.lock().unwrap();
        served
            .iter()
            .filter(|(_, answered)| answered.contains(path))
            .map(|(by, _)| by.clone())
            .collect()
    }

    /// Called after `address` answered a request for `path`: notes it, and springs the trap
    /// when it is due.
    pub(super) fn answered(&self, address: &Address, path: &str) {
        (self.inner.served.lock().unwrap()).push((address.clone(), path.to_owned()));
        let mut trap = self.inner.trap.lock().unwrap();
        let Some(set) = trap.as_mut() else { return };
        if !path.contains(&set.path) {
            return;
        }
        set.count -= 1;
        if set.count > 0 {
            return;
        }
        let status = Command::new("kill")
            .args(["-KILL", &set.pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -KILL {} failed", set.pid);
        self.inner
            .servers
            .write()
            .unwrap()
            .retain(|server| !Arc::ptr_eq(server, &set.victim));
        assert!(
            !self.inner.servers.read().unwrap().is_empty(),
            "the trap killed the route's last server"
        );
        *trap = None;
    }
}
