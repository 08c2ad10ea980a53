//! A network namespace made by a test, joined to this one by a veth pair, to cut one process
//! off from another (a partition) without stopping either. Needs root and `ip` (iproute2),
//! as CI has; the namespace and its link are deleted when dropped.
//!
//! Addresses, in a /24 of 10.201.0.0/16 picked per namespace: `.1` is this side's own (what
//! a process here connects from), `.5` a second address on this side (a server here bound to
//! it can be cut off alone), `.2` the namespace's side.

use std::process::Command;

pub struct Netns {
    name: String,
    subnet: u8,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` (iproute2) runs");
    assert!(
        output.status.success(),
        "ip {}: {} (network namespaces need root)",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Netns {
    pub fn create() -> Netns {
        let tag = fastrand::u16(..);
        let subnet = fastrand::u8(1..=254);
        let netns = Netns {
            name: format!("gg-{}-{tag:04x}", std::process::id()),
            subnet,
        };
        let (outside, inside) = (format!("ggo{tag:04x}"), format!("ggi{tag:04x}"));
        ip(&["netns", "add", &netns.name]);
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ]);
        ip(&["link", "set", &inside, "netns", &netns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", netns.outside()),
            "dev",
            &outside,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", netns.server()),
            "dev",
            &outside,
        ]);
        ip(&["link", "set", &outside, "up"]);
        netns.exec_ip(&[
            "addr",
            "add",
            &format!("{}/24", netns.inside()),
            "dev",
            &inside,
        ]);
        netns.exec_ip(&["link", "set", &inside, "up"]);
        netns.exec_ip(&["link", "set", "lo", "up"]);
        netns
    }

    fn exec_ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// This side's own address.
    pub fn outside(&self) -> String {
        format!("10.201.{}.1", self.subnet)
    }

    /// This side's second address, the one [`Self::cut_off_server`] cuts off.
    pub fn server(&self) -> String {
        format!("10.201.{}.5", self.subnet)
    }

    /// The namespace's address.
    pub fn inside(&self) -> String {
        format!("10.201.{}.2", self.subnet)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// The namespace can no longer reach [`Self::server`]: packets to it are dropped, new
    /// connections refused by the routing table. Connections to and from [`Self::outside`]
    /// are untouched.
    pub fn cut_off_server(&self) {
        self.exec_ip(&[
            "route",
            "add",
            "blackhole",
            &format!("{}/32", self.server()),
        ]);
    }

    /// Undoes [`Self::cut_off_server`]: the partition heals.
    pub fn heal(&self) {
        self.exec_ip(&[
            "route",
            "del",
            "blackhole",
            &format!("{}/32", self.server()),
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and so the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
