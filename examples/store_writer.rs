//! How many game results per second the Redis store's writer applies, without the HTTP server:
//! batches of 512 results spread over a population of players, applied back to back for five
//! seconds. `scripts/loadtest-store` runs it against a Redis of its own.
//!
//!   cargo run --release --example store_writer -- redis://127.0.0.1:6379 [PLAYERS]

use std::time::{Duration, Instant};

use anyhow::Context;
use guess_game::game::{Choice, Winner, judge};
use guess_game::store::game_id::GameIds;
use guess_game::store::model::{GameRecord, PlayerId};
use guess_game::store::redis::{RedisLimits, RedisStore};

const BATCH: usize = 512;
const RUN: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: store_writer REDIS_URL [PLAYERS]")?;
    let players: u32 = match args.next() {
        Some(text) => text.parse().context("PLAYERS must be a number")?,
        None => 10_000,
    };
    let limits = RedisLimits {
        games_kept: 100,
        board_size: 1_000_000,
        retention: Duration::from_secs(365 * 86_400),
    };
    let store = RedisStore::connect(&url, Duration::from_secs(2), limits).await?;
    let node = 1000;
    let ids = GameIds::new(node);
    let mut rng = fastrand::Rng::with_seed(1);
    let started = Instant::now();
    let (mut batches, mut slowest) = (0u64, Duration::ZERO);
    while started.elapsed() < RUN {
        let batch: Vec<GameRecord> = (0..BATCH)
            .map(|_| {
                let player = format!("player-{}", rng.u32(..players.max(1)));
                let (player_choice, computer_choice) =
                    (Choice::ALL[rng.usize(..3)], Choice::ALL[rng.usize(..3)]);
                let winner: Winner = judge(player_choice, computer_choice).winner;
                Ok(GameRecord {
                    game_id: ids
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("no node id held"))?,
                    player: PlayerId::from(&player)
                        .map_err(|_| anyhow::anyhow!("player id too long"))?,
                    player_choice,
                    computer_choice,
                    winner,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let applying = Instant::now();
        store.apply(node, &batch).await?;
        slowest = slowest.max(applying.elapsed());
        batches += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "writer: {} results/s ({batches} batches of {BATCH} over {players} players, {:.1} ms per batch, slowest {:.1} ms)",
        (batches as f64 * BATCH as f64 / elapsed).round(),
        1000.0 * elapsed / batches as f64,
        slowest.as_secs_f64() * 1000.0
    );
    Ok(())
}
