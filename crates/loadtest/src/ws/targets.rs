//! The servers a WebSocket run connects to: `--target` is one URL or a comma-separated list of
//! them (the instances of one cluster sharing a store). Connection `i` starts on target
//! `i mod n`, so the players are spread round-robin; a player whose instance goes away tries
//! the targets after its own in turn, so a restarted instance (on a new port) or a dead one is
//! skipped and the next one takes the player.
//!
//! Accounts are shared by a cluster's instances, so setup (guest creation) talks to the first
//! target only. Every target must be a loopback address unless `--allow-remote`.

use super::target::Target;

/// The resolved targets, at least one, in the order given.
#[derive(Clone, Debug)]
pub struct Targets {
    list: Vec<Target>,
}

impl Targets {
    /// Resolves every URL of the comma-separated `urls`; an empty entry is refused, and so is
    /// one that names the same server twice (it would skew the spread without saying so).
    pub async fn resolve(urls: &str, allow_remote: bool) -> Result<Targets, String> {
        let mut list: Vec<Target> = Vec::new();
        for url in split_list(urls)? {
            let target = Target::resolve(url, allow_remote).await?;
            if list.iter().any(|known| known.address == target.address) {
                return Err(format!("--target names {} twice", target.address));
            }
            list.push(target);
        }
        Ok(Targets { list })
    }

    /// The target accounts are created on.
    pub fn first(&self) -> &Target {
        &self.list[0]
    }

    /// Target number `number` (taken modulo the count, so any number is one).
    pub fn get(&self, number: usize) -> &Target {
        &self.list[number % self.list.len()]
    }

    /// The number of the target connection `index` opens on first.
    pub fn for_connection(&self, index: usize) -> usize {
        index % self.list.len()
    }

    /// The target tried after `number`.
    pub fn after(&self, number: usize) -> usize {
        (number + 1) % self.list.len()
    }

    /// Spreads each target's share of `connections` over source addresses; returns the most
    /// any target uses.
    pub fn spread(&mut self, connections: usize, requested: u8) -> Result<usize, String> {
        let share = connections.div_ceil(self.list.len());
        let mut most = 1;
        for target in &mut self.list {
            most = most.max(target.spread(share, requested)?);
        }
        Ok(most)
    }

    /// `ws://host:port` of each target, comma-separated, for the report.
    pub fn describe(&self) -> String {
        self.list
            .iter()
            .map(|target| format!("ws://{}", target.authority))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The entries of a comma-separated list, trimmed; none may be empty.
fn split_list(urls: &str) -> Result<Vec<&str>, String> {
    let entries: Vec<&str> = urls.split(',').map(str::trim).collect();
    if entries.iter().any(|entry| entry.is_empty()) {
        return Err(format!(
            "--target {urls:?}: an empty entry (expected URL[,URL...])"
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_split_on_commas_and_trimmed_and_empty_entries_are_refused() {
        assert_eq!(
            split_list("http://127.0.0.1:1").unwrap(),
            ["http://127.0.0.1:1"]
        );
        assert_eq!(
            split_list("http://127.0.0.1:1, ws://127.0.0.1:2 ").unwrap(),
            ["http://127.0.0.1:1", "ws://127.0.0.1:2"]
        );
        assert!(split_list("").is_err());
        assert!(split_list("http://127.0.0.1:1,").is_err());
        assert!(split_list("http://127.0.0.1:1,,http://127.0.0.1:2").is_err());
    }

    #[tokio::test]
    async fn connections_go_round_robin_and_a_player_moves_on_to_the_next_target() {
        let targets = Targets::resolve(
            "http://127.0.0.1:8080,http://127.0.0.1:8081,ws://127.0.0.1:8082",
            false,
        )
        .await
        .unwrap();
        assert_eq!(targets.first().address.port(), 8080);
        let firsts: Vec<usize> = (0..7).map(|index| targets.for_connection(index)).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(targets.after(0), 1);
        assert_eq!(targets.after(2), 0, "wraps around");
        assert_eq!(targets.get(4).address.port(), 8081);
        assert_eq!(
            targets.describe(),
            "ws://127.0.0.1:8080,ws://127.0.0.1:8081,ws://127.0.0.1:8082"
        );
    }

    #[tokio::test]
    async fn one_target_behaves_as_before_and_every_target_must_be_loopback() {
        let single = Targets::resolve("http://127.0.0.1:8080", false)
            .await
            .unwrap();
        assert_eq!(single.for_connection(5), 0);
        assert_eq!(single.after(0), 0, "the only target is tried again");

        let refused = Targets::resolve("http://127.0.0.1:8080,http://192.0.2.1:8080", false).await;
        assert!(refused.unwrap_err().contains("--allow-remote"));
        let twice = Targets::resolve("http://127.0.0.1:8080,ws://127.0.0.1:8080", false).await;
        assert!(twice.unwrap_err().contains("twice"));
    }

    #[tokio::test]
    async fn each_target_spreads_its_share_of_the_connections() {
        let mut targets = Targets::resolve("http://127.0.0.1:1,http://127.0.0.1:2", false)
            .await
            .unwrap();
        assert_eq!(targets.spread(10, 0).unwrap(), 1);
        assert_eq!(targets.spread(10, 3).unwrap(), 3);
    }
}
